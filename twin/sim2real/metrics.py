"""Error figures of the Sim2Real models, the same for the benchmark and ``twin sim2real fit``."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["MAPE_FLOOR", "mape"]

MAPE_FLOOR: tuple[float, float] = (1000.0, 1.0)
"""Denominator floors of the MAPE per target (``DRB.UEThpDl`` kbit/s, ``RRU.PrbTotDl`` %): an idle
night cell does not divide by ~0. """



def mape(pred: npt.ArrayLike, truth: npt.ArrayLike) -> list[float]:
    """Per target, the mean of |pred - truth| / max(|truth|, floor) in percent (:data:`MAPE_FLOOR`).

    >>> mape([[900.0, 0.5], [2200.0, 50.0]], [[1000.0, 0.0], [2000.0, 40.0]])
    [10.0, 37.5]
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if p.shape != t.shape or p.ndim != 2 or p.shape[1] != len(MAPE_FLOOR) or not len(p):
        raise ValueError(f"pred {p.shape} and truth {t.shape} must both be (N>0, {len(MAPE_FLOOR)})")
    err = np.abs(p - t) / np.maximum(np.abs(t), np.array(MAPE_FLOOR))
    return [round(float(100.0 * v), 3) for v in err.mean(axis=0)]
