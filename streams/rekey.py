"""Stage 1 of the worker: validate, dead-letter and re-key telemetry by cluster.

Consumes the PM, CM and MR topics (keyed by cell) in batches, validates and normalises every record
(``twin.ingest``), sends rejects to ``ran.dlq.v1`` with the reason and the original bytes, and
forwards the rest to ``twin.<group>.by-cluster.v1`` keyed by *cluster*, packed as one envelope per
cluster and batch. Source offsets are committed only after the envelopes and dead letters are
acknowledged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.partitioner import DefaultPartitioner

from streams.kafka_io import make_consumer, make_producer
from streams.mirror_stage import ORIGIN_HEADER, MirrorStage
from streams.start_barrier import StartBarrier
from streams.stats import WorkerStats
from twin import topics
from twin.config import TwinSettings
from twin.ingest import IngestDecoder, Rejection
from twin.records import NormalisedRecord
from twin.routing import ClusterRouter
from twin.schemas import DeadLetter

__all__ = ["COMMITS_IN_FLIGHT", "ENVELOPE_MAX_RECORDS", "RekeyStage", "dead_letter"]

log = structlog.get_logger(__name__)

ENVELOPE_MAX_RECORDS = 2000
COMMITS_IN_FLIGHT = 4  # batches whose acks may be outstanding while the next ones are processed


def dead_letter(topic: str, partition: int | None, offset: int | None, key: bytes | None,
                value: bytes | None, rejection: Rejection) -> bytes:
    return DeadLetter(
        reason=rejection.reason,
        error_class=rejection.error_class,
        topic=topic,
        partition=partition,
        offset=offset,
        key_b64=base64.b64encode(key).decode() if key is not None else None,
        value_b64=base64.b64encode(value or b"").decode(),
        rejected_at=datetime.now(UTC),
    ).to_json_bytes()


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
        self._partition_of: dict[str, int] = {}
        # ack-then-commit tasks of the batches not yet committed, oldest first; each waits for the one
        # before it, so commits land in order
        self._commits: deque[asyncio.Future[None]] = deque()

    async def start(self) -> None:
        # aiokafka clients bind to the running loop, so they are made here rather than in __init__.
        settings = self.settings
        self.consumer = make_consumer(self.bootstrap, *topics.INGEST_TOPICS,
                                      group_id=f"{settings.kafka.group_id}.rekey", client_id=settings.kafka.client_id)
        self.producer = make_producer(self.bootstrap, idempotent=settings.kafka.idempotent_producer,
                                      client_id=settings.kafka.client_id)
        await self.producer.start()
        await self.consumer.start()
        self._partitions = sorted(await self.producer.partitions_for(self.internal_topic))

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.drain()
        with contextlib.suppress(Exception):
            await self.consumer.stop()
        with contextlib.suppress(Exception):
            await self.producer.stop()

    async def _commit_when_acked(self, futures: list[Any], offsets: dict[TopicPartition, int],
                                 previous: asyncio.Future[None] | None) -> None:
        if futures:
            await asyncio.gather(*futures)
        if previous is not None:
            await previous  # raises if an earlier batch's send failed: this commit must not happen
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The partitions moved to another worker, which re-reads from the last commit: duplicates,
            # which every mirror update absorbs, never a loss.
            log.warning("rekey.commit_skipped", reason=str(exc))

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

    async def step(self, timeout_ms: int = 200) -> int:
        batches = await self.consumer.getmany(timeout_ms=timeout_ms,
                                              max_records=self.settings.kafka.fetch_max_records)
        if not batches:
            return 0
        if self.stats.first_consumed_at is None:
            self.stats.first_consumed_at = time.time()
        decode_many = self.decoder.decode_many
        route = self.route
        by_cluster: dict[str, list[NormalisedRecord]] = defaultdict(list)
        futures = []
        n = rejected = 0
        for tp, messages in batches.items():
            topic = tp.topic
            n += len(messages)
            outcomes = decode_many(topic, messages)
            for msg, out in zip(messages, outcomes, strict=True):
                if isinstance(out, Rejection):
                    rejected += 1
                    self.stats.dead_lettered[out.error_class] += 1
                    futures.append(await self.producer.send(
                        topics.DLQ, dead_letter(topic, tp.partition, msg.offset, msg.key, msg.value, out),
                        key=msg.key))
                elif out[0] == "cmdel":
                    # A tombstone names only a DN, which may belong to a cell of any cluster.
                    for cluster in route.all_clusters():
                        by_cluster[cluster].append(out)
                else:
                    by_cluster[route(out[1])].append(out)
        local = self.local
        for cluster, records in by_cluster.items():
            key = cluster.encode()
            partition = self.partition_of(cluster)
            here = local is not None and partition in local.owned
            headers = [(ORIGIN_HEADER, local.origin)] if here and local is not None else []
            for i in range(0, len(records), ENVELOPE_MAX_RECORDS):
                chunk = records[i:i + ENVELOPE_MAX_RECORDS]
                futures.append(await self.producer.send(
                    self.internal_topic, orjson.dumps({"cl": cluster, "r": chunk}), key=key,
                    partition=partition, headers=headers))
                self.stats.forwarded += len(chunk)
            if here and local is not None:
                futures += await local.apply_local(partition, cluster, records)
        # At least once: the source offsets move only after everything derived from them is acked.
        # The waits for acks overlap the next batches (a produce round trip on a busy broker takes
        # longer than validating a batch); commits stay in order and at most COMMITS_IN_FLIGHT wait.
        commits = self._commits
        while commits and commits[0].done():
            commits.popleft().result()  # a failed send fails the worker
        if len(commits) >= COMMITS_IN_FLIGHT:
            await commits.popleft()
        offsets = {tp: msgs[-1].offset + 1 for tp, msgs in batches.items()}
        commits.append(asyncio.ensure_future(
            self._commit_when_acked(futures, offsets, commits[-1] if commits else None)))
        self.stats.consumed += n
        self.stats.accepted += n - rejected
        return n
