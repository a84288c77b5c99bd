"""Sim2Real data from the twin's own state: the real history the runtime mirrored, and the twin's
model of the same clusters.

:func:`mirror_data` reads every mirrored cluster's periods and builds one row per cell and period
the way the runtime asks the model (``twin.prediction.model``): the sectors with the CM in effect
at the period end (``simulated_cm(mirror, as_of=end)`` through ``cluster_from_mirror``), the hour
of the period's middle, each positioned cell's reported ``RRC.ConnMean`` and their sum: as the
runtime's ``reported_ues``, the period's value, else the latest before it, else (a cell that never
reported it) the twin's own simulated value for the period, so that training and serving see the
same features. A row is kept only when its cell reported
``DRB.UEThpDl``, ``RRU.PrbTotDl`` and ``RRC.ConnMean`` for that very period, not flagged suspect,
and has a CM position; every other reported cell-period is counted under :data:`SKIP_REASONS`:

* ``no_position``: the cell (or its whole cluster) has no CM position at the period end;
* ``suspect``: the source flagged the period suspect (incomplete or unreliable PM);
* ``no_thp`` / ``no_prb`` / ``no_conn``: that KPI was not reported for the period;
* ``invalid_value``: a reported value is NaN, infinite or negative.

:func:`cluster_models` gives the twin's simulation model of each mirrored cluster (latest CM,
``[predict]`` traffic model and seed), the input of ``twin_samples``; :func:`time_split` holds out
the last periods in time; :func:`mape` (``twin.sim2real.metrics``) scores as the benchmark does.

Numpy only: importing this module does not import torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import orjson

from twin.mirror.cell import CellMirror
from twin.mirror.cluster import ClusterMirror
from twin.prediction.model import observed, simulated_cm
from twin.sim import SimConfig
from twin.sim.kpis import CONN, PRB, THP
from twin.sim.mirrored import cluster_from_mirror
from twin.sim.topology import Cluster
from twin.sim2real.features import FEATURES, TARGETS, cell_features, period_hour_of
from twin.sim2real.metrics import MAPE_FLOOR, mape
from twin.sim2real.samples import Samples
from twin.sim2real.twin_data import ClusterModel

if TYPE_CHECKING:
    from twin.digital_twin import Twin

__all__ = ["MAPE_FLOOR", "SKIP_REASONS", "MirrorData", "cluster_models", "mape", "mirror_data", "mirror_samples",
           "time_split"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SKIP_REASONS: tuple[str, ...] = ("no_position", "suspect", "no_thp", "no_prb", "no_conn", "invalid_value")


@dataclass(frozen=True)
class MirrorData:
    """``samples`` (labels: the reported KPIs), per row its ``period_end`` (epoch s) and ``gp``
    (s), the cell-periods ``skipped`` by reason, the ``clusters`` that gave rows, and how many
    rows' cluster load counted a cell's connected UEs from the twin's own model
    (``load_from_twin``: a positioned cell that never reported ``RRC.ConnMean``)."""

    samples: Samples
    period_end: IntArray
    gp: IntArray
    skipped: dict[str, int] = field(default_factory=dict)
    clusters: tuple[str, ...] = ()
    load_from_twin: int = 0


def _value(cell: CellMirror, gp: int, name: str, end: int) -> float | None:
    return cell.pm.get(gp, {}).get(name, {}).get(end)


def _row_problem(cell: CellMirror, gp: int, end: int) -> tuple[str | None, list[float]]:
    """Why ``cell``'s period cannot be a row (``None``: it can), and its THP and PRB."""
    if cell.periods.get(gp, {}).get(end):
        return "suspect", []
    values = []
    for name, reason in ((THP, "no_thp"), (PRB, "no_prb"), (CONN, "no_conn")):
        v = _value(cell, gp, name, end)
        if v is None:
            return reason, []
        values.append(v)
    if not all(isinstance(v, int | float) and math.isfinite(v) and v >= 0 for v in values):
        return "invalid_value", []
    return None, values[:2]


def _reported_ues(twin: Twin, mirror: ClusterMirror, keys: tuple[str, ...], gp: int,
                  end: int) -> tuple[list[float], bool]:
    """Each cell's connected UEs as the runtime's ``reported_ues`` gives them: its ``RRC.ConnMean``
    for the period, else the latest before, else the twin's own simulated value for the period;
    and whether one came from the twin."""
    out: list[float | None] = []
    for key in keys:
        v = observed(mirror, key, gp, end, CONN)
        out.append(float(v) if v is not None and math.isfinite(v) and v >= 0 else None)
    if all(v is not None for v in out):
        return [float(v) for v in out if v is not None], False
    own = twin.predict(mirror.cluster_id, end, gp, model="simulation").values
    return [v if v is not None else float(own.get(k, {}).get(CONN, 0.0)) for k, v in zip(keys, out, strict=True)], True


