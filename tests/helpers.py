"""Helpers shared by the integration tests (real broker, real worker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from streams.kafka_io import KafkaSink, make_consumer
from streams.worker import IngestWorker
from twin import topics
from twin.config import TwinSettings
from twin.ports import OutRecord
from twin.schemas import CmSnapshot, MrEvent, PmCellRecord, WireModel

TOPIC_OF: dict[type[WireModel], str] = {PmCellRecord: topics.PM_CELL, MrEvent: topics.MR_UE,
                                       CmSnapshot: topics.CM_SNAPSHOT}


def out_record(rec: WireModel) -> OutRecord:
    topic = TOPIC_OF[type(rec)]
    key = rec.dn if isinstance(rec, CmSnapshot) else rec.cell_key  # type: ignore[attr-defined]
    return OutRecord(topic, key.encode(), rec.to_json_bytes())


async def publish(bootstrap: str, records: Sequence[OutRecord], partitions: int = 12) -> None:
    sink = KafkaSink(bootstrap, ensure=(*topics.INGEST_TOPICS, topics.DLQ),
                     partitions=partitions)
    await sink.start()
    try:
        await sink.send_many(records)
    finally:
        await sink.stop()


def settings_for(tmp: Path, clusters: Iterable[tuple[str, list[str]]] = (), **kw: object) -> TwinSettings:
    return TwinSettings.model_validate({
        "state_dir": tmp / "state",
        "checkpoint_interval_s": 0.2,
        "topology": {"clusters": [{"id": cid, "cells": cells} for cid, cells in clusters]},
        **kw,
    })


async def run_worker_until(worker: IngestWorker, done: Callable[[IngestWorker], bool],
                           timeout_s: float = 60.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    deadline = time.monotonic() + timeout_s
    try:
        while not done(worker):
            if task.done():
                task.result()
                raise AssertionError("worker stopped early")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker did not finish in {timeout_s} s: {worker.stats.as_dict()}")
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task


async def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list[bytes | None]:
    consumer = make_consumer(bootstrap, topic, group_id=None)
    await consumer.start()
    values: list[bytes | None] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(values) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for msgs in batch.values():
                values.extend(m.value for m in msgs)
    finally:
        await consumer.stop()
    return values
