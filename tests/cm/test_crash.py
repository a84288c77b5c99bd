"""A worker killed with SIGKILL between each pair of steps of a change: the restarted runner
reconciles from the ledger and the device, and the change ends where it should, applied once and
rolled back once, never left unknown. The device is the ProvMnS test peer (real HTTP, requests
checked against the official TS 28.532 document), which outlives the killed process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adapters.provmns_peer import ProvMnsPeer
from tests.cm import crash_child as child
from twin import topics
from twin.ledger import State

REPO = Path(__file__).resolve().parents[2]
OBSERVES = [f"after:observe:{int(child.period(k).timestamp())}" for k in range(4, 4 + child.POLICY.observe_periods)]
POINTS = ["after:REQUESTED", "after:APPROVED", "after:APPLYING", "adapter:apply", "after:APPLIED", "adapter:verify",
          "after:OBSERVING", *OBSERVES, "after:ROLLING_BACK", "adapter:restore", "after:ROLLED_BACK"]


@pytest.fixture(scope="module")
def server() -> Iterator[ProvMnsPeer]:
    with ProvMnsPeer(validate_requests=False) as running:  # the adapter's shapes are checked in tests/adapters
        yield running


def writes(peer: ProvMnsPeer, value: int) -> int:
    return sum(1 for r in peer.requests if r.method == "PATCH" and json.loads(r.body or b"{}").get(
        "attributes", {}).get("configuredMaxTxPower") == value)


@pytest.mark.parametrize("crash_at", POINTS)
def test_kill_9_between_steps_then_restart_reconciles(server: ProvMnsPeer, tmp_path: Path, crash_at: str) -> None:
    server.reset()
    ledger = str(tmp_path / "cm-ledger.sqlite")
    done = subprocess.run([sys.executable, "-m", "tests.cm.crash_child", server.base_url, ledger, crash_at],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, (done.returncode, done.stdout, done.stderr[-2000:])

    restarted = child.runner(server.base_url, ledger)
    child.baseline(restarted)
    restarted.reconcile(child.period(3))
    seen = {e.step for e in restarted.ledger.history(child.CHANGE_ID)}
    first = 4 + sum(1 for s in seen if s.startswith("observe:"))
    child.run_after_change(restarted, first)
    restarted.reconcile(child.period(10))

    view = restarted.ledger.get(child.CHANGE_ID)
    assert view.state is State.ROLLED_BACK, [(e.step, e.detail) for e in view.history]
    assert server.value(child.DN, "/attributes/configuredMaxTxPower") == child.FROM
    assert writes(server, child.TO) == 1  # applied once, whatever the crash point
    assert writes(server, child.FROM) == 1  # rolled back once
    # what the change owed the broker is in the ledger's outbox, the killed process's part included
    # (it was never sent: the child publishes nothing), each result and the alert once
    owed = restarted.ledger.outbox(after=restarted.ledger.published())
    assert [json.loads(r.body)["state"] for r in owed if r.topic == topics.CHANGE_RESULTS] == ["APPLIED",
                                                                                            "ROLLED_BACK"]
    assert [json.loads(r.body)["type"] for r in owed if r.topic == topics.ALERTS] == ["CM_ROLLED_BACK"]
    steps = [e.step for e in view.history]
    assert steps[:4] == ["REQUESTED", "APPROVED", "APPLYING", "APPLIED"] and steps[-2:] == ["ROLLING_BACK",
                                                                                           "ROLLED_BACK"]
    assert len([s for s in steps if s.startswith("observe:")]) == child.POLICY.observe_periods
    restarted.ledger.close()
