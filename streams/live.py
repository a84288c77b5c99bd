"""Drive an emulated network through Kafka and watch the twin's predictions come back.

Shared by ``twin demo`` and ``twin bench e2e``. :class:`LiveRun` steps the emulator one
granularity period at a time, publishes what it produced (PM, MR, CM) through the real topics,
and paces itself either in accelerated event time (``speed`` x real time) or, at ``speed=0``, as
fast as the pipeline answers: never more than ``window`` periods ahead of the newest period whose
predictions have all arrived. :class:`PredictionWatcher` reads ``ran.twin.predictions.v1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson

from streams.kafka_io import KafkaSink, make_consumer
from twin import topics
from twin.ports import OutRecord

__all__ = ["LiveRun", "PeriodLog", "PredictionWatcher", "ProgressFn", "Source", "WarmFn", "event_dict", "percentile"]


class Source(Protocol):
    """What the runtime needs of an emulated network (``replay.emulator.NetworkEmulator``)."""

    @property
    def cells(self) -> Any: ...

    @property
    def period_end(self) -> Any: ...

    def topology_config(self) -> dict[str, Any]: ...

    def initial_records(self) -> list[OutRecord]: ...

    def step(self) -> list[OutRecord]: ...

    def events_in(self, period: Any) -> Any: ...


def epoch(value: Any) -> int:
    """Epoch seconds of a datetime, an ISO string or a number."""
    if isinstance(value, datetime):
        return round(value.timestamp())
    if isinstance(value, str):
        return round(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    return round(float(value))


def event_dict(event: Any) -> dict[str, Any]:
    """A scenario event as plain JSON-able data, whatever class the emulator uses."""
    if hasattr(event, "model_dump"):
        d = dict(event.model_dump(mode="json"))
    elif is_dataclass(event) and not isinstance(event, type):
        d = asdict(event)
    elif isinstance(event, dict):
        d = dict(event)
    else:
        d = {"description": str(event)}
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in d.items()}


@dataclass
class PeriodLog:
    """One published period: when it left, the PM values in it, the events in it."""

    index: int
    end: int
    published_at: float
    pm: dict[str, dict[str, float]]
    records: int
    events: list[dict[str, Any]] = field(default_factory=list)


class PredictionWatcher:
    """Consumes every partition of the predictions topic; first arrival time per (cell, end)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.values: dict[tuple[str, int], dict[str, float]] = {}
        self.arrived: dict[tuple[str, int], float] = {}
        self.records = 0
        self.by_end: dict[int, set[str]] = {}

    async def start(self) -> None:
        self.consumer = make_consumer(self.bootstrap, topics.PREDICTIONS, group_id=None)
        await self.consumer.start()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.consumer.stop()

    async def poll(self, timeout_ms: int = 50) -> int:
        batches = await self.consumer.getmany(timeout_ms=timeout_ms)
        now = time.time()
        n = 0
        for messages in batches.values():
            for m in messages:
                if m.value is None:
                    continue
                d = orjson.loads(m.value)
                key = (d["cellKey"], epoch(d["periodEnd"]))
                self.values.setdefault(key, {})[d["kpi"]] = d["predicted"]
                self.arrived.setdefault(key, now)
                self.by_end.setdefault(key[1], set()).add(key[0])
                n += 1
        self.records += n
        return n

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll()

    def complete(self, end: int, cells: Sequence[str]) -> bool:
        got = self.by_end.get(end, set())
        return all(c in got for c in cells)


ProgressFn = Callable[["LiveRun"], None]
WarmFn = Callable[[asyncio.Event], Awaitable[None]]


