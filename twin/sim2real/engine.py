"""The Sim2Real model as a prediction engine of the twin, combined with the simulation engine.

The simulation engine computes every KPI of a cluster's period (and the per-UE results a what-if's
objective reads); with ``[predict] engine = "sim2real"`` the KPIs the Sim2Real model predicts
(``DRB.UEThpDl``, ``RRU.PrbTotDl``) are replaced by its values, from the same CM, hour and
reported load, and every UE's throughput is scaled by its serving cell's ratio of the two
engines' ``DRB.UEThpDl``, so an objective over UEs moves with the model too. The gap learners then
calibrate whatever the engine predicted. A cell whose features fall outside the model's training
ranges is flagged (``out_of_range``, the features named): the value is an extrapolation; a cell
the model never saw is flagged ``"cell"`` (it gets the mean of the known cells' environments).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from twin.sim.kpis import THP
from twin.sim.simulator import SimResult, UeResult
from twin.sim.topology import Sector
from twin.sim2real.features import TARGETS, cell_features
from twin.sim2real.model import Sim2RealModel

__all__ = ["EngineOutput", "Sim2RealEngine"]


@dataclass(frozen=True)
class EngineOutput:
    """``values`` (the simulated KPIs with the model's in their place), ``out_of_range`` per
    flagged cell the features outside the training ranges, and the per-UE results rescaled."""

    values: dict[str, dict[str, float]]
    out_of_range: dict[str, list[str]]
    ue: UeResult


class Sim2RealEngine:
    """A loaded :class:`Sim2RealModel` answering for the twin's periods and what-ifs."""

    def __init__(self, model: Sim2RealModel) -> None:
        self.model = model
        self.version = f"sim2real-{model.method}"

    @classmethod
    def load(cls, directory: Path | str) -> Sim2RealEngine:
        return cls(Sim2RealModel.load(directory))

    def apply(self, cluster_id: str, result: SimResult, values: dict[str, dict[str, float]], hour: float,
              cell_ues: Sequence[float], sectors: tuple[Sector, ...],
              reference: tuple[Sector, ...] | None = None) -> EngineOutput:
        """``values`` (the simulated KPIs of ``result``) with the model's KPIs in place: for the
        candidate CM ``sectors`` (cell order of ``result``) at ``hour``, the period having run under
        ``reference`` (default: ``sectors``) with ``cell_ues`` connected UEs per cell reported."""
        keys = result.cell_keys
        n = len(sectors)
        ues = [float(u) for u in cell_ues]
        x = cell_features(sectors, hour, float(sum(ues)), ues, reference=reference)
        pred = self.model.predict(x, [f"{cluster_id}/{k}" for k in keys[:n]])
        out = {k: dict(v) for k, v in values.items()}
        flags: dict[str, list[str]] = {}
        ratio = np.ones(len(keys))
        sim_thp = result.kpi.values[THP]
        for i, key in enumerate(keys[:n]):
            if key not in out:
                continue
            for j, kpi in enumerate(TARGETS):
                out[key][kpi] = float(pred.values[i, j])
            if sim_thp[i] > 0:
                ratio[i] = float(pred.values[i, TARGETS.index(THP)]) / float(sim_thp[i])
            reasons = pred.out_of_range[i] + (["cell"] if pred.unseen[i] else [])
            if reasons:
                flags[key] = reasons
        ue = replace(result.ue, throughput_bps=result.ue.throughput_bps * ratio[result.ue.serving])
        return EngineOutput(out, flags, ue)
