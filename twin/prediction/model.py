"""The twin's KPI prediction of one cluster and period, from what the mirror holds.

The simulated network comes from the mirrored CM only (positions, azimuths, tilts, powers ...
through ``twin.sim.mirrored.cluster_from_mirror``); the traffic comes from mirrored PM: the connected UEs
the cluster's cells reported (``RRC.ConnMean``, summed over the cluster) are spread over the twin's
traffic map. The twin then computes what every cell's KPIs should have been (connected UEs from its
own coverage, throughput, PRB load, power), so the gap between real and predicted is what the model
gets wrong, not what it was told: a cell whose real coverage shrank (an antenna fault the twin does
not know of) reports fewer UEs and a different load than the twin expects of it.

A :class:`ClusterPredictor` keeps one simulator per cluster and rebuilds it only when the
simulated CM changes; everything is deterministic, so re-predicting a period gives the same values.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import orjson

from twin.config import PredictSettings
from twin.gap.target import level_means
from twin.mirror.cluster import ClusterMirror
from twin.resync.calibration import Calibration
from twin.resync.trigger import TriggerEvent
from twin.sim.cm import POSITION_ATTRIBUTES, SUPPORTED, normalise_attributes
from twin.sim.kpis import CONN, KPI_NAMES
from twin.sim.mirrored import cluster_from_mirror
from twin.sim.propagation import SCENARIOS, Scenario
from twin.sim.simulator import SimResult, Simulator
from twin.sim.topology import Cluster
from twin.sim.traffic import TrafficMap
from twin.sim2real.features import period_hour_of

if TYPE_CHECKING:  # torch loads only when a Sim2Real engine is configured
    from twin.sim2real.engine import EngineOutput, Sim2RealEngine

__all__ = [
    "ENGINES",
    "SIMULATED",
    "ClusterPrediction",
    "ClusterPredictor",
    "PeriodModel",
    "PredictConfig",
    "calibration_as_of",
    "kpi_values",
    "load_engine",
    "observed",
    "reported_ues",
    "simulated_cm",
]

FloatArray = npt.NDArray[np.float64]
SIMULATED = SUPPORTED | POSITION_ATTRIBUTES


@dataclass(frozen=True)
class PredictConfig:
    """Model parameters that are not CM (see ``twin.config.PredictSettings``): the TR 38.901
    ``scenario``, ``n_ues`` UE points per cluster, ``demand_bps`` mean offered DL load per connected
    UE (bit/s), the ``indoor_fraction`` of UEs, the ``seed`` of every random draw, and the
    ``model_version`` the predictions carry. Checked when built; a bad value names its field.

    >>> PredictConfig(n_ues=0)
    Traceback (most recent call last):
    ...
    ValueError: PredictConfig.n_ues=0 must be an integer >= 1
    >>> PredictConfig(scenario="urban")  # type: ignore[arg-type]
    Traceback (most recent call last):
    ...
    ValueError: PredictConfig.scenario='urban' is not one of 'uma', 'umi', 'rma'
    """

    scenario: Scenario = "uma"
    n_ues: int = 3000
    demand_bps: float = 150e3
    indoor_fraction: float = 0.8
    seed: int = 0
    model_version: str = "sim-38901-v1"

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ValueError:
            return ValueError(f"PredictConfig.{name}={getattr(self, name)!r} {rule}")

        if self.scenario not in SCENARIOS:
            raise bad("scenario", f"is not one of {', '.join(map(repr, SCENARIOS))}")
        for name in ("n_ues", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "n_ues" else 0):
                raise bad(name, f"must be an integer >= {1 if name == 'n_ues' else 0}")
        if (isinstance(self.demand_bps, bool) or not isinstance(self.demand_bps, int | float)
                or not math.isfinite(self.demand_bps) or self.demand_bps < 0):
            raise bad("demand_bps", "must be a finite number >= 0 (bit/s)")
        if isinstance(self.indoor_fraction, bool) or not isinstance(self.indoor_fraction, int | float) \
                or not 0.0 <= self.indoor_fraction <= 1.0:
            raise bad("indoor_fraction", "must be in 0..1")
        if not isinstance(self.model_version, str) or not self.model_version:
            raise bad("model_version", "must be a non-empty string")

    @classmethod
    def from_settings(cls, settings: PredictSettings) -> PredictConfig:
        """The model parameters of a worker's ``[predict]`` settings."""
        return cls(scenario=settings.scenario, n_ues=settings.n_ues, demand_bps=settings.demand_bps,
                   indoor_fraction=settings.indoor_fraction, seed=settings.seed,
                   model_version=settings.model_version)

    def traffic_map(self) -> TrafficMap:
        """The twin's traffic model: the one place it is built from these settings."""
        return TrafficMap(n_ues=self.n_ues, demand_bps=self.demand_bps, indoor_fraction=self.indoor_fraction)

    def simulator(self, cluster: Cluster) -> Simulator:
        """The twin's simulator of ``cluster`` with these settings (UE drop and draws from ``seed``)."""
        return Simulator(cluster, self.traffic_map(), seed=self.seed)


