"""Which cells a change moves, by the twin: the verification's scope (``ChangeRunner(scope=...)``).

The changed cell and every cell whose predicted protected KPI moves by at least ``min_pct`` in a
what-if of the change; the rest of the cluster is the control group the scope is compared with.
At 1 % a CIO step's scope took 11-18 of a 21-cell cluster (the load coupling ripples through it)
and two concurrent changes left no control cells; 3 % keeps the cells the change really moves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twin.rollout.runner import ScopeFn
from twin.schemas import CmChangeRequest
from twin.sim.kpis import THP

if TYPE_CHECKING:
    from twin.digital_twin import Twin

__all__ = ["whatif_scope"]


def whatif_scope(twin: Twin, min_pct: float = 3.0, kpi: str = THP) -> ScopeFn:
    """A ``ScopeFn`` over ``twin`` (a what-if per push: milliseconds)."""

    def scope(request: CmChangeRequest, cluster: str) -> tuple[list[str], float | None]:
        try:
            w = twin.whatif(cluster, [request])
        except (ValueError, LookupError):
            return [request.cell_key], None
        cells = {request.cell_key}
        for cell, d in w.delta.items():
            base = w.baseline.get(cell, {}).get(kpi)
            if kpi in d and base and abs(d[kpi]) / base * 100.0 >= min_pct:
                cells.add(cell)
        before = sum(w.baseline[c][kpi] for c in cells if kpi in w.baseline.get(c, {}))
        after = sum(w.changed[c][kpi] for c in cells if kpi in w.changed.get(c, {}))
        return sorted(cells), (100.0 * (after / before - 1.0) if before > 0 else None)

    return scope
