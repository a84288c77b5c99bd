"""The values one CM attribute had over event time, whatever order the observations arrive in.

CM reaches the twin as snapshots (the same values again and again) and change notifications, on
different topics and partitions, so an older observation can arrive after a newer one (the initial
snapshot after a change notification). The mirror answers "what was the value at time T" (the
prediction of a period uses the CM in effect at its end), and the answer must not depend on that
arrival order. A history is a time-ordered list of *runs*, ``[since, last, value, dn]``: a value
observed first at ``since`` and last at ``last`` (event time, epoch s), with no other value observed
in between. The value at ``T`` is that of the run observed last at or before ``T``; before the first
observation, the earliest value known (a CM snapshot taken after the PM it explains still describes
the network then, as long as nothing changed).

The answer is the same for any arrival order, with one exception: a late observation that falls
strictly between two observations of another value already merged into one run (a value that
came back, a rollback say, observed out of order). The run is then split around it; the
observations inside the run were not kept, so the late value holds until the run's last one.

>>> runs: list[Run] = []
>>> for t, v in ((300.0, 60), (100.0, 40), (200.0, 40), (350.0, 60)):  # out of order
...     observe(runs, t, v, "dn")
>>> runs
[[100.0, 200.0, 40, 'dn'], [300.0, 350.0, 60, 'dn']]
>>> [value_at(runs, t)[2] for t in (50.0, 250.0, 300.0, 1000.0)]
[40, 40, 60, 60]
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

__all__ = ["Run", "observe", "prune", "value_at"]

#: ``[since, last, value, dn]``: first and last observation time (epoch s), the value, its DN
Run = list[Any]


def _same(run: Run, value: Any, dn: str) -> bool:
    return bool(run[2] == value and run[3] == dn)


def observe(runs: list[Run], t: float, value: Any, dn: str) -> None:
    """Add one observation to ``runs`` (changed in place; runs are replaced, never edited, so a
    shallow copy of the list is a snapshot)."""
    if not runs or t >= runs[-1][1]:  # the usual case: the newest observation
        if runs and _same(runs[-1], value, dn):
            runs[-1] = [runs[-1][0], t, value, dn]
        else:
            runs.append([t, t, value, dn])
        return
    i = bisect_right([r[0] for r in runs], t) - 1  # the run that started last at or before t
    if i >= 0 and runs[i][0] <= t <= runs[i][1]:  # inside a run
        run = runs[i]
        if not _same(run, value, dn):
            # another value between two observations of this one: split the run around it
            runs[i:i + 1] = [[run[0], run[0], run[2], run[3]], [t, t, value, dn], [run[1], run[1], run[2], run[3]]]
        return
    before = runs[i] if i >= 0 else None
    after = runs[i + 1] if i + 1 < len(runs) else None
    if before is not None and _same(before, value, dn):
        runs[i] = [before[0], t, value, dn]
    elif after is not None and _same(after, value, dn):
        runs[i + 1] = [t, after[1], value, dn]
    else:
        runs.insert(i + 1, [t, t, value, dn])


def value_at(runs: list[Run], t: float) -> Run:
    """The run in effect at ``t``: observed last at or before it, else the earliest."""
    i = bisect_right([r[0] for r in runs], t) - 1
    return runs[max(i, 0)]


def prune(runs: list[Run], limit: float) -> list[Run]:
    """``runs`` without those no time at or after ``limit`` can need (the run in effect at ``limit``
    and every later one stay)."""
    i = bisect_right([r[0] for r in runs], limit) - 1
    return runs[max(i, 0):]
