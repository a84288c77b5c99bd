"""``twin bench ingest``: the worker's ingest path against a bare consumer and a quixstreams peer.

All three read the same topic of MR events on the same embedded broker in one run, so the ratios
hold even on a noisy shared machine. Each clock starts when its first event arrives and stops when the
last event has been processed (for the worker: applied to the mirror, after the re-keying hop
through ``twin.<group>.by-cluster.v1``). The worker is measured as ``twin run`` runs it (both
stages in one process, a child process sharing the re-keying), and also as one process alone.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from streams.broker import EmbeddedBroker
from streams.kafka_io import KafkaSink, make_consumer
from streams.process import spawn_sibling, stop_child
from streams.worker import STAGES, IngestWorker
from twin import topics
from twin.config import TwinSettings
from twin.ingest import IngestDecoder, Rejection
from twin.mirror.cluster import ClusterMirror
from twin.ports import OutRecord
from twin.synthetic import SyntheticNetwork

__all__ = ["bench_ingest_command", "run_ingest_benchmark"]


async def _publish(bootstrap: str, events: int, cells: int, partitions: int) -> None:
    net = SyntheticNetwork(cells=cells, seed=11)
    sink = KafkaSink(bootstrap, ensure=(*topics.INGEST_TOPICS, topics.DLQ),
                     partitions=partitions)
    await sink.start()
    chunk = 20_000
    for index, start in enumerate(range(0, events, chunk)):
        n = min(chunk, events - start)
        await sink.send_many([OutRecord(topics.MR_UE, e.cell_key.encode(), e.to_json_bytes())
                              for e in net.mr_events(index, n)])
    await sink.stop()


async def _raw(bootstrap: str, events: int) -> float:
    consumer = make_consumer(bootstrap, topics.MR_UE, group_id=f"bench-raw-{time.time_ns()}")
    await consumer.start()
    t0 = None
    n = 0
    loads = orjson.loads
    while n < events:
        batch = await consumer.getmany(timeout_ms=500, max_records=5000)
        if batch and t0 is None:
            t0 = time.time()
        for messages in batch.values():
            for m in messages:
                loads(m.value)
            n += len(messages)
    assert t0 is not None
    elapsed = time.time() - t0
    await consumer.stop()
    return events / elapsed


def _peer(bootstrap: str, events: int, state_dir: Path) -> float:
    """The same validation and mirror update as a plain quixstreams application."""
    from quixstreams import Application

    decoder = IngestDecoder(TwinSettings().ingest)
    mirror = ClusterMirror("bench")
    marks: dict[str, float] = {}

    def process(value: bytes) -> None:
        if "t0" not in marks:
            marks["t0"] = time.time()
        out = decoder.decode(topics.MR_UE, None, value)
        if not isinstance(out, Rejection):
            mirror.apply(out)

    app = Application(broker_address=bootstrap, consumer_group=f"bench-peer-{time.time_ns()}",
                      auto_offset_reset="earliest", state_dir=str(state_dir), loglevel="WARNING",
                      use_changelog_topics=False)
    topic = app.topic(topics.MR_UE, value_deserializer="bytes")
    sdf = app.dataframe(topic)
    sdf.update(process)
    app.run(count=events, collect=False)
    elapsed = time.time() - marks["t0"]
    if mirror.applied != events:
        raise RuntimeError(f"peer applied {mirror.applied} of {events} events")
    return events / elapsed


async def _worker(bootstrap: str, events: int, state_dir: Path, processes: int) -> float:
    """The worker as ``twin run`` runs it: with ``processes=2`` a child process shares the re-keying."""
    group = f"bench-worker-{time.time_ns()}"
    settings = TwinSettings.model_validate({
        "state_dir": state_dir, "kafka": {"group_id": group}, "checkpoint_interval_s": 1.0,
    })
    child = None
    child_stats = state_dir / "rekey-stats.json"
    sibling = None
    stop = asyncio.Event()
    try:
        if processes == 2:
            state_dir.mkdir(parents=True, exist_ok=True)
            child, sibling = spawn_sibling(
                ["run", "--bootstrap", bootstrap, "--stage", "rekey", "--name", "bench-rekey",
                 "--stats-file", str(child_stats)],
                env={"TWIN_KAFKA__GROUP_ID": group, "TWIN_STATE_DIR": str(state_dir), "TWIN_LOG_LEVEL": "WARNING"})
        worker = IngestWorker(settings, bootstrap, "bench", stages=STAGES, sibling=sibling)
        await worker.start()
        loops = asyncio.ensure_future(worker.run_loops(stop))
        while worker.stats.records_applied < events:
            if loops.done():
                loops.result()
            if child is not None and child.poll() is not None:
                raise RuntimeError(f"re-keying stage exited with {child.returncode}")
            await asyncio.sleep(0.002)
        end = time.time()
        stop.set()
        await loops
        await worker.close()
    finally:
        if child is not None:
            stop_child(child)
    first, rejected = worker.stats.first_consumed_at, worker.stats.dead_lettered.total()
    if child is not None:
        stats = orjson.loads(child_stats.read_bytes())
        rejected += stats["deadLetteredTotal"]
        if stats["firstConsumedAt"] is not None:
            first = stats["firstConsumedAt"] if first is None else min(first, stats["firstConsumedAt"])
    if rejected:
        raise RuntimeError(f"{rejected} benchmark events were dead-lettered")
    if first is None:
        raise RuntimeError("no stage recorded its first consumed event")
    return float(events / (end - first))


def run_ingest_benchmark(events: int, cells: int = 57, partitions: int = 12,
                         peer: bool = True, repeat: int = 3) -> dict[str, Any]:
    """Rounds of raw, peer, worker (two processes) and worker (one process), interleaved so that a
    busy minute on a shared machine hits all of them; the figures are the medians of the rounds."""
    samples: dict[str, list[float]] = {"raw": [], "peer": [], "ingest": [], "single": []}
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        bootstrap = broker.bootstrap_servers
        asyncio.run(_publish(bootstrap, events, cells, partitions))
        for round_ in range(repeat):
            samples["raw"].append(asyncio.run(_raw(bootstrap, events)))
            if peer:
                samples["peer"].append(_peer(bootstrap, events, Path(tmp) / f"quix{round_}"))
            samples["ingest"].append(asyncio.run(_worker(bootstrap, events, Path(tmp) / f"p2-{round_}", 2)))
            samples["single"].append(asyncio.run(_worker(bootstrap, events, Path(tmp) / f"p1-{round_}", 1)))
    raw, ingest, single = (statistics.median(samples[k]) for k in ("raw", "ingest", "single"))
    peer_rate = statistics.median(samples["peer"]) if peer else None
    return {
        "benchmark": "ingest",
        "events": events,
        "cells": cells,
        "partitions": partitions,
        "rounds": repeat,
        "raw_events_per_s": round(raw),
        "peer": "quixstreams" if peer else None,
        "peer_events_per_s": round(peer_rate) if peer_rate else None,
        "ingest_events_per_s": round(ingest),
        "ingest_processes": 2,
        "ingest_single_process_events_per_s": round(single),
        "ratio": round(ingest / raw, 3),
        "vs_peer": round(ingest / peer_rate, 3) if peer_rate else None,
        "samples_events_per_s": {k: [round(v) for v in vs] for k, vs in samples.items() if vs},
    }


def bench_ingest_command(
    events: Annotated[int, typer.Option(min=1000, help="MR events to publish and consume")] = 200_000,
    cells: Annotated[int, typer.Option(min=1)] = 57,
    partitions: Annotated[int, typer.Option(min=1)] = 12,
    peer: Annotated[bool, typer.Option(help="also run the quixstreams peer")] = True,
    repeat: Annotated[int, typer.Option(min=1, help="interleaved rounds; the medians are reported")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = True,
) -> None:
    """Ingest throughput: bare consumer vs quixstreams peer vs the worker's real path."""
    from twin.logs import configure

    configure("WARNING")
    result = run_ingest_benchmark(events, cells, partitions, peer, repeat)
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))
