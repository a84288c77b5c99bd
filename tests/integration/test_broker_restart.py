"""The embedded broker killed mid-run (``kill -9``): the runtime that owns it starts it again, and
the worker sees that its checkpoints' offsets belong to the old, lost log (``streams.incarnation``):
it keeps its mirror, reads the new log from its start, counts and logs it and raises an alert. New
telemetry reaches the mirror; nothing already mirrored is lost or counted twice.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from streams.stats import read_stats_file
from tests.helpers import consume_all, network_records, publish, wait_for
from twin import Twin
from twin.synthetic import SyntheticNetwork

ROOT = Path(__file__).resolve().parents[2]


def _tansu_children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"tansu" in cmdline:
            out.append(int(entry.name))
    return out


def test_the_embedded_broker_killed_mid_run_is_restarted_and_nothing_is_lost(tmp_path: Path) -> None:
    net = SyntheticNetwork(cells=6)
    before, after = network_records(net, range(0, 3), 60), network_records(net, range(3, 6), 60)
    state = tmp_path / "state"
    config = tmp_path / "worker.toml"
    config.write_text(f'state_dir = "{state}"\ncheckpoint_interval_s = 0.2\n[kafka]\npartitions = 2\n'
                      f'[[topology.clusters]]\nid = "east"\ncells = {orjson.dumps(net.keys[:3]).decode()}\n'
                      f'[[topology.clusters]]\nid = "west"\ncells = {orjson.dumps(net.keys[3:]).decode()}\n')
    stats, log = tmp_path / "stats.json", tmp_path / "worker.log"
    expected_mr = sum(1 for r in before + after if r.topic == "ran.mr.ue.v1")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "twin", "run", "--config", str(config), "--processes", "2",
                                 "--stats-file", str(stats)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        found = wait_for(lambda: re.search(rb"embedded broker: bootstrap_servers=(\S+)", log.read_bytes()), 60,
                         "the embedded broker")
        bootstrap = found.group(1).decode()
        asyncio.run(publish(bootstrap, before, partitions=2))
        wait_for(lambda: (done := read_stats_file(stats)).get("recordsApplied", 0) >= len(before)
                 and done.get("checkpoints"), 90, "the first records in the mirror")
        time.sleep(1.0)  # a checkpoint after the last of them
        (broker,) = _tansu_children(proc.pid)
        os.kill(broker, signal.SIGKILL)
        wait_for(lambda: read_stats_file(stats).get("brokerRestarts", 0) >= 1, 60, "the runtime to restart the broker")
        asyncio.run(publish(bootstrap, after, partitions=2))

        def complete() -> bool:
            try:
                twin = Twin.from_state(state, config)
            except Exception:
                return False
            mr = sum(cell.mr.count for c in twin.clusters for cell in twin.mirror(c).cells.values())
            return mr >= expected_mr and all(len(twin.periods(c)) == 6 for c in ("east", "west"))

        wait_for(lambda: read_stats_file(stats).get("offsetResets", 0) >= 2, 60, "the mirror stage to see the new log")
        wait_for(complete, 120, "the telemetry published after the restart in the mirror")
        alerts = [orjson.loads(v) for v in asyncio.run(consume_all(bootstrap, "ran.alerts.v1", 2, timeout_s=10)) if v]
        last = read_stats_file(stats)
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert last["offsetResets"] == 2 and last["brokerRestarts"] == 1, last  # both partitions, once
    assert '"event": "broker.restarted"' in text and '"event": "mirror.offsets_reset"' in text
    assert {(a["type"], a["clusterId"]) for a in alerts} >= {("DATA_GAP", "east"), ("DATA_GAP", "west")}, alerts
    # nothing lost, nothing counted twice: every MR event of both halves once, every PM period
    twin = Twin.from_state(state, config)
    mr = sum(twin.mirror(c).cells[k].mr.count for c in twin.clusters for k in twin.mirror(c).cells)
    assert mr == expected_mr
    assert all(len(cell.periods[900]) == 6 for c in twin.clusters for cell in twin.mirror(c).cells.values())
