"""A served state for the dashboard tests: a copy of a real worker run's checkpoints, a real SQLite CM
ledger with changes the real guard decided (three waiting for approval, one refused, one pushed to
the emulated network and under observation), an alert in
the checkpoint folder's journal (as the worker journals them; the short run raised none), a tokens
file, and ``twin api`` started on it as a separate process on a loopback port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from adapters.emulator import EmulatorAdapter
from replay.emulator import NetworkEmulator
from tests.cm.util import request
from tests.library.worker_run import GP, GROUP, START, WorkerRun, _scenario
from twin.api import journal
from twin.guard import GuardPolicy
from twin.ledger import open_ledger
from twin.rollout import ChangeRunner
from twin.schemas import Alert

REPO = Path(__file__).resolve().parents[2]
OPERATOR = "operator-token-0123456789abcdef"
VIEWER = "viewer-token-0123456789abcdef00"

__all__ = ["OPERATOR", "VIEWER", "ServedState", "build_state", "journal_alert", "running_api", "write_tokens"]


@dataclass(frozen=True)
class ServedState:
    root: Path
    state_dir: Path  # the worker's state_dir (checkpoints in state_dir/<group>)
    config_file: Path
    tokens_file: Path
    ledger_url: str
    cluster: str
    to_approve: str  # change ids
    to_deny: str
    left_pending: str
    refused: str
    observing: str
    alert_cell: str


def build_state(run: WorkerRun, root: Path) -> ServedState:
    """Copies ``run``'s state under ``root`` (the session's run stays untouched) and fills the ledger."""
    state_dir = root / "state"
    shutil.copytree(run.state_dir, state_dir)
    lines = run.config_file.read_text().splitlines()
    assert lines[0].startswith("state_dir = "), lines[0]
    config_file = root / "worker.toml"
    config_file.write_text("\n".join([f'state_dir = "{state_dir}"', *lines[1:]]) + "\n")
    tokens_file = write_tokens(root / "tokens.toml")

    # the same emulated network the worker mirrored (its OSS answers the changes' "from" values)
    emu = NetworkEmulator(_scenario(), seed=4, start=START, granularity_s=GP, mr_per_cell=1)
    emu.initial_records()
    cluster, cells = next(iter(run.clusters.items()))
    ledger_url = str(state_dir / "cm-ledger.sqlite")
    runner = ChangeRunner(open_ledger(ledger_url), GuardPolicy(mode="manual"), EmulatorAdapter(emu.oss))
    now = datetime.fromtimestamp(run.period_ends[-1], UTC)
    a = request(emu, cells[1], "cellIndividualOffset", 2.0, at=now, requester="optimiser-test")
    b = request(emu, cells[2], "cellIndividualOffset", -1.0, at=now, requester="optimiser-test")
    c = request(emu, cells[4], "cellIndividualOffset", 1.0, at=now, requester="optimiser-test")
    bad = request(emu, cells[3], "cellIndividualOffset", 9.0, at=now, requester="optimiser-test")
    for r in (a, b, c, bad):  # submitted on the runner's clock ([cm] clock = "wall", the default), as the
        runner.submit(r, cluster, datetime.now(UTC))  # API's guard judges their approval
    runner.ledger.close()
    # one the guard lets through at once (auto mode): pushed by the adapter, then observed
    pushed = request(emu, cells[6], "cellIndividualOffset", 1.0, at=now, requester="optimiser-test")
    auto = ChangeRunner(open_ledger(ledger_url), GuardPolicy(mode="auto"), EmulatorAdapter(emu.oss))
    for end, by_cell in _real_kpis(run, config_file, cluster).items():  # the baseline the verification needs
        mean = {k: sum(c[k] for c in by_cell.values()) / len(by_cell) for k in next(iter(by_cell.values()))}
        auto.observe(cluster, datetime.fromtimestamp(end, UTC), mean, by_cell=by_cell)
    view = auto.submit(pushed, cluster, now)
    auto.ledger.close()
    assert view.state.value == "OBSERVING", (view.state, view.reason)
    state = ServedState(root, state_dir, config_file, tokens_file, ledger_url, cluster, a.change_id, b.change_id,
                        c.change_id, bad.change_id, pushed.change_id, cells[1])
    journal_alert(state, "TWIN_DIVERGENCE", "MAJOR", now, "the twin's DL throughput is far from the network's")
    return state


def _real_kpis(run: WorkerRun, config_file: Path, cluster: str) -> dict[int, dict[str, dict[str, float]]]:
    """Per period end, each cell's real DL throughput as the worker mirrored it."""
    from twin import Twin

    mirror = Twin.from_state(run.state_dir, config=config_file).mirror(cluster)
    out: dict[int, dict[str, dict[str, float]]] = {}
    for key, cell in mirror.cells.items():
        for end, value in cell.pm.get(GP, {}).get("DRB.UEThpDl", {}).items():
            out.setdefault(int(end), {})[key] = {"DRB.UEThpDl": float(value)}
    return dict(sorted(out.items()))


def write_tokens(path: Path) -> Path:
    """The tests' tokens file: ops-alice (operator) and noc-bob (viewer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[[tokens]]\nname = "ops-alice"\nrole = "operator"\ntoken = "{OPERATOR}"\n\n'
                    f'[[tokens]]\nname = "noc-bob"\nrole = "viewer"\ntoken = "{VIEWER}"\n')
    return path


def journal_alert(state: ServedState, type_: str, severity: str, at: datetime, text: str) -> Alert:
    """Journals an alert on ``state.alert_cell`` where the worker journals its alerts (twin.api.journal)."""
    alert = Alert.model_validate({"alertId": str(uuid.uuid4()), "raisedAt": at, "cellKey": state.alert_cell,
                                  "clusterId": state.cluster, "severity": severity, "type": type_, "text": text})
    journal.append(state.state_dir / GROUP, [alert])
    return alert


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_api(state: ServedState | None, log: Path, *, state_dir: Path | None = None,
                tokens_file: Path | None = None) -> Iterator[str]:
    """``twin api`` on ``state`` (or on a bare ``state_dir`` with the default settings), as its own
    process on 127.0.0.1; yields its base URL, then stops it."""
    port = _free_port()
    cmd = [str(Path(sys.executable).with_name("twin")), "api", "--port", str(port)]
    if state is not None:
        cmd += ["--state-dir", str(state.state_dir), "--tokens", str(state.tokens_file), "--config",
                str(state.config_file)]
    else:
        assert state_dir is not None and tokens_file is not None
        cmd += ["--state-dir", str(state_dir), "--tokens", str(tokens_file)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_API_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"twin api exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"twin api did not answer on {url}: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
