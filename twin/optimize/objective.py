"""What the optimiser improves: UE downlink throughput (mean and 5th percentile) under a coverage
floor and a PRB ceiling, or energy (transmit power) under a throughput-loss budget.

Both compare a baseline and a changed state of the same cluster and period (a twin what-if, or
the emulated network's truth in ``twin bench optimize``) through ``UeSummary``, so the number
the search maximises and the number the benchmark measures are computed the same way.

>>> import numpy as np
>>> s = UeSummary.of(np.array([1e6, 2e6, 3e6, 4e6]), np.array([True] * 4), np.array([-90.0, -100, -120, -95]),
...                  coverage_rsrp_dbm=-110.0)
>>> (round(s.mean_mbps, 3), round(s.p5_mbps, 3), s.coverage)
(2.5, 1.0, 0.75)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ObjectiveSettings", "Score", "UeSummary", "score"]


class ObjectiveSettings(BaseModel):
    """The ``[optimize]`` objective; defaults favour the cell edge as much as the mean."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["throughput", "energy"] = "throughput"
    mean_weight: float = Field(default=0.5, ge=0, le=1, description="weight of the mean UE DL throughput gain; "
                               "the 5th percentile's is 1 - mean_weight")
    coverage_rsrp_dbm: float = Field(default=-110.0, description="a UE is covered when its serving RSRP is at least "
                                     "this")
    max_coverage_loss: float = Field(default=0.002, ge=0, le=1, description="largest drop of the covered share of UEs "
                                     "a change may cause (0.002 = 0.2 points)")
    prb_ceiling_pct: float = Field(default=85.0, gt=0, le=100, description="no cell may be pushed above this PRB "
                                   "utilisation (one already above may not rise)")
    energy_max_thp_loss_pct: float = Field(default=2.0, ge=0, le=100, description="energy objective: largest mean "
                                           "throughput loss accepted for a power saving")
    p5_floor_mbps: float = Field(default=1.0, gt=0, description="the 5th percentile's change is taken relative to "
                                 "at least this (a cell edge near zero would make any change look huge)")
    calibrated: bool = Field(default=True, description="see each UE and cell at the real cell's levels, as the gap "
                             "learners do: UE throughput times its serving cell's calibrated / modelled DL throughput, "
                             "UE RSRP plus its calibrated - modelled mean SS-RSRP (coverage floor), PRB times its "
                             "calibrated / modelled utilisation (PRB ceiling)")
    ue_points: int = Field(default=12_000, ge=100, description="UE points of the what-ifs the search scores (the "
                           "prediction's model has [predict] n_ues): on 3,000 the search fitted changes to where the "
                           "twin dropped its points, the 5th percentile most (docs/cm.md)")


@dataclass(frozen=True)
class UeSummary:
    """Mean and 5th-percentile DL throughput (Mbit/s) of connected UEs, and the covered share."""

    mean_mbps: float
    p5_mbps: float
    coverage: float

    @staticmethod
    def of(throughput_bps: npt.NDArray[np.float64], connected: npt.NDArray[np.bool_], rsrp_dbm: npt.NDArray[np.float64],
           coverage_rsrp_dbm: float, weight: npt.NDArray[np.float64] | None = None) -> UeSummary:
        """Summary over UE points [n]; ``weight`` (UEs per point) defaults to one per point."""
        w = np.ones_like(throughput_bps) if weight is None else np.asarray(weight, dtype=float)
        on = connected & (w > 0)
        total = float(w.sum())
        if not on.any() or total <= 0:
            return UeSummary(0.0, 0.0, 0.0)
        thp, ww = throughput_bps[on], w[on]
        order = np.argsort(thp)
        cum = np.cumsum(ww[order]) / ww.sum()
        p5 = float(np.interp(0.05, cum, thp[order]))
        covered = float(w[connected & (rsrp_dbm >= coverage_rsrp_dbm)].sum() / total)
        return UeSummary(float(np.average(thp, weights=ww)) / 1e6, p5 / 1e6, covered)


@dataclass(frozen=True)
class Score:
    """A changed state against its baseline: ``gain_pct`` is what the search maximises; an
    infeasible change (``why`` says which constraint) scores ``-inf``."""

    gain_pct: float
    mean_pct: float
    p5_pct: float
    coverage_delta: float
    power_pct: float
    feasible: bool
    why: str = ""


def _pct(new: float, old: float) -> float:
    return 100.0 * (new / old - 1.0) if old > 0 else 0.0


def score(settings: ObjectiveSettings, base: UeSummary, changed: UeSummary, prb_base: npt.NDArray[np.float64],
          prb_changed: npt.NDArray[np.float64], power_base_mw: float, power_changed_mw: float) -> Score:
    """Score ``changed`` against ``base``; PRB arrays [n_cells] in %, powers summed over cells (mW)."""
    mean_pct = _pct(changed.mean_mbps, base.mean_mbps)
    p5_pct = 100.0 * (changed.p5_mbps - base.p5_mbps) / max(base.p5_mbps, settings.p5_floor_mbps)
    power_pct = _pct(power_changed_mw, power_base_mw)
    cov = changed.coverage - base.coverage
    why = ""
    if cov < -settings.max_coverage_loss:
        why = f"coverage {base.coverage:.4f} -> {changed.coverage:.4f} (floor: -{settings.max_coverage_loss})"
    over = (prb_changed > settings.prb_ceiling_pct) & (prb_changed > prb_base + 1e-6)
    if over.any():
        why = why or f"{int(over.sum())} cell(s) pushed above the PRB ceiling {settings.prb_ceiling_pct:g} %"
    if settings.kind == "energy":
        gain = -power_pct
        if mean_pct < -settings.energy_max_thp_loss_pct:
            why = why or f"mean throughput {mean_pct:+.2f} % beyond the loss budget {settings.energy_max_thp_loss_pct}"
    else:
        gain = settings.mean_weight * mean_pct + (1.0 - settings.mean_weight) * p5_pct
    return Score(gain if not why else float("-inf"), mean_pct, p5_pct, cov, power_pct, not why, why)
