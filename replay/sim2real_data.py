"""Sim2Real data from the emulated network: "real" samples collected the way a live network gives
them, and the hidden truth a benchmark scores against.

* :func:`real_samples` runs the emulator period by period, its OSS making small CM changes only
  (each period a share of the cells moves to a random value inside a narrow :class:`Band` around
  the planned configuration), and keeps one row per cell built from what the network publishes:
  the CM in effect, the period's PM (with the emulator's measurement noise) and its hour;
* :func:`truth_samples` evaluates the same network's hidden truth for configurations the
  operator never ran (outside the band), with the same measurement noise: what the network would
  have reported;
* :func:`twin_models` gives the twin's public model of each scenario (``twin_samples`` input).

Only a benchmark reads the truth (``emu.physics``); the twin never does.

>>> from datetime import UTC, datetime
>>> emu = NetworkEmulator("suburban-quiet", seed=0, start=datetime(2024, 3, 1, tzinfo=UTC), granularity_s=3600,
...                       mr_per_cell=0)
>>> data = real_samples(emu, periods=2, band=Band(), seed=0)
>>> len(data.samples), data.periods[1].index
(42, 1)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from replay.emulator import NetworkEmulator
from replay.emulator.cm import owner_class
from replay.emulator.emulator import period_hour
from replay.emulator.oss import PendingChange
from replay.emulator.records import pm_records
from replay.emulator.scenario import Event
from twin.sim.cm import apply_cm_to_sector
from twin.sim.kpis import CONN
from twin.sim.topology import Sector
from twin.sim2real import TARGETS, ClusterModel, Ranges, Samples, cell_features

__all__ = ["Band", "PeriodReports", "RealData", "RealPeriod", "in_band", "out_of_band", "real_samples", "truth_samples",
           "truth_state", "twin_models"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Band:
    """The narrow band of CM an operator runs: ``tilt_deg``, ``power_dbm``, ``cio_db`` ranges
    around the planned values; ``change_share`` of the cells get a new value each period."""

    tilt_deg: tuple[float, float] = (3.0, 5.0)
    power_dbm: tuple[float, float] = (45.0, 47.0)
    cio_db: tuple[float, float] = (-1.0, 1.0)
    change_share: float = 0.3


@dataclass(frozen=True)
class RealPeriod:
    """A collected period: its ``index``, middle (hours since the start) and ``hour`` of day, the
    events ``active`` in it, the public sectors in effect (cell-key order), the measured connected
    UEs of the cluster and of each cell (``RRC.ConnMean``) and the rows of its samples."""

    index: int
    mid_hours: float
    hour: float
    active: tuple[Event, ...]
    public: tuple[Sector, ...]
    connected: float
    cell_ues: tuple[float, ...]
    rows: tuple[int, int]


@dataclass(frozen=True)
class RealData:
    """The samples (measured PM as labels), the noiseless truth of the same rows [N, TARGETS],
    and the periods."""

    samples: Samples
    truth: FloatArray
    periods: list[RealPeriod]


def twin_models(emulators: Sequence[NetworkEmulator], realisations: int = 1) -> list[ClusterModel]:
    """The twin's public model of each emulated network (what ``public_model`` describes), in
    ``realisations`` draws each (model seeds ``seed``, ``seed + 1``, ...: other UE drops and
    shadowing maps of the same public description; the first is the one the runtime simulates)."""
    if isinstance(realisations, bool) or not isinstance(realisations, int) or realisations < 1:
        raise ValueError(f"realisations={realisations!r} must be a positive integer")
    return [ClusterModel(e.public_cluster, e.scenario.model.traffic_map(), seed=e.scenario.model.seed + i,
                         config=e.physics.config) for i in range(realisations) for e in emulators]


def _band_value(attribute: str, band: Band, rng: np.random.Generator) -> int:
    if attribute == "digitalTilt":
        return round(10 * rng.uniform(*band.tilt_deg))
    if attribute == "configuredMaxTxPower":
        return round(10 ** (rng.uniform(*band.power_dbm) / 10.0))
    return int(rng.integers(int(band.cio_db[0]), int(band.cio_db[1]) + 1))


@dataclass(frozen=True)
class PeriodReports:
    """The located UE reports (``MrEvent``) of one collected period, with the public sectors, hour
    and events it ran with."""

    index: int
    public: tuple[Sector, ...]
    hour: float
    active: tuple[Event, ...]
    reports: tuple[Any, ...]


def real_samples(emu: NetworkEmulator, periods: int, band: Band, seed: int = 0,
                 reports: list[PeriodReports] | None = None) -> RealData:
    """Step ``emu`` ``periods`` times, its OSS moving ``band.change_share`` of the cells to new
    values inside ``band`` before each period; one row per cell and period from what it publishes.
    ``reports``, when given, receives each period's UE reports (``emu.mr_per_cell`` a cell)."""
    rng = np.random.default_rng([seed, 0xBA4D])
    keys = emu.cells
    env = np.arange(len(keys), dtype=np.int64)
    envs = tuple(f"{emu.cluster_id}/{k}" for k in keys)
    xs, ys, truths, out = [], [], [], []
    attrs = ("digitalTilt", "configuredMaxTxPower", "cellIndividualOffset")
    for p in range(periods):
        when = emu.period_end
        for k in keys:
            if rng.random() < band.change_share:
                attr = attrs[int(rng.integers(0, len(attrs)))]
                cls = owner_class(attr)
                assert cls is not None
                cid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sim2real:{emu.cluster_id}:{seed}:{p}:{k}"))
                emu.schedule(PendingChange(cid, k, cls, attr, _band_value(attr, band, rng), when, "oss"))
        step = emu.step_detail()
        assert step.state is not None
        mid = ((step.period_start - emu.start).total_seconds() + emu.granularity_s / 2.0) / 3600.0
        public = tuple(emu.public_sector(k) for k in keys)
        hour = period_hour(step.period_end, emu.granularity_s)
        pm = {r.cell_key: r.values for r in step.pm}
        cell_ues = tuple(float(pm[k].get(CONN, 0.0)) for k in keys)
        connected = float(sum(cell_ues))
        xs.append(cell_features(public, hour, connected, cell_ues))
        ys.append(np.array([[pm[k].get(t, 0.0) for t in TARGETS] for k in keys]))
        truths.append(np.stack([step.state.result.kpi.values[t][: len(keys)] for t in TARGETS], axis=1))
        start = len(keys) * p
        active = tuple(ev for ev in emu.scenario.events if ev.active(mid))
        out.append(RealPeriod(p, mid, hour, active, public, connected, cell_ues, (start, start + len(keys))))
        if reports is not None:
            reports.append(PeriodReports(p, public, hour, active, tuple(step.mr)))
    samples = Samples(np.concatenate(xs), np.concatenate(ys), np.tile(env, periods), envs)
    return RealData(samples, np.concatenate(truths), out)