@dataclass(frozen=True)
class ClusterPrediction:
    """Predicted KPIs of one cluster and period: ``values[cell_key][kpi]`` (the raw twin), and once
    the gap learners have seen the period (``twin.gap``) ``calibrated[cell_key][kpi]`` and the
    divergence episodes it raised or cleared (``events``)."""

    cluster_id: str
    gp: int
    period_end: int
    values: dict[str, dict[str, float]]
    model_version: str
    rebuilt: bool  # the simulator was (re)built for this prediction
    ue_scale: float = 1.0  # the cluster's traffic scale (reported / modelled connected UEs)
    calibrated: dict[str, dict[str, float]] = field(default_factory=dict)
    events: tuple[TriggerEvent, ...] = ()
    out_of_range: dict[str, list[str]] | None = None
    """With the Sim2Real engine: the cells whose inputs were outside the model's training ranges,
    with those inputs (``{}``: none); ``None`` when the simulation engine alone predicted."""


@dataclass
class _Model:
    fingerprint: bytes
    sim: Simulator
    base_conn: FloatArray  # connected UEs per cell at unit scale
    calibration: Calibration
    overlay: dict[str, dict[str, float]]  # the calibration's gain and azimuth offsets as a CM view
    factor: FloatArray  # [n_ues] the calibration's traffic factor per UE point
    home: npt.NDArray[np.int64]  # [n_ues] serving cell of each UE point in the uncalibrated model
    interference_rise_db: FloatArray | float  # [n_ues] the calibration's interference margin per UE point (or 0.0)


def calibration_as_of(mirror: ClusterMirror, period_end: float | None = None) -> Calibration:
    """The calibration of the cluster's model in force for the period ending at ``period_end``
    (default: the newest); none before the first resync."""
    found: dict[str, Any] | None = None
    for entry in mirror.calibrations:
        if period_end is None or entry["from"] <= period_end:
            found = entry["calibration"]
    return Calibration() if found is None else Calibration.from_dict(found)


def simulated_cm(mirror: ClusterMirror, as_of: float | None = None) -> dict[str, dict[str, Any]]:
    """``{cell: {attribute: value}}`` of the attributes the model reads, for cells with a position:
    the latest CM, or with ``as_of`` (epoch s) the CM in effect then (``CellMirror.cm_as_of``)."""
    out: dict[str, dict[str, Any]] = {}
    for key, cell in sorted(mirror.cells.items()):
        attrs = {k: v for k, v in normalise_attributes(cell.cm_as_of(as_of)).items() if k in SIMULATED}
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


@dataclass(frozen=True)
class PeriodModel:
    """The twin's simulator of one cluster set to one period: the CM in effect at the period end,
    the traffic scaled to the connected UEs the cluster reported (``ue_scale``), and the simulated
    ``result``, which is also the simulator's baseline for a what-if."""

    cluster_id: str
    gp: int
    period_end: int
    sim: Simulator
    ue_scale: float
    result: SimResult
    rebuilt: bool  # the simulator was (re)built for this period


