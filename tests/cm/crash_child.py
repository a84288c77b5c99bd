"""A worker's change runner that kills itself (SIGKILL, no cleanup) at a named step boundary.

Run by ``tests/cm/test_crash.py`` as ``python -m tests.cm.crash_child BASE_URL LEDGER CRASH_AT``
against the ProvMnS test peer, which outlives it: the ledger on disk and the device are all the
restarted runner has. The verification's KPI means are given as numbers (there is no network
behind the peer): four baseline periods at 50, then periods at 40, 20 % worse than the twin
predicted, so the change goes the whole way to a roll back.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import UTC, datetime, timedelta

from adapters.provmns import ProvMnsAdapter
from twin.guard import GuardPolicy
from twin.ledger import open_ledger
from twin.rollout import ChangeRunner
from twin.schemas import CmChangeRequest

CHANGE_ID = "5f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
DN = "SubNetwork=Emulator,ManagedElement=gnb-001,GNBDUFunction=1,NRSectorCarrier=1"
FROM, TO = 19000, 17000
START = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
POLICY = GuardPolicy(mode="auto", observe_periods=3, baseline_periods=4)


def the_request() -> CmChangeRequest:
    return CmChangeRequest(change_id=CHANGE_ID, requested_at=START + timedelta(hours=4), requester="crash-test",
                           cell_key="nr:00101-000000101", target_dn=DN, class_="NRSectorCarrier",
                           attribute="configuredMaxTxPower", from_=FROM, to=TO)


def period(k: int) -> datetime:
    return START + timedelta(hours=k + 1)


def runner(base_url: str, ledger: str, crash_at: str | None = None) -> ChangeRunner:
    def hook(name: str) -> None:
        if name == crash_at:
            os.kill(os.getpid(), signal.SIGKILL)

    return ChangeRunner(open_ledger(ledger), POLICY, ProvMnsAdapter(base_url), crash_hook=hook)


def baseline(r: ChangeRunner) -> None:
    """The KPI history a worker rebuilds from its mirror on start."""
    for k in range(4):
        r.observe("c1", period(k), {"DRB.UEThpDl": 50.0}, {"DRB.UEThpDl": 40.0})


def run_after_change(r: ChangeRunner, first: int = 4) -> None:
    for k in range(first, 4 + POLICY.observe_periods):
        r.observe("c1", period(k), {"DRB.UEThpDl": 40.0}, {"DRB.UEThpDl": 40.0})


def main() -> None:
    base_url, ledger, crash_at = sys.argv[1:4]
    r = runner(base_url, ledger, crash_at)
    baseline(r)
    r.submit(the_request(), "c1", period(3))
    run_after_change(r)
    print("no crash point reached", crash_at)


if __name__ == "__main__":
    main()
