"""Crash safety of the worker, with real `twin run` processes and the real broker.

``kill -9`` mid-stream and a restart must give the same mirror as an uninterrupted run, and in a
group of two workers the survivor must take over the clusters of a killed one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from streams.broker import EmbeddedBroker
from streams.stats import read_stats_file
from streams.worker import IngestWorker
from tests.helpers import out_record, publish, run_worker_until, settings_for, wait_for
from twin.mirror.store import CheckpointStore
from twin.ports import OutRecord
from twin.synthetic import SyntheticNetwork

TWIN = [sys.executable, "-c", "from twin.cli import main; main()"]
N_PERIODS = 8
MR_PER_PERIOD = 6000


def _stream(net: SyntheticNetwork) -> list[OutRecord]:
    records = [out_record(r) for r in net.cm_snapshots()]
    for period in range(N_PERIODS):
        records += [out_record(r) for r in net.pm_period(period)]
        records += [out_record(r) for r in net.mr_events(period, MR_PER_PERIOD)]
    return records


def _clusters(net: SyntheticNetwork, size: int = 3) -> list[tuple[str, list[str]]]:
    return [(f"c{i // size}", net.keys[i:i + size]) for i in range(0, len(net.keys), size)]


def _write_config(path: Path, state_dir: Path, clusters: list[tuple[str, list[str]]], group: str) -> Path:
    lines = [f'state_dir = "{state_dir}"', "checkpoint_interval_s = 1.5", 'log_level = "WARNING"',
             "[kafka]", f'group_id = "{group}"', "partitions = 12", ""]
    for cid, cells in clusters:
        lines += ["[[topology.clusters]]", f'id = "{cid}"', f"cells = {orjson.dumps(cells).decode()}", ""]
    path.write_text("\n".join(lines))
    return path


def _start(config: Path, bootstrap: str, name: str, stats: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*TWIN, "run", "--config", str(config), "--bootstrap", bootstrap, "--name", name, "--stats-file", str(stats)],
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )


def _mirror_doc(directory: Path) -> dict[str, Any]:
    return {cid: c.to_dict() for cid, c in CheckpointStore(directory).load_all().items()}


def _mr_total(directory: Path) -> int:
    return sum(cell.mr.count for c in CheckpointStore(directory).load_all().values() for cell in c.cells.values())


def _reference(bootstrap: str, tmp: Path, clusters: list[tuple[str, list[str]]], total: int) -> dict[str, Any]:
    settings = settings_for(tmp / "ref", clusters, kafka={"group_id": "reference"})
    worker = IngestWorker(settings, bootstrap, "reference")
    asyncio.run(run_worker_until(worker, lambda w: w.stats.records_applied >= total, timeout_s=120))
    return _mirror_doc(settings.state_dir / "reference")


def test_kill_9_mid_stream_then_restart_equals_uninterrupted_run(fresh_broker: EmbeddedBroker, tmp_path: Path) -> None:
    net = SyntheticNetwork(cells=12, seed=3)
    records = _stream(net)
    clusters = _clusters(net)
    bootstrap = fresh_broker.bootstrap_servers
    # half the stream first, the rest after the kill: a worker that starts fast could otherwise have
    # ingested all of it before its stats file showed it had begun
    half = len(records) // 2
    asyncio.run(publish(bootstrap, records[:half]))
    expected_mr = N_PERIODS * MR_PER_PERIOD

    config = _write_config(tmp_path / "w.toml", tmp_path / "state", clusters, "crashy")
    stats = tmp_path / "stats.json"
    first = _start(config, bootstrap, "w1", stats, tmp_path / "w1.log")
    try:
        wait_for(lambda: read_stats_file(stats).get("recordsApplied", 0) > 2000, 90, "the worker to start applying")
        at_kill = read_stats_file(stats)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert at_kill["recordsApplied"] < len(records), "the kill came after the stream had been ingested"
    state = tmp_path / "state" / "crashy"
    assert _mr_total(state) < expected_mr
    asyncio.run(publish(bootstrap, records[half:]))
    expected = _reference(bootstrap, tmp_path, clusters, len(records))  # the uninterrupted run

    second = _start(config, bootstrap, "w2", tmp_path / "stats2.json", tmp_path / "w2.log")
    try:
        wait_for(lambda: _mr_total(state) >= expected_mr, 120, "the restarted worker to catch up")
        time.sleep(2.0)  # a further checkpoint round: anything double counted would show up now
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    assert _mirror_doc(state) == expected


def test_two_workers_split_clusters_and_survivor_takes_over(fresh_broker: EmbeddedBroker, tmp_path: Path) -> None:
    net = SyntheticNetwork(cells=24, seed=5)
    records = _stream(net)
    clusters = _clusters(net)
    bootstrap = fresh_broker.bootstrap_servers
    asyncio.run(publish(bootstrap, records[: len(records) // 4]))

    config = _write_config(tmp_path / "w.toml", tmp_path / "state", clusters, "pair")
    stats_a, stats_b = tmp_path / "a.json", tmp_path / "b.json"
    a = _start(config, bootstrap, "a", stats_a, tmp_path / "a.log")
    b = _start(config, bootstrap, "b", stats_b, tmp_path / "b.log")
    try:
        wait_for(lambda: all(read_stats_file(s).get("mirrorPartitions") for s in (stats_a, stats_b)),
                 90, "both workers to own partitions")
        owned_a = set(read_stats_file(stats_a)["mirrorPartitions"])
        owned_b = set(read_stats_file(stats_b)["mirrorPartitions"])
        assert owned_a and owned_b and not owned_a & owned_b
        asyncio.run(publish(bootstrap, records[len(records) // 4:]))
        os.kill(a.pid, signal.SIGKILL)
        a.wait(10)
        expected_mr = N_PERIODS * MR_PER_PERIOD
        state = tmp_path / "state" / "pair"
        wait_for(lambda: _mr_total(state) >= expected_mr, 150, "the survivor to finish the stream")
        wait_for(lambda: set(read_stats_file(stats_b).get("mirrorPartitions", [])) >= owned_a | owned_b, 60,
                 "the survivor to own every partition")
        time.sleep(2.0)
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)
    expected = _reference(bootstrap, tmp_path, clusters, len(records))
    assert _mirror_doc(state) == expected
    assert sorted(expected) == sorted(cid for cid, _ in clusters)
