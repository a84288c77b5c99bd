"""Drive an emulated network through Kafka and watch the twin's predictions come back.

Shared by ``twin demo`` and ``twin bench e2e``. :class:`LiveRun` steps the emulator one
granularity period at a time, publishes what it produced (PM, MR, CM) through the real topics,
and paces itself in one of two ways:

- closed loop: in accelerated event time (``speed`` x real time) or, at ``speed=0``, as fast as
  the pipeline answers; either way never more than ``window`` periods ahead of the newest period
  whose predictions have all arrived. A period's latency runs from the moment its records exist,
  before they are encoded.
- open loop (``rate`` periods per second): period k is due ``k / rate`` seconds after the first,
  whatever the answers; its records are computed ahead, encoded and published when due (or at once
  when late), and its latency runs from the moment it was due, so queueing shows in it.

:class:`PredictionWatcher` reads ``ran.twin.predictions.v1``. :func:`percentile` is numpy's, with
the method stated in :data:`PERCENTILE_METHOD`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime
from typing import Any, Final, Protocol

import numpy as np
import orjson

from streams.kafka_io import KafkaSink, make_consumer
from streams.offset_guard import OffsetGuard
from twin import topics
from twin.ports import OutRecord

__all__ = ["PERCENTILE_METHOD", "AfterPeriodFn", "LiveRun", "PeriodLog", "PredictionWatcher", "ProgressFn", "Source",
           "WarmFn", "encode_step", "event_dict", "percentile"]

#: ``numpy.percentile``'s method for every latency percentile: "inverted_cdf", the nearest-rank
#: definition (the smallest observed value with at least q % of the values at or below it), so
#: "p99 <= 200 ms" means what it says: at least 99 % of the latencies were within 200 ms. It returns
#: an observed value; of 100 values, p99 is the 99th smallest, not the maximum. ("higher" would
#: return the maximum there, and "linear" a value between the two largest that nobody observed.)
PERCENTILE_METHOD: Final = "inverted_cdf"


class Source(Protocol):
    """What the runtime needs of an emulated network (``replay.emulator.NetworkEmulator``)."""

    @property
    def cells(self) -> Any: ...

    @property
    def period_end(self) -> Any: ...

    def topology_config(self) -> dict[str, Any]: ...

    def initial_records(self) -> list[OutRecord]: ...

    def step(self) -> list[OutRecord]: ...

    # Optional: ``step_detail()`` (the period's records as schema objects, not yet encoded); a
    # source that has it is stepped through it and :func:`encode_step`, so the latency clock starts
    # before the encoding. ``replay.emulator.NetworkEmulator`` has it.

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


def encode_step(detail: Any) -> list[OutRecord]:
    """A period's records (``NetworkEmulator.step_detail()``) encoded for the topics, exactly as
    ``NetworkEmulator.step()`` encodes them: ``StepOutput.encoded``, as a function for a worker
    thread (``tests/test_bench_commands.py`` checks the equality)."""
    records: list[OutRecord] = detail.encoded()
    return records


@dataclass
class PeriodLog:
    """One published period: when it left, the PM values in it, the events in it.

    ``ready_at``: when its records existed, before they were encoded; ``published_at``: when they
    were handed to the producer; ``scheduled_at``: when it was due (open loop only). Latency runs
    from :attr:`origin`."""

    index: int
    end: int
    published_at: float
    pm: dict[str, dict[str, float]]
    records: int
    events: list[dict[str, Any]] = field(default_factory=list)
    ready_at: float | None = None
    scheduled_at: float | None = None

    @property
    def origin(self) -> float:
        """Where the period's latency starts: when it was due (open loop), else when its records
        existed (before encoding), else when they were handed to the producer."""
        for t in (self.scheduled_at, self.ready_at):
            if t is not None:
                return t
        return self.published_at


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
        self.guard = OffsetGuard(self.consumer)  # the embedded broker may show a later batch first
        await self.consumer.start()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.consumer.stop()

    async def poll(self, timeout_ms: int = 50) -> int:
        batches = await self.consumer.getmany(timeout_ms=timeout_ms)
        now = time.time()
        n = 0
        for tp, fetched in batches.items():
            for m in self.guard.take(tp, fetched):
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
AfterPeriodFn = Callable[["LiveRun"], Awaitable[None]]


class LiveRun:
    """Publishes ``periods`` periods of ``source`` and tracks predictions and latency.

    ``rate`` (periods per second) runs it open loop (``speed`` and ``window`` are then unused)."""

    def __init__(self, source: Source, bootstrap: str, periods: int, granularity_s: int,
                 speed: float = 0.0, window: int = 2, partitions: int = 12, rate: float | None = None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be > 0 periods per second, got {rate}")
        self.source = source
        self.rate = rate
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
                  drain_timeout_s: float = 60.0, warmed: WarmFn | None = None,
                  after_period: AfterPeriodFn | None = None) -> None:
        """Publish everything, then wait for the last predictions (or ``stop``).

        ``warmed``, when given, is awaited after the initial CM is published and before the first
        period: the twin builds its simulators from CM, which a real network publishes long before
        its PM; the time it took is ``warmup_s`` and is not part of the run's wall time or latency.

        ``after_period``, when given, is awaited after each period is published and before the next
        is generated: the source is not stepping then, so a caller may push CM changes to it (they
        take effect from the next period; ``twin demo``'s CM loop). Its time counts in the run's.
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
            prev_end = self.source.period_end
            # Open loop: each period is computed ahead (the first before the clock starts) and
            # published when due; its latency runs from then, however late it is published.
            ahead: tuple[Any, float, Any] | None = None
            if self.rate is not None:
                ahead = await asyncio.to_thread(self._generate)
            self.started_at = time.time()
            for k in range(self.periods):
                due = None if self.rate is None else self.started_at + k / self.rate
                if due is None:
                    if not await self._pace(k, stop):
                        break
                    detail, ready_at, end = await asyncio.to_thread(self._generate)
                else:
                    if ahead is None:
                        ahead = await asyncio.to_thread(self._generate)
                    (detail, ready_at, end), ahead = ahead, None
                    await self._until(due, stop)
                    if stop.is_set():
                        break
                    ready_at = time.time()
                records = await asyncio.to_thread(encode_step, detail) if self._detailed else detail
                published_at = time.time()
                await sink.send_many(records)
                await sink.flush()
                self._log(k, prev_end, end, published_at, records, ready_at, due)
                prev_end = end
                # What this process keeps (the log, the predictions read back) only grows: keep it
                # out of the collector's full passes (40 ms each at a day of 57 cells, measured),
                # which would otherwise delay the arrival times measured here.
                gc.freeze()
                if progress:
                    progress(self)
                if after_period is not None:
                    await after_period(self)
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

    @property
    def _detailed(self) -> bool:
        return callable(getattr(self.source, "step_detail", None))

    def _generate(self) -> tuple[Any, float, Any]:
        """The next period's records, the moment they existed (before encoding when the source can
        step without encoding, ``step_detail``; else before its ``step``) and the period's end."""
        if self._detailed:
            detail = self.source.step_detail()  # type: ignore[attr-defined]
            return detail, time.time(), self.source.period_end
        ready_at = time.time()
        records = self.source.step()
        return records, ready_at, self.source.period_end

    @staticmethod
    async def _until(due: float, stop: asyncio.Event) -> None:
        while not stop.is_set() and time.time() < due:
            await asyncio.sleep(min(0.05, max(0.0, due - time.time())))

    async def _pace(self, k: int, stop: asyncio.Event) -> bool:
        """Closed loop: wait for the period's turn; False when stopped."""
        if self.speed > 0:
            await self._until(self.started_at + k * self.gp / self.speed, stop)
        # never run more than `window` periods ahead of the predictions, at any speed
        if k >= self.window:
            behind = self.log[k - self.window].end
            while not stop.is_set() and not self.watcher.complete(behind, self.cells):
                await asyncio.sleep(0.002)
        return not stop.is_set()

    def _log(self, k: int, start: Any, end: Any, published_at: float, records: list[OutRecord],
             ready_at: float | None = None, scheduled_at: float | None = None) -> None:
        pm: dict[str, dict[str, float]] = {}
        for rec in records:
            if rec.topic == topics.PM_CELL:
                d = orjson.loads(rec.value)
                pm[d["cellKey"]] = d["values"]
        try:
            events = [event_dict(e) for e in self.source.events_in((start, end)) or ()]
        except TypeError:
            events = []
        self.log.append(PeriodLog(k, epoch(end), published_at, pm, len(records), events, ready_at, scheduled_at))
        self.published += len(records)
        self.pm_published += len(pm)

    def all_predicted(self) -> bool:
        return all(self.watcher.complete(p.end, list(p.pm)) for p in self.log)

    def latencies_ms(self) -> list[float]:
        """From each period's :attr:`PeriodLog.origin` to the arrival of a cell's prediction, per
        published (cell, period)."""
        out = []
        for p in self.log:
            origin = p.origin
            for cell in p.pm:
                t = self.watcher.arrived.get((cell, p.end))
                if t is not None:
                    out.append((t - origin) * 1000.0)
        return out

    def publish_lags_ms(self) -> list[float]:
        """Open loop: how late each period was handed to the producer after it was due (its
        encoding included); large values mean the publisher, not the twin, fell behind."""
        return [(p.published_at - p.scheduled_at) * 1000.0 for p in self.log if p.scheduled_at is not None]


def _cell_keys(source: Source) -> list[str]:
    cells = source.cells
    if isinstance(cells, dict):
        return list(cells)
    return [c if isinstance(c, str) else str(getattr(c, "cell_key", c)) for c in cells]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` percentile (0..100) by ``numpy.percentile`` with :data:`PERCENTILE_METHOD`
    (nearest rank); ``None`` for no values.

    >>> percentile([float(v) for v in range(1, 101)], 99), percentile([1.0, 2.0], 50), percentile([], 50)
    (99.0, 1.0, None)
    """
    if not len(values):
        return None
    return float(np.percentile(np.asarray(values, dtype=float), q, method=PERCENTILE_METHOD))
