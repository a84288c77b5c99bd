"""The twin's KPI prediction of one cluster and period, from what the mirror holds.

The simulated network comes from the mirrored CM only (positions, azimuths, tilts, powers ...
through ``twin.sim.cluster_from_mirror``); the traffic comes from mirrored PM: the connected UEs
the cluster's cells reported (``RRC.ConnMean``, summed over the cluster) are spread over the twin's
traffic map. The twin then computes what every cell's KPIs should have been (connected UEs from its
own coverage, throughput, PRB load, power), so the gap between real and predicted is what the model
gets wrong, not what it was told: a cell whose real coverage shrank (an antenna fault the twin does
not know of) reports fewer UEs and a different load than the twin expects of it.

A :class:`ClusterPredictor` keeps one simulator per cluster and rebuilds it only when the
simulated CM changes; everything is deterministic, so re-predicting a period gives the same values.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from twin.mirror.cluster import ClusterMirror
from twin.sim import Simulator, TrafficMap, cluster_from_mirror
from twin.sim.cm import POSITION_ATTRIBUTES, SUPPORTED, normalise_attributes
from twin.sim.kpis import CONN, KPI_NAMES

FloatArray = npt.NDArray[np.float64]
SIMULATED = SUPPORTED | POSITION_ATTRIBUTES


@dataclass(frozen=True)
class PredictConfig:
    """Model parameters that are not CM (see ``twin.config.PredictSettings``)."""

    scenario: str = "uma"
    n_ues: int = 3000
    demand_bps: float = 150e3
    indoor_fraction: float = 0.8
    seed: int = 0
    model_version: str = "sim-38901-v1"


@dataclass(frozen=True)
class ClusterPrediction:
    """Predicted KPIs of one cluster and period: ``values[cell_key][kpi]``."""

    cluster_id: str
    gp: int
    period_end: int
    values: dict[str, dict[str, float]]
    model_version: str
    rebuilt: bool  # the simulator was (re)built for this prediction


@dataclass
class _Model:
    fingerprint: bytes
    sim: Simulator
    base_weight: FloatArray
    serving: npt.NDArray[np.int64]
    base_conn: FloatArray  # connected UE points per cell at unit weights


def simulated_cm(mirror: ClusterMirror) -> dict[str, dict[str, Any]]:
    """``{cell: {attribute: value}}`` of the attributes the model reads, for cells with a position."""
    out: dict[str, dict[str, Any]] = {}
    for key, cell in sorted(mirror.cells.items()):
        attrs = {k: v for k, v in normalise_attributes(cell.cm).items() if k in SIMULATED}
        if ("lat" in attrs and "lon" in attrs) or ("x" in attrs and "y" in attrs):
            out[key] = attrs
    return out


def observed(mirror: ClusterMirror, cell_key: str, gp: int, end: int, name: str) -> float | None:
    """The PM value of ``name`` for ``end``, else the latest one before it, else ``None``."""
    cell = mirror.cells.get(cell_key)
    series = cell.pm.get(gp, {}).get(name) if cell is not None else None
    if not series:
        return None
    value = series.get(end)
    if value is not None:
        return value
    earlier = [e for e in series if e < end]
    return series[max(earlier)] if earlier else None


class ClusterPredictor:
    """Predicts per-cell KPIs of mirrored clusters; one cached simulator per cluster."""

    def __init__(self, config: PredictConfig | None = None) -> None:
        self.config = config or PredictConfig()
        self._models: dict[str, _Model] = {}
        self.builds = 0

    def _model(self, cluster_id: str, cm: Mapping[str, Mapping[str, Any]]) -> tuple[_Model, bool]:
        fingerprint = orjson.dumps(cm, option=orjson.OPT_SORT_KEYS)
        model = self._models.get(cluster_id)
        if model is not None and model.fingerprint == fingerprint:
            return model, False
        cfg = self.config
        cluster = cluster_from_mirror(cm, cluster_id=cluster_id, scenario=cfg.scenario)
        sim = Simulator(cluster, TrafficMap(n_ues=cfg.n_ues, demand_bps=cfg.demand_bps,
                                              indoor_fraction=cfg.indoor_fraction), seed=cfg.seed)
        base = sim.evaluate()
        ue = base.ue
        weight = sim.ues.weight.copy()
        conn = np.asarray(np.bincount(ue.serving, weights=np.where(ue.connected, weight, 0.0),
                                      minlength=len(cluster.sectors)), dtype=np.float64)
        model = _Model(fingerprint, sim, weight, ue.serving, conn)
        self._models[cluster_id] = model
        self.builds += 1
        return model, True

    def warm(self, mirror: ClusterMirror, cells: Collection[str] = ()) -> bool:
        """Build (or rebuild) the cluster's simulator from its CM ahead of the next period, once
        every cell of ``cells`` (default: any) has a position; True when it was built now."""
        cm = simulated_cm(mirror)
        if not cm or any(c not in cm for c in cells):
            return False
        return self._model(mirror.cluster_id, cm)[1]

    def forget(self, cluster_id: str) -> None:
        self._models.pop(cluster_id, None)

    def predict(self, mirror: ClusterMirror, gp: int, period_end: int) -> ClusterPrediction | None:
        """KPIs of every positioned cell of ``mirror`` for the period; ``None`` without CM positions."""
        cm = simulated_cm(mirror)
        if not cm:
            return None
        model, rebuilt = self._model(mirror.cluster_id, cm)
        keys = model.sim.cluster.cell_keys
        target = np.array([_or_nan(observed(mirror, k, gp, period_end, CONN)) for k in keys])
        usable = np.isfinite(target)
        # one scale for the whole cluster: the connected UEs it reported, spread the way the twin's
        # own coverage (from CM) and traffic map spread them
        base = float(model.base_conn[usable].sum())
        scale = float(target[usable].sum()) / base if base > 0 else 0.0
        sim = model.sim
        sim.ues = replace(sim.ues, weight=model.base_weight * scale)
        result = sim.evaluate()
        values = {k: {name: float(result.kpi.values[name][i]) for name in KPI_NAMES
                      if np.isfinite(result.kpi.values[name][i])}
                  for i, k in enumerate(keys)}
        return ClusterPrediction(mirror.cluster_id, gp, period_end, values, self.config.model_version, rebuilt)


def _or_nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)