class ClusterPredictor:
    """Predicts per-cell KPIs of mirrored clusters; one cached simulator per cluster, at most
    ``max_models`` of them when given (the least recently used goes first: a predictor that serves
    only occasional what-ifs, such as the optimiser's denser one, must not hold every cluster)."""

    def __init__(self, config: PredictConfig | None = None, engine: Sim2RealEngine | None = None,
                 max_models: int | None = None) -> None:
        if max_models is not None and (isinstance(max_models, bool) or not isinstance(max_models, int)
                                       or max_models < 1):
            raise ValueError(f"max_models={max_models!r} must be an integer >= 1 or None (no bound)")
        self.config = config or PredictConfig()
        self.engine = engine
        self.max_models = max_models
        self._models: dict[str, _Model] = {}
        self.builds = 0

    @property
    def model_version(self) -> str:
        """The version predictions carry: the simulation model's, ``+sim2real-<method>`` with the engine."""
        return self.config.model_version + (f"+{self.engine.version}" if self.engine is not None else "")

    def engine_output(self, state: PeriodModel, values: dict[str, dict[str, float]],
                      engine: Sim2RealEngine | None, mirror: ClusterMirror) -> EngineOutput | None:
        """``values`` of ``state`` with ``engine``'s KPIs in place (``None`` without an engine)."""
        if engine is None:
            return None
        return engine.apply(state.cluster_id, state.result, values, period_hour_of(state.period_end, state.gp),
                            reported_ues(mirror, state), state.sim.cluster.sectors)

    def _model(self, cluster_id: str, cm: Mapping[str, Mapping[str, Any]],
               calibration: Calibration | None = None) -> tuple[_Model, bool]:
        calibration = calibration or Calibration()
        fingerprint = orjson.dumps([cm, calibration.to_dict()], option=orjson.OPT_SORT_KEYS)
        model = self._models.pop(cluster_id, None)  # put back last: the most recently used
        if model is not None:
            self._models[cluster_id] = model
        if model is not None and model.fingerprint == fingerprint:
            return model, False
        cfg = self.config
        if model is not None and model.fingerprint.startswith(b"[" + orjson.dumps(cm, option=orjson.OPT_SORT_KEYS)):
            sim, home = model.sim, model.home  # the same CM: only the calibration changed
        else:
            cluster = cluster_from_mirror(cm, cluster_id=cluster_id, scenario=cfg.scenario)
            sim = cfg.simulator(cluster)
            home = sim.evaluate().ue.serving
        overlay = calibration.cm_overlay(sim.cluster.sectors)
        factor = calibration.ue_factor(sim.cluster.cell_keys, home)
        rise = calibration.interference_rise_db(sim.cluster.cell_keys, home)
        base = sim.evaluate(cm=overlay, ue_scale=factor, extra_loss_db=calibration.pathloss_db,
                            interference_rise_db=rise)
        ue = base.ue
        weight = sim.ues.weight * factor
        conn = np.asarray(np.bincount(ue.serving, weights=np.where(ue.connected, weight, 0.0),
                                      minlength=len(sim.cluster.sectors)), dtype=np.float64)
        model = _Model(fingerprint, sim, conn, calibration, overlay, factor, home, rise)
        self._models[cluster_id] = model
        while self.max_models is not None and len(self._models) > self.max_models:
            del self._models[next(iter(self._models))]
        self.builds += 1
        return model, True

    def warm(self, mirror: ClusterMirror, cells: Collection[str] = ()) -> bool:
        """Build (or rebuild) the cluster's simulator from its CM ahead of the next period, once
        every cell of ``cells`` (default: any) has a position; True when it was built now."""
        cm = simulated_cm(mirror)
        if not cm or any(c not in cm for c in cells):
            return False
        return self._model(mirror.cluster_id, cm, calibration_as_of(mirror))[1]

    def forget(self, cluster_id: str) -> None:
        self._models.pop(cluster_id, None)

    def period_model(self, mirror: ClusterMirror, gp: int, period_end: int,
                     calibration: Calibration | None = None) -> PeriodModel | None:
        """The cluster's simulator evaluated for the period (``None`` without CM positions).

        The CM is what was in effect at ``period_end`` (``CellMirror.cm_as_of``), so a period gives
        the same prediction whenever it is computed, however late CM changes arrive. The traffic is
        one scale for the whole cluster: the connected UEs it reported (``RRC.ConnMean`` of the
        period, else the latest before it), spread the way the twin's own coverage (from CM) and
        traffic map spread them.
        """
        cm = simulated_cm(mirror, as_of=period_end)
        if not cm:
            return None
        model, rebuilt = self._model(mirror.cluster_id, cm, calibration if calibration is not None
                                     else calibration_as_of(mirror, period_end))
        scale = self._ue_scale(model, mirror, gp, period_end)
        result = model.sim.evaluate(cm=model.overlay, ue_scale=scale * model.factor,
                                    extra_loss_db=model.calibration.pathloss_db,
                                    interference_rise_db=model.interference_rise_db)
        return PeriodModel(mirror.cluster_id, gp, period_end, model.sim, scale, result, rebuilt)

    @staticmethod
    def _ue_scale(model: _Model, mirror: ClusterMirror, gp: int, period_end: int) -> float:
        keys = model.sim.cluster.cell_keys
        target = np.array([_or_nan(observed(mirror, k, gp, period_end, CONN)) for k in keys])
        usable = np.array([connected_ues(v) is not None for v in target], dtype=bool)
        base = float(model.base_conn[usable].sum())
        return float(target[usable].sum()) / base if base > 0 else 0.0

    def predict(self, mirror: ClusterMirror, gp: int, period_end: int) -> ClusterPrediction | None:
        """KPIs of every positioned cell of ``mirror`` for the period; ``None`` without CM positions."""
        state = self.period_model(mirror, gp, period_end)
        if state is None:
            return None
        values = kpi_values(state.result)
        out = self.engine_output(state, values, self.engine, mirror)
        return ClusterPrediction(mirror.cluster_id, gp, period_end, values if out is None else out.values,
                                 self.model_version, state.rebuilt, state.ue_scale,
                                 out_of_range=None if out is None else out.out_of_range)


