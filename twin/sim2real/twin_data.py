"""The twin's training data: the simulation model run over broad CM settings and network states.

A live network only ever shows the narrow band of configurations its operators run; the twin can
show every configuration the guard allows. :func:`twin_samples` draws, per sample period, one of
the given cluster models (topologies), an hour of day, a load level, a random traffic map
(Gaussian hotspots over the cluster's UE points) and a *reference* CM of every cell (tilt, power,
CIO uniform over :class:`Ranges`), simulates the period as it ran under the reference (the state
a network would report: its connected UEs), then a *candidate* CM in which each cell moved to a
new random setting with probability ``Ranges.change_share``, simulated on the same traffic: the
labels. One row per cell; everything derives from ``seed``.

>>> from twin.sim.topology import hex_cluster
>>> from twin.sim.traffic import TrafficMap
>>> model = ClusterModel(hex_cluster(rings=0), TrafficMap(n_ues=300), seed=1)
>>> s = twin_samples([model], n_samples=9, seed=3)
>>> len(s), s.envs[0]
(9, 'hex-0r-3c/nr:00101-000000101')
>>> Ranges(tilt_deg=(5.0, 2.0))
Traceback (most recent call last):
...
ValueError: Ranges.tilt_deg=(5.0, 2.0): the low end must not exceed the high end
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.sim import PrecomputedPropagation, SimConfig, Simulator
from twin.sim.cm import apply_cm_to_sector
from twin.sim.kpis import CONN
from twin.sim.topology import Cluster
from twin.sim.traffic import TrafficMap, UePoints
from twin.sim2real.features import TARGETS, cell_features
from twin.sim2real.samples import Samples

__all__ = ["ClusterModel", "Ranges", "hotspot_scale", "twin_samples"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Ranges:
    """Sampling ranges of the twin data (uniform unless said otherwise).

    ``tilt_deg`` electrical tilt (deg, down positive), ``power_dbm`` configured carrier power,
    ``cio_db`` CIO (whole dB, as QOffsetRange), ``load_scale`` the factor on the model's UE count
    (log-uniform), ``hour`` hour of day, ``demand_scale`` the factor on the offered load per UE
    (default none: a UE's demand is not in the PM a network reports, so drawing it would only add
    label noise the response cannot explain; measured: pretraining's validation loss 0.26 with
    0.7..1.4, 0.13 without, ``docs/sim2real.md``),
    ``hotspots`` the most hotspots per traffic map (0..n uniform), ``hotspot_radius_m`` and
    ``hotspot_gain`` their size and peak density factor, ``change_share`` the probability that a
    cell's candidate CM differs from its reference."""

    tilt_deg: tuple[float, float] = (0.0, 14.0)
    power_dbm: tuple[float, float] = (40.0, 49.0)
    cio_db: tuple[float, float] = (-6.0, 6.0)
    load_scale: tuple[float, float] = (0.25, 3.0)
    hour: tuple[float, float] = (0.0, 24.0)
    demand_scale: tuple[float, float] = (1.0, 1.0)
    hotspots: int = 3
    hotspot_radius_m: tuple[float, float] = (80.0, 400.0)
    hotspot_gain: tuple[float, float] = (0.5, 4.0)
    change_share: float = 0.3

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple) and not (len(value) == 2 and all(math.isfinite(v) for v in value)
                                                 and value[0] <= value[1]):
                raise ValueError(f"Ranges.{f.name}={value!r}: the low end must not exceed the high end")
        if self.load_scale[0] <= 0 or self.demand_scale[0] < 0 or self.hotspots < 0:
            raise ValueError("Ranges.load_scale must be > 0, demand_scale >= 0 and hotspots >= 0")
        if not 0.0 <= self.change_share <= 1.0:
            raise ValueError(f"Ranges.change_share={self.change_share!r} must be in 0..1")


