"""Stage 2 of the worker: apply re-keyed envelopes to the mirror, predict, checkpoint with offsets.

Every partition of the re-keyed topic holds whole clusters, so the worker that owns a partition
owns those clusters. Partition state and the next offset are checkpointed together; on assignment a
worker loads the checkpoint and seeks to its offset, so a killed worker's clusters are resumed by
the survivor with nothing lost or counted twice. Duplicates that stage 1 re-sends after a crash are
absorbed by idempotent updates (PM upserts keyed by period end, MR de-duplicated by ``eventId``, CM
latest-by-observation-time).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from streams.kafka_io import make_consumer, make_producer
from streams.stats import WorkerStats
from twin import topics
from twin.config import TwinSettings
from twin.mirror.cluster import ClusterMirror
from twin.mirror.store import CheckpointStore, PartitionState, encode, snapshot
from twin.prediction import prediction_service, to_records
from twin.records import NormalisedRecord

__all__ = ["ORIGIN_HEADER", "MirrorStage"]

log = structlog.get_logger(__name__)

ORIGIN_HEADER = "twin-origin"


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
        self.predictions = prediction_service(settings)
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

    async def apply_local(self, partition: int, cluster_id: str, records: list[NormalisedRecord]) -> list[Any]:
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
