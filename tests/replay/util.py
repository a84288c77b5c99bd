"""Test doubles and helpers of the replay tests: a recording sink, a consumer that reads topics back."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from aiokafka import TopicPartition

from replay.model import Item, Outcome, Rejection
from streams.kafka_io import make_consumer
from twin import topics
from twin.ports import OutRecord
from twin.schemas import CellMeas, MrEvent, MrSource

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


class RecordingSink:
    """A ``RecordSink`` that keeps what it was given and when (monotonic seconds)."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, OutRecord]] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def send_many(self, records: Sequence[OutRecord]) -> None:
        now = time.monotonic()
        self.sent.extend((now, r) for r in records)

    async def flush(self) -> None:
        return None

    async def stop(self) -> None:
        self.stopped = True

    def records(self, topic: str | None = None) -> list[OutRecord]:
        return [r for _, r in self.sent if topic is None or r.topic == topic]


def mr(cell: str, seconds: float, ue: str = "ue-1") -> MrEvent:
    return MrEvent(
        event_id=str(uuid4()),
        event_time=T0 + timedelta(seconds=seconds),
        cell_key=cell,
        ue_ref=ue,
        source=MrSource.REPLAY,
        serving=CellMeas(cell_key=cell, rsrp_dbm=-90.0),
    )


def mr_item(cell: str, seconds: float, ue: str = "ue-1") -> Item:
    event = mr(cell, seconds, ue)
    return Item(topics.MR_UE, cell, event.event_time, event)


def stream(outcomes: Iterable[Outcome]) -> Iterator[Outcome]:
    yield from outcomes


def rejection(raw: bytes = b"bad,row", reason: str = "RSRP=-200 outside -157..-30 dBm") -> Rejection:
    return Rejection("f.csv", "line 2", reason, "range", raw, topics.MR_UE, "RSRP")


async def consume_all(
    bootstrap: str, topic: str, timeout_s: float = 60.0
) -> list[tuple[int, int, bytes | None, bytes]]:
    """Every record of ``topic`` as (partition, offset, key, value), read up to the end offsets."""
    consumer = make_consumer(bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()  # loads cluster metadata
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        out: list[tuple[int, int, bytes | None, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while [tp for tp in parts if await consumer.position(tp) < end[tp]]:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end in {timeout_s} s")
            batches = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for tp, msgs in batches.items():
                out.extend((tp.partition, m.offset, m.key, m.value) for m in msgs)
        return out
    finally:
        await consumer.stop()