class LiveRun:
    """Publishes ``periods`` periods of ``source`` and tracks predictions and latency."""

    def __init__(self, source: Source, bootstrap: str, periods: int, granularity_s: int,
                 speed: float = 0.0, window: int = 2, partitions: int = 12) -> None:
        self.source = source
        self.bootstrap = bootstrap
        self.periods = periods
        self.gp = granularity_s
        self.speed = speed
        self.window = window
        self.partitions = partitions
        self.cells: list[str] = [str(c) for c in _cell_keys(source)]
        self.log: list[PeriodLog] = []
        self.published = 0
        self.pm_published = 0
        self.watcher = PredictionWatcher(bootstrap)
        self.started_at = 0.0
        self.finished_at = 0.0
        self.warmup_s: float | None = None
        self.stopped = False

    async def run(self, stop: asyncio.Event, progress: ProgressFn | None = None,
                  drain_timeout_s: float = 60.0, warmed: WarmFn | None = None) -> None:
        """Publish everything, then wait for the last predictions (or ``stop``).

        ``warmed``, when given, is awaited after the initial CM is published and before the first
        period: the twin builds its simulators from CM, which a real network publishes long before
        its PM; the time it took is ``warmup_s`` and is not part of the run's wall time or latency.
        """
        sink = KafkaSink(self.bootstrap, ensure=(*topics.INGEST_TOPICS, topics.DLQ, topics.PREDICTIONS),
                         partitions=self.partitions)
        await sink.start()
        await self.watcher.start()
        watching = asyncio.create_task(self.watcher.run(stop))
        try:
            initial = self.source.initial_records()
            await sink.send_many(initial)
            await sink.flush()
            self.published += len(initial)
            if warmed is not None:
                t0 = time.monotonic()
                await warmed(stop)
                self.warmup_s = time.monotonic() - t0
            self.started_at = time.time()
            prev_end = self.source.period_end
            for k in range(self.periods):
                if not await self._pace(k, stop):
                    break
                records = await asyncio.to_thread(self.source.step)
                end = self.source.period_end
                published_at = time.time()
                await sink.send_many(records)
                await sink.flush()
                self._log(k, prev_end, end, published_at, records)
                prev_end = end
                # What this process keeps (the log, the predictions read back) only grows: keep it
                # out of the collector's full passes (40 ms each at a day of 57 cells, measured),
                # which would otherwise delay the arrival times measured here.
                gc.freeze()
                if progress:
                    progress(self)
            deadline = time.monotonic() + drain_timeout_s
            while not stop.is_set() and not self.all_predicted() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                if progress:
                    progress(self)
            self.finished_at = time.time()
        finally:
            self.stopped = stop.is_set()
            stop.set()
            await watching
            await self.watcher.stop()
            await sink.stop()

    async def _pace(self, k: int, stop: asyncio.Event) -> bool:
        """Wait for the period's turn; False when stopped."""
        if self.speed > 0:
            due = self.started_at + k * self.gp / self.speed
            while not stop.is_set() and time.time() < due:
                await asyncio.sleep(min(0.05, max(0.0, due - time.time())))
        # never run more than `window` periods ahead of the predictions, at any speed
        if k >= self.window:
            behind = self.log[k - self.window].end
            while not stop.is_set() and not self.watcher.complete(behind, self.cells):
                await asyncio.sleep(0.002)
        return not stop.is_set()

    def _log(self, k: int, start: Any, end: Any, published_at: float, records: list[OutRecord]) -> None:
        pm: dict[str, dict[str, float]] = {}
        for rec in records:
            if rec.topic == topics.PM_CELL:
                d = orjson.loads(rec.value)
                pm[d["cellKey"]] = d["values"]
        try:
            events = [event_dict(e) for e in self.source.events_in((start, end)) or ()]
        except TypeError:
            events = []
        self.log.append(PeriodLog(k, epoch(end), published_at, pm, len(records), events))
        self.published += len(records)
        self.pm_published += len(pm)

    def all_predicted(self) -> bool:
        return all(self.watcher.complete(p.end, list(p.pm)) for p in self.log)

    def latencies_ms(self) -> list[float]:
        """PM publication to its prediction's arrival, per published (cell, period)."""
        out = []
        for p in self.log:
            for cell in p.pm:
                t = self.watcher.arrived.get((cell, p.end))
                if t is not None:
                    out.append((t - p.published_at) * 1000.0)
        return out


def _cell_keys(source: Source) -> list[str]:
    cells = source.cells
    if isinstance(cells, dict):
        return list(cells)
    return [c if isinstance(c, str) else str(getattr(c, "cell_key", c)) for c in cells]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); ``None`` for no values."""
    if not values:
        return None
    s = sorted(values)
    i = min(len(s) - 1, max(0, round(q / 100.0 * len(s) + 0.5) - 1))
    return s[i]
