"""aiokafka clients configured the one way the runtime uses them.

At-least-once everywhere: producers wait for acks, consumers commit after the effect is durable.
Idempotent producers are a setting because Tansu rejects them while Apache Kafka supports them.

Message size: a producer refuses (``MessageSizeTooLargeError`` from ``send``) a message larger than
its ``max_request_size``, and a broker refuses a record batch larger than its ``message.max.bytes``
(the same error, from the send's future). The worker sets ``max_request_size`` to
``kafka.max_message_bytes`` and keeps its batches within it too (``max_batch_size``), so the two
agree; :func:`is_too_large` tells these refusals from other send failures.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, TopicAlreadyExistsError

from twin.ports import OutRecord

__all__ = ["DEFAULT_MAX_REQUEST_SIZE", "KafkaSink", "ensure_topics", "is_too_large", "make_consumer",
           "make_producer"]

DEFAULT_MAX_REQUEST_SIZE = 8 << 20  # for producers of tools and tests; the worker passes its setting


def is_too_large(exc: BaseException) -> bool:
    """Whether a send failed because the message (or its batch) is too large, by the producer's own
    limit or the broker's: a refusal of that message, not a failure of the connection."""
    return isinstance(exc, MessageSizeTooLargeError | RecordListTooLargeError)


def make_producer(
    bootstrap_servers: str, *, idempotent: bool = False, client_id: str = "ran-twin",
    max_request_size: int = DEFAULT_MAX_REQUEST_SIZE, **extra: Any
) -> AIOKafkaProducer:
    """``max_request_size`` bounds each message (aiokafka checks it in ``send``); batches of several
    messages are kept within it as well (``max_batch_size``, at most 1 MiB), so a broker whose
    ``message.max.bytes`` equals it accepts every batch."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=idempotent,
        linger_ms=extra.pop("linger_ms", 5),
        max_batch_size=extra.pop("max_batch_size", min(1 << 20, max_request_size)),
        max_request_size=max_request_size,
        **extra,
    )


def make_consumer(
    bootstrap_servers: str, *topics: str, group_id: str | None, client_id: str = "ran-twin", **extra: Any
) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset=extra.pop("auto_offset_reset", "earliest"),
        max_partition_fetch_bytes=extra.pop("max_partition_fetch_bytes", 8 << 20),
        fetch_max_bytes=extra.pop("fetch_max_bytes", 64 << 20),
        # Tansu answers a long-polling fetch only when its wait expires, not when data arrives, so a
        # long wait adds its full length to every hop of the pipeline (measured: 245 ms at the default).
        fetch_max_wait_ms=extra.pop("fetch_max_wait_ms", 10),
        **extra,
    )


async def ensure_topics(bootstrap_servers: str, topics: Iterable[str], partitions: int) -> None:
    """Create missing topics with the fixed partition count (never changed: it would remap keys)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(t, partitions, 1) for t in topics if t not in existing]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker created it meanwhile
                await admin.create_topics(wanted)
    finally:
        await admin.close()


class KafkaSink:
    """``twin.ports.RecordSink`` over aiokafka; ``send_many`` keeps per-key order."""

    def __init__(
        self,
        bootstrap_servers: str,
        idempotent: bool = False,
        client_id: str = "ran-twin",
        ensure: Iterable[str] = (),
        partitions: int = 12,
        max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._producer = make_producer(bootstrap_servers, idempotent=idempotent, client_id=client_id,
                                       max_request_size=max_request_size)
        self._ensure = tuple(ensure)
        self._partitions = partitions
        self._pending: list[asyncio.Future[Any]] = []

    async def start(self) -> None:
        if self._ensure:
            await ensure_topics(self.bootstrap_servers, self._ensure, self._partitions)
        await self._producer.start()

    async def send_many(self, records: Sequence[OutRecord]) -> None:
        send = self._producer.send
        for rec in records:
            self._pending.append(await send(rec.topic, rec.value, key=rec.key, headers=list(rec.headers)))
        if len(self._pending) > 50_000:
            await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)

    async def stop(self) -> None:
        try:
            await self.flush()
        finally:
            await self._producer.stop()
