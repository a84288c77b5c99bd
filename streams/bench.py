"""``twin bench ingest``: the worker's ingest path against a bare consumer and a quixstreams peer.

All three read the same topic of MR events on the same embedded broker in one run, so the ratios
hold even on a noisy shared machine. Each clock starts once its consumer group has its partitions
and stops when the last event has been processed (for the worker: applied to the mirror, after
the re-keying hop through ``twin.ingest.by-cluster.v1``).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from streams.broker import EmbeddedBroker
from streams.kafka_io import KafkaSink, make_consumer
from streams.worker import IngestWorker
from twin import topics
from twin.config import TwinSettings
from twin.ingest import IngestDecoder, Rejection
from twin.mirror.cluster import ClusterMirror
from twin.ports import OutRecord
from twin.synthetic import SyntheticNetwork


async def _publish(bootstrap: str, events: int, cells: int, partitions: int) -> None:
    net = SyntheticNetwork(cells=cells, seed=11)
    sink = KafkaSink(bootstrap, ensure=(*topics.INGEST_TOPICS, topics.INGEST_BY_CLUSTER, topics.DLQ),
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
    while not consumer.assignment():
        await asyncio.sleep(0.02)
    t0 = time.perf_counter()
    n = 0
    loads = orjson.loads
    while n < events:
        for messages in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
            for m in messages:
                loads(m.value)
            n += len(messages)
    elapsed = time.perf_counter() - t0
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
            marks["t0"] = time.perf_counter()
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
    elapsed = time.perf_counter() - marks["t0"]
    if mirror.applied != events:
        raise RuntimeError(f"peer applied {mirror.applied} of {events} events")
    return events / elapsed


async def _worker(bootstrap: str, events: int, state_dir: Path) -> float:
    settings = TwinSettings.model_validate({
        "state_dir": state_dir, "kafka": {"group_id": f"bench-worker-{time.time_ns()}"},
        "checkpoint_interval_s": 1.0,
    })
    worker = IngestWorker(settings, bootstrap, "bench")
    await worker.start()
    await worker.wait_assigned()
    stop = asyncio.Event()
    t0 = time.perf_counter()
    loops = asyncio.gather(worker._loop(worker.rekey.step, stop), worker._loop(worker.mirror.step, stop))
    while worker.stats.records_applied < events:
        if loops.done():
            loops.result()
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - t0
    stop.set()
    await loops
    await worker.close()
    if worker.stats.dead_lettered.total():
        raise RuntimeError(f"benchmark events were dead-lettered: {worker.stats.dead_lettered}")
    return events / elapsed


def run_ingest_benchmark(events: int, cells: int = 57, partitions: int = 12,
                         peer: bool = True) -> dict[str, Any]:
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        bootstrap = broker.bootstrap_servers
        asyncio.run(_publish(bootstrap, events, cells, partitions))
        raw = asyncio.run(_raw(bootstrap, events))
        peer_rate = _peer(bootstrap, events, Path(tmp) / "quix") if peer else None
        ingest = asyncio.run(_worker(bootstrap, events, Path(tmp) / "state"))
    return {
        "benchmark": "ingest",
        "events": events,
        "cells": cells,
        "partitions": partitions,
        "raw_events_per_s": round(raw),
        "peer": "quixstreams" if peer else None,
        "peer_events_per_s": round(peer_rate) if peer_rate else None,
        "ingest_events_per_s": round(ingest),
        "ratio": round(ingest / raw, 3),
        "vs_peer": round(ingest / peer_rate, 3) if peer_rate else None,
    }


def bench_ingest_command(
    events: Annotated[int, typer.Option(min=1000, help="MR events to publish and consume")] = 200_000,
    cells: Annotated[int, typer.Option(min=1)] = 57,
    partitions: Annotated[int, typer.Option(min=1)] = 12,
    peer: Annotated[bool, typer.Option(help="also run the quixstreams peer")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = True,
) -> None:
    """Ingest throughput: bare consumer vs quixstreams peer vs the worker's real path."""
    from twin.logs import configure

    configure("WARNING")
    result = run_ingest_benchmark(events, cells, partitions, peer)
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))
