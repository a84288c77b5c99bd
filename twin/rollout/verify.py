"""Verification of an applied change: did a protected KPI get worse than the change allowed?

Why a counterfactual and not "after minus before": the KPIs move with the hour of the day and
the load, so four busy-hour periods after a change look worse than four quiet ones before it
whatever the change did. The twin's prediction carries those movements; the KPI the network
would have had without the change is the baseline carried forward by the twin's predicted ratio,
less the effect the twin predicted for the change itself::

    counterfactual = real_before * (predicted_after / predicted_before) / (1 + expected_pct / 100)
    effect_pct     = 100 * (real_after / counterfactual - 1)

A ``higher_is_better`` KPI degrades by ``-effect_pct``.

**Control cells** (``control_verdict``, preferred where per-cell KPIs exist): the change's scope
(the changed cell and the cells the twin predicts it moves) against the cluster's other cells,
a difference in differences that needs no forecast at all: ``counterfactual = scope_before *
control_after / control_before``. The twin's forecast can be wrong by more than a change's effect
(the demo's late evening: the raw twin expected a recovery the network did not have, and two
changes that helped on the truth were rolled back as -13 % and -17 %); the cells beside the
change carry the same evening. Where no prediction exists the ratio is 1
(the baseline alone), and the record says so. ``vs_prediction_pct`` says how far reality fell
short of what the twin promised: ``100 * ((real_after / predicted_after) / (real_before /
predicted_before) - 1)``.

>>> v = kpi_verdict("DRB.UEThpDl", real_before=50.0, real_after=44.0, predicted_before=40.0, predicted_after=42.0,
...                 expected_pct=5.0, max_degradation_pct=5.0)
>>> (round(v.effect_pct, 2), v.degraded)
(-12.0, True)
>>> kpi_verdict("RRU.PrbTotDl", 40.0, 41.0, None, None, 0.0, 10.0, higher_is_better=False).degraded
False

An expected effect of -100 % or less (the schema refuses it at the edge; a change recorded
before that is judged all the same) leaves no counterfactual: the change is judged degraded, the
safe side, and rolled back, with the reason in ``note``:

>>> v = kpi_verdict("DRB.UEThpDl", 50.0, 51.0, 40.0, 40.0, expected_pct=-100.0, max_degradation_pct=5.0)
>>> (v.degraded, v.counterfactual, round(v.effect_pct, 2))
(True, 50.0, 2.0)
>>> print(v.note)
expectedKpiImpact -100 % leaves no counterfactual (a KPI cannot fall by 100 % or more): judged degraded
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["KpiVerdict", "control_verdict", "kpi_verdict"]


@dataclass(frozen=True)
class KpiVerdict:
    kpi: str
    real_before: float
    real_after: float
    counterfactual: float
    effect_pct: float
    vs_prediction_pct: float | None
    max_degradation_pct: float
    degraded: bool
    normalised: bool  # False: no twin prediction, compared with the baseline alone
    method: str = "twin-forecast"  # or "control-cells" / "control-residuals": the scope against the other cells
    predicted_pct: float | None = None  # the twin's predicted change of the scope, where known
    upper_pct: float | None = None  # one-sided 95 % bounds of effect_pct from the periods' scatter
    lower_pct: float | None = None
    note: str | None = None  # why the verdict is not the measured one (no counterfactual: degraded, the safe side)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        how = {"control-cells": "the control cells' trend", "control-residuals": "the control cells' residuals"
               }.get(self.method, "the twin's forecast")
        pred = "" if self.predicted_pct is None else f"; predicted {self.predicted_pct:+.1f} %"
        if self.upper_pct is not None and self.lower_pct is not None:
            pred += f"; 95 % bounds {self.lower_pct:+.1f} .. {self.upper_pct:+.1f} %"
        note = "" if self.note is None else f"; {self.note}"
        return (f"{self.kpi} {self.effect_pct:+.1f} % against the counterfactual {self.counterfactual:.4g} from "
                f"{how} (real {self.real_before:.4g} -> {self.real_after:.4g}{pred}; tolerance "
                f"{self.max_degradation_pct:g} %{note})")


def kpi_verdict(kpi: str, real_before: float, real_after: float, predicted_before: float | None,
                predicted_after: float | None, expected_pct: float, max_degradation_pct: float,
                higher_is_better: bool = True) -> KpiVerdict:
    """The verdict on one protected KPI (means over the baseline and observation periods)."""
    normalised = bool(predicted_before and predicted_after and predicted_before > 0 and predicted_after > 0)
    ratio = (predicted_after / predicted_before) if normalised else 1.0  # type: ignore[operator]
    divisor = 1.0 + expected_pct / 100.0
    note = None
    if not (math.isfinite(divisor) and divisor > 0):  # no counterfactual: the safe side is a roll back
        note = (f"expectedKpiImpact {expected_pct:g} % leaves no counterfactual (a KPI cannot fall by 100 % or "
                "more): judged degraded")
        divisor = 1.0  # the figures shown: against the forecast alone
    counterfactual = real_before * ratio / divisor
    effect = 100.0 * (real_after / counterfactual - 1.0) if counterfactual > 0 else 0.0
    vs_pred = None
    if normalised and real_before > 0:
        vs_pred = 100.0 * ((real_after / predicted_after) / (real_before / predicted_before) - 1.0)  # type: ignore[operator]
    degradation = -effect if higher_is_better else effect
    return KpiVerdict(kpi=kpi, real_before=real_before, real_after=real_after, counterfactual=counterfactual,
                      effect_pct=effect, vs_prediction_pct=vs_pred, max_degradation_pct=max_degradation_pct,
                      degraded=note is not None or degradation > max_degradation_pct, normalised=normalised,
                      note=note)


def control_verdict(kpi: str, scope_before: float, scope_after: float, control_before: float,
                    control_after: float, max_degradation_pct: float, higher_is_better: bool = True,
                    predicted_pct: float | None = None, log_effect: float | None = None,
                    log_se: float | None = None, residuals: bool = False, z: float = 1.645) -> KpiVerdict:
    """The change's scope against the control cells: means over the baseline and the observed periods
    of the KPI summed over each group's cells.

    ``log_effect`` is the caller's estimate of the change's effect as a log ratio: the mean over the
    observed periods of log(scope / control) less its mean over the baseline periods (of the
    residuals real / predicted when ``residuals``: the load each cell carried, which the twin models
    from the reported traffic, drops out too, and the twin's predicted effect is added back).
    ``log_se`` is its standard error from the periods' scatter. A change is degraded only when the
    effect is beyond the tolerance **and** the one-sided ``z`` bound (95 %) is below zero: the
    cell-level KPIs of a few periods are noisy, and a roll back of a change that did nothing wrong
    is itself a change to the network. Without ``log_effect`` the means are compared directly.

    >>> v = control_verdict("DRB.UEThpDl", 30.0, 27.0, 100.0, 95.0, 5.0, predicted_pct=2.0)
    >>> (round(v.counterfactual, 2), round(v.effect_pct, 2), v.degraded, v.method)
    (28.5, -5.26, True, 'control-cells')
    >>> noisy = control_verdict("DRB.UEThpDl", 30.0, 27.0, 100.0, 95.0, 5.0, log_effect=-0.054, log_se=0.05)
    >>> (round(noisy.effect_pct, 2), noisy.degraded, round(noisy.upper_pct or 0, 2))
    (-5.26, False, 2.87)

    A scope whose KPI fell to nothing is a -100 % effect against the control cells' trend:

    >>> gone = control_verdict("DRB.UEThpDl", 3e5, 0.0, 1e6, 1e6, 5.0)
    >>> (gone.effect_pct, gone.counterfactual, gone.degraded)
    (-100.0, 300000.0, True)
    """
    if log_effect is None:
        log_effect = math.log(max(scope_after, 1e-12) / max(scope_before * (control_after / control_before)
                                                            if control_before > 0 else scope_before, 1e-12))
    effect = 100.0 * math.expm1(log_effect)
    upper = None if log_se is None else 100.0 * math.expm1(log_effect + z * log_se)
    lower = None if log_se is None else 100.0 * math.expm1(log_effect - z * log_se)
    grown = 1.0 + effect / 100.0  # 0.0 when the scope's KPI fell to nothing (expm1 rounds to -1)
    counterfactual = (scope_after / grown if grown > 0 and scope_after > 0 else
                      scope_before * control_after / control_before if control_before > 0 else scope_before)
    degradation = -effect if higher_is_better else effect
    significant = True if log_se is None else ((upper or 0.0) < 0 if higher_is_better else (lower or 0.0) > 0)
    return KpiVerdict(kpi=kpi, real_before=scope_before, real_after=scope_after, counterfactual=counterfactual,
                      effect_pct=effect, vs_prediction_pct=None if predicted_pct is None else effect - predicted_pct,
                      max_degradation_pct=max_degradation_pct,
                      degraded=degradation > max_degradation_pct and significant, normalised=True,
                      method="control-residuals" if residuals else "control-cells", predicted_pct=predicted_pct,
                      upper_pct=upper, lower_pct=lower)
