"""The API under test: a real worker's checkpoints (``tests.library.worker_run``: the emulated
network through the embedded broker into an ``IngestWorker``), a real SQLite CM ledger with changes
the real guard judged, and the API served by uvicorn on a loopback port."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.library.worker_run import START, WorkerRun
from twin.api.app import create_app
from twin.api.auth import generate_tokens, load_tokens
from twin.api.server import RunningApi, start_in_thread
from twin.api.state import ApiState
from twin.config import TwinSettings, load_settings
from twin.digital_twin import Twin
from twin.ledger import open_ledger
from twin.ports import open_adapter
from twin.rollout import ChangeRunner
from twin.schemas import CmChangeRequest


@dataclass
class Served:
    url: str
    viewer: str
    operator: str
    run: WorkerRun
    settings: TwinSettings
    ledger_url: str
    changes: dict[str, str]  # label -> change id
    api: RunningApi

    def client(self, role: str | None) -> httpx.Client:
        headers = {} if role is None else {"Authorization": f"Bearer {getattr(self, role)}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    def twin(self) -> Twin:
        return Twin.from_state(self.run.state_dir, config=self.run.config_file)


@pytest.fixture(scope="session")
def worker_run(emulated_worker_run: WorkerRun) -> WorkerRun:
    """The session's one run of the worker (``conftest.py``), which the API reads and never changes (a
    test that writes into its state restores it, or works on a ``copy_state``)."""
    return emulated_worker_run


def tilt_request(twin: Twin, cell: str, to: int, requester: str = "noc-test") -> CmChangeRequest:
    """A digitalTilt change of ``cell`` from the value the mirror holds."""
    cm = twin.mirror(twin.cluster_of(cell)).cells[cell].cm["SectorEquipmentFunction.digitalTilt"]
    return CmChangeRequest.model_validate({
        "changeId": str(uuid.uuid4()), "requestedAt": START, "requester": requester, "cellKey": cell,
        "targetDn": cm[2], "class": "SectorEquipmentFunction", "attribute": "digitalTilt", "from": cm[0], "to": to})


def make_ledger(run: WorkerRun, url: str) -> dict[str, str]:
    """Changes submitted through the real guard (manual mode: allowed ones wait for approval)."""
    from replay.emulator import NetworkEmulator

    settings = load_settings(run.config_file)
    twin = Twin.from_state(run.state_dir, config=run.config_file)
    emu = NetworkEmulator("urban-hotspots", seed=4, start=START, granularity_s=900, mr_per_cell=0)
    runner = ChangeRunner(open_ledger(url), settings.guard, open_adapter("emulator", endpoint=emu.oss))
    west = twin.cells("west")
    plan = {"approve": (west[0], 60), "same-cell": (west[0], 50), "reject": (west[1], 60),
            "kill": (west[2], 60), "too-far": (west[3], 140)}
    now = datetime.now(UTC)  # the runner's clock: [cm] clock = "wall", the default, as the API's guard check
    ids = {}
    for label, (cell, to) in plan.items():
        req = tilt_request(twin, cell, to)
        runner.submit(req, twin.cluster_of(cell), now)
        ids[label] = req.change_id
    runner.ledger.close()
    return ids


def serve(run: WorkerRun, tmp: Path, stats_files: list[Path] | None = None) -> Served:
    settings = load_settings(run.config_file)
    ledger_url = str(tmp / "cm-ledger.sqlite")
    ids = make_ledger(run, ledger_url)
    tokens = generate_tokens(tmp / "tokens.toml")
    state = ApiState(settings, run.state_dir, stats_files or [], ledger_url)
    app = create_app(state, load_tokens(tmp / "tokens.toml", environ={}))
    api = start_in_thread(app)
    return Served(api.url, tokens["viewer"], tokens["operator"], run, settings, ledger_url, ids, api)


@pytest.fixture(scope="module")
def served(worker_run: WorkerRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = serve(worker_run, tmp_path_factory.mktemp("api"))
    yield s
    s.api.stop()


def copy_state(run: WorkerRun, dest: Path) -> Path:
    shutil.copytree(run.state_dir, dest)
    return dest


def body(r: httpx.Response) -> Any:
    return r.json()
