"""aiokafka clients configured the one way the runtime uses them.

At-least-once everywhere: producers wait for acks, consumers commit after the effect is durable.
Idempotent producers are a setting because Tansu rejects them while Apache Kafka supports them.

Message size: a producer refuses (``MessageSizeTooLargeError`` from ``send``) a message larger than
its ``max_request_size``, and a broker refuses a record batch larger than its ``message.max.bytes``
(the same error, from the send's future). The worker sets ``max_request_size`` to
``kafka.max_message_bytes`` and keeps its batches within it too (``max_batch_size``), so the two
agree; :func:`is_too_large` tells these refusals from other send failures.

Security: every client built here gets the process's TLS/SASL settings for its bootstrap servers
(``streams.kafka_security.security_for``; ``[kafka] security_protocol`` and friends), unless the
caller passes ``security=`` (a dict of aiokafka keyword arguments) itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAlreadyExistsError,
)

from streams.kafka_security import client_security, security_for
from twin.config import KafkaSettings
from twin.ports import OutRecord

__all__ = ["DEFAULT_MAX_REQUEST_SIZE", "BrokerUnavailableError", "KafkaSink", "RetryingProducer", "ensure_topics",
           "is_too_large", "is_transient", "make_admin", "make_consumer", "make_producer"]

DEFAULT_MAX_REQUEST_SIZE = 8 << 20  # for producers of tools and tests; the worker passes its setting


def is_too_large(exc: BaseException) -> bool:
    """Whether a send failed because the message (or its batch) is too large, by the producer's own
    limit or the broker's: a refusal of that message, not a failure of the connection."""
    return isinstance(exc, MessageSizeTooLargeError | RecordListTooLargeError)


class BrokerUnavailableError(RuntimeError):
    """The broker did not acknowledge a send for longer than the worker may wait (it exits, code 3)."""


def is_transient(exc: BaseException) -> bool:
    """Whether a send failed for a reason that retrying later can cure (the broker down, slow, or
    between leaders), as opposed to a verdict on the message itself (too large, invalid)."""
    return isinstance(exc, KafkaTimeoutError | KafkaConnectionError) or bool(
        isinstance(exc, KafkaError) and exc.retriable)