def mirror_data(twin: Twin) -> MirrorData:
    """Every usable mirrored cell-period of ``twin`` as Sim2Real rows (see the module docstring)."""
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    xs: list[FloatArray] = []
    ys: list[FloatArray] = []
    es: list[IntArray] = []
    ends: list[IntArray] = []
    gps: list[IntArray] = []
    envs: dict[str, int] = {}
    used: list[str] = []
    load_from_twin = 0
    scenario = twin.predict_config.scenario
    for cid in twin.clusters:
        mirror = twin.mirror(cid)
        periods = sorted({(gp, end) for c in mirror.cells.values() for gp, per in c.periods.items() for end in per})
        built: dict[bytes, Cluster] = {}
        rows_before = len(xs)
        for gp, end in periods:
            reporting = [k for k, c in sorted(mirror.cells.items()) if end in c.periods.get(gp, {})]
            cm = simulated_cm(mirror, as_of=end)
            skipped["no_position"] += sum(1 for k in reporting if k not in cm)
            if not cm:
                continue
            fingerprint = orjson.dumps(cm, option=orjson.OPT_SORT_KEYS)
            cluster = built.get(fingerprint)
            if cluster is None:
                cluster = built[fingerprint] = cluster_from_mirror(cm, cluster_id=cid, scenario=scenario)
            keys = cluster.cell_keys
            rows: list[int] = []
            labels: list[list[float]] = []
            for i, key in enumerate(keys):
                if key not in reporting:
                    continue
                problem, kpis = _row_problem(mirror.cells[key], gp, end)
                if problem is None:
                    rows.append(i)
                    labels.append(kpis)
                else:
                    skipped[problem] += 1
            if not rows:
                continue
            ues, filled = _reported_ues(twin, mirror, keys, gp, end)
            load_from_twin += len(rows) if filled else 0
            x = cell_features(cluster.sectors, period_hour_of(end, gp), float(sum(ues)), ues)
            xs.append(x[rows])
            ys.append(np.array(labels, dtype=np.float64))
            es.append(np.array([envs.setdefault(f"{cid}/{keys[i]}", len(envs)) for i in rows], dtype=np.int64))
            ends.append(np.full(len(rows), end, dtype=np.int64))
            gps.append(np.full(len(rows), gp, dtype=np.int64))
        if len(xs) > rows_before:
            used.append(cid)
    if not xs:
        empty = Samples(np.zeros((0, len(FEATURES))), np.zeros((0, len(TARGETS))), np.zeros(0, dtype=np.int64), ())
        none = np.zeros(0, dtype=np.int64)
        return MirrorData(empty, none, none, skipped, (), load_from_twin)
    samples = Samples(np.concatenate(xs), np.concatenate(ys), np.concatenate(es), tuple(envs))
    return MirrorData(samples, np.concatenate(ends), np.concatenate(gps), skipped, tuple(used), load_from_twin)


def mirror_samples(twin: Twin) -> tuple[Samples, dict[str, int]]:
    """The "real" Sim2Real samples of ``twin``'s mirror and the cell-periods skipped, by reason."""
    data = mirror_data(twin)
    return data.samples, data.skipped


def cluster_models(twin: Twin, clusters: tuple[str, ...] | None = None) -> list[ClusterModel]:
    """The twin's simulation model of each of ``clusters`` (default: all) that has positioned
    cells: the latest mirrored CM, the ``[predict]`` traffic model and seed, default simulator
    settings, as the runtime predicts with (``twin_samples`` input)."""
    cfg = twin.predict_config
    out = []
    for cid in clusters if clusters is not None else twin.clusters:
        cm = simulated_cm(twin.mirror(cid))
        if cm:
            cluster = cluster_from_mirror(cm, cluster_id=cid, scenario=cfg.scenario)
            out.append(ClusterModel(cluster, cfg.traffic_map(), cfg.seed, SimConfig()))
    return out


def time_split(period_end: npt.ArrayLike, held_out: float = 0.2) -> tuple[IntArray, IntArray]:
    """(train rows, held-out rows): the last ``held_out`` share of the distinct period ends (at
    least one when there are two or more) is held out; a single period is all training.

    >>> train, test = time_split([10, 10, 20, 30, 40, 50])
    >>> train.tolist(), test.tolist()
    ([0, 1, 2, 3, 4], [5])
    """
    ends = np.asarray(period_end, dtype=np.int64)
    if not 0.0 <= held_out < 1.0:
        raise ValueError(f"held_out={held_out!r} must be in [0, 1) (the share of periods held out)")
    distinct = np.unique(ends)
    n_test = 0 if len(distinct) < 2 or held_out == 0 else max(1, round(held_out * len(distinct)))
    if n_test == 0:
        return np.arange(len(ends), dtype=np.int64), np.zeros(0, dtype=np.int64)
    cutoff = distinct[len(distinct) - n_test]
    return np.flatnonzero(ends < cutoff).astype(np.int64), np.flatnonzero(ends >= cutoff).astype(np.int64)
