"""``streams.incarnation.verify`` on the real embedded broker: a checkpoint's last record read again.

A worker restarted on a loaded machine once got nothing back from its first fetch within 2 s,
declared its intact log replaced, re-read the partition from its start and raised a DATA_GAP alert
that nothing ever cleared (seen in ``tests/gap/test_gap_worker.py``'s kill -9 test beside the resync
fit's process). The late answer is reproduced here by a probe whose first fetches return nothing (a
stand-in for the slow broker, which cannot be made slow on demand; every other call is the real
consumer's on the real broker).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.broker import EmbeddedBroker
from streams.incarnation import fingerprint, verify
from streams.kafka_io import ensure_topics, make_consumer
from tests.helpers import publish
from twin.ports import OutRecord

TOPIC = "twin.test.incarnation"


class LateFirstFetches:
    """The real consumer, whose first ``late`` fetches answer nothing (a broker slow to answer)."""

    def __init__(self, consumer: AIOKafkaConsumer, late: int) -> None:
        self.consumer, self.late, self.fetches = consumer, late, 0

    async def getmany(self, *tps: TopicPartition, **kw: Any) -> dict[TopicPartition, list[Any]]:
        self.fetches += 1
        if self.fetches <= self.late:
            await asyncio.sleep(kw.get("timeout_ms", 0) / 1000)
            return {}
        return await self.consumer.getmany(*tps, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.consumer, name)


async def _last_record(servers: str, tp: TopicPartition) -> list[int]:
    consumer = make_consumer(servers, group_id=None)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        seen: list[Any] = []
        while len(seen) < 5:
            seen += (await consumer.getmany(tp, timeout_ms=1000)).get(tp, [])
        last = seen[-1]
        return fingerprint(last.offset, last.timestamp, last.value)
    finally:
        await consumer.stop()


def test_a_late_answer_is_not_a_replaced_log(fresh_broker: EmbeddedBroker) -> None:
    servers = fresh_broker.bootstrap_servers
    tp = TopicPartition(TOPIC, 0)

    async def scenario() -> tuple[Any, Any, Any, int]:
        await ensure_topics(servers, [TOPIC], 1)
        await publish(servers, [OutRecord(TOPIC, b"k", f'{{"n": {i}}}'.encode()) for i in range(5)], partitions=1)
        last = await _last_record(servers, tp)
        meta = {"lastRecord": last}
        consumer = make_consumer(servers, group_id=None)
        await consumer.start()
        try:
            late = LateFirstFetches(consumer, late=2)
            slow = await verify(late, tp, last[0] + 1, meta, None, wait_ms=200)  # type: ignore[arg-type]
            intact = await verify(consumer, tp, last[0] + 1, meta, None, wait_ms=200)
            other = await verify(consumer, tp, last[0] + 1, {"lastRecord": [last[0], last[1], 3, 0]}, None,
                                 wait_ms=200)
            return slow, intact, other, late.fetches
        finally:
            await consumer.stop()

    slow, intact, other, fetches = asyncio.run(scenario())
    assert slow.reason is None and slow.offset == 5 and fetches == 3  # asked again until it answered
    assert intact.reason is None and intact.offset == 5
    assert other.offset == 0 and "differs" in (other.reason or "")


def test_an_empty_log_answers_at_once(fresh_broker: EmbeddedBroker) -> None:
    """The checkpoint's record in a log that is now empty (a restarted memory-only broker): replaced,
    without waiting out the patience."""
    servers = fresh_broker.bootstrap_servers
    tp = TopicPartition(TOPIC, 0)

    async def scenario() -> Any:
        await ensure_topics(servers, [TOPIC], 1)  # the topic, empty
        consumer = make_consumer(servers, group_id=None)
        await consumer.start()
        try:
            return await asyncio.wait_for(verify(consumer, tp, 42, {"lastRecord": [41, 1, 2, 3]}, None,
                                                 wait_ms=200, patience_s=600), 60)
        finally:
            await consumer.stop()

    verdict = asyncio.run(scenario())
    assert verdict.offset == 0 and "is not in the log" in (verdict.reason or "")
