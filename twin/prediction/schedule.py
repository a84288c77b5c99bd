"""When a cluster's period is ready to predict, in event time.

A period is due when every cell of the cluster has reported PM for it and CM, or, for cells that
never do, once the cluster has reported ``timeout_periods`` newer periods and, from that moment, a
grace of ``grace_s`` seconds of processing time has passed without the period completing. The grace is
for a worker catching up a backlog: its re-keying members run at different offsets (the one in the
mirror's process applies its records at once, the other's go through the broker), so half of a
cluster's cells can be periods ahead of the other half for a few seconds; without the grace those
periods would be predicted without the lagging cells (and without their CM, if it lags too). The
bookkeeping (pending period ends, newest predicted end) lives in the ``ClusterMirror`` and is
checkpointed with it, so a restarted worker neither skips nor repeats a decision it had made
durable; the grace clock (``ClusterMirror.overdue_since``) is not: after a restart it starts again.

>>> from twin.mirror.cluster import ClusterMirror
>>> m = ClusterMirror("c")
>>> m.apply(["pm", "nr:a", {"gp": 900, "t": 900.0, "v": {}, "s": False}])
>>> due_periods(m, ["nr:a", "nr:b"], timeout_periods=1)
[]
>>> m.apply(["pm", "nr:a", {"gp": 900, "t": 1800.0, "v": {}, "s": False}])
>>> clock = iter([100.0, 111.0])
>>> due_periods(m, ["nr:a", "nr:b"], timeout_periods=1, grace_s=10.0, now=lambda: next(clock))
[]
>>> due_periods(m, ["nr:a", "nr:b"], timeout_periods=1, grace_s=10.0, now=lambda: next(clock))
[(900, 900)]
>>> due_periods(m, ["nr:a", "nr:b"], timeout_periods=1)  # no grace: due at once
[(900, 900)]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from twin.mirror.cluster import ClusterMirror

__all__ = ["due_periods", "mark_predicted"]


def due_periods(mirror: ClusterMirror, expected: Collection[str], timeout_periods: int = 2,
                grace_s: float = 0.0, now: Callable[[], float] = time.monotonic) -> list[tuple[int, int]]:
    """``(gp, period end)`` pairs ready to predict, oldest first. Marks nothing predicted; notes when
    an incomplete period became overdue (``mirror.overdue_since``, on the ``now`` clock)."""
    due: list[tuple[int, int]] = []
    cells = mirror.cells
    wanted = expected or [k for k, c in cells.items() if c.periods]
    overdue = mirror.overdue_since
    for gp, ends in sorted(mirror.pending.items()):
        if not ends:
            continue
        newest = max(ends)
        for end in sorted(ends):
            complete = all(k in cells and end in cells[k].periods.get(gp, ()) and cells[k].cm for k in wanted)
            if complete:
                overdue.pop((gp, end), None)
                due.append((gp, end))
                continue
            if newest < end + timeout_periods * gp:
                break
            t = now()
            if t - overdue.setdefault((gp, end), t) < grace_s:
                break
            del overdue[(gp, end)]
            due.append((gp, end))
    return due


def mark_predicted(mirror: ClusterMirror, gp: int, end: int) -> None:
    """Record that ``end`` is predicted: later PM for it or older periods no longer triggers one."""
    pending = mirror.pending.get(gp)
    through = max(end, mirror.predicted_through.get(gp, end))
    mirror.predicted_through[gp] = through
    if pending is not None:
        for e in [e for e in pending if e <= through]:
            pending.discard(e)
            mirror.overdue_since.pop((gp, e), None)