class RetryingProducer(AIOKafkaProducer):
    """An ``AIOKafkaProducer`` whose sends survive a broker outage of up to ``give_up_after_s``.

    A send that fails for a transient reason (``is_transient``) is sent again with exponential
    backoff (up to ``backoff_max_s``); other failures (a message too large) reach the caller
    unchanged, as from aiokafka. A send not acknowledged ``give_up_after_s`` after it was made (a
    broker that stopped answering keeps aiokafka retrying inside itself without end) fails with
    ``BrokerUnavailableError``, which the worker turns into exit code 3 for its supervisor. While a
    send is being retried, later sends may overtake it: delivery stays at least once, and every
    update the twin makes is idempotent. ``on_retry(exc)`` is called at each retry (logs, counters).
    """

    def __init__(self, *args: Any, give_up_after_s: float = 300.0, backoff_max_s: float = 10.0,
                 on_retry: Callable[[BaseException], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.give_up_after_s = give_up_after_s
        self.backoff_max_s = backoff_max_s
        self.on_retry = on_retry
        self.retries = 0
        self._retrying: set[asyncio.Task[None]] = set()
        # unacknowledged sends, oldest first: outer future -> (monotonic time sent, topic)
        self._unacked: dict[asyncio.Future[Any], tuple[float, str]] = {}
        self._watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await super().start()
        self._watchdog = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        """Fail the sends that have waited too long for an acknowledgement."""
        while True:
            await asyncio.sleep(min(1.0, self.give_up_after_s / 4))
            limit = time.monotonic() - self.give_up_after_s
            expired = []
            for outer, (sent_at, topic) in self._unacked.items():
                if sent_at > limit:
                    break
                expired.append((outer, topic))
            for outer, topic in expired:
                self._unacked.pop(outer, None)
                if not outer.done():
                    outer.set_exception(BrokerUnavailableError(
                        f"the broker has not acknowledged a message to {topic} for {self.give_up_after_s:.0f} s "
                        "(kafka.broker_loss_timeout_s)"))

    async def send(self, topic: str, value: Any = None, key: Any = None, partition: int | None = None,
                   timestamp_ms: int | None = None, headers: Any = None) -> asyncio.Future[Any]:
        args = (topic, value, key, partition, timestamp_ms, headers)
        outer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._unacked[outer] = (time.monotonic(), topic)
        outer.add_done_callback(self._forget)
        try:
            inner = await super().send(*args)
        except Exception as exc:
            if not is_transient(exc):
                self._unacked.pop(outer, None)
                raise
            self._retry(outer, args, exc)
            return outer

        def settle(done: asyncio.Future[Any]) -> None:
            if outer.done():  # given up already; the late outcome only needs to be collected
                if not done.cancelled():
                    done.exception()
                return
            if done.cancelled():
                outer.cancel()
                return
            exc = done.exception()
            if exc is None:
                outer.set_result(done.result())
            elif is_transient(exc):
                self._retry(outer, args, exc)
            else:
                outer.set_exception(exc)

        inner.add_done_callback(settle)
        return outer

    def _forget(self, outer: asyncio.Future[Any]) -> None:
        self._unacked.pop(outer, None)

    def _retry(self, outer: asyncio.Future[Any], args: tuple[Any, ...], first: BaseException) -> None:
        task = asyncio.ensure_future(self._resend(outer, args, first))
        self._retrying.add(task)
        task.add_done_callback(self._retrying.discard)

    async def _resend(self, outer: asyncio.Future[Any], args: tuple[Any, ...], exc: BaseException) -> None:
        delay = 0.2
        try:
            while not outer.done():
                self.retries += 1
                if self.on_retry is not None:
                    self.on_retry(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max_s)
                if outer.done():  # given up meanwhile (the watchdog)
                    return
                try:
                    result = await (await super().send(*args))
                except Exception as err:
                    if not is_transient(err):
                        if not outer.done():
                            outer.set_exception(err)
                        return
                    exc = err
                else:
                    if not outer.done():
                        outer.set_result(result)
                    return
        except asyncio.CancelledError:
            outer.cancel()  # the producer is stopping
            raise

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        for task in list(self._retrying):
            task.cancel()
        for outer in list(self._unacked):  # nobody waits for these any more: the worker is stopping
            outer.cancel()
        await super().stop()


def make_producer(
    bootstrap_servers: str, *, idempotent: bool = False, client_id: str = "ran-twin",
    max_request_size: int = DEFAULT_MAX_REQUEST_SIZE, give_up_after_s: float | None = None,
    on_retry: Callable[[BaseException], None] | None = None, security: dict[str, Any] | None = None, **extra: Any
) -> AIOKafkaProducer:
    """``max_request_size`` bounds each message (aiokafka checks it in ``send``); batches of several
    messages are kept within it as well (``max_batch_size``, at most 1 MiB), so a broker whose
    ``message.max.bytes`` equals it accepts every batch. With ``give_up_after_s`` the producer is a
    ``RetryingProducer``: sends survive a broker outage of that long."""
    extra.update(security_for(bootstrap_servers) if security is None else security)
    if give_up_after_s is not None:
        return RetryingProducer(
            bootstrap_servers=bootstrap_servers, client_id=client_id, acks="all", enable_idempotence=idempotent,
            linger_ms=extra.pop("linger_ms", 5),
            max_batch_size=extra.pop("max_batch_size", min(1 << 20, max_request_size)),
            max_request_size=max_request_size, give_up_after_s=give_up_after_s, on_retry=on_retry, **extra)
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
    bootstrap_servers: str, *topics: str, group_id: str | None, client_id: str = "ran-twin",
    security: dict[str, Any] | None = None, **extra: Any
) -> AIOKafkaConsumer:
    extra.update(security_for(bootstrap_servers) if security is None else security)
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


def make_admin(bootstrap_servers: str, security: dict[str, Any] | None = None, **extra: Any) -> AIOKafkaAdminClient:
    """An admin client with the process's security for ``bootstrap_servers`` (or ``security``)."""
    extra.update(security_for(bootstrap_servers) if security is None else security)
    return AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **extra)


async def ensure_topics(bootstrap_servers: str, topics: Iterable[str], partitions: int,
                        security: dict[str, Any] | None = None) -> None:
    """Create missing topics with the fixed partition count (never changed: it would remap keys)."""
    admin = make_admin(bootstrap_servers, security)
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
        security: dict[str, Any] | None = None,
        kafka: KafkaSettings | None = None,
    ) -> None:
        """``kafka``: settings whose TLS/SASL the sink's clients use (for callers in ``twin`` and
        ``replay``, which reach it through ``twin.ports.open_sink``); else ``security``, else the
        process's (``streams.kafka_security``)."""
        self.bootstrap_servers = bootstrap_servers
        if security is None and kafka is not None:
            security = client_security(kafka)
        self._security = security
        self._producer = make_producer(bootstrap_servers, idempotent=idempotent, client_id=client_id,
                                       max_request_size=max_request_size, security=security)
        self._ensure = tuple(ensure)
        self._partitions = partitions
        self._pending: list[asyncio.Future[Any]] = []

    async def start(self) -> None:
        if self._ensure:
            await ensure_topics(self.bootstrap_servers, self._ensure, self._partitions, self._security)
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
