"""The runtime worker: validated ingest into the mirror, at least once, with idempotent effects.

Two stages, each a member of its own consumer group: ``streams.rekey.RekeyStage`` validates,
dead-letters and re-keys telemetry by cluster; ``streams.mirror_stage.MirrorStage`` applies the
re-keyed records to the mirror, predicts, and checkpoints state and offsets together.
:class:`IngestWorker` runs the selected stages in one asyncio loop.

``twin run`` runs both stages in one process and a second member of the re-keying group in a child
process: validation is the heaviest step, so it is the one split over the two cores. Records that
the parent re-keys into partitions it owns are applied at once; the child's reach the mirror
through the re-keyed topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from streams.health import BrokerHealth
from streams.kafka_io import ensure_topics
from streams.rekey import RekeyStage
from streams.start_barrier import StartBarrier
from streams.stats import WorkerStats
from twin import metrics, topics
from twin.config import TwinSettings
from twin.mirror.store import CheckpointStore

if TYPE_CHECKING:
    from streams.mirror_stage import MirrorStage

__all__ = ["GC_THRESHOLDS", "STAGES", "IngestWorker", "MirrorStage", "RekeyStage", "WorkerStats"]


def __getattr__(name: str) -> Any:
    """``MirrorStage`` loads when first used: a re-keying-only process (the child of ``twin run``)
    never imports the prediction path (river, numba, scipy, the simulator), about 210 MB less."""
    if name == "MirrorStage":
        from streams.mirror_stage import MirrorStage

        return MirrorStage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

log = structlog.get_logger(__name__)


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
        # the checkpoint store and the mirror stage only where the mirror runs (module ``__getattr__``)
        self.store: CheckpointStore | None = None
        self.mirror: MirrorStage | None = None
        if "mirror" in stages:
            from streams.mirror_stage import MirrorStage

            self.store = CheckpointStore(settings.state_dir / settings.kafka.group_id)
            self.mirror = MirrorStage(settings, bootstrap, self.stats, self.store, worker_name)
        both = "rekey" in stages and "mirror" in stages
        self.rekey = RekeyStage(settings, bootstrap, self.stats, local=self.mirror if both else None)
        self.stats_file = stats_file
        self.sibling = sibling
        self.sibling_wait_s = sibling_wait_s
        self.health = BrokerHealth(bootstrap, unreachable_after_s=settings.kafka.unreachable_after_s)
        self._stats_written = 0.0
        self.lag: dict[str, int] = {}  # records behind the log end, per stage (measured beside the loop)
        metrics.worker_collector.add(worker_name, self)

    def metrics_snapshot(self) -> dict[str, object]:
        """What ``twin.metrics.WorkerCollector`` exports, read when Prometheus scrapes."""
        ready, _ = self.ready()
        return {"consumed": self.stats.consumed, "accepted": self.stats.accepted,
                "applied": self.stats.records_applied, "deadLettered": dict(self.stats.dead_lettered),
                "alerts": self.stats.alerts, "checkpoints": self.stats.checkpoints, "lag": dict(self.lag),
                "ready": ready, "brokerReachable": self.health.reachable}

    async def measure_lag(self) -> None:
        """Per stage: the assigned partitions' high watermark minus the consumer's position."""
        for name, stage in zip(self.stages, self._selected(), strict=True):
            consumer = getattr(stage, "consumer", None)
            if consumer is None:
                continue
            behind = 0
            for tp in consumer.assignment():
                high = consumer.highwater(tp)
                if high is None:
                    continue
                with contextlib.suppress(Exception):  # a partition revoked meanwhile
                    behind += max(0, high - await consumer.position(tp))
            self.lag[name] = behind

    def _selected(self) -> list[RekeyStage | MirrorStage]:
        out: list[RekeyStage | MirrorStage] = []
        for name in self.stages:
            if name == "rekey":
                out.append(self.rekey)
            elif self.mirror is not None:
                out.append(self.mirror)
        return out

    async def start(self) -> None:
        # The hot path allocates a few short-lived containers per record while the mirror holds
        # millions of long-lived ones; at CPython's default thresholds the collector walks them
        # over and over (seen as 40-70 ms pauses). Nothing on this path builds reference cycles.
        gc.set_threshold(*GC_THRESHOLDS)
        internal = topics.ingest_by_cluster(self.settings.kafka.group_id)
        wanted = (*topics.INGEST_TOPICS, internal, topics.DLQ, topics.PREDICTIONS, topics.ALERTS, topics.RESYNCS,
                  topics.FIDELITY)
        await ensure_topics(self.bootstrap, wanted, self.settings.kafka.partitions)
        # together: each stage's consumer group join waits on the broker (about half the session
        # timeout on Tansu), and one after the other they doubled a worker's start
        await asyncio.gather(*(stage.start() for stage in self._selected()))

    def assigned(self) -> bool:
        return all(hasattr(stage, "consumer") and stage.consumer.assignment() for stage in self._selected())

    def ready(self) -> tuple[bool, str | None]:
        """Whether the worker is doing its job, and if not, why: the broker unreachable, or the
        consumer groups not (yet, or no longer) assigned."""
        if not self.health.reachable:
            return False, self.health.reason
        if not self.assigned():
            return False, "waiting for the consumer groups to assign partitions"
        return True, None

    async def wait_assigned(self, timeout_s: float = 60.0) -> None:
        """Until the selected stages hold partitions (group joins are done)."""
        deadline = time.monotonic() + timeout_s
        while not self.assigned():
            if time.monotonic() > deadline:
                raise TimeoutError("consumer groups did not assign partitions in time")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        # A stage's clients may wait on a broker that no longer answers (leaving the group, flushing):
        # each stop gets a bounded time, so a worker that must exit does.
        limit = 2 * self.settings.kafka.request_timeout_ms / 1000
        for stage in self._selected():
            try:
                await asyncio.wait_for(stage.stop(), limit)
            except TimeoutError:
                log.warning("worker.stop_timed_out", stage=type(stage).__name__, waited_s=limit)
        self._write_stats()
        metrics.worker_collector.remove(self)

    async def run_loops(self, stop: asyncio.Event) -> None:
        steps = [(lambda: self._rekey_step(stop)) if stage is self.rekey else stage.step
                 for stage in self._selected()]
        done = asyncio.Event()  # the stages stopped (asked to, or failed): the probes stop too
        aside = [asyncio.create_task(self.health.run(done)), asyncio.create_task(self._stats_loop(done))]
        try:
            await asyncio.gather(*(self._loop(step, stop) for step in steps))
        finally:
            done.set()
            await asyncio.gather(*aside, return_exceptions=True)

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
        while not stop.is_set():
            await step()
            self._maybe_write_stats()

    async def _stats_loop(self, done: asyncio.Event) -> None:
        """The stats file also while the steps wait (on an unreachable broker, say): written from
        here when no step has written it for a second."""
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.25)
            await self.measure_lag()
            self._maybe_write_stats(1.0)

    def _maybe_write_stats(self, after_s: float = 0.5) -> None:
        if self.stats_file and time.monotonic() - self._stats_written >= after_s:
            self._write_stats()

    def _write_stats(self) -> None:
        self._stats_written = time.monotonic()
        if self.stats_file:
            tmp = self.stats_file.with_suffix(".tmp")
            mirror = self.mirror
            predictions = mirror.predictions if mirror is not None else None
            ready, why = self.ready()
            tmp.write_bytes(orjson.dumps({
                **self.stats.as_dict(), "at": time.time(), "stages": list(self.stages),
                "assigned": self.assigned(), **self.health.as_dict(), "ready": ready, "notReadyReason": why,
                "lag": dict(self.lag),
                "mirrorPartitions": sorted(mirror.owned) if mirror is not None else [],
                "clusters": sorted(c for st in mirror.owned.values() for c in st.clusters) if mirror is not None
                else [],
                **(predictions.stats.as_dict() if predictions else {}),
                **(predictions.fidelity.stats.as_dict() if predictions and predictions.fidelity else {}),
                # time series (accepted, written, dropped, buffered ...) and the alert webhook (streams.outputs)
                **(mirror.outputs.stats() if mirror is not None and mirror.outputs is not None else {}),
            }))
            tmp.replace(self.stats_file)
