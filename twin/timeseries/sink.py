"""Where time-series points go: the sink protocol and the bounded, retrying writer every backend uses.

The runtime's loop must never wait on a database, and must not grow without bound while one is
down. :class:`BufferedSink` holds points in a bounded buffer; a thread writes them in batches
through a :class:`Backend` (the local SQLite store, ``streams.influx``'s InfluxDB writer), retrying
a failed batch with exponential backoff that new writes do not cut short (only ``close`` does:
else a database down or answering 429/503 would get a request per write). Past the buffer the
oldest points are dropped, and every drop is counted and logged (as Telegraf does): a database back
within the buffer loses nothing. A batch the backend refuses for good (bad data) is counted as
rejected and logged, not retried.

>>> from twin.timeseries.points import Point
>>> class Down:
...     name = "down"
...     def write_batch(self, points): raise ConnectionError("refused")
...     def close(self): pass
>>> from structlog.testing import capture_logs
>>> with capture_logs() as logs:
...     sink = BufferedSink(Down(), buffer_points=3, batch_points=2, retry_initial_s=10)
...     sink.write([Point("m", {}, {"v": float(i)}, i) for i in range(5)])
...     sink.close(timeout_s=0.1)
>>> sink.stats.dropped, sink.stats.written
(5, 0)
>>> [(e["reason"], e["dropped"]) for e in logs if e["event"] == "timeseries.points_dropped"]
[('buffer full', 2), ('closed while the database did not take them', 3)]
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from twin.timeseries.points import Point

__all__ = ["Backend", "BufferedSink", "FanoutSink", "RejectedBatch", "SinkStats", "TimeSeriesSink"]

log = structlog.get_logger(__name__)


class RejectedBatch(Exception):
    """The backend refused a batch for good (malformed data): retrying it cannot help."""


class Backend(Protocol):
    """Writes one batch synchronously; raises :class:`RejectedBatch` for a refusal, anything else
    for a failure worth retrying (the database down, a timeout, a 5xx)."""

    name: str

    def write_batch(self, points: Sequence[Point]) -> None: ...

    def close(self) -> None: ...


class TimeSeriesSink(Protocol):
    """What the runtime writes points to: ``write`` never blocks on the database."""

    @property
    def stats(self) -> SinkStats: ...

    def write(self, points: Iterable[Point]) -> None: ...

    def flush(self, timeout_s: float = 10.0) -> bool: ...

    def close(self, timeout_s: float = 10.0) -> None: ...


@dataclass
class SinkStats:
    accepted: int = 0  # points given to write()
    written: int = 0  # points the backend acknowledged
    dropped: int = 0  # pushed out of a full buffer, or still buffered when the sink was closed
    rejected: int = 0  # refused by the backend for good
    failures: int = 0  # failed write attempts (each retried)
    buffered: int = 0  # waiting now (buffer and the batch in flight)
    backend: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"backend": self.backend, "accepted": self.accepted, "written": self.written,
                "dropped": self.dropped, "rejected": self.rejected, "failures": self.failures,
                "buffered": self.buffered}


class BufferedSink:
    """A bounded buffer in front of a backend, drained by one thread in batches with retries."""

    def __init__(self, backend: Backend, buffer_points: int = 200_000, batch_points: int = 5000,
                 flush_interval_s: float = 1.0, retry_initial_s: float = 0.5, retry_max_s: float = 30.0,
                 log_every_s: float = 10.0) -> None:
        if buffer_points < 1 or batch_points < 1:
            raise ValueError(f"buffer_points {buffer_points} and batch_points {batch_points} must be >= 1")
        self.backend = backend
        self.buffer_points = buffer_points
        self.batch_points = min(batch_points, buffer_points)
        self.flush_interval_s = flush_interval_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = max(retry_max_s, retry_initial_s)
        self.log_every_s = log_every_s
        self._stats = SinkStats(backend=backend.name)
        self._queue: deque[Point] = deque()
        self._inflight: list[Point] = []
        self._cond = threading.Condition()
        self._closing = False
        self._flush_wanted = False
        self._retry_now = False  # close() ends a retry backoff, once
        self._dropped_logged_at = -1e18
        self._dropped_since_log = 0
        self._failed_logged_at = -1e18
        self._thread = threading.Thread(target=self._run, name=f"timeseries-{backend.name}", daemon=True)
        self._thread.start()

    @property
    def stats(self) -> SinkStats:
        with self._cond:
            self._stats.buffered = len(self._queue) + len(self._inflight)
            return SinkStats(**vars(self._stats))

    def write(self, points: Iterable[Point]) -> None:
        """Queue points (never blocks on the database); a full buffer drops its oldest."""
        with self._cond:
            if self._closing:
                raise RuntimeError(f"time-series sink {self.backend.name} is closed")
            before = len(self._queue)
            self._queue.extend(points)
            self._stats.accepted += len(self._queue) - before
            over = len(self._queue) + len(self._inflight) - self.buffer_points
            if over > 0:
                for _ in range(min(over, len(self._queue))):
                    self._queue.popleft()
                self._drop(over, "buffer full")
            if len(self._queue) >= self.batch_points:
                self._cond.notify_all()

    def _drop(self, n: int, why: str) -> None:
        """Count ``n`` dropped points and log it: the first drop at once, then at most every
        ``log_every_s`` with the count since the last line."""
        self._stats.dropped += n
        self._dropped_since_log += n
        now = time.monotonic()
        if now - self._dropped_logged_at >= self.log_every_s or why != "buffer full":
            log.warning("timeseries.points_dropped", backend=self.backend.name, reason=why,
                        dropped=self._dropped_since_log, dropped_total=self._stats.dropped,
                        buffer_points=self.buffer_points)
            self._dropped_logged_at = now
            self._dropped_since_log = 0

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Until every point written so far is acknowledged (True) or ``timeout_s`` passed (False)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._flush_wanted = True
            self._cond.notify_all()
            while self._queue or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.05))
            self._flush_wanted = False
            return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush for up to ``timeout_s``, stop the thread; what is still buffered is counted as
        dropped and logged (an error line: those points are lost). A retry backoff running is cut
        short, once, so the flush tries the database at once instead of waiting it out."""
        with self._cond:
            self._retry_now = True
            self._cond.notify_all()
        self.flush(timeout_s)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(max(1.0, timeout_s))
        with self._cond:
            left = len(self._queue) + len(self._inflight)
            self._queue.clear()
            self._inflight = []
            if left:
                self._drop(left, "closed while the database did not take them")
        self.backend.close()
        if self._stats.dropped or self._stats.rejected:
            log.warning("timeseries.sink_closed", **self.stats.as_dict())

    def _next_batch(self) -> bool:
        """Wait for a batch (full, or older than the flush interval, or a flush or close asked)."""
        with self._cond:
            deadline = time.monotonic() + self.flush_interval_s
            while not self._closing and len(self._queue) < self.batch_points and not self._flush_wanted:
                left = deadline - time.monotonic()
                if left <= 0:
                    if self._queue:
                        break
                    deadline, left = time.monotonic() + self.flush_interval_s, self.flush_interval_s
                self._cond.wait(left)
            if not self._queue:
                return False
            n = min(self.batch_points, len(self._queue))
            self._inflight = [self._queue.popleft() for _ in range(n)]
            return True

    def _backoff_locked(self, delay: float) -> None:
        """Wait ``delay`` before retrying a failed batch. New points, full batches and ``flush()`` do
        not shorten it (else a database down or answering 429/503 would get a request per write);
        only ``close()`` does, once, for its last try, and by closing."""
        deadline = time.monotonic() + delay
        while not self._closing and not self._retry_now:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._cond.wait(left)
        self._retry_now = False

    def _run(self) -> None:
        attempt = 0
        while True:
            if not self._inflight and not self._next_batch():
                with self._cond:
                    if self._closing:
                        return
                    self._flush_wanted = False
                    self._cond.notify_all()
                continue
            batch = self._inflight
            try:
                self.backend.write_batch(batch)
            except RejectedBatch as exc:
                with self._cond:
                    self._stats.rejected += len(batch)
                    self._inflight = []
                    self._cond.notify_all()
                log.error("timeseries.batch_rejected", backend=self.backend.name, points=len(batch),
                          rejected_total=self._stats.rejected, reason=str(exc)[:500])
                continue
            except Exception as exc:  # down, timeout, 5xx: keep the batch, wait, retry
                attempt += 1
                delay = min(self.retry_max_s, self.retry_initial_s * 2 ** (attempt - 1))
                delay *= 0.75 + random.random() / 4  # jitter: writers that failed together retry apart
                with self._cond:
                    self._stats.failures += 1
                    now = time.monotonic()
                    if attempt == 1 or now - self._failed_logged_at >= self.log_every_s:
                        self._failed_logged_at = now
                        log.warning("timeseries.write_failed", backend=self.backend.name, attempt=attempt,
                                    retry_in_s=round(delay, 3), buffered=len(self._queue) + len(batch),
                                    reason=f"{type(exc).__name__}: {str(exc)[:300]}")
                    if self._closing:
                        return
                    self._backoff_locked(delay)
                continue
            if attempt:
                log.info("timeseries.write_recovered", backend=self.backend.name, after_attempts=attempt)
            attempt = 0
            with self._cond:
                self._stats.written += len(batch)
                self._inflight = []
                self._cond.notify_all()


