"""When a cluster's period is ready to predict, in event time.

A period is due when every cell of the cluster has reported PM for it, or, for cells that never
do, once the cluster has reported ``timeout_periods`` newer periods. The bookkeeping (pending
period ends, newest predicted end) lives in the ``ClusterMirror`` and is checkpointed with it, so a
restarted worker neither skips nor repeats a decision it had made durable.

>>> from twin.mirror.cluster import ClusterMirror
>>> m = ClusterMirror("c")
>>> m.apply(["pm", "nr:a", {"gp": 900, "t": 900.0, "v": {}, "s": False}])
>>> due_periods(m, ["nr:a", "nr:b"], timeout_periods=1)
[]
>>> m.apply(["pm", "nr:a", {"gp": 900, "t": 1800.0, "v": {}, "s": False}])
>>> due_periods(m, ["nr:a", "nr:b"], timeout_periods=1)
[(900, 900)]
"""

from __future__ import annotations

from collections.abc import Collection

from twin.mirror.cluster import ClusterMirror

__all__ = ["due_periods", "mark_predicted"]


def due_periods(mirror: ClusterMirror, expected: Collection[str], timeout_periods: int = 2) -> list[tuple[int, int]]:
    """``(gp, period end)`` pairs ready to predict, oldest first; marks nothing."""
    due: list[tuple[int, int]] = []
    cells = mirror.cells
    wanted = expected or [k for k, c in cells.items() if c.periods]
    for gp, ends in sorted(mirror.pending.items()):
        if not ends:
            continue
        newest = max(ends)
        for end in sorted(ends):
            complete = all(k in cells and end in cells[k].periods.get(gp, ()) for k in wanted)
            if complete or newest >= end + timeout_periods * gp:
                due.append((gp, end))
            else:
                break
    return due


def mark_predicted(mirror: ClusterMirror, gp: int, end: int) -> None:
    """Record that ``end`` is predicted: later PM for it or older periods no longer triggers one."""
    pending = mirror.pending.get(gp)
    through = max(end, mirror.predicted_through.get(gp, end))
    mirror.predicted_through[gp] = through
    if pending is not None:
        for e in [e for e in pending if e <= through]:
            pending.discard(e)