def out_of_band(band: Band, rng: np.random.Generator, ranges: Ranges | None = None) -> dict[str, Any]:
    """A random CM setting of one cell over the twin's ``ranges`` with its tilt, power or CIO (at
    least one) outside ``band``: the configurations a live network never showed."""
    r = ranges or Ranges()
    while True:
        tilt, power = rng.uniform(*r.tilt_deg), rng.uniform(*r.power_dbm)
        cio = int(rng.integers(int(r.cio_db[0]), int(r.cio_db[1]) + 1))
        inside = (band.tilt_deg[0] <= round(tilt, 1) <= band.tilt_deg[1]
                  and band.power_dbm[0] <= power <= band.power_dbm[1] and band.cio_db[0] <= cio <= band.cio_db[1])
        if not inside:
            return {"digitalTilt": round(10 * tilt), "configuredMaxTxPower": round(10 ** (power / 10.0)),
                    "cellIndividualOffset": cio}


def in_band(x: FloatArray, band: Band) -> npt.NDArray[np.bool_]:
    """Rows of feature matrix ``x`` whose own tilt, power and CIO are all inside ``band``."""
    from twin.sim2real import FEATURES

    def inside(name: str, lo_hi: tuple[float, float]) -> npt.NDArray[np.bool_]:
        v = x[:, FEATURES.index(name)]
        return np.asarray((v >= lo_hi[0] - 1e-6) & (v <= lo_hi[1] + 1e-6))

    return inside("tilt_deg", band.tilt_deg) & inside("power_dbm", band.power_dbm) & inside("cio_db", band.cio_db)


def truth_state(emu: NetworkEmulator, period: RealPeriod, cm: dict[str, dict[str, Any]]
                ) -> tuple[tuple[Sector, ...], Any]:
    """The sectors of ``period`` with ``cm`` (cell -> attributes) applied, and ``emu``'s hidden
    truth evaluated on them at the period's hour and events (``emu`` may be another draw of the
    scenario the period came from: the same sites and events)."""
    moved = tuple(apply_cm_to_sector(s, cm.get(s.cell_key, {}), strict=True) for s in period.public)
    return moved, emu.physics.evaluate(moved, period.hour, list(period.active))


def truth_samples(emu: NetworkEmulator, period: RealPeriod, cm: dict[str, dict[str, Any]],
                  rng: np.random.Generator) -> tuple[Samples, FloatArray]:
    """What the network would have reported in ``period`` had ``cm`` (cell -> attributes) been in
    effect: rows whose state and reference are the period as it ran and whose candidate is ``cm``,
    labelled from the hidden truth with the emulator's PM noise; and the noiseless truth."""
    keys = emu.cells
    moved, state = truth_state(emu, period, cm)
    end = emu.start + timedelta(hours=period.mid_hours, seconds=emu.granularity_s / 2.0)
    dns = {k: emu.dn(k) for k in keys}
    pm = {r.cell_key: r.values for r in pm_records(state, keys, dns, end, emu.granularity_s, emu.scenario, rng)}
    x = cell_features(moved, period.hour, period.connected, period.cell_ues, reference=period.public)
    y = np.array([[pm[k].get(t, 0.0) for t in TARGETS] for k in keys])
    truth = np.stack([state.result.kpi.values[t][: len(keys)] for t in TARGETS], axis=1)
    envs = tuple(f"{emu.cluster_id}/{k}" for k in keys)
    return Samples(x, y, np.arange(len(keys), dtype=np.int64), envs), truth
