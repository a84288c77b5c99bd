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

How far the cluster has moved on is read from the newest period end of any granularity period (a
cell whose PM job went from 900 s to 300 s leaves no 900-s period pending for good). A period
missing only cells that never reported PM times out on the newest end reported by any cell. One
missing a cell that does report waits for the cluster's majority instead: the ingest accepts PM up
to ``future_skew_s`` ahead of its clock, so a single cell (or a node's few) whose clock runs ahead
must not time out the periods the others have not reached yet. The clock is then the newest end
that more than half of the cells reporting PM have reached, and never less than the newest end less
``future_skew_s`` (no record is that far ahead of the ingest's clock); cells more than
``future_skew_s`` plus the timeout behind the newest end have stopped and are not counted.

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

from twin.mirror.cell import CellMirror
from twin.mirror.cluster import ClusterMirror

__all__ = ["due_periods", "mark_predicted"]


def due_periods(mirror: ClusterMirror, expected: Collection[str], timeout_periods: int = 2,
                grace_s: float = 0.0, now: Callable[[], float] = time.monotonic,
                future_skew_s: float = 600.0) -> list[tuple[int, int]]:
    """``(gp, period end)`` pairs ready to predict, oldest first. Marks nothing predicted; notes when
    an incomplete period became overdue (``mirror.overdue_since``, on the ``now`` clock).
    ``future_skew_s``: how far ahead of its clock the ingest accepts a period end
    (``IngestSettings.max_future_skew_s``)."""
    due: list[tuple[int, int]] = []
    cells = mirror.cells
    wanted = expected or [k for k, c in cells.items() if c.periods]
    overdue = mirror.overdue_since
    # the newest end any cell reported, of any gp (reported ends are pending or predicted)
    newest = max([*(max(ends) for ends in mirror.pending.values() if ends), *mirror.predicted_through.values()],
                 default=-1)
    latest: list[int] | None = None  # each reporting wanted cell's newest end, newest first (when asked)
    for gp, ends in sorted(mirror.pending.items()):
        if not ends:
            continue
        window = future_skew_s + timeout_periods * gp
        clock: float | None = None  # the majority's clock for this gp (when asked)
        for end in sorted(ends):
            missing = [k for k in wanted if not (k in cells and end in cells[k].periods.get(gp, ()) and cells[k].cm)]
            if not missing:
                overdue.pop((gp, end), None)
                due.append((gp, end))
                continue
            deadline = end + timeout_periods * gp
            if newest < deadline:
                break
            if any(k in cells and _newest_end(cells[k]) is not None for k in missing):
                if clock is None:
                    if latest is None:
                        latest = sorted((e for k in wanted if k in cells
                                         for e in (_newest_end(cells[k]),) if e is not None), reverse=True)
                    live = [e for e in latest if e >= newest - window]
                    clock = max(live[len(live) // 2] if live else newest, newest - future_skew_s)
                if clock < deadline:
                    break
            t = now()
            if t - overdue.setdefault((gp, end), t) < grace_s:
                break
            del overdue[(gp, end)]
            due.append((gp, end))
    return due


def _newest_end(cell: CellMirror) -> int | None:
    """The newest period end ``cell`` reported PM for, of any gp; None if it reported none."""
    return max((max(ends) for ends in cell.periods.values() if ends), default=None)


def mark_predicted(mirror: ClusterMirror, gp: int, end: int) -> None:
    """Record that ``end`` is predicted: later PM for it or older periods no longer triggers one."""
    pending = mirror.pending.get(gp)
    through = max(end, mirror.predicted_through.get(gp, end))
    mirror.predicted_through[gp] = through
    if pending is not None:
        for e in [e for e in pending if e <= through]:
            pending.discard(e)
            mirror.overdue_since.pop((gp, e), None)
