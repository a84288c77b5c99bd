"""The verification's inputs from a cluster's mirror: per period, the mean over its cells of the
real KPIs (PM) and of the twin's raw predictions, as ``ChangeRunner.observe`` takes them.

Raw predictions, not calibrated: the ratio predicted-after / predicted-before carries the load and
time of day the twin models, and the raw twin does not learn away a change's effect the way the
gap learners would within a few periods.
"""

from __future__ import annotations

from collections.abc import Sequence

from twin.mirror.cluster import ClusterMirror
from twin.sim.kpis import THP

__all__ = ["cluster_kpis"]


def cluster_kpis(mirror: ClusterMirror, kpis: Sequence[str] = (THP,), after: int | None = None
                 ) -> list[tuple[int, dict[str, float], dict[str, float], dict[str, dict[str, float]],
                                 dict[str, dict[str, float]]]]:
    """``[(period_end, real means, predicted means, real per cell, predicted per cell)]`` for the
    periods of the shortest granularity with real values, oldest first, those after ``after``
    (epoch s) only."""
    gps = sorted({gp for cell in mirror.cells.values() for gp in cell.periods})
    if not gps:
        return []
    gp = gps[0]
    ends = sorted({e for cell in mirror.cells.values() for e in cell.periods.get(gp, {})
                   if after is None or e > after})
    out = []
    for end in ends:
        real: dict[str, float] = {}
        predicted: dict[str, float] = {}
        by_cell: dict[str, dict[str, float]] = {}
        pred_by_cell: dict[str, dict[str, float]] = {}
        for key, cell in mirror.cells.items():
            for kpi in kpis:
                v = cell.pm.get(gp, {}).get(kpi, {}).get(end)
                if v is not None:
                    by_cell.setdefault(key, {})[kpi] = float(v)
                q = cell.predicted.get(gp, {}).get(kpi, {}).get(end)
                if q is not None:
                    pred_by_cell.setdefault(key, {})[kpi] = float(q)
        for kpi in kpis:
            r = [c.pm.get(gp, {}).get(kpi, {}).get(end) for c in mirror.cells.values()]
            p = [c.predicted.get(gp, {}).get(kpi, {}).get(end) for c in mirror.cells.values()]
            rv = [float(v) for v in r if v is not None]
            pv = [float(v) for v in p if v is not None]
            if rv:
                real[kpi] = sum(rv) / len(rv)
            if pv and len(pv) == len(rv):
                predicted[kpi] = sum(pv) / len(pv)
        if real:
            out.append((end, real, predicted, by_cell, pred_by_cell))
    return out
