"""Verification of an applied change: did a protected KPI get worse than the change allowed?

Why a counterfactual and not "after minus before": the KPIs move with the hour of the day and
the load, so four busy-hour periods after a change look worse than four quiet ones before it
whatever the change did. The twin's prediction carries those movements; the KPI the network
would have had without the change is the baseline carried forward by the twin's predicted ratio,
less the effect the twin predicted for the change itself::

    counterfactual = real_before * (predicted_after / predicted_before) / (1 + expected_pct / 100)
    effect_pct     = 100 * (real_after / counterfactual - 1)

A ``higher_is_better`` KPI degrades by ``-effect_pct``. Where no prediction exists the ratio is 1
(the baseline alone), and the record says so. ``vs_prediction_pct`` says how far reality fell
short of what the twin promised: ``100 * ((real_after / predicted_after) / (real_before /
predicted_before) - 1)``.

>>> v = kpi_verdict("DRB.UEThpDl", real_before=50.0, real_after=44.0, predicted_before=40.0, predicted_after=42.0,
...                 expected_pct=5.0, max_degradation_pct=5.0)
>>> (round(v.effect_pct, 2), v.degraded)
(-12.0, True)
>>> kpi_verdict("RRU.PrbTotDl", 40.0, 41.0, None, None, 0.0, 10.0, higher_is_better=False).degraded
False
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["KpiVerdict", "kpi_verdict"]


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return (f"{self.kpi} {self.effect_pct:+.1f} % against the counterfactual {self.counterfactual:.4g} "
                f"(real {self.real_before:.4g} -> {self.real_after:.4g}; tolerance {self.max_degradation_pct:g} %)")


def kpi_verdict(kpi: str, real_before: float, real_after: float, predicted_before: float | None,
                predicted_after: float | None, expected_pct: float, max_degradation_pct: float,
                higher_is_better: bool = True) -> KpiVerdict:
    """The verdict on one protected KPI (means over the baseline and observation periods)."""
    normalised = bool(predicted_before and predicted_after and predicted_before > 0 and predicted_after > 0)
    ratio = (predicted_after / predicted_before) if normalised else 1.0  # type: ignore[operator]
    counterfactual = real_before * ratio / (1.0 + expected_pct / 100.0)
    effect = 100.0 * (real_after / counterfactual - 1.0) if counterfactual > 0 else 0.0
    vs_pred = None
    if normalised and real_before > 0:
        vs_pred = 100.0 * ((real_after / predicted_after) / (real_before / predicted_before) - 1.0)  # type: ignore[operator]
    degradation = -effect if higher_is_better else effect
    return KpiVerdict(kpi=kpi, real_before=real_before, real_after=real_after, counterfactual=counterfactual,
                      effect_pct=effect, vs_prediction_pct=vs_pred, max_degradation_pct=max_degradation_pct,
                      degraded=degradation > max_degradation_pct, normalised=normalised)
