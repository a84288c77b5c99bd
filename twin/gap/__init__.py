"""The twin's gap: what it gets wrong, learned online per cell and KPI, and the calibrated
prediction that corrects it.

``error`` is the twin's error measure, ``target`` says what a residual is per KPI, ``features``
what a learner sees, ``tracker`` learns a
cluster's residuals, keeps rolling error figures and offers drift and error-bound signals to the
resync trigger (``twin.resync.trigger``).
"""

from twin.gap.error import ERROR_KPIS, cell_error, kpi_error
from twin.gap.features import cell_config, context
from twin.gap.target import (
    GAP_KPIS,
    LEVEL_KPIS,
    RSRP_MEAN,
    SINR_MEAN,
    calibrate,
    level_means,
    mean_rsrp_dbm,
    mean_sinr_db,
    residual,
)
from twin.gap.tracker import CellGap, GapStep, GapTracker, KpiErrors

__all__ = [
    "ERROR_KPIS",
    "GAP_KPIS",
    "LEVEL_KPIS",
    "RSRP_MEAN",
    "SINR_MEAN",
    "CellGap",
    "GapStep",
    "GapTracker",
    "KpiErrors",
    "calibrate",
    "cell_config",
    "cell_error",
    "context",
    "kpi_error",
    "level_means",
    "mean_rsrp_dbm",
    "mean_sinr_db",
    "residual",
]