@dataclass
class ClusterModel:
    """One cluster as the twin simulates it: cells, traffic model, model seed, simulator settings,
    and optionally ``extra_loss_db`` [n_cells, n_ues]: a loss per (cell, UE point) laid on the
    model's propagation (a per-place calibration from located UE reports, dB; positive = weaker)."""

    cluster: Cluster
    traffic: TrafficMap
    seed: int = 0
    config: SimConfig = field(default_factory=SimConfig)
    extra_loss_db: npt.NDArray[np.float64] | None = None
    _sim: Simulator | None = field(default=None, init=False, repr=False)

    @property
    def simulator(self) -> Simulator:
        if self._sim is None:
            sim = Simulator(self.cluster, self.traffic, seed=self.seed, config=self.config)
            if self.extra_loss_db is not None:
                extra = np.asarray(self.extra_loss_db, dtype=np.float64)
                if extra.shape != sim.base_loss_db.shape or not np.all(np.isfinite(extra)):
                    raise ValueError(f"extra_loss_db must be finite with shape {sim.base_loss_db.shape} "
                                     f"[cells, UE points], got shape {extra.shape}")
                sim = Simulator(self.cluster, self.traffic, seed=self.seed, config=self.config,
                                propagation=PrecomputedPropagation(sim.base_loss_db + extra))
            self._sim = sim
        return self._sim


def hotspot_scale(ues: UePoints, rng: np.random.Generator, ranges: Ranges) -> FloatArray:
    """[n_ues] density factor of a random traffic map: 1 plus up to ``ranges.hotspots`` Gaussian
    hotspots centred on random UE points."""
    scale = np.ones(ues.n)
    for _ in range(int(rng.integers(0, ranges.hotspots + 1))):
        c = int(rng.integers(0, ues.n))
        radius = rng.uniform(*ranges.hotspot_radius_m)
        gain = rng.uniform(*ranges.hotspot_gain)
        d2 = (ues.x_m - ues.x_m[c]) ** 2 + (ues.y_m - ues.y_m[c]) ** 2
        scale += gain * np.exp(-d2 / (2.0 * radius**2))
    return scale


def twin_samples(models: Sequence[ClusterModel], n_samples: int, seed: int = 0,
                 ranges: Ranges | None = None) -> Samples:
    """At least ``n_samples`` labelled cell-periods (whole periods: the last one may overshoot by
    fewer than a cluster's cells, then the set is cut to ``n_samples``) from the ``models`` taken
    in turn."""
    if not models:
        raise ValueError("models is empty: give at least one ClusterModel")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples={n_samples!r} must be a positive integer")
    r = ranges or Ranges()
    rng = np.random.default_rng([seed, 0x51A2])
    envs: dict[str, int] = {}
    xs: list[FloatArray] = []
    ys: list[FloatArray] = []
    es: list[npt.NDArray[np.int64]] = []
    total, turn = 0, 0

    def draw() -> dict[str, Any]:
        return {"digitalTilt": round(10 * rng.uniform(*r.tilt_deg)),
                "configuredMaxTxPower": max(1, round(10 ** (rng.uniform(*r.power_dbm) / 10.0))),
                "cellIndividualOffset": int(rng.integers(int(r.cio_db[0]), int(r.cio_db[1]) + 1))}

    while total < n_samples:
        model = models[turn % len(models)]
        turn += 1
        sim = model.simulator
        sectors = model.cluster.sectors
        ref_cm = {s.cell_key: draw() for s in sectors}
        cand_cm = {k: (draw() if rng.random() < r.change_share else v) for k, v in ref_cm.items()}
        hour = float(rng.uniform(*r.hour))
        load = math.exp(rng.uniform(math.log(r.load_scale[0]), math.log(r.load_scale[1])))
        scale = load * hotspot_scale(sim.ues, rng, r)
        demand = float(rng.uniform(*r.demand_scale))
        ref = sim.evaluate(cm=ref_cm, hour=hour, ue_scale=scale, demand_scale=demand)
        conn = np.array(ref.kpi.values[CONN][: len(sectors)])
        result = sim.evaluate(cm=cand_cm, hour=hour, ue_scale=scale, demand_scale=demand)
        ref_sectors = tuple(apply_cm_to_sector(s, ref_cm[s.cell_key], strict=True) for s in sectors)
        cand_sectors = tuple(apply_cm_to_sector(s, cand_cm[s.cell_key], strict=True) for s in sectors)
        xs.append(cell_features(cand_sectors, hour, float(conn.sum()), conn, reference=ref_sectors))
        ys.append(np.stack([result.kpi.values[k][: len(sectors)] for k in TARGETS], axis=1))
        es.append(np.array([envs.setdefault(f"{model.cluster.cluster_id}/{s.cell_key}", len(envs))
                            for s in sectors], dtype=np.int64))
        total += len(sectors)
    return Samples(np.concatenate(xs), np.concatenate(ys), np.concatenate(es), tuple(envs)).take(
        np.arange(n_samples))
