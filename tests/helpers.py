"""Helpers shared by the integration tests (real broker, real worker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from streams.kafka_io import KafkaSink, make_consumer
from streams.worker import IngestWorker
from twin import topics
from twin.config import TwinSettings
from twin.ports import OutRecord
from twin.schemas import CmSnapshot, MrEvent, PmCellRecord, WireModel
from twin.synthetic import SyntheticNetwork

TOPIC_OF: dict[type[WireModel], str] = {PmCellRecord: topics.PM_CELL, MrEvent: topics.MR_UE,
                                       CmSnapshot: topics.CM_SNAPSHOT}


def out_record(rec: WireModel) -> OutRecord:
    topic = TOPIC_OF[type(rec)]
    key = rec.dn if isinstance(rec, CmSnapshot) else rec.cell_key  # type: ignore[attr-defined]
    return OutRecord(topic, key.encode(), rec.to_json_bytes())


def network_records(net: SyntheticNetwork, periods: range, mr: int) -> list[OutRecord]:
    """The network's PM and ``mr`` MR events per cell for ``periods``, led by its CM snapshots when
    the range starts at period 0."""
    records = [out_record(r) for r in net.cm_snapshots()] if periods.start == 0 else []
    for period in periods:
        records += [out_record(r) for r in net.pm_period(period)]
        records += [out_record(r) for r in net.mr_events(period, mr)]
    return records


def wait_for(check: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 0.1) -> Any:
    """``check()``'s first true value, polled every ``poll_s``; AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll_s)


def child_processes(pid: int) -> dict[int, bytes]:
    """The direct children of ``pid`` (any of its threads' ``children``) and their command lines,
    arguments joined by spaces, from ``/proc``; a child gone meanwhile is left out."""
    out: dict[int, bytes] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                out[int(child)] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
    return out


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
