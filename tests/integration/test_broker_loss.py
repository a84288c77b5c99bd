"""Broker loss, visible and survivable, against the real embedded broker.

The broker is paused (SIGSTOP: the process keeps its memory, but answers nothing) for longer than
the clients' request timeout: the worker reports it (readiness false with the reason, one outage
counted, a log line), keeps its sends and retries them, and once the broker answers again every
record reaches the mirror. Paused for longer than ``kafka.broker_loss_timeout_s`` while the worker
has sends pending, ``twin run`` exits with code 3 and a message that says why.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from streams.broker import EmbeddedBroker
from streams.worker import IngestWorker
from tests.helpers import network_records, publish, settings_for
from twin.synthetic import SyntheticNetwork

ROOT = Path(__file__).resolve().parents[2]
KAFKA = {"partitions": 2, "request_timeout_ms": 2000, "unreachable_after_s": 1.0, "broker_loss_timeout_s": 60.0}


def test_a_paused_broker_is_reported_and_nothing_is_lost(fresh_broker: EmbeddedBroker, tmp_path: Path) -> None:
    net = SyntheticNetwork(cells=6)
    first, second = network_records(net, range(0, 3), 200), network_records(net, range(3, 6), 200)
    settings = settings_for(tmp_path, [("east", net.keys[:3]), ("west", net.keys[3:])], kafka=KAFKA)
    bootstrap = fresh_broker.bootstrap_servers
    assert fresh_broker.process is not None
    pid = fresh_broker.process.pid
    seen: dict[str, object] = {}

    async def scenario() -> IngestWorker:
        await publish(bootstrap, first, partitions=2)
        worker = IngestWorker(settings, bootstrap)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            while worker.stats.records_applied < len(first):
                assert not task.done(), task
                await asyncio.sleep(0.1)
            seen["ready_before"] = worker.ready()
            os.kill(pid, signal.SIGSTOP)  # longer than the request timeout (2 s)
            try:
                await asyncio.sleep(8.0)
                seen["ready_during"] = worker.ready()
                seen["outages_during"] = worker.health.outages
                assert not task.done(), "the worker must survive the outage"
            finally:
                os.kill(pid, signal.SIGCONT)
            await publish(bootstrap, second, partitions=2)
            deadline = time.monotonic() + 90
            while worker.stats.records_applied < len(first) + len(second) or not worker.ready()[0]:
                assert not task.done(), task
                assert time.monotonic() < deadline, worker.stats.as_dict()
                await asyncio.sleep(0.1)
            seen["ready_after"] = worker.ready()
        finally:
            stop.set()
            await task
        return worker

    worker = asyncio.run(scenario())
    assert seen["ready_before"] == (True, None)
    ready, why = seen["ready_during"]  # type: ignore[misc]
    assert ready is False and "has not answered" in why and bootstrap in why
    assert seen["outages_during"] == 1 and seen["ready_after"] == (True, None)
    assert worker.health.outage_seconds >= 5.0
    clusters = worker.store.load_all()
    mr = sum(c.mr.count for cl in clusters.values() for c in cl.cells.values())
    assert mr == sum(1 for r in first + second if r.topic == "ran.mr.ue.v1")  # nothing lost, nothing twice
    assert all(len(c.periods[900]) == 6 for cl in clusters.values() for c in cl.cells.values())


def test_twin_run_exits_with_code_3_when_the_broker_stays_away(fresh_broker: EmbeddedBroker, tmp_path: Path) -> None:
    net = SyntheticNetwork(cells=30)
    records = network_records(net, range(0, 40), 3000)  # enough that the worker is busy when the broker stops
    bootstrap = fresh_broker.bootstrap_servers
    assert fresh_broker.process is not None
    pid = fresh_broker.process.pid
    config = tmp_path / "worker.toml"
    # small fetches keep the worker busy for a while: it has sends pending when the broker stops
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[kafka]\npartitions = 2\nrequest_timeout_ms = 2000\n'
                      'broker_loss_timeout_s = 4.0\nunreachable_after_s = 1.0\nfetch_max_records = 100\n'
                      f'[[topology.clusters]]\nid = "all"\ncells = {orjson.dumps(net.keys).decode()}\n')
    asyncio.run(publish(bootstrap, records, partitions=2))
    stats = tmp_path / "stats.json"
    proc = subprocess.Popen([sys.executable, "-m", "twin", "run", "--config", str(config), "--bootstrap", bootstrap,
                             "--processes", "1", "--stats-file", str(stats)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the worker never started consuming"
            try:
                consumed = orjson.loads(stats.read_bytes()).get("consumed", 0)
                if consumed > 0:
                    assert consumed < len(records) / 2, consumed  # still busy
                    break
            except (FileNotFoundError, orjson.JSONDecodeError):
                pass
            time.sleep(0.05)
        os.kill(pid, signal.SIGSTOP)
        try:
            _out, err = proc.communicate(timeout=60)
        finally:
            os.kill(pid, signal.SIGCONT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.decode()
    assert proc.returncode == 3, text[-3000:]
    assert "kafka.broker_loss_timeout_s" in text and "exiting with code 3" in text, text[-3000:]
    last = orjson.loads(stats.read_bytes())
    assert last["ready"] is False and last["brokerOutages"] >= 1 and last["sendRetries"] > 0, last
