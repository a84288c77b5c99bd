"""Stage 1 of the worker: validate, dead-letter and re-key telemetry by cluster.

Consumes the PM, CM and MR topics (keyed by cell) in batches, validates and normalises every record
(``twin.ingest``), sends rejects to ``ran.dlq.v1`` with the reason and the original bytes, and
forwards the rest to ``twin.<group>.by-cluster.v1`` keyed by *cluster*, packed into envelopes of one
cluster's records per batch (``streams.envelopes``: at most ``kafka.envelope_max_records`` records
and within ``kafka.max_message_bytes``). Source offsets are committed only after the envelopes and
dead letters are acknowledged.

No record stops the stage (no poison, no crash loop): a record too large for an envelope of its own
is dead-lettered instead of forwarded, and a dead letter too large for a message carries only the
first bytes of the record, with its size and SHA-256 (``DeadLetter.to_json_bytes_within``). Should
the broker still refuse a message as too large (its ``message.max.bytes`` below the setting), the
envelope is sent again in halves, down to single records, which are then dead-lettered, and a dead
letter is sent again at half the size. Any other send failure (a broker that is down) fails the
stage as before, and nothing after the un-acknowledged send is committed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner

from streams.envelopes import (
    ENVELOPE_SUFFIX,
    ORIGIN_HEADER,
    envelope,
    envelope_of_array,
    envelope_prefix,
    pack,
    value_limit,
)
from streams.kafka_io import is_too_large, is_transient, make_consumer, make_producer
from streams.offset_guard import OffsetGuard
from streams.start_barrier import StartBarrier
from streams.stats import WorkerStats, gap_reporter, retry_reporter
from twin import topics
from twin.config import TwinSettings
from twin.ingest import IngestDecoder, Rejection
from twin.records import NormalisedRecord
from twin.routing import ClusterRouter
from twin.schemas import DeadLetter
from twin.schemas.dlq import DEAD_LETTER_KEY_MAX_BYTES

if TYPE_CHECKING:  # the mirror stage's prediction path stays out of a re-keying-only process
    from streams.mirror_stage import MirrorStage

__all__ = ["COMMITS_IN_FLIGHT", "ENVELOPE_MAX_RECORDS", "MIN_DEAD_LETTER_BYTES", "TOO_LARGE", "RekeyStage",
           "dead_letter"]

log = structlog.get_logger(__name__)

ENVELOPE_MAX_RECORDS = 2000  # the default of kafka.envelope_max_records
COMMITS_IN_FLIGHT = 4  # batches whose acks may be outstanding while the next ones are processed
MIN_DEAD_LETTER_BYTES = 4096  # a dead letter the broker refuses is halved down to this size, no further
TOO_LARGE = "too_large"  # error class of valid records too large to forward

Refused = Callable[[BaseException], Awaitable[None]]  # what to do when a send is refused as too large


def dead_letter(topic: str, partition: int | None, offset: int | None, key: bytes | None,
                value: bytes | None, rejection: Rejection, max_bytes: int | None = None,
                message_limit: int | None = None) -> bytes:
    """The dead letter of a record; within ``max_bytes`` (truncated if need be) when given, with
    ``message_limit`` as the limit a truncated letter names (see ``DeadLetter.to_json_bytes_within``)."""
    letter = DeadLetter(
        reason=rejection.reason,
        error_class=rejection.error_class,
        topic=topic,
        partition=partition,
        offset=offset,
        key_b64=base64.b64encode(key).decode() if key is not None else None,
        value_b64=base64.b64encode(value or b"").decode(),
        rejected_at=datetime.now(UTC),
    )
    return letter.to_json_bytes() if max_bytes is None else letter.to_json_bytes_within(max_bytes, message_limit)


class _Sources:
    """The consumed message each normalised record of a batch came from, looked up only when a
    record has to be dead-lettered after validation (too large to forward), so the hot path keeps
    no per-record bookkeeping: records are found by identity in the decoder's outcome lists."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[Any], list[Any]]] = []
        self._of: dict[int, Any] | None = None

    def add(self, messages: list[Any], outcomes: list[Any]) -> None:
        self.batches.append((messages, outcomes))

    def __call__(self, record: NormalisedRecord) -> Any:
        if self._of is None:
            self._of = {id(out): msg for messages, outcomes in self.batches
                        for msg, out in zip(messages, outcomes, strict=True)}
        return self._of[id(record)]


