"""A real worker run on the emulated network, whose state ``twin.Twin`` is then opened on.

The emulated urban cluster (57 cells) is split into two clusters of the topology, its OSS retilts
one cell an hour in (so one cluster's CM changes mid-run), and eight 15-minute periods go through
the embedded broker into an in-process ``IngestWorker`` (both stages), which mirrors them, predicts
every period and checkpoints. The run keeps what the worker published on
``ran.twin.predictions.v1`` for the comparisons.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from replay.emulator import NetworkEmulator, load_scenario
from streams.broker import EmbeddedBroker
from streams.worker import IngestWorker
from tests.helpers import consume_all, publish
from twin import topics
from twin.config import load_settings
from twin.ports import OutRecord

START = datetime(2024, 3, 1, 12, tzinfo=UTC)
GP = 900
PERIODS = 8
GROUP = "twin-library"
RETILTED_CELL = 4  # index of the cell the OSS retilts from 4 to 8 degrees (scenario event), an hour in


@dataclass(frozen=True)
class WorkerRun:
    state_dir: Path  # the worker's state_dir (checkpoints under state_dir / GROUP)
    config_file: Path
    records: list[OutRecord]  # everything published, in order
    published: list[dict[str, Any]]  # the worker's predictions as published (wire form)
    period_ends: list[int]
    clusters: dict[str, list[str]]
    retilted: str  # cell key of the retilted cell
    retilt_at: int  # event time (epoch s) of the retilt
    opened_mid_run: int  # clusters seen by a Twin opened while the worker was running


def _scenario() -> Any:
    scenario = load_scenario("urban-hotspots")
    events = tuple(replace(ev, at_h=1.0, params={**ev.params, "cell": RETILTED_CELL, "value": 80})
                   for ev in scenario.events if ev.kind == "cm_change")
    return replace(scenario, events=events)


def write_config(path: Path, state_dir: Path, model: dict[str, Any], clusters: dict[str, list[str]],
                 drift_warmup_periods: int | None = None) -> Path:
    """``drift_warmup_periods``: arm the drift detectors sooner than the default day (a test whose
    fault comes at noon of its first day)."""
    def q(v: Any) -> str:
        return orjson.dumps(v).decode()

    lines = [f"state_dir = {q(str(state_dir))}", "checkpoint_interval_s = 0.2", "", "[kafka]",
             f"group_id = {q(GROUP)}", "partitions = 4", "", "[predict]"]
    lines += [f"{k} = {q(model[k])}" for k in ("scenario", "n_ues", "demand_bps", "indoor_fraction", "seed")]
    for cid, cells in clusters.items():
        lines += ["", "[[topology.clusters]]", f"id = {q(cid)}", f"cells = {q(cells)}"]
    if drift_warmup_periods is not None:
        lines += ["", "[gap]", f"drift_warmup_periods = {drift_warmup_periods}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_emulated_worker(tmp: Path) -> WorkerRun:
    emu = NetworkEmulator(_scenario(), seed=4, start=START, granularity_s=GP, mr_per_cell=1)
    cells = list(emu.cells)
    clusters = {"west": cells[:30], "east": cells[30:]}
    state_dir = tmp / "state"
    config_file = write_config(tmp / "worker.toml", state_dir, emu.public_model(), clusters)
    settings = load_settings(config_file)
    records = emu.initial_records()
    period_ends = []
    retilt_at = None
    for _ in range(PERIODS):
        step = emu.step()
        for r in step:
            if r.topic == topics.CM_NOTIFICATIONS:
                retilt_at = round(datetime.fromisoformat(orjson.loads(r.value)["eventTime"]).timestamp())
        records += step
        period_ends.append(round(emu.period_end.timestamp()))
    assert retilt_at is not None, "the scenario's OSS retilt did not happen"

    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers

        async def scenario() -> tuple[IngestWorker, list[dict[str, Any]], int]:
            from twin import Twin

            await publish(bootstrap, records, partitions=4)
            worker = IngestWorker(settings, bootstrap, worker_name="library-test")
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            deadline = time.monotonic() + 120
            opened = -1
            try:
                while (worker.mirror.predictions is None or worker.mirror.predictions.stats.periods < 2 * PERIODS
                       or opened < 0):
                    if task.done():
                        task.result()
                        raise AssertionError("worker stopped early")
                    if time.monotonic() > deadline:
                        raise AssertionError(f"worker did not predict every period: {worker.stats.as_dict()}")
                    if opened < 0 and worker.stats.checkpoints > 0:
                        # a reader beside the running worker: it must neither fail nor disturb it
                        opened = len(Twin.from_state(state_dir, config_file).clusters)
                    await asyncio.sleep(0.05)
            finally:
                stop.set()
                await task
            assert worker.mirror.predictions is not None
            expected = worker.mirror.predictions.stats.records
            values = await consume_all(bootstrap, topics.PREDICTIONS, expected)
            published = [orjson.loads(v) for v in values if v is not None]
            assert len(published) == expected, (len(published), expected)
            return worker, published, opened

        worker, published, opened = asyncio.run(scenario())
    assert worker.stats.dead_lettered.total() == 0
    return WorkerRun(state_dir, config_file, records, published, period_ends, clusters,
                     cells[RETILTED_CELL], retilt_at, opened)
