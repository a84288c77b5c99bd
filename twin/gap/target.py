"""What the gap learners learn per KPI: the residual between the network's value and the twin's,
and how a learned residual corrects (calibrates) a raw prediction.

Counts and loads (throughput, PRB load, connected UEs) are off by a factor rather than by an amount
(a cell that loses coverage loses a share of its UEs, whatever their number), so their residual is
the log-ratio ``ln((real + floor) / (raw + floor))``, with the floors of the twin's error measure
(``twin.gap.error.ERROR_KPIS``) keeping near-idle cells from dominating. The mean SS-RSRP and the
mean SS-SINR are levels in dB(m): their residual is the difference in dB.

>>> round(residual("RRC.ConnMean", raw=20.0, real=10.0), 4)
-0.5108
>>> round(calibrate("RRC.ConnMean", raw=20.0, learned=residual("RRC.ConnMean", 20.0, 10.0)), 6)
10.0
>>> residual("L1M.SS-RSRP.Mean", raw=-95.0, real=-97.5)
-2.5
>>> residual("MR.NRScSSSINR.Mean", raw=12.0, real=9.0)
-3.0
>>> calibrate("RRU.PrbTotDl", raw=90.0, learned=1.0)  # a load never exceeds 100 %
100.0
>>> residual("CARR.MeanTxPwr", raw=40.0, real=41.0)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
KeyError: "'CARR.MeanTxPwr' is not a KPI the gap learners track (DRB.UEThpDl, RRU.PrbTotDl, ...)"
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from twin.gap.error import ERROR_KPIS
from twin.sim.kpis import CONN, N_BINS, PRB, RSRP_BIN_NAMES, SINR_BIN_NAMES, THP

__all__ = ["GAP_KPIS", "LEVEL_KPIS", "RATIO_KPIS", "RSRP_MEAN", "SINR_MEAN", "calibrate", "level_means",
           "mean_rsrp_dbm", "mean_sinr_db", "residual"]

#: the mean SS-RSRP of the cell's connected UEs (dBm), from the ``L1M.SS-RSRP.BinX`` histogram on the
#: 0..127 index grid (index - 157 dBm): derived here, not a TS 28.552 counter
RSRP_MEAN = "L1M.SS-RSRP.Mean"
#: the mean SS-SINR of the cell's connected UEs (dB), from the ``MR.NRScSSSINR.BinX`` histogram on the
#: 0..127 index grid (index / 2 - 23.5 dB): derived here; it carries interference the RSRP does not
SINR_MEAN = "MR.NRScSSSINR.Mean"
#: the KPIs whose gap is learned, in this order
GAP_KPIS: tuple[str, ...] = (THP, PRB, CONN, RSRP_MEAN, SINR_MEAN)
#: the counts and loads among them, whose residual is a log-ratio
RATIO_KPIS: tuple[str, ...] = (THP, PRB, CONN)
#: the radio levels among them (dB or dBm), whose residual is a difference
LEVEL_KPIS: tuple[str, ...] = (RSRP_MEAN, SINR_MEAN)
_RATIO_FLOORS = {k: ERROR_KPIS[k] for k in RATIO_KPIS}
_CEILING = {PRB: 100.0}
_INDEX = np.arange(N_BINS, dtype=np.float64)


def _check(kpi: str) -> None:
    if kpi not in GAP_KPIS:
        raise KeyError(f"{kpi!r} is not a KPI the gap learners track ({', '.join(GAP_KPIS)})")


def residual(kpi: str, raw: float, real: float) -> float:
    """The residual of ``real`` against the twin's ``raw`` value (log-ratio, or dB for RSRP)."""
    _check(kpi)
    floor = _RATIO_FLOORS.get(kpi)
    if floor is None:
        return real - raw
    return math.log((max(real, 0.0) + floor) / (max(raw, 0.0) + floor))


def calibrate(kpi: str, raw: float, learned: float) -> float:
    """``raw`` corrected by a ``learned`` residual (the inverse of :func:`residual`), kept in the
    KPI's range (a count or load is never negative, a load never above 100 %)."""
    _check(kpi)
    floor = _RATIO_FLOORS.get(kpi)
    if floor is None:
        return raw + learned
    value = (max(raw, 0.0) + floor) * math.exp(max(min(learned, 50.0), -50.0)) - floor
    return round(min(max(value, 0.0), _CEILING.get(kpi, math.inf)), 9)


def _mean_index(bins: Mapping[str, float] | npt.ArrayLike, names: tuple[str, ...]) -> float | None:
    if isinstance(bins, Mapping):
        counts = np.array([float(bins.get(name, 0.0)) for name in names])
    else:
        counts = np.asarray(bins, dtype=np.float64)
    total = float(counts.sum())
    if not total > 0:
        return None
    return float(counts @ _INDEX) / total


def mean_rsrp_dbm(bins: Mapping[str, float] | npt.ArrayLike) -> float | None:
    """The mean SS-RSRP (dBm) of a histogram: PM values by ``L1M.SS-RSRP.BinX`` name, or an array of
    the 128 bin counts; ``None`` when it counts nothing.

    >>> mean_rsrp_dbm({"L1M.SS-RSRP.Bin60": 1.0, "L1M.SS-RSRP.Bin62": 3.0})
    -95.5
    >>> mean_rsrp_dbm({}) is None
    True
    """
    index = _mean_index(bins, RSRP_BIN_NAMES)
    return None if index is None else round(index - 157.0, 6)


def mean_sinr_db(bins: Mapping[str, float] | npt.ArrayLike) -> float | None:
    """The mean SS-SINR (dB) of a histogram: PM values by ``MR.NRScSSSINR.BinX`` name, or an array
    of the 128 bin counts; ``None`` when it counts nothing.

    >>> mean_sinr_db({"MR.NRScSSSINR.Bin60": 1.0, "MR.NRScSSSINR.Bin70": 1.0})
    9.0
    """
    index = _mean_index(bins, SINR_BIN_NAMES)
    return None if index is None else round(index / 2.0 - 23.5, 6)


def level_means(rsrp_bins: Mapping[str, float] | npt.ArrayLike,
                sinr_bins: Mapping[str, float] | npt.ArrayLike) -> dict[str, float]:
    """The radio levels (``LEVEL_KPIS``) of a cell's SS-RSRP and SS-SINR histograms, each PM values
    by bin name (one mapping of all a cell's PM values serves both) or an array of the 128 bin
    counts; a histogram that counts nothing gives no level.

    >>> level_means({"L1M.SS-RSRP.Bin60": 2.0, "DRB.UEThpDl": 1.0}, {})
    {'L1M.SS-RSRP.Mean': -97.0}
    """
    out: dict[str, float] = {}
    for kpi, value in ((RSRP_MEAN, mean_rsrp_dbm(rsrp_bins)), (SINR_MEAN, mean_sinr_db(sinr_bins))):
        if value is not None:
            out[kpi] = value
    return out
