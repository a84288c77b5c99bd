"""The gap learners and the resync in a real worker, through the real broker: ``kill -9`` half-way
through the stream and a restart give the same raw and calibrated predictions, the same resync and
the same calibration as an uninterrupted run; the antenna fault of fault-midrun raises one
divergence alert on ``ran.alerts.v1`` that is cleared later, and its resync is published on
``ran.twin.resyncs.v1`` as it goes from pending to applied."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson

from replay.emulator import NetworkEmulator
from streams.broker import EmbeddedBroker
from streams.stats import read_stats_file
from tests.helpers import child_processes, consume_all, publish, wait_for
from tests.library.worker_run import GROUP, write_config
from twin import Twin, topics
from twin.mirror.store import CheckpointStore
from twin.prediction import CALIBRATED

TWIN = [sys.executable, "-c", "from twin.cli import main; main()"]
GP = 900
#: the fault comes at noon of the first day: the drift detectors are armed after 10 hours (default: a day)
WARMUP = 40
START = datetime(2024, 3, 4, tzinfo=UTC)
PERIODS = 15 * 4  # the fault comes at 12:00


def _start(config: Path, bootstrap: str, name: str, stats: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*TWIN, "run", "--config", str(config), "--bootstrap", bootstrap, "--name", name,
                             "--stats-file", str(stats)], stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _predicted(state: Path, cluster: str) -> dict[str, dict[str, dict[int, float]]]:
    mirror = CheckpointStore(state).load_all().get(cluster)
    return {} if mirror is None else {k: c.predicted.get(GP, {}) for k, c in sorted(mirror.cells.items())}


def _checkpointed(state: Path, cluster: str, name: str) -> int:
    """Periods of ``name`` every cell has in the checkpoint."""
    series = _predicted(state, cluster)
    return min((len(s.get(name, {})) for s in series.values()), default=0)


def test_kill_9_keeps_the_learners_and_the_fault_raises_one_alert(fresh_broker: EmbeddedBroker, tmp_path: Path) -> None:
    emu = NetworkEmulator("fault-midrun", seed=4, start=START, granularity_s=GP, mr_per_cell=1)
    records = emu.initial_records()
    ends = []
    for _ in range(PERIODS):
        records += emu.step()
        ends.append(round(emu.period_end.timestamp()))
    config = write_config(tmp_path / "twin.toml", tmp_path / "state", emu.public_model(), emu.clusters,
                          drift_warmup_periods=WARMUP)
    bootstrap = fresh_broker.bootstrap_servers
    half = next(i for i, r in enumerate(records) if r.topic == topics.PM_CELL and
                orjson.loads(r.value)["periodEnd"] == datetime.fromtimestamp(ends[PERIODS // 2], UTC)
                .isoformat().replace("+00:00", "Z"))
    asyncio.run(publish(bootstrap, records[:half], partitions=4))  # the first half; the rest after the kill

    # the uninterrupted reference: the library's in-memory ingest predicts and learns as the worker does
    reference = Twin(config=config)
    reference.ingest(records)
    expected = {k: c.predicted.get(GP, {}) for k, c in sorted(reference.mirror(emu.cluster_id).cells.items())}
    cal = f"DRB.UEThpDl{CALIBRATED}"
    assert all(len(series[cal]) == PERIODS for series in expected.values())
    assert any(series[cal] != series["DRB.UEThpDl"] for series in expected.values()), "nothing was calibrated"

    state = tmp_path / "state" / GROUP
    stats = tmp_path / "stats1.json"
    first = _start(config, bootstrap, "w1", stats, tmp_path / "w1.log")
    try:
        wait_for(lambda: read_stats_file(stats).get("predictedPeriods", 0) >= PERIODS // 2 - 5
                 and _checkpointed(state, emu.cluster_id, cal) > 0, 120, "the first half predicted and checkpointed")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()

    done = _checkpointed(state, emu.cluster_id, cal)
    assert 0 < done < PERIODS, f"the kill came at {done} of {PERIODS} periods checkpointed"

    asyncio.run(publish(bootstrap, records[half:], partitions=4))
    second = _start(config, bootstrap, "w2", tmp_path / "stats2.json", tmp_path / "w2.log")
    try:
        wait_for(lambda: all(len(s.get(cal, {})) == PERIODS for s in _predicted(state, emu.cluster_id).values())
                 and bool(_predicted(state, emu.cluster_id)), 180, "every period predicted after the restart")
        # the resync fit's process does not outlive its last fit (it holds ~300 MB once it has fitted)
        wait_for(lambda: not _fit_processes(second.pid), 30, "the fit's process to exit")
        assert "resync.finished" in (tmp_path / "w2.log").read_text()  # the restarted worker ran the fit
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    assert _predicted(state, emu.cluster_id) == expected  # raw and calibrated, every cell and period
    # the resync ran in a thread beside the loop and left what the uninterrupted run left
    def strip(records: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{k: v for k, v in r.items() if k != "fitSeconds"} for r in records]

    worker_mirror = CheckpointStore(state).load_all()[emu.cluster_id]
    ref_mirror = reference.mirror(emu.cluster_id)
    assert strip(worker_mirror.resyncs) == strip(ref_mirror.resyncs) and len(ref_mirror.resyncs) == 1
    assert worker_mirror.calibrations == ref_mirror.calibrations and ref_mirror.resyncs[0]["status"] == "applied"
    published = [orjson.loads(v) for v in asyncio.run(consume_all(bootstrap, topics.RESYNCS, 10**6, timeout_s=5))
                 if v is not None]
    assert {p["status"] for p in published} >= {"pending", "verifying", "applied"}
    assert {p["resyncId"] for p in published} == {ref_mirror.resyncs[0]["resyncId"]}
    # the DT-BSM estimator too: its records after kill -9 are the uninterrupted run's, and published
    def strip_fidelity(records: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{k: v for k, v in r.items() if k not in ("computeSeconds", "whatifSeconds")} for r in records]

    assert ref_mirror.fidelity and strip_fidelity(worker_mirror.fidelity) == strip_fidelity(ref_mirror.fidelity)
    fidelity = [orjson.loads(v) for v in asyncio.run(consume_all(bootstrap, topics.FIDELITY, 10**6, timeout_s=5))
                if v is not None]
    assert {f["periodEnd"] for f in fidelity} == {r["periodEnd"] for r in ref_mirror.fidelity}

    alerts = [orjson.loads(v) for v in asyncio.run(consume_all(bootstrap, topics.ALERTS, 10**6, timeout_s=5))
              if v is not None]
    divergence = [a for a in alerts if a["type"] == "TWIN_DIVERGENCE"]
    cells = {a["cellKey"] for a in divergence}
    assert emu.cells[4] in cells, divergence  # the faulty cell (and maybe neighbours that took its UEs)
    assert len({a["alertId"] for a in divergence}) == len(cells)  # one episode per cell (re-sent: same id)
    assert len({a["raisedAt"] for a in divergence}) == 1  # all raised by the fault's period
    assert {a["severity"] for a in divergence} == {"MAJOR", "CLEARED"}
    assert all(any(b["alertId"] == a["alertId"] and b["severity"] == "CLEARED" for b in divergence)
               for a in divergence)
    resync_alerts = [a for a in alerts if a["type"] == "TWIN_RESYNC"]
    assert len({a["alertId"] for a in resync_alerts}) == 1  # applied (WARNING), then verified (CLEARED)
    assert {a["severity"] for a in resync_alerts} == {"WARNING", "CLEARED"}, resync_alerts
    raised = datetime.fromisoformat(divergence[0]["raisedAt"]).timestamp()
    assert START.timestamp() + 12 * 3600 < raised <= START.timestamp() + 12 * 3600 + 2 * GP

    # the operator's view: twin alerts list folds raises and clears per alert id
    listed = subprocess.run([*TWIN, "alerts", "list", "--bootstrap", bootstrap, "--json"], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert listed.returncode == 0, listed.stderr[-2000:]
    doc = orjson.loads(listed.stdout)
    by_type = {a["type"]: a for a in doc["alerts"]}
    assert doc["invalidRecords"] == 0 and doc["active"] == 0, [(a["type"], a["text"]) for a in doc["alerts"]
                                                                  if a["active"]]
    assert {a["cellKey"] for a in doc["alerts"] if a["type"] == "TWIN_DIVERGENCE"} == cells
    assert all(a["clearedAt"] for a in doc["alerts"])
    assert by_type["TWIN_RESYNC"]["clearedAt"] and not by_type["TWIN_RESYNC"]["active"]
    none = subprocess.run([*TWIN, "alerts", "list"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env={**os.environ, "TWIN_KAFKA__BOOTSTRAP_SERVERS": ""})
    assert none.returncode == 2 and "--bootstrap" in none.stderr


def _fit_processes(pid: int) -> list[int]:
    """Children of ``pid`` that multiprocessing spawned (the resync fit's pool)."""
    return [c for c, cmd in child_processes(pid).items() if b"multiprocessing.spawn" in cmd]
