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
import base64
import contextlib
import multiprocessing
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from streams import incarnation
from streams.envelopes import ORIGIN_HEADER, value_limit
from streams.kafka_io import make_consumer, make_producer
from streams.offset_guard import OffsetGuard
from streams.outputs import Outputs
from streams.stats import WorkerStats, gap_reporter, retry_reporter
from twin import metrics, topics
from twin.api import journal
from twin.cells import is_cell_key
from twin.config import TwinSettings
from twin.mirror.cell import CellMirror
from twin.mirror.cell_move import cell_from_entries, entries_of, merge_cell, move_chunks
from twin.mirror.cluster import ClusterMirror
from twin.mirror.holding import Held
from twin.mirror.identity import CONFLICT, resolve_node
from twin.mirror.identity_flow import forward_destinations, notice_destinations
from twin.mirror.mr_stats import SealBudget
from twin.mirror.store import Changes, CheckpointStore, PartitionState, take_changes
from twin.prediction import prediction_service, to_records
from twin.prediction.resync import ResyncJob, ResyncOutcome
from twin.records import NormalisedRecord
from twin.resync import divergence_alert
from twin.routing import HOLDING_PREFIX, ClusterRouter
from twin.schemas import Alert, AlertType, DeadLetter, Fidelity, Resync, Severity

__all__ = ["ORIGIN_HEADER", "MirrorStage"]

log = structlog.get_logger(__name__)

