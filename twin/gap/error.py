"""The twin's error: how far a prediction is from what the network reported.

Per KPI the error is ``|predicted - real| / max(|real|, floor)``: relative, with a floor so that a
nearly idle cell (2 % PRB, a few kbit/s) does not blow it up. The error of a cell and period is the
mean over the KPIs the twin computes rather than takes as input: connected UEs (the twin takes only
the cluster's total and spreads it by its own coverage), throughput, PRB load, transmit and supply
power. A cell that loses coverage the twin does not know of (an antenna fault) reports fewer UEs,
less load and power than the twin predicts for it, so its error jumps.

>>> round(kpi_error("DRB.UEThpDl", 90_000.0, 100_000.0), 3)
0.1
>>> round(kpi_error("RRU.PrbTotDl", 3.0, 1.0), 3)
0.4
>>> cell_error({"DRB.UEThpDl": 100.0}, {"RRU.PrbTotDl": 1.0}) is None
True
"""

from __future__ import annotations

from collections.abc import Mapping

from twin.sim.kpis import CONN, POWER, PRB, THP, TXPWR

__all__ = ["ERROR_KPIS", "cell_error", "kpi_error"]

# KPI -> floor of the denominator (same unit as the KPI)
ERROR_KPIS: dict[str, float] = {CONN: 5.0, THP: 1000.0, PRB: 5.0, TXPWR: 10.0, POWER: 50.0}


def kpi_error(kpi: str, predicted: float, real: float) -> float:
    return abs(predicted - real) / max(abs(real), ERROR_KPIS.get(kpi, 1.0))


def cell_error(predicted: Mapping[str, float], real: Mapping[str, float]) -> float | None:
    """Mean relative error over the KPIs both sides have; ``None`` when they share none."""
    errors = [kpi_error(k, predicted[k], real[k]) for k in ERROR_KPIS if k in predicted and k in real]
    return sum(errors) / len(errors) if errors else None
