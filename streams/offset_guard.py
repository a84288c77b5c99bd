"""Partitions read without holes: a guard against a broker that shows records out of order.

Tansu's memory engine (the embedded broker) gives concurrent producers' batches their offsets and
can answer a fetch with a later batch before an earlier one is visible. A consumer tailing the
partition then moves past the earlier batch and never reads it: measured with three producers on
one partition, 8 to 15 of 9,000 records skipped per run, silently, although a later read from the
start finds them all (``tests/integration/test_offset_holes.py``). The worker's re-keyed topic has
two producers (the two processes of a worker), and input topics have as many as the OSS has
publishers, so it happens in the runtime, not only in a test: the soak benchmark lost half of a PM
period that way.

:class:`OffsetGuard` checks that each partition's offsets follow on from the last one taken. At a
hole it cuts the batch there, seeks back to the missing offset (aiokafka drops what it prefetched
for that partition), and lets the next fetch read it again. A hole still there after
``wait_s`` (``kafka.offset_hole_wait_s``) is accepted, counted and logged: Apache Kafka leaves real
holes (transaction markers, compacted records), which are never filled.

>>> from types import SimpleNamespace as M
>>> class Consumer:
...     def seek(self, tp, offset): print("seek", tp, offset)
>>> clock = [0.0]
>>> guard = OffsetGuard(Consumer(), wait_s=1.0, clock=lambda: clock[0],
...                     on_gap=lambda tp, first, last: print("gap", tp, first, last))
>>> guard.expect("p0", 10)
>>> [m.offset for m in guard.take("p0", [M(offset=10), M(offset=11), M(offset=13)])]  # 12 is missing
seek p0 12
[10, 11]
>>> [m.offset for m in guard.take("p0", [M(offset=12), M(offset=13)])]  # read again: there now
[12, 13]
>>> clock[0] = 5.0
>>> guard.take("p0", [M(offset=20)])  # 14-19 missing: read again first
seek p0 14
[]
>>> clock[0] = 6.5
>>> [m.offset for m in guard.take("p0", [M(offset=20)])], guard.accepted  # still missing: a real gap
gap p0 14 19
([20], 6)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Protocol

import structlog

__all__ = ["OffsetGuard"]

log = structlog.get_logger(__name__)


def _log_gap(tp: Hashable, first: int, last: int) -> None:
    log.warning("offsets.gap_accepted", partition=str(tp), missing_from=first, missing_to=last)


class _Seekable(Protocol):
    def seek(self, partition: Any, offset: int) -> None: ...


class OffsetGuard:
    """Per partition: the next offset expected, and the hole being waited for (see the module)."""

    def __init__(self, consumer: _Seekable, wait_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 on_gap: Callable[[Hashable, int, int], None] | None = None) -> None:
        self.consumer = consumer
        self.on_gap = on_gap or _log_gap
        self.wait_s = wait_s
        self.clock = clock
        self.expected: dict[Hashable, int] = {}
        self._holes: dict[Hashable, tuple[int, float]] = {}  # partition -> (missing offset, first seen)
        self.retries = 0  # fetches cut at a hole and read again
        self.accepted = 0  # offsets given up on after wait_s (real gaps)

    def expect(self, tp: Hashable, offset: int) -> None:
        """The partition will be read from ``offset`` (it was assigned, or sought there)."""
        self.expected[tp] = offset
        self._holes.pop(tp, None)

    def forget(self, tps: Iterable[Hashable]) -> None:
        """The partitions were revoked: whoever reads them next starts from their committed offsets."""
        for tp in tps:
            self.expected.pop(tp, None)
            self._holes.pop(tp, None)

    def take(self, tp: Hashable, messages: Sequence[Any]) -> Sequence[Any]:
        """The messages of a fetch that follow on without a hole (all of them, usually)."""
        if not messages:
            return messages
        expected = self.expected.get(tp)
        first, last = messages[0].offset, messages[-1].offset
        if expected is None or (first == expected and last - first == len(messages) - 1):
            self.expected[tp] = last + 1
            if expected is not None and tp in self._holes:
                del self._holes[tp]
            return messages
        out = []
        for m in messages:
            if m.offset < expected:  # read already (a fetch from before a seek)
                continue
            if m.offset > expected:
                now = self.clock()
                hole = self._holes.get(tp)
                if hole is None or hole[0] != expected:
                    hole = self._holes[tp] = (expected, now)
                if now - hole[1] < self.wait_s:
                    self.retries += 1
                    self.consumer.seek(tp, expected)
                    break
                del self._holes[tp]
                self.accepted += m.offset - expected
                self.on_gap(tp, expected, m.offset - 1)
            out.append(m)
            expected = m.offset + 1
        if tp in self._holes and self._holes[tp][0] < expected:
            del self._holes[tp]
        self.expected[tp] = expected
        return out