PLACE_CHUNK_RECORDS = 100  # held records per envelope when they are replayed into their cluster
LEFT_TOPOLOGY = "cell_left_topology"  # error class of a cell's mirror whose cell the topology no longer lists
# how often a moved cell's mirror may be sent on (workers whose topologies disagree, during a
# rolling restart) before it is dead-lettered rather than sent round again
MOVE_MAX_HOPS = 4
# MR event ids sealed into Bloom filters per background checkpoint (hashing them costs ~0.4 us each,
# on the event loop): spreads the work when many cells cross an hour together
SEAL_IDS_PER_CHECKPOINT = 20_000
# Background checkpoints are spaced so that taking their changes (on the event loop, in time
# proportional to what changed) costs at most this share of the loop's time: with many cells changing
# every second (MR of a large network) checkpoints come less often than checkpoint_interval_s and
# each writes more changes at once (a cell changed ten times is written once).
CHECKPOINT_LOOP_SHARE = 0.05


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, stage: MirrorStage) -> None:
        self.stage = stage

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.stage.flush()  # an older snapshot must not land after the release's save
        self.stage.release([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        try:
            self.stage.acquire([tp.partition for tp in assigned])
            await self.stage.verify_incarnation([tp.partition for tp in assigned])
        except Exception as exc:
            # aiokafka only logs a listener's exception and carries on: the worker would sit in the
            # group owning partitions it never loaded. The next step raises it instead, so the worker
            # exits non-zero and its supervisor restarts it (offsets were not moved: nothing is lost).
            log.error("mirror.assignment_failed", worker=self.stage.worker_name,
                      partitions=sorted(tp.partition for tp in assigned), error=repr(exc))
            self.stage.assignment_error = exc


class MirrorStage:
    """Stage 2: apply envelopes to the clusters of the owned partitions, checkpoint with offsets."""

    def __init__(self, settings: TwinSettings, bootstrap: str, stats: WorkerStats, store: CheckpointStore,
                 worker_name: str) -> None:
        self.settings = settings
        self.stats = stats
        self.store = store
        self.worker_name = worker_name
        self.owned: dict[int, PartitionState] = {}
        self.assignment_error: BaseException | None = None  # set by the rebalance listener, raised by step()
        self.dirty: set[int] = set()
        self.last_checkpoint = time.monotonic()
        self.bootstrap = bootstrap
        self.internal_topic = topics.ingest_by_cluster(settings.kafka.group_id)
        self.origin = uuid.uuid4().hex.encode()  # this incarnation; a restarted worker gets another
        self._local_sends: list[Any] = []
        self.predictions = prediction_service(settings)
        self.route = ClusterRouter(settings.topology)
        self._clusters = frozenset(self.route.all_clusters())
        # cell mirrors taken out of their old cluster and not yet sent to their new one's owner (or to
        # the dead-letter topic), by the partition they left: its checkpoints wait for the sends
        self._unsent: dict[int, list[tuple[str, str, CellMirror]]] = {}
        self.producer: Any = None
        self._writing: asyncio.Task[None] | None = None  # the checkpoint write in flight
        self._to_place: set[int] = set()  # acquired partitions whose held cells the topology may now list
        self.broker_cluster_id: str | None = None  # the broker's cluster id (its incarnation, for the embedded one)
        self._loaded: dict[int, tuple[int, dict[str, Any]]] = {}  # partition -> checkpoint offset and meta
        # resync fits run in a process beside the loop (twin.prediction.resync): job, mirror, future
        self._resyncs: list[tuple[ResyncJob, ClusterMirror, asyncio.Future[ResyncOutcome]]] = []
        self._fit_pool: ProcessPoolExecutor | None = None
        self.outputs: Outputs | None = None  # time series and the alert webhook (streams.outputs), from start()
        self._conflicts_alerted: set[tuple[str, str]] = set()  # (cell key, DN) alerted by this incarnation
        if self.predictions is not None and self.predictions.resyncs is not None:
            self.predictions.resyncs.runner = self._run_resync

    async def start(self) -> None:
        kafka = self.settings.kafka
        with contextlib.suppress(Exception):  # saved with the checkpoints; verify_incarnation asks again
            self.broker_cluster_id = await incarnation.cluster_id(self.bootstrap, kafka.request_timeout_ms)
        self.producer = make_producer(self.bootstrap, idempotent=kafka.idempotent_producer,
                                      client_id=kafka.client_id, max_request_size=kafka.max_message_bytes,
                                      request_timeout_ms=kafka.request_timeout_ms,
                                      give_up_after_s=kafka.broker_loss_timeout_s,
                                      on_retry=retry_reporter(self.stats, "mirror.send_retry"))
        await self.producer.start()
        self.outputs = Outputs(self.settings)
        await self.outputs.start()
        self.consumer: AIOKafkaConsumer = make_consumer(
            self.bootstrap, group_id=f"{self.settings.kafka.group_id}.mirror",
            client_id=self.settings.kafka.client_id, max_partition_fetch_bytes=16 << 20,
            session_timeout_ms=self.settings.kafka.session_timeout_ms,
            heartbeat_interval_ms=self.settings.kafka.heartbeat_interval_ms,
        )
        self.guard = OffsetGuard(self.consumer, self.settings.kafka.offset_hole_wait_s,
                                 on_gap=gap_reporter(self.stats, "mirror.offset_gap_accepted", worker=self.worker_name))
        self.consumer.subscribe([self.internal_topic], listener=_Rebalance(self))
        await self.consumer.start()

    async def stop(self) -> None:
        if self._fit_pool is not None:  # a fit not finished is run again after a restart (its record is pending)
            self._fit_pool.shutdown(wait=False, cancel_futures=True)
        await self.flush()
        for p in list(self._unsent):  # not sent: they stay where they were, and move at the next start
            self._keep_unsent(p)
        self.checkpoint(force=True)
        self.store.close()
        if self.outputs is not None:
            await self.outputs.close()
        with contextlib.suppress(Exception):
            await self.consumer.stop()
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()

    def acquire(self, partitions: list[int]) -> None:
        for p in partitions:
            state = self.store.load(p)
            state.announce()  # identity notices and refused records are delivered by this stage
            state.unassigned.max_keys = self.settings.topology.unassigned_max_cells
            state.unassigned.max_records = self.settings.topology.unassigned_max_records
            self.owned[p] = state
            self._loaded[p] = (state.next_offset, dict(state.meta))  # what verify_incarnation checks
            if len(state.unassigned):
                self._to_place.add(p)
            tp = TopicPartition(self.internal_topic, p)
            self.consumer.seek(tp, state.next_offset)
            self.guard.expect(tp, state.next_offset)
            log.info("mirror.partition_acquired", worker=self.worker_name, partition=p,
                     offset=state.next_offset, clusters=sorted(state.clusters))
        self.move_misplaced(partitions)

    def release(self, partitions: list[int]) -> None:
        for p in partitions:
            self._keep_unsent(p)
            state = self.owned.pop(p, None)
            self.guard.forget([TopicPartition(self.internal_topic, p)])
            if state is not None and p in self.dirty:
                self._save(state)
            self.dirty.discard(p)
            log.info("mirror.partition_released", worker=self.worker_name, partition=p)

    _last_take_s = 0.0  # how long taking the last background checkpoint's changes took

    def _meta(self) -> dict[str, Any]:
        """Saved with each checkpoint, beside ``PartitionState.meta`` (which holds the fingerprint of
        the partition's last applied record, ``streams.incarnation``)."""
        return {"worker": self.worker_name, "savedAt": time.time(), "brokerClusterId": self.broker_cluster_id}

    async def verify_incarnation(self, partitions: list[int]) -> None:
        """After ``acquire``: do the checkpoints' offsets belong to the broker's current log? Where
        they do not (a restarted memory-only broker, a recreated topic, retention), keep the mirror,
        resume from the new log's start, and count, log and alert (``streams.incarnation``)."""
        loaded = {p: self._loaded.pop(p) for p in partitions if p in self._loaded}
        checked = [p for p, (offset, _) in loaded.items() if offset > 0 and p in self.owned]
        if not checked:
            return
        try:
            self.broker_cluster_id = await incarnation.cluster_id(self.bootstrap,
                                                                  self.settings.kafka.request_timeout_ms)
        except Exception as exc:  # an old broker without DescribeCluster: the fingerprints still tell
            log.warning("mirror.cluster_id_unknown", reason=f"{type(exc).__name__}: {exc}")
        probe = make_consumer(self.bootstrap, group_id=None, client_id=self.settings.kafka.client_id)
        await probe.start()
        alerts: list[Any] = []
        try:
            for p in checked:
                state = self.owned[p]
                tp = TopicPartition(self.internal_topic, p)
                # the checkpoint as loaded: the stage may have read on meanwhile, from the wrong offset
                offset, meta = loaded[p]
                verdict = await incarnation.verify(probe, tp, offset, meta, self.broker_cluster_id)
                if verdict.reason is None:
                    continue
                log.warning("mirror.offsets_reset", worker=self.worker_name, partition=p, checkpoint=offset,
                            resume=verdict.offset, reason=verdict.reason)
                self.stats.offset_resets += 1
                state.next_offset = verdict.offset
                state.meta.pop("lastRecord", None)
                self.consumer.seek(tp, verdict.offset)
                self.guard.expect(tp, verdict.offset)
                self.dirty.add(p)
                for cluster in sorted(state.clusters):
                    alerts.append(await self._alert_log_replaced(cluster, p, verdict.reason))
        finally:
            await probe.stop()
        if alerts:
            await asyncio.gather(*alerts)

    async def _alert_log_replaced(self, cluster: str, partition: int, reason: str) -> Any:
        alert = Alert(alert_id=str(uuid.uuid4()), raised_at=datetime.now(UTC), cluster_id=cluster,
                      severity=Severity.MAJOR, type=AlertType.DATA_GAP,
                      text=f"partition {partition} of {self.internal_topic}: {reason}. The mirror of cluster "
                           f"{cluster} is kept and the new log is read from its start; telemetry sent while the "
                           "broker was being replaced may be missing")
        return await self._send_alert(alert)

    async def _send_alert(self, alert: Alert) -> Any:
        """Publish an alert on ``ran.alerts.v1``, keyed by its cell, else its cluster."""
        key = alert.cell_key or alert.cluster_id
        assert key is not None  # an Alert names one of them (its validator)
        self.stats.alerts += 1
        journal.append(self.store.directory, [alert])  # what the API lists (twin.api.journal)
        log.info("mirror.alert", worker=self.worker_name, alert_id=str(alert.alert_id), alert_type=str(alert.type),
                 cell=alert.cell_key, cluster=alert.cluster_id)
        if self.outputs is not None:
            self.outputs.alert(alert)
        return await self.producer.send(topics.ALERTS, alert.to_json_bytes(), key=key.encode())

    def _changes(self, state: PartitionState, seal: SealBudget | None, meta: dict[str, Any]) -> Changes:
        """Retention, then what changed in ``state`` since its last checkpoint (encoded, with its offset)."""
        for cluster in state.clusters.values():
            cluster.prune(self.settings.ingest.pm_retention_s, self.settings.ingest.mr_dedup_retention_s, seal)
        return take_changes(state, meta)

    def _save(self, state: PartitionState) -> None:
        self.store.write(self._changes(state, None, self._meta()))
        self.stats.checkpoints += 1

    def checkpoint(self, force: bool = False) -> None:
        """Save the dirty partitions now, on the event loop (at stop and in tests), in one transaction."""
        if not force and time.monotonic() - self.last_checkpoint < self.settings.checkpoint_interval_s:
            return
        meta = self._meta()
        changes = [self._changes(self.owned[p], None, meta) for p in sorted(self.dirty)
                   if p in self.owned and p not in self._unsent]
        if changes:
            self.store.write(*changes)
            self.stats.checkpoints += len(changes)
        self.dirty = {p for p in self.dirty if p in self._unsent}
        self.last_checkpoint = time.monotonic()

    def checkpoint_in_background(self) -> None:
        """Every ``checkpoint_interval_s`` (or less often, see ``CHECKPOINT_LOOP_SHARE``): take the dirty
        partitions' changes here, save them in a thread.

        The changes (what changed since the last checkpoint, encoded, with each partition's next
        offset) are taken synchronously, so they are consistent, in time proportional to what
        changed (encoding them right away costs less than copying them for a thread would); the
        write and the commit's fsync leave the event loop. One save is in flight at a time, so a
        partition's checkpoints land in order; while one is, the next waits (the changes keep
        accumulating in the mirror).
        """
        if self._writing is not None:
            if not self._writing.done():
                return
            writing, self._writing = self._writing, None
            writing.result()  # a failed save fails the worker, as a failed synchronous save did
        interval = max(self.settings.checkpoint_interval_s, self._last_take_s / CHECKPOINT_LOOP_SHARE)
        if time.monotonic() - self.last_checkpoint < interval:
            return
        started = time.perf_counter()
        seal = SealBudget(SEAL_IDS_PER_CHECKPOINT)
        meta = self._meta()
        changes = [self._changes(self.owned[p], seal, meta) for p in sorted(self.dirty)
                   if p in self.owned and p not in self._unsent]
        self.dirty = {p for p in self.dirty if p in self._unsent}
        self.last_checkpoint = time.monotonic()
        self._last_take_s = time.perf_counter() - started
        if changes:
            self._writing = asyncio.create_task(asyncio.to_thread(self._write, changes))

    def _write(self, changes: list[Changes]) -> None:
        self.store.write(*changes)  # one transaction, one fsync, for all of them
        self.stats.checkpoints += len(changes)

    async def flush(self) -> None:
        """Until the predictions sent from ``apply_local`` are acknowledged and the checkpoint write in
        flight (if any) is on disk."""
        await self._ack_local_sends()
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    def _run_resync(self, job: ResyncJob, mirror: ClusterMirror) -> None:
        """Start a resync's fit in a process of its own (the fit is Python and numpy for seconds: in a
        thread it would slow this loop through the interpreter lock): ingest goes on; the cluster's
        later periods wait for it."""
        log.info("resync.started", worker=self.worker_name, cluster=job.cluster_id, cells=list(job.cells))
        if self._fit_pool is None:
            self._fit_pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self._resyncs.append((job, mirror, asyncio.get_running_loop().run_in_executor(self._fit_pool, job.run)))

    async def _finish_resyncs(self) -> list[Any]:
        """Apply the fits that have finished (to the mirror still owned), predict the periods they
        held, publish the resync records."""
        futures: list[Any] = []
        if not self._resyncs or self.predictions is None or self.predictions.resyncs is None:
            return futures
        done = [r for r in self._resyncs if r[2].done()]
        self._resyncs = [r for r in self._resyncs if not r[2].done()]
        if done and not self._resyncs and self._fit_pool is not None:
            # resyncs are rare (an episode, then hours apart): the fit's process (~300 MB once it has
            # fitted) goes with its last fit and the next resync spawns a fresh one (a second or two)
            self._fit_pool.shutdown(wait=False)
            self._fit_pool = None
        for job, mirror, fut in done:
            owner = next((p for p, st in self.owned.items() if st.clusters.get(mirror.cluster_id) is mirror), None)
            if owner is None:  # the partition moved: its new owner runs the pending resync again
                self.predictions.resyncs.running.discard(job.record_id)
                continue
            try:
                outcome = fut.result()
            except Exception as exc:  # the fit's process died (killed, out of memory): a failed resync
                outcome = ResyncOutcome(None, (), f"the fit's process failed: {type(exc).__name__}: {exc}")
                self._fit_pool = None
            self.predictions.resyncs.finish(mirror, job, outcome, self.predictions.tracker)
            metrics.RESYNCS.labels(status="failed" if outcome.fit is None else "finished").inc()
            log.info("resync.finished", worker=self.worker_name, cluster=job.cluster_id,
                     status=next(r["status"] for r in mirror.resyncs if r["resyncId"] == job.record_id),
                     seconds=None if outcome.fit is None else round(outcome.fit.seconds, 3))
            self.dirty.add(owner)
            futures += await self._predict(mirror)
        return futures

    async def step(self, timeout_ms: int = 200) -> int:
        if self.assignment_error is not None:
            raise RuntimeError(f"the mirror stage could not take its assigned partitions: "
                               f"{self.assignment_error!r}") from self.assignment_error
        if self._resyncs:
            pending = await self._finish_resyncs()
            if pending:
                await asyncio.gather(*pending)
        if self._unsent:
            await self._send_moves()
        if self._to_place:
            await self.place_held()
        batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=500)
        applied = 0
        futures: list[Any] = []
        for tp, messages in batches.items():
            state = self.owned.get(tp.partition)
            if state is None:  # revoked while the fetch was in flight
                continue
            retries = self.guard.retries
            messages = self.guard.take(tp, messages)  # up to a hole, if the broker showed one
            self.stats.offset_hole_retries += self.guard.retries - retries
            if not messages:
                continue
            for msg in messages:
                if msg.offset < state.next_offset:
                    continue
                if msg.headers and msg.headers[0] == (ORIGIN_HEADER, self.origin):
                    state.next_offset = msg.offset + 1  # applied locally when it was produced
                    continue
                envelope = orjson.loads(msg.value) if msg.value is not None else None
                if envelope is not None and envelope["cl"].startswith(HOLDING_PREFIX):
                    # telemetry of a cell outside the topology: held, not simulated
                    key = envelope["cl"][len(HOLDING_PREFIX):]
                    futures += await self._hold(state, key, envelope["r"], tp.partition, msg.offset)
                    applied += len(envelope["r"])
                elif envelope is not None and "mv" in envelope:  # a cell's mirror moved here
                    futures += await self._moved_in(state, envelope, tp.partition)
                elif envelope is not None:
                    records = envelope["r"]
                    cluster = state.cluster(envelope["cl"])
                    cells = len(cluster.cells)
                    cluster.apply_many(records)
                    applied += len(records)
                    self.stats.envelopes_applied += 1
                    if len(cluster.cells) > cells or cluster.cluster_id not in self._clusters:
                        # records routed by an older topology (written before a restart with a new one)
                        futures += await self._reroute(state, cluster, records, msg.offset)
                    if cluster.cluster_id in state.clusters:
                        futures += await self._identity(cluster, tp.partition, msg.offset)
                        if self.predictions is not None:
                            futures += await self._predict(cluster)
                state.next_offset = msg.offset + 1
            last = messages[-1]
            if last.offset + 1 == state.next_offset:  # which log these offsets belong to (streams.incarnation)
                state.meta["lastRecord"] = incarnation.fingerprint(last.offset, last.timestamp, last.value)
            self.dirty.add(tp.partition)
        self.stats.records_applied += applied
        if futures:  # at least once: predictions are acknowledged before the checkpoint says "done"
            await asyncio.gather(*futures)
        await self._ack_local_sends()
        self.checkpoint_in_background()
        return applied

    async def apply_local(self, partition: int, cluster_id: str, records: list[NormalisedRecord]) -> list[Any]:
        """Apply records of an owned partition straight from the co-located re-keying stage."""
        if cluster_id.startswith(HOLDING_PREFIX):
            return await self._hold_local(partition, cluster_id[len(HOLDING_PREFIX):], records)
        state = self.owned[partition]
        cluster = state.cluster(cluster_id)
        cluster.apply_many(records)
        self.stats.records_applied += len(records)
        self.dirty.add(partition)
        sends = await self._identity(cluster, partition, None)
        if self.predictions is not None:
            sends += await self._predict(cluster)
        self._local_sends += sends  # a checkpoint marking these periods predicted waits for their acks
        return sends

    async def _hold_local(self, partition: int, key: str, records: list[NormalisedRecord]) -> list[Any]:
        """Hold records of a cell outside the topology, straight from the co-located re-keying stage."""
        sends = await self._hold(self.owned[partition], key, records, partition, None)
        self.stats.records_applied += len(records)
        self.dirty.add(partition)
        self._local_sends += sends
        return sends

    async def _hold(self, state: PartitionState, key: str, records: list[NormalisedRecord], partition: int,
                    offset: int | None) -> list[Any]:
        """Keep ``records`` of the held ``key``; dead-letter what does not fit; alert on a new cell.
        A node's key (``dn:...``) first resolves what it can (``twin.mirror.identity.resolve_node``)."""
        futures: list[Any] = []
        if key.startswith("dn:"):
            resolution = resolve_node(state.identity, state.unassigned, key, records)
            self.dirty.add(partition)
            for record, reason in resolution.refused:
                futures.append(await self._refuse(record, reason, partition, offset))
            futures += await self._deliver(forward_destinations(resolution.forward, self.route), offset)
            records = resolution.hold
            if not records:
                return futures
        out = state.unassigned.add(key, records)
        self.stats.unassigned_records += len(records)
        if out.overflow:
            if out.overflow_reason == "full":
                reason = (f"cell {key!r} is in no cluster of the topology and the partition already holds the "
                          f"telemetry of {state.unassigned.max_keys} such cells (topology.unassigned_max_cells)")
            else:
                reason = (f"cell {key!r} is in no cluster of the topology; its oldest held record was pushed out "
                          f"by newer ones ({state.unassigned.max_records} held, topology.unassigned_max_records)")
            for record in out.overflow:
                letter = DeadLetter(reason=reason, error_class=f"unassigned_{out.overflow_reason}",
                                    topic=self.internal_topic, partition=partition, offset=offset,
                                    key_b64=None, value_b64=base64.b64encode(orjson.dumps(record)).decode(),
                                    rejected_at=datetime.now(UTC), rejected_by="twin.mirror.holding")
                futures.append(await self.producer.send(topics.DLQ, letter.to_json_bytes(), key=key.encode()))
            self.stats.unassigned_dead_lettered += len(out.overflow)
        held_now = state.unassigned.held.get(key)
        if held_now is not None and not held_now.alerted and is_cell_key(key):
            futures.append(await self._alert_unknown_cell(held_now))
            held_now.alerted = True
        if out.new:
            log.warning("mirror.unassigned_cell", worker=self.worker_name, key=key, partition=partition)
        return futures

    async def _alert_unknown_cell(self, held: Held) -> Any:
        alert_id = uuid.uuid5(uuid.NAMESPACE_URL, f"twin:unassigned:{self.settings.kafka.group_id}:{held.key}")
        alert = Alert(alert_id=str(alert_id),
                      raised_at=datetime.now(UTC), cell_key=held.key, severity=Severity.WARNING,
                      type=AlertType.UNKNOWN_CELL,
                      text=f"cell {held.key} reports telemetry but is in no cluster of the topology: its "
                           f"telemetry is held (not simulated) until a cluster lists it")
        return await self._send_alert(alert)

    def _partition_of_cluster(self, cluster: str) -> int:
        partitions = sorted(self.consumer.partitions_for_topic(self.internal_topic) or ())
        return int(DefaultPartitioner()(cluster.encode(), partitions, partitions))

    async def place_held(self) -> int:
        """Replay held telemetry of cells the topology now lists into their clusters; a cell leaves the
        holding once its records are in (applied here or acknowledged by the broker). Replaying is
        idempotent, so a crash in between only replays them again."""
        placed = 0
        for p in sorted(self._to_place):
            state = self.owned.get(p)
            if state is None:
                continue
            futures: list[Any] = []
            moved: list[tuple[str, str, list[NormalisedRecord]]] = []
            for held in list(state.unassigned):
                cluster = self.route(held.key) if is_cell_key(held.key) else None
                if cluster is not None:
                    moved.append((held.key, cluster, held.all_records()))
            for key, cluster, records in moved:
                target = self._partition_of_cluster(cluster)
                if target in self.owned:
                    mirror = self.owned[target].cluster(cluster)
                    mirror.apply_many(records)
                    self.dirty.add(target)
                    futures += await self._identity(mirror, target, None)
                    if self.predictions is not None:
                        futures += await self._predict(mirror)
                else:
                    for i in range(0, len(records), PLACE_CHUNK_RECORDS):
                        futures.append(await self.producer.send(
                            self.internal_topic, orjson.dumps({"cl": cluster, "r": records[i:i + PLACE_CHUNK_RECORDS]}),
                            key=cluster.encode(), partition=target))
                log.info("mirror.unassigned_placed", worker=self.worker_name, cell=key, cluster=cluster,
                         records=len(records))
            if futures:
                await asyncio.gather(*futures)
            for key, _, _ in moved:
                state.unassigned.pop(key)
                placed += 1
            if moved:
                self.dirty.add(p)
        self._to_place.clear()
        self.stats.unassigned_placed += placed
        return placed

    def move_misplaced(self, partitions: list[int]) -> None:
        """On ``acquire``: take out of its cluster the mirror of each cell that the topology no longer
        lists there (the operator moved or dropped the cell and restarted the worker), so that the old
        cluster no longer simulates it, and merge it into the cluster that now lists it when this
        worker owns that one (``twin.mirror.cell_move``); the others wait in ``_unsent`` for the
        next step to send them (through the re-keyed topic, or to the dead-letter topic when the
        topology lists the cell nowhere), and their partition's checkpoints wait for the sends. A
        crash before the old cluster's checkpoint moves the cell again, which the merge absorbs."""
        for p in partitions:
            state = self.owned.get(p)
            if state is None:
                continue
            for cluster in list(state.clusters.values()):
                cid = cluster.cluster_id
                for key in [k for k in cluster.cells if is_cell_key(k) and self.route(k) != cid]:
                    cell = state.drop_cell(cid, key)
                    self.dirty.add(p)
                    if not self._merge_here(key, cell, cid):
                        self._unsent.setdefault(p, []).append((cid, key, cell))
                self._drop_if_gone(state, cid)

    def _merge_here(self, key: str, cell: CellMirror, came_from: str) -> bool:
        """Merge a cell's mirror into the cluster the topology gives it, if this worker owns it."""
        target_cluster = self.route(key)
        if target_cluster is None or not self.consumer.partitions_for_topic(self.internal_topic):
            return False  # nowhere, or the topic's partitions not known yet: sent by the next step
        owner = self.owned.get(self._partition_of_cluster(target_cluster))
        if owner is None:
            return False
        outcome = merge_cell(owner.cluster(target_cluster).cell(key), cell)
        self.dirty.add(owner.partition)
        self.stats.cells_moved += 1
        self.stats.moved_mr_counted_twice += outcome.mr_counted_twice
        log.warning("mirror.cell_moved", worker=self.worker_name, cell=key, from_cluster=came_from,
                    to_cluster=target_cluster, periods=outcome.periods, cm_observations=outcome.cm_observations,
                    mr_reports=outcome.mr_reports, mr_counted_twice=outcome.mr_counted_twice)
        return True

    def _drop_if_gone(self, state: PartitionState, cluster_id: str) -> None:
        """Drop a cluster that the topology no longer has once nothing of it is left to move."""
        cluster = state.clusters.get(cluster_id)
        if cluster is None or cluster_id in self._clusters or cluster.cells:
            return
        if any(cid == cluster_id for cid, _, _ in self._unsent.get(state.partition, ())):
            return
        state.drop_cluster(cluster_id)
        self.dirty.add(state.partition)
        log.warning("mirror.cluster_dropped", worker=self.worker_name, cluster=cluster_id, partition=state.partition,
                    reason="the topology no longer has this cluster, and its cells have moved")

    def _keep_unsent(self, partition: int) -> None:
        """Put the cell mirrors not yet sent from ``partition`` back where they were (the partition is
        released, or the worker stops): its checkpoint keeps them, and they move at the next start."""
        state = self.owned.get(partition)
        for cid, _, cell in self._unsent.pop(partition, ()):
            if state is not None:
                state.restore_cell(cid, cell)

    async def _send_moves(self) -> None:
        """Send the cell mirrors ``move_misplaced`` could not merge here, and wait for the broker."""
        for p in list(self._unsent):
            state = self.owned.get(p)
            if state is None:
                continue
            futures: list[Any] = []
            for cid, key, cell in self._unsent[p]:
                futures += await self._relocate(key, cell, cid, hops=0)
            if futures:
                await asyncio.gather(*futures)
            cids = {cid for cid, _, _ in self._unsent.pop(p)}
            for cid in cids:
                self._drop_if_gone(state, cid)

    async def _reroute(self, state: PartitionState, cluster: ClusterMirror, records: list[NormalisedRecord],
                       offset: int) -> list[Any]:
        """Records of an envelope that an older topology routed to ``cluster``: the cells they created
        there that the topology lists elsewhere (or nowhere) are taken out again, and their records
        delivered where the topology says now (idempotent there: PM upserts, MR by event id)."""
        cid = cluster.cluster_id
        misplaced = {k for k in cluster.cells if is_cell_key(k) and self.route(k) != cid}
        for key in misplaced:  # each was created by these records (``move_misplaced`` took out the others)
            state.drop_cell(cid, key)
        by_dest: dict[str, list[NormalisedRecord]] = {}
        for r in records:
            if r[1] in misplaced:
                dn = cast(dict[str, Any], r[2]).get("dn") if r[0] != "mr" else None
                by_dest.setdefault(self.route.cluster_or_holding(r[1], dn), []).append(r)
        if misplaced:
            log.warning("mirror.records_rerouted", worker=self.worker_name, cluster=cid, cells=sorted(misplaced),
                        records=sum(len(v) for v in by_dest.values()))
        futures = await self._deliver(by_dest, offset)
        self._drop_if_gone(state, cid)
        return futures

    async def _relocate(self, key: str, cell: CellMirror, came_from: str, hops: int) -> list[Any]:
        """Merge a cell's mirror into the cluster the topology gives the cell (here, or through the
        re-keyed topic to its owner), or dead-letter it whole when the topology lists the cell nowhere."""
        target_cluster = self.route(key)
        if target_cluster is None or hops >= MOVE_MAX_HOPS:
            return await self._dead_letter_cell(key, cell, came_from, hops)
        if self._merge_here(key, cell, came_from):
            return []
        target = self._partition_of_cluster(target_cluster)
        futures = []
        limit = self.settings.kafka.max_message_bytes
        fits = value_limit(limit, target_cluster.encode())
        for chunk in move_chunks(cell.snapshot(), limit // 2):  # room for the envelope's own JSON
            body = orjson.dumps({"cl": target_cluster, "mv": {**chunk, "from": came_from, "hops": hops + 1}})
            if len(body) > fits:  # one sealed hour's filters larger than a message: kept on the dead-letter topic
                futures += await self._dead_letter_cell(key, cell_from_entries(key, entries_of(chunk)), came_from,
                                                        hops, why=f"a part of it ({len(body):,} bytes) exceeds "
                                                        f"kafka.max_message_bytes ({limit:,}) and cannot be moved")
                continue
            futures.append(await self.producer.send(self.internal_topic, body, key=target_cluster.encode(),
                                                    partition=target))
        self.stats.cells_moved += 1
        log.warning("mirror.cell_sent", worker=self.worker_name, cell=key, from_cluster=came_from,
                    to_cluster=target_cluster, partition=target)
        return futures

    async def _moved_in(self, state: PartitionState, envelope: dict[str, Any], partition: int) -> list[Any]:
        """A chunk of a cell's mirror sent by the worker that had it in its old cluster."""
        move = envelope["mv"]
        key, came_from, hops = move["key"], move["from"], int(move["hops"])
        cell = cell_from_entries(key, entries_of(move))
        cluster_id = envelope["cl"]
        if self.route(key) != cluster_id:  # the topology changed again, or the workers' topologies differ
            return await self._relocate(key, cell, came_from, hops)
        outcome = merge_cell(state.cluster(cluster_id).cell(key), cell)
        self.dirty.add(partition)
        self.stats.moved_in_parts += 1
        self.stats.moved_mr_counted_twice += outcome.mr_counted_twice
        log.info("mirror.cell_moved_in", worker=self.worker_name, cell=key, from_cluster=came_from,
                 to_cluster=cluster_id, periods=outcome.periods, cm_observations=outcome.cm_observations,
                 mr_reports=outcome.mr_reports, mr_counted_twice=outcome.mr_counted_twice)
        return []

    async def _dead_letter_cell(self, key: str, cell: CellMirror, came_from: str, hops: int,
                                why: str | None = None) -> list[Any]:
        """The mirror of a cell that no cluster of the topology lists any more: dead-lettered whole (its
        checkpoint entries, in chunks), so nothing of it is lost; its new telemetry is held
        (``twin.mirror.holding``) like any cell outside the topology. ``why``: another reason (a part
        too large to move)."""
        if why is not None:
            reason = f"the mirror of cell {key!r} moving from cluster {came_from!r}: {why}"
        elif hops >= MOVE_MAX_HOPS:
            reason = (f"the mirror of cell {key!r} was sent on {hops} times between workers whose topologies "
                      f"disagree (last from cluster {came_from!r}); the chunk's checkpoint entries are attached")
        else:
            reason = (f"cell {key!r} is in no cluster of the topology any more (its checkpoint had it in cluster "
                      f"{came_from!r}); the twin no longer simulates it, and its mirror (checkpoint entries, "
                      f"base64) is attached")
        futures = []
        limit = self.settings.kafka.max_message_bytes
        chunks = move_chunks(cell.snapshot(), limit // 2)
        for i, chunk in enumerate(chunks, 1):
            letter = DeadLetter(reason=f"{reason} (part {i} of {len(chunks)})", error_class=LEFT_TOPOLOGY,
                                topic=self.internal_topic, partition=None, offset=None,
                                key_b64=base64.b64encode(key.encode()).decode(),
                                value_b64=base64.b64encode(orjson.dumps(chunk)).decode(),
                                rejected_at=datetime.now(UTC), rejected_by="twin.mirror.cell_move")
            value = letter.to_json_bytes_within(value_limit(limit, key.encode()), limit)
            futures.append(await self.producer.send(topics.DLQ, value, key=key.encode()))
        self.stats.cells_left_topology += why is None
        self.stats.dead_lettered[LEFT_TOPOLOGY] += 1
        log.warning("mirror.cell_left_topology", worker=self.worker_name, cell=key, cluster=came_from,
                    dead_letters=len(chunks), reason=reason)
        return futures

    async def _deliver(self, by_dest: dict[str, list[NormalisedRecord]], offset: int | None) -> list[Any]:
        """Records for envelope keys (a cluster id, or ``unassigned/<key>``): applied here when this
        worker owns the key's partition, else sent through the re-keyed topic to its owner."""
        futures: list[Any] = []
        for dest, records in by_dest.items():
            target = self._partition_of_cluster(dest)
            state = self.owned.get(target)
            if state is None:
                for i in range(0, len(records), PLACE_CHUNK_RECORDS):
                    futures.append(await self.producer.send(
                        self.internal_topic, orjson.dumps({"cl": dest, "r": records[i:i + PLACE_CHUNK_RECORDS]}),
                        key=dest.encode(), partition=target))
                continue
            self.dirty.add(target)
            if dest.startswith(HOLDING_PREFIX):
                futures += await self._hold(state, dest[len(HOLDING_PREFIX):], records, target, offset)
                continue
            cluster = state.cluster(dest)
            cluster.apply_many(records)
            futures += await self._identity(cluster, target, offset)
            if self.predictions is not None:
                futures += await self._predict(cluster)
        return futures

    async def _identity(self, cluster: ClusterMirror, partition: int, offset: int | None) -> list[Any]:
        """Deliver what applying records to ``cluster`` produced for cell identity: the notices to
        the holdings of the nodes whose DNs CM named (or refused), and the refused records (dead
        letters, one alert per conflict)."""
        notices, refused = cluster.take_identity()
        if not notices and not refused:
            return []
        futures: list[Any] = []
        for record, reason in refused:
            futures.append(await self._refuse(record, reason, partition, offset))
            key = record[1]
            dn = cast(dict[str, Any], record[2])["dn"]
            if key is not None and (key, dn) not in self._conflicts_alerted:
                self._conflicts_alerted.add((key, dn))
                futures.append(await self._alert_conflict(key, reason))
        futures += await self._deliver(notice_destinations(notices), offset)
        return futures

    async def _refuse(self, record: NormalisedRecord, reason: str, partition: int, offset: int | None) -> Any:
        """Dead-letter a record that an identity conflict keeps out of the mirror."""
        letter = DeadLetter(reason=f"cell identity conflict: {reason}", error_class=CONFLICT,
                            topic=self.internal_topic, partition=partition, offset=offset, key_b64=None,
                            value_b64=base64.b64encode(orjson.dumps(record)).decode(),
                            rejected_at=datetime.now(UTC), rejected_by="twin.mirror.identity")
        self.stats.dead_lettered[CONFLICT] += 1
        key = record[1] or cast(dict[str, Any], record[2]).get("dn", "")
        return await self.producer.send(topics.DLQ, letter.to_json_bytes(), key=str(key).encode())

    async def _alert_conflict(self, cell_key: str, reason: str) -> Any:
        alert_id = uuid.uuid5(uuid.NAMESPACE_URL, f"twin:identity:{self.settings.kafka.group_id}:{cell_key}:{reason}")
        alert = Alert(alert_id=str(alert_id), raised_at=datetime.now(UTC), cell_key=cell_key,
                      severity=Severity.MAJOR, type=AlertType.DATA_GAP, probable_cause="cell identity conflict",
                      text=reason)
        return await self._send_alert(alert)

    async def _ack_local_sends(self) -> None:
        sends, self._local_sends = self._local_sends, []
        if sends:
            await asyncio.gather(*sends)

    async def _predict(self, cluster: ClusterMirror) -> list[Any]:
        """Predict the cluster's due periods (stored in the mirror) and send them keyed by cell."""
        assert self.predictions is not None
        futures = []
        started = time.perf_counter()
        due = self.predictions.on_applied(cluster)
        if due:
            metrics.PREDICTION_SECONDS.observe(time.perf_counter() - started)
        for prediction in due:
            if self.outputs is not None:
                self.outputs.period(cluster, prediction)
            for rec in to_records(prediction):
                futures.append(await self.producer.send(topics.PREDICTIONS, rec.to_json_bytes(),
                                                        key=rec.cell_key.encode()))
            for event in prediction.events:
                futures.append(await self._send_alert(
                    divergence_alert(cluster.cluster_id, self.settings.kafka.group_id, event)))
        for cluster_id, record in self.predictions.take_resyncs():
            wire = Resync.model_validate(record)
            if self.outputs is not None:
                self.outputs.resync(wire)
            futures.append(await self.producer.send(topics.RESYNCS, wire.to_json_bytes(), key=cluster_id.encode()))
        for cluster_id, record in self.predictions.take_fidelity():
            fid = Fidelity.model_validate(record)
            if self.outputs is not None:
                self.outputs.fidelity(fid)
            futures.append(await self.producer.send(topics.FIDELITY, fid.to_json_bytes(), key=cluster_id.encode()))
        for alert in self.predictions.take_alerts():
            futures.append(await self._send_alert(alert))
        return futures