def reported_ues(mirror: ClusterMirror, state: PeriodModel) -> list[float]:
    """Per simulated cell of ``state``, the connected UEs (``RRC.ConnMean``) the mirror holds for
    its period (else the latest before it), else the twin's own: the Sim2Real state."""
    conn = state.result.kpi.values[CONN]
    out = []
    for i, key in enumerate(state.sim.cluster.cell_keys):
        v = connected_ues(observed(mirror, key, state.gp, state.period_end, CONN))
        out.append(float(conn[i]) if v is None else v)
    return out


MAX_CONNECTED_UES = 100_000.0
"""More RRC connections than any cell holds (vendors' limits are a few thousand): a reported
``RRC.ConnMean`` above it is an overflow or a sentinel, not a count."""


def connected_ues(value: float | None) -> float | None:
    """A cell's reported ``RRC.ConnMean`` when it can be a count of connected UEs, else None: a
    negative value (-1, a vendor's "not available"), one above ``MAX_CONNECTED_UES`` (the largest
    double, another sentinel) or a non-finite one is treated as not reported. Taken as counts they
    made the cluster's UE scale negative or near-infinite: the simulator refused the period, which
    stayed due and was refused again at every record, or every KPI of it came out infinite.

    >>> connected_ues(12.5), connected_ues(-1.0), connected_ues(1.7976931348623157e308), connected_ues(None)
    (12.5, None, None, None)
    """
    if value is None or not math.isfinite(value) or not 0.0 <= value <= MAX_CONNECTED_UES:
        return None
    return float(value)


ENGINES: tuple[str, ...] = ("simulation", "sim2real")
"""What can predict the KPIs (``[predict] engine``, ``Twin.predict(model=...)``)."""


def load_engine(settings: PredictSettings, force: bool = False) -> Sim2RealEngine | None:
    """The Sim2Real engine ``[predict]`` asks for (``engine = "sim2real"``), or with ``force`` the
    one ``sim2real_model`` names whatever the engine; ``None`` when there is none to load. A missing
    or unreadable model raises ``FileNotFoundError``/``ValueError`` naming its directory."""
    if settings.sim2real_model is None or (settings.engine != "sim2real" and not force):
        return None
    try:
        from twin.sim2real.engine import Sim2RealEngine
    except ImportError as exc:  # torch is an extra: the simulation engine runs without it
        raise RuntimeError(f"predict.sim2real_model={str(settings.sim2real_model)!r}: the Sim2Real engine needs "
                           f"torch==2.13.0 (pip install 'ran-twin[sim2real]'): {exc}") from exc

    return Sim2RealEngine.load(settings.sim2real_model)


def kpi_values(result: SimResult) -> dict[str, dict[str, float]]:
    """``{cell: {KPI: value}}`` of a simulated state, the finite values only (what is published):
    the KPIs of ``twin.sim.kpis`` and the mean SS-RSRP and SS-SINR of the cell's UEs
    (``twin.gap.RSRP_MEAN``, ``twin.gap.SINR_MEAN``)."""
    kpi = result.kpi.values
    out: dict[str, dict[str, float]] = {}
    for i, k in enumerate(result.cell_keys):
        values = out[k] = {name: float(kpi[name][i]) for name in KPI_NAMES if np.isfinite(kpi[name][i])}
        values.update({name: v for name, v in level_means(result.kpi.rsrp_bins[i], result.kpi.sinr_bins[i]).items()
                       if math.isfinite(v)})
    return out


def _or_nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)
