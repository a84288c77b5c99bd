"""The runtime worker: validated ingest into the mirror, at least once, with idempotent effects.

Two stages, each a member of its own consumer group:

1. **Re-key.** Consume the PM, CM and MR topics (keyed by cell) in batches, validate and
   normalise every record (``twin.ingest``), send rejects to ``ran.dlq.v1`` with the reason and the
   original bytes, and forward the rest to ``twin.<group>.by-cluster.v1`` keyed by *cluster*, packed
   as one envelope per cluster and batch. Source offsets are committed only after the envelopes
   and dead letters are acknowledged.
2. **Mirror.** Consume the re-keyed topic; every partition holds whole clusters, so the worker that
   owns a partition owns those clusters. Partition state and the next offset are checkpointed
   together; on assignment a worker loads the checkpoint and seeks to its offset, so a killed
   worker's clusters are resumed by the survivor with nothing lost or counted twice. Duplicates
   that stage 1 re-sends after a crash are absorbed by idempotent updates (PM upserts keyed by
   period end, MR de-duplicated by ``eventId``, CM latest-by-observation-time).

``twin run`` runs both stages in one process and a second member of the re-keying group in a child
process: validation is the heaviest step, so it is the one split over the two cores. Records that
the parent re-keys into partitions it owns are applied at once; the child's reach the mirror
through the re-keyed topic.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.partitioner import DefaultPartitioner

from streams.kafka_io import ensure_topics, make_consumer, make_producer
from streams.start_barrier import StartBarrier
from twin import topics
from twin.config import TwinSettings
from twin.ingest import IngestDecoder, Rejection
from twin.mirror.cluster import ClusterMirror
from twin.mirror.store import CheckpointStore, PartitionState, encode, snapshot
from twin.prediction import PredictConfig, PredictionService, to_records
from twin.schemas import DeadLetter

log = structlog.get_logger(__name__)

ENVELOPE_MAX_RECORDS = 2000
COMMITS_IN_FLIGHT = 4  # batches whose acks may be outstanding while the next ones are processed
ORIGIN_HEADER = "twin-origin"


@dataclass
class WorkerStats:  # counters, not state: they restart at zero
    consumed: int = 0
    accepted: int = 0  # input records that passed validation
    forwarded: int = 0  # record copies written to the re-keyed topic (a CM tombstone goes to every cluster)
    dead_lettered: Counter[str] = field(default_factory=Counter)
    envelopes_applied: int = 0
    records_applied: int = 0
    checkpoints: int = 0
    first_consumed_at: float | None = None  # wall clock, for throughput measured across processes

    def as_dict(self) -> dict[str, Any]:
        return {
            "firstConsumedAt": self.first_consumed_at,
            "consumed": self.consumed,
            "accepted": self.accepted,
            "forwarded": self.forwarded,
            "deadLettered": dict(self.dead_lettered),
            "deadLetteredTotal": sum(self.dead_lettered.values()),
            "envelopesApplied": self.envelopes_applied,
            "recordsApplied": self.records_applied,
            "checkpoints": self.checkpoints,
        }


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


class ClusterRouter:
    """cell key -> cluster id, from the topology config; unknown cells go to one named cluster."""

    def __init__(self, settings: TwinSettings) -> None:
        self._owner = settings.topology.cluster_of()
        self._default = settings.topology.unassigned_cluster

    def all_clusters(self) -> list[str]:
        return sorted({*self._owner.values(), self._default})

    def __call__(self, cell_key: str | None) -> str:
        if cell_key is None:
            return self._default
        return self._owner.get(cell_key, self._default)


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
        self.route = ClusterRouter(settings)
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
        by_cluster: dict[str, list[list[Any]]] = defaultdict(list)
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


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, stage: MirrorStage) -> None:
        self.stage = stage

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.stage.flush()  # an older snapshot must not land after the release's save
        self.stage.release([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.stage.acquire([tp.partition for tp in assigned])


class MirrorStage:
    """Stage 2: apply envelopes to the clusters of the owned partitions, checkpoint with offsets."""

    def __init__(self, settings: TwinSettings, bootstrap: str, stats: WorkerStats, store: CheckpointStore,
                 worker_name: str) -> None:
        self.settings = settings
        self.stats = stats
        self.store = store
        self.worker_name = worker_name
        self.owned: dict[int, PartitionState] = {}
        self.dirty: set[int] = set()
        self.last_checkpoint = time.monotonic()
        self.bootstrap = bootstrap
        self.internal_topic = topics.ingest_by_cluster(settings.kafka.group_id)
        self.origin = uuid.uuid4().hex.encode()  # this incarnation; a restarted worker gets another
        self._local_sends: list[Any] = []
        self.predictions = _prediction_service(settings)
        self.producer: Any = None
        self._writing: asyncio.Task[None] | None = None  # the checkpoint write in flight

    async def start(self) -> None:
        if self.predictions is not None:
            self.producer = make_producer(self.bootstrap, idempotent=self.settings.kafka.idempotent_producer,
                                          client_id=self.settings.kafka.client_id)
            await self.producer.start()
        self.consumer: AIOKafkaConsumer = make_consumer(
            self.bootstrap, group_id=f"{self.settings.kafka.group_id}.mirror",
            client_id=self.settings.kafka.client_id, max_partition_fetch_bytes=16 << 20,
        )
        self.consumer.subscribe([self.internal_topic], listener=_Rebalance(self))
        await self.consumer.start()

    async def stop(self) -> None:
        await self.flush()
        self.checkpoint(force=True)
        with contextlib.suppress(Exception):
            await self.consumer.stop()
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()

    def acquire(self, partitions: list[int]) -> None:
        for p in partitions:
            state = self.store.load(p)
            self.owned[p] = state
            self.consumer.seek(TopicPartition(self.internal_topic, p), state.next_offset)
            log.info("mirror.partition_acquired", worker=self.worker_name, partition=p,
                     offset=state.next_offset, clusters=sorted(state.clusters))

    def release(self, partitions: list[int]) -> None:
        for p in partitions:
            state = self.owned.pop(p, None)
            if state is not None and p in self.dirty:
                self._save(state)
            self.dirty.discard(p)
            log.info("mirror.partition_released", worker=self.worker_name, partition=p)

    def _save(self, state: PartitionState) -> None:
        for cluster in state.clusters.values():
            cluster.prune(self.settings.ingest.pm_retention_s, self.settings.ingest.mr_dedup_retention_s)
        self.store.save(state, {"worker": self.worker_name, "savedAt": time.time()})
        self.stats.checkpoints += 1

    def checkpoint(self, force: bool = False) -> None:
        """Save the dirty partitions now, on the event loop (at stop and in tests)."""
        if not force and time.monotonic() - self.last_checkpoint < self.settings.checkpoint_interval_s:
            return
        for p in sorted(self.dirty):
            if p in self.owned:
                self._save(self.owned[p])
        self.dirty.clear()
        self.last_checkpoint = time.monotonic()

    def checkpoint_in_background(self) -> None:
        """Every ``checkpoint_interval_s``: snapshot the dirty partitions here, save them in a thread.

        The snapshot (a copy of state and next offset together) is taken synchronously, so it is
        consistent; encoding, the file write and fsync leave the event loop. One save is in flight
        at a time, so a partition's checkpoints land in order; while one is, the next waits.
        """
        if self._writing is not None:
            if not self._writing.done():
                return
            writing, self._writing = self._writing, None
            writing.result()  # a failed save fails the worker, as a failed synchronous save did
        if time.monotonic() - self.last_checkpoint < self.settings.checkpoint_interval_s:
            return
        snapshots = []
        for p in sorted(self.dirty):
            state = self.owned.get(p)
            if state is not None:
                for cluster in state.clusters.values():
                    cluster.prune(self.settings.ingest.pm_retention_s, self.settings.ingest.mr_dedup_retention_s)
                snapshots.append(snapshot(state))
        self.dirty.clear()
        self.last_checkpoint = time.monotonic()
        if snapshots:
            meta = {"worker": self.worker_name, "savedAt": time.time()}
            self._writing = asyncio.create_task(asyncio.to_thread(self._write, snapshots, meta))

    def _write(self, snapshots: list[PartitionState], meta: dict[str, Any]) -> None:
        for state in snapshots:
            self.store.write(state.partition, encode(state, meta))
            self.stats.checkpoints += 1

    async def flush(self) -> None:
        """Until the predictions sent from ``apply_local`` are acknowledged and the checkpoint write in
        flight (if any) is on disk."""
        await self._ack_local_sends()
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    async def step(self, timeout_ms: int = 200) -> int:
        batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=500)
        applied = 0
        futures: list[Any] = []
        for tp, messages in batches.items():
            state = self.owned.get(tp.partition)
            if state is None:  # revoked while the fetch was in flight
                continue
            for msg in messages:
                if msg.offset < state.next_offset:
                    continue
                if msg.headers and msg.headers[0] == (ORIGIN_HEADER, self.origin):
                    state.next_offset = msg.offset + 1  # applied locally when it was produced
                    continue
                envelope = orjson.loads(msg.value) if msg.value is not None else None
                if envelope is not None:
                    records = envelope["r"]
                    cluster = state.cluster(envelope["cl"])
                    cluster.apply_many(records)
                    applied += len(records)
                    self.stats.envelopes_applied += 1
                    if self.predictions is not None:
                        futures += await self._predict(cluster)
                state.next_offset = msg.offset + 1
            self.dirty.add(tp.partition)
        self.stats.records_applied += applied
        if futures:  # at least once: predictions are acknowledged before the checkpoint says "done"
            await asyncio.gather(*futures)
        await self._ack_local_sends()
        self.checkpoint_in_background()
        return applied

    async def apply_local(self, partition: int, cluster_id: str, records: list[list[Any]]) -> list[Any]:
        """Apply records of an owned partition straight from the co-located re-keying stage."""
        state = self.owned[partition]
        cluster = state.cluster(cluster_id)
        cluster.apply_many(records)
        self.stats.records_applied += len(records)
        self.dirty.add(partition)
        if self.predictions is None:
            return []
        sends = await self._predict(cluster)
        self._local_sends += sends  # a checkpoint marking these periods predicted waits for their acks
        return sends

    async def _ack_local_sends(self) -> None:
        sends, self._local_sends = self._local_sends, []
        if sends:
            await asyncio.gather(*sends)

    async def _predict(self, cluster: ClusterMirror) -> list[Any]:
        """Predict the cluster's due periods (stored in the mirror) and send them keyed by cell."""
        assert self.predictions is not None
        futures = []
        for prediction in self.predictions.on_applied(cluster):
            for rec in to_records(prediction):
                futures.append(await self.producer.send(topics.PREDICTIONS, rec.to_json_bytes(),
                                                        key=rec.cell_key.encode()))
        return futures