class _ForgetRevoked(ConsumerRebalanceListener):
    """Revoked partitions are read next from their committed offsets, by whichever member gets them."""

    def __init__(self, guard: OffsetGuard) -> None:
        self.guard = guard

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.guard.forget(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.guard.forget(assigned)


class RekeyStage:
    """Stage 1: validate, dead-letter, re-key by cluster.

    With a mirror stage in the same process (``local``), envelopes for partitions that stage owns
    are also applied right away instead of after the round trip through the broker; they are still
    written to the re-keyed topic (that copy is what a restarted or replacement worker replays) and
    tagged with this process's ``origin`` id so the local mirror stage skips them when they come back.
    Applying a record twice is harmless (all mirror updates are idempotent), so a checkpoint that is
    ahead of its offset only means some envelopes are re-applied after a crash.
    """

    def __init__(self, settings: TwinSettings, bootstrap: str, stats: WorkerStats,
                 now: Callable[[], float] = time.time, local: MirrorStage | None = None) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.stats = stats
        self.decoder = IngestDecoder(settings.ingest, now=now)
        self.route = ClusterRouter(settings.topology)
        self.internal_topic = topics.ingest_by_cluster(settings.kafka.group_id)
        self.local = local
        self.max_message_bytes = settings.kafka.max_message_bytes
        self.envelope_max_records = settings.kafka.envelope_max_records
        self._partition_of: dict[str, int] = {}
        self._record_bytes: dict[str, float] = {}  # per cluster: mean encoded record size, latest seen
        # ack-then-commit tasks of the batches not yet committed, oldest first; each waits for the one
        # before it, so commits land in order
        self._commits: deque[asyncio.Future[None]] = deque()

    async def start(self) -> None:
        # aiokafka clients bind to the running loop, so they are made here rather than in __init__.
        settings = self.settings
        self.consumer = make_consumer(self.bootstrap, group_id=f"{settings.kafka.group_id}.rekey",
                                      client_id=settings.kafka.client_id,
                                      session_timeout_ms=settings.kafka.session_timeout_ms,
                                      heartbeat_interval_ms=settings.kafka.heartbeat_interval_ms)
        # the first fetch after an assignment sets where a partition's offsets must follow on from
        self.guard = OffsetGuard(self.consumer, settings.kafka.offset_hole_wait_s,
                                 on_gap=gap_reporter(self.stats, "rekey.offset_gap_accepted"))
        self.consumer.subscribe(list(topics.INGEST_TOPICS), listener=_ForgetRevoked(self.guard))
        self.producer = make_producer(self.bootstrap, idempotent=settings.kafka.idempotent_producer,
                                      client_id=settings.kafka.client_id,
                                      max_request_size=settings.kafka.max_message_bytes,
                                      request_timeout_ms=settings.kafka.request_timeout_ms,
                                      give_up_after_s=settings.kafka.broker_loss_timeout_s,
                                      on_retry=retry_reporter(self.stats, "rekey.send_retry"))
        await self.producer.start()
        await self.consumer.start()
        self._partitions = sorted(await self.producer.partitions_for(self.internal_topic))

    async def stop(self) -> None:
        # acks still outstanding are waited for, but not longer than one request: a broker that is gone
        # must not hold the exit (what is not committed is re-read after the restart)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.drain(), self.settings.kafka.request_timeout_ms / 1000)
        for commit in self._commits:  # not drained: their offsets stay uncommitted and are re-read
            if commit.done() and not commit.cancelled():
                commit.exception()
            else:
                commit.cancel()
        self._commits.clear()
        with contextlib.suppress(Exception):
            await self.consumer.stop()
        with contextlib.suppress(Exception):
            await self.producer.stop()

    async def _commit_when_acked(self, sends: list[Any], refused: dict[Any, Refused],
                                 offsets: dict[TopicPartition, int], previous: asyncio.Future[None] | None) -> None:
        await self._settle(sends, refused)
        if previous is not None:
            await previous  # raises if an earlier batch's send failed: this commit must not happen
        try:
            # aiokafka waits for a group coordinator without end; a commit that does not land in time is
            # skipped like a refused one (the next batch's commit covers its offsets)
            await asyncio.wait_for(self.consumer.commit(offsets), self.settings.kafka.request_timeout_ms / 1000)
        except TimeoutError:
            self.stats.commits_skipped += 1
            log.warning("rekey.commit_skipped", reason="the broker did not answer the offset commit in time")
        except (CommitFailedError, IllegalStateError) as exc:
            # The partitions moved to another worker, which re-reads from the last commit: duplicates,
            # which every mirror update absorbs, never a loss.
            log.warning("rekey.commit_skipped", reason=str(exc))
        except Exception as exc:
            if not is_transient(exc):
                raise
            # The broker did not answer in time: the next batch's commit covers these offsets, and
            # until one lands a restart re-reads them (duplicates, never a loss).
            self.stats.commits_skipped += 1
            log.warning("rekey.commit_skipped", reason=f"{type(exc).__name__}: {exc}")

    async def drain(self) -> None:
        """Wait for the outstanding acks and commit (before stopping)."""
        while self._commits:
            await self._commits.popleft()

    def holds_share(self, members: int) -> bool:
        """Whether this member holds no more than its share of the input partitions of a group of
        ``members``: the group has rebalanced since the others joined."""
        assigned = self.consumer.assignment()
        total = sum(len(self.consumer.partitions_for_topic(t) or ()) for t in topics.INGEST_TOPICS)
        return bool(assigned) and total > 0 and len(assigned) <= -(-total // members)

    async def wait_for_sibling(self, sibling: StartBarrier, timeout_s: float,
                               stop: asyncio.Event | None = None) -> None:
        """Hold consumption until this process and its sibling (the other process of the same worker)
        both hold their share of the partitions; after ``timeout_s``, or when the sibling is gone,
        go on with what this one has (a sibling that never comes must not stall the worker)."""
        if await sibling.wait(lambda: self.holds_share(2), timeout_s, stop):
            log.info("rekey.sibling_ready", partitions=len(self.consumer.assignment()))
        else:
            log.warning("rekey.sibling_missing", waited_s=timeout_s, partitions=len(self.consumer.assignment()))

    def partition_of(self, cluster: str) -> int:
        """The re-keyed topic's partition of a cluster: murmur2 of the key, as every Kafka client agrees."""
        partition = self._partition_of.get(cluster)
        if partition is None:
            partition = self._partition_of[cluster] = DefaultPartitioner()(
                cluster.encode(), self._partitions, self._partitions)
        return partition

    async def _settle(self, sends: list[Any], refused: dict[Any, Refused]) -> None:
        """Wait for the acks of ``sends``. A send refused as too large goes to its handler in
        ``refused`` (which sends smaller messages, or dead-letters, and waits for those); any other
        failure is raised, so the batch is not committed and the worker fails."""
        if not sends:
            return
        results = await asyncio.gather(*sends, return_exceptions=True)
        for sent, result in zip(sends, results, strict=True):
            if isinstance(result, BaseException):
                handler = refused.get(sent) if is_too_large(result) else None
                if handler is None:
                    raise result
                await handler(result)

    async def _send(self, sends: list[Any], refused: dict[Any, Refused], topic: str, value: bytes, *,
                    key: bytes | None, on_refused: Refused, partition: int | None = None,
                    headers: list[tuple[str, bytes]] | None = None) -> None:
        """Send without waiting for the ack (``sends`` collects it); ``on_refused`` is what to do if
        the message is refused as too large, by the producer now or by the broker later."""
        try:
            sent = await self.producer.send(topic, value, key=key, partition=partition, headers=headers)
        except MessageSizeTooLargeError as exc:  # the producer's own check
            sends.append(asyncio.ensure_future(on_refused(exc)))
            return
        sends.append(sent)
        refused[sent] = on_refused

    async def _deliver(self, topic: str, value: bytes, *, key: bytes | None, on_refused: Refused,
                       partition: int | None = None, headers: list[tuple[str, bytes]] | None = None) -> None:
        """Send and wait for the ack (after a refusal, off the hot path)."""
        sends: list[Any] = []
        refused: dict[Any, Refused] = {}
        await self._send(sends, refused, topic, value, key=key, on_refused=on_refused, partition=partition,
                         headers=headers)
        await self._settle(sends, refused)

    async def _dead_letter(self, sends: list[Any], refused: dict[Any, Refused], msg: Any,
                           rejection: Rejection) -> None:
        """Send the dead letter of a consumed message, within the message limit."""
        key = msg.key if msg.key is None or len(msg.key) <= DEAD_LETTER_KEY_MAX_BYTES \
            else msg.key[:DEAD_LETTER_KEY_MAX_BYTES]
        letter = dead_letter(msg.topic, msg.partition, msg.offset, msg.key, msg.value, rejection,
                             max_bytes=value_limit(self.max_message_bytes, key), message_limit=self.max_message_bytes)
        await self._send(sends, refused, topics.DLQ, letter, key=key,
                         on_refused=partial(self._letter_refused, msg, rejection, key, len(letter)))

    async def _letter_refused(self, msg: Any, rejection: Rejection, key: bytes | None, size: int,
                              exc: BaseException) -> None:
        """The broker refused a dead letter of ``size`` bytes (its limit is below the setting): send
        it again at half that size, down to ``MIN_DEAD_LETTER_BYTES``; below that, log it and go on."""
        where = {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset}
        if size <= MIN_DEAD_LETTER_BYTES:
            log.error("rekey.dead_letter_refused", **where, bytes=size, error=repr(exc))
            return
        log.warning("rekey.dead_letter_refused_retrying", **where, bytes=size, error=repr(exc))
        letter = dead_letter(msg.topic, msg.partition, msg.offset, msg.key, msg.value, rejection,
                             max_bytes=max(MIN_DEAD_LETTER_BYTES, size // 2))
        await self._deliver(topics.DLQ, letter, key=key,
                            on_refused=partial(self._letter_refused, msg, rejection, key, len(letter)))

    def _too_large(self, size: int, room: int) -> Rejection:
        return Rejection(f"normalised record of {size:,} bytes exceeds the message limit of "
                         f"{self.max_message_bytes:,} bytes (kafka.max_message_bytes; at most {room:,} bytes "
                         f"of records fit in one envelope)", TOO_LARGE)

    async def _envelope_refused(self, cluster: str, partition: int, headers: list[tuple[str, bytes]],
                                records: list[NormalisedRecord], parts: list[bytes] | None, sources: _Sources,
                                exc: BaseException) -> None:
        """The broker refused an envelope as too large (its limit is below the setting): send it again
        in halves; a single record it refuses is dead-lettered. (``parts``: the records encoded, or
        None when the envelope was encoded as one array.)"""
        if parts is None:
            parts = list(map(orjson.dumps, records))
        if len(parts) == 1:
            log.warning("rekey.record_refused", cluster=cluster, bytes=len(parts[0]), error=repr(exc))
            self.stats.forwarded -= 1
            self.stats.accepted -= 1
            self.stats.dead_lettered[TOO_LARGE] += 1
            rejection = Rejection(f"normalised record of {len(parts[0]):,} bytes was refused by the broker as too "
                                  f"large ({type(exc).__name__}; kafka.max_message_bytes is "
                                  f"{self.max_message_bytes:,})", TOO_LARGE)
            sends: list[Any] = []
            refused: dict[Any, Refused] = {}
            await self._dead_letter(sends, refused, sources(records[0]), rejection)
            await self._settle(sends, refused)
            return
        log.warning("rekey.envelope_refused", cluster=cluster, records=len(parts), error=repr(exc))
        prefix = envelope_prefix(cluster)
        half = len(parts) // 2
        for lo, hi in ((0, half), (half, len(parts))):
            await self._deliver(self.internal_topic, envelope(prefix, parts[lo:hi]), key=cluster.encode(),
                                partition=partition, headers=headers,
                                on_refused=partial(self._envelope_refused, cluster, partition, headers,
                                                   records[lo:hi], parts[lo:hi], sources))

    async def _forward(self, sends: list[Any], refused: dict[Any, Refused], cluster: str,
                       records: list[NormalisedRecord], headers: list[tuple[str, bytes]], sources: _Sources,
                       too_large: dict[int, tuple[NormalisedRecord, Rejection]]) -> list[NormalisedRecord]:
        """Send a cluster's records in envelopes; returns those sent. A record too large for an
        envelope of its own goes into ``too_large`` instead (keyed by identity: a CM tombstone is in
        every cluster's list, and is dead-lettered once).

        Records are encoded an envelope at a time as one JSON array (one ``orjson`` call: encoding
        them one by one cost up to 9x more per record, measured), as many per envelope as the cluster's
        latest mean record size says fill 90 % of the byte bound. Should an array come out too
        large after all, the rest of the cluster's records are encoded one by one and packed
        exactly by bytes (``streams.envelopes.pack``): no record is encoded more than twice."""
        key = cluster.encode()
        partition = self.partition_of(cluster)
        prefix = envelope_prefix(cluster)
        room = value_limit(self.max_message_bytes, key, headers)
        fill = (room - len(prefix)) * 0.9  # bytes of array an envelope is planned for
        n = len(records)
        step = self.envelope_max_records
        mean = self._record_bytes.get(cluster)
        sent = 0
        while sent < n:
            count = min(n - sent, step if mean is None else max(1, int(fill / mean)))
            chunk = records[sent:sent + count]
            array = orjson.dumps(chunk)
            mean = len(array) / count
            if len(prefix) + len(array) > room:
                break
            await self._send(sends, refused, self.internal_topic, envelope_of_array(prefix, array), key=key,
                             partition=partition, headers=headers,
                             on_refused=partial(self._envelope_refused, cluster, partition, headers, chunk,
                                                None, sources))
            self.stats.forwarded += count
            sent += count
        if mean is not None:
            self._record_bytes[cluster] = mean
        if sent == n:
            return records
        rest = records[sent:]
        parts = list(map(orjson.dumps, rest))
        sizes = list(map(len, parts))
        overhead = len(prefix) + len(ENVELOPE_SUFFIX)
        packing = pack(sizes, overhead, room, step)
        for lo, hi in packing.spans:
            await self._send(sends, refused, self.internal_topic, envelope(prefix, parts[lo:hi]), key=key,
                             partition=partition, headers=headers,
                             on_refused=partial(self._envelope_refused, cluster, partition, headers,
                                                rest[lo:hi], parts[lo:hi], sources))
            self.stats.forwarded += hi - lo
        if not packing.oversized:
            return records
        for i in packing.oversized:
            too_large[id(rest[i])] = (rest[i], self._too_large(sizes[i], room - overhead))
        skip = {sent + i for i in packing.oversized}
        return [r for i, r in enumerate(records) if i not in skip]

    async def step(self, timeout_ms: int = 200) -> int:
        batches = await self.consumer.getmany(timeout_ms=timeout_ms,
                                              max_records=self.settings.kafka.fetch_max_records)
        commits = self._commits
        while commits and commits[0].done():
            commits.popleft().result()  # a failed send fails the worker, new input or not
        if batches:  # up to a hole, where the broker showed a later batch before an earlier one
            retries = self.guard.retries
            batches = {tp: kept for tp, messages in batches.items() if (kept := self.guard.take(tp, messages))}
            self.stats.offset_hole_retries += self.guard.retries - retries
        if not batches:
            return 0
        if self.stats.first_consumed_at is None:
            self.stats.first_consumed_at = time.time()
        decode_many = self.decoder.decode_many
        route = self.route
        by_cluster: dict[str, list[NormalisedRecord]] = defaultdict(list)
        sources = _Sources()
        sends: list[Any] = []
        refused: dict[Any, Refused] = {}
        n = rejected = 0
        for tp, messages in batches.items():
            topic = tp.topic
            n += len(messages)
            outcomes = decode_many(topic, messages)
            sources.add(messages, outcomes)
            for msg, out in zip(messages, outcomes, strict=True):
                if isinstance(out, Rejection):
                    rejected += 1
                    self.stats.dead_lettered[out.error_class] += 1
                    await self._dead_letter(sends, refused, msg, out)
                elif out[0] == "cmdel":
                    # A tombstone names only a DN, which may belong to a cell of any cluster.
                    for cluster in route.all_clusters():
                        by_cluster[cluster].append(out)
                else:
                    owner = route(out[1])
                    if owner is None:  # a cell the topology does not list: held apart, per cell
                        owner = route.cluster_or_holding(out[1], out[2].get("dn") if out[0] != "mr" else None)
                    by_cluster[owner].append(out)
        local = self.local
        too_large: dict[int, tuple[NormalisedRecord, Rejection]] = {}
        for cluster, records in by_cluster.items():
            here = local is not None and self.partition_of(cluster) in local.owned
            headers = [(ORIGIN_HEADER, local.origin)] if here and local is not None else []
            records = await self._forward(sends, refused, cluster, records, headers, sources, too_large)
            if here and local is not None:
                sends += await local.apply_local(self.partition_of(cluster), cluster, records)
        for record, rejection in too_large.values():
            rejected += 1
            self.stats.dead_lettered[TOO_LARGE] += 1
            await self._dead_letter(sends, refused, sources(record), rejection)
        # At least once: the source offsets move only after everything derived from them is acked.
        # The waits for acks overlap the next batches (a produce round trip on a busy broker takes
        # longer than validating a batch); commits stay in order and at most COMMITS_IN_FLIGHT wait.
        while commits and commits[0].done():
            commits.popleft().result()  # a failed send fails the worker
        if len(commits) >= COMMITS_IN_FLIGHT:
            await commits.popleft()
        offsets = {tp: msgs[-1].offset + 1 for tp, msgs in batches.items()}
        commits.append(asyncio.ensure_future(
            self._commit_when_acked(sends, refused, offsets, commits[-1] if commits else None)))
        self.stats.consumed += n
        self.stats.accepted += n - rejected
        return n