class FanoutSink:
    """The same points to several sinks (InfluxDB and the local store the API reads); each buffers,
    retries and drops on its own, so one database down does not hold back the other.

    >>> from twin.timeseries.points import Point
    >>> class Ok:
    ...     def __init__(self, name): self.name, self.got = name, []
    ...     def write_batch(self, points): self.got += points
    ...     def close(self): pass
    >>> a, b = Ok("a"), Ok("b")
    >>> fan = FanoutSink([BufferedSink(a), BufferedSink(b)])
    >>> fan.write([Point("m", {}, {"v": 1.0}, 0)])
    >>> fan.close()
    >>> len(a.got), len(b.got), fan.stats.written, fan.stats.backend
    (1, 1, 2, 'a+b')
    """

    def __init__(self, sinks: Sequence[TimeSeriesSink]) -> None:
        if not sinks:
            raise ValueError("a fan-out needs at least one sink")
        self.sinks = list(sinks)

    @property
    def stats(self) -> SinkStats:
        """The sinks' counters summed (each sink's own: ``by_sink``)."""
        parts = self.by_sink()
        total = SinkStats(backend="+".join(s.backend for s in parts))
        for s in parts:
            for key in ("accepted", "written", "dropped", "rejected", "failures", "buffered"):
                setattr(total, key, getattr(total, key) + getattr(s, key))
        return total

    def by_sink(self) -> list[SinkStats]:
        return [s.stats for s in self.sinks]

    def write(self, points: Iterable[Point]) -> None:
        batch = list(points)
        for sink in self.sinks:
            sink.write(batch)

    def flush(self, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        return all([s.flush(max(0.0, deadline - time.monotonic())) for s in self.sinks])

    def close(self, timeout_s: float = 10.0) -> None:
        for sink in self.sinks:
            sink.close(timeout_s)