def _prediction_service(settings: TwinSettings) -> PredictionService | None:
    p = settings.predict
    if not p.enabled:
        return None
    config = PredictConfig(scenario=p.scenario, n_ues=p.n_ues, demand_bps=p.demand_bps,
                           indoor_fraction=p.indoor_fraction, seed=p.seed,
                           model_version=p.model_version)
    expected = {c.id: tuple(c.cells) for c in settings.topology.clusters}
    return PredictionService(config, expected, p.timeout_periods)


STAGES = ("rekey", "mirror")
GC_THRESHOLDS = (50_000, 20, 100)  # CPython's default: (700, 10, 10)


class IngestWorker:
    """The selected stages in one asyncio loop; ``run`` returns when ``stop`` is set.

    ``twin run`` by default runs both stages here and a second re-keying member in a child process
    (``sibling`` is the start barrier between the two), so validation, the heaviest work, is split
    over two cores (see ``streams.commands``).
    """

    def __init__(self, settings: TwinSettings, bootstrap: str, worker_name: str = "worker",
                 stats_file: Path | None = None, stages: tuple[str, ...] = STAGES,
                 sibling: StartBarrier | None = None, sibling_wait_s: float = 30.0) -> None:
        unknown = set(stages) - set(STAGES)
        if unknown or not stages:
            raise ValueError(f"stages {stages!r}: choose from {STAGES}")
        self.settings = settings
        self.bootstrap = bootstrap
        self.stages = stages
        self.stats = WorkerStats()
        self.store = CheckpointStore(settings.state_dir / settings.kafka.group_id)
        self.mirror = MirrorStage(settings, bootstrap, self.stats, self.store, worker_name)
        both = "rekey" in stages and "mirror" in stages
        self.rekey = RekeyStage(settings, bootstrap, self.stats, local=self.mirror if both else None)
        self.stats_file = stats_file
        self.sibling = sibling
        self.sibling_wait_s = sibling_wait_s

    def _selected(self) -> list[RekeyStage | MirrorStage]:
        return [self.rekey if name == "rekey" else self.mirror for name in self.stages]

    async def start(self) -> None:
        # The hot path allocates a few short-lived containers per record while the mirror holds
        # millions of long-lived ones; at CPython's default thresholds the collector walks them
        # over and over (seen as 40-70 ms pauses). Nothing on this path builds reference cycles.
        gc.set_threshold(*GC_THRESHOLDS)
        internal = topics.ingest_by_cluster(self.settings.kafka.group_id)
        wanted = (*topics.INGEST_TOPICS, internal, topics.DLQ, topics.PREDICTIONS)
        await ensure_topics(self.bootstrap, wanted, self.settings.kafka.partitions)
        for stage in self._selected():
            await stage.start()

    def assigned(self) -> bool:
        return all(stage.consumer.assignment() for stage in self._selected())

    async def wait_assigned(self, timeout_s: float = 60.0) -> None:
        """Until the selected stages hold partitions (group joins are done)."""
        deadline = time.monotonic() + timeout_s
        while not self.assigned():
            if time.monotonic() > deadline:
                raise TimeoutError("consumer groups did not assign partitions in time")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        for stage in self._selected():
            await stage.stop()
        self._write_stats()

    async def run_loops(self, stop: asyncio.Event) -> None:
        steps = [(lambda: self._rekey_step(stop)) if stage is self.rekey else stage.step
                 for stage in self._selected()]
        await asyncio.gather(*(self._loop(step, stop) for step in steps))

    async def _rekey_step(self, stop: asyncio.Event) -> int:
        if self.sibling is not None:
            sibling, self.sibling = self.sibling, None
            await self.rekey.wait_for_sibling(sibling, self.sibling_wait_s, stop)
            sibling.close()
        return await self.rekey.step()

    async def run(self, stop: asyncio.Event) -> WorkerStats:
        await self.start()
        try:
            await self.run_loops(stop)
        finally:
            await self.close()
        return self.stats

    async def _loop(self, step: Callable[[], Any], stop: asyncio.Event) -> None:
        last_stats = 0.0
        while not stop.is_set():
            await step()
            if self.stats_file and time.monotonic() - last_stats > 0.5:
                self._write_stats()
                last_stats = time.monotonic()

    def _write_stats(self) -> None:
        if self.stats_file:
            tmp = self.stats_file.with_suffix(".tmp")
            mirror = "mirror" in self.stages
            tmp.write_bytes(orjson.dumps({
                **self.stats.as_dict(), "at": time.time(), "stages": list(self.stages),
                "assigned": self.assigned() if all(hasattr(st, "consumer") for st in self._selected()) else False,
                "mirrorPartitions": sorted(self.mirror.owned) if mirror else [],
                "clusters": sorted(c for st in self.mirror.owned.values() for c in st.clusters) if mirror else [],
                **(self.mirror.predictions.stats.as_dict() if mirror and self.mirror.predictions else {}),
            }))
            tmp.replace(self.stats_file)
