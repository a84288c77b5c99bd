"""System identification: fit what changed in a cluster's calibration (``twin.resync.calibration``)
to what its cells reported since a divergence episode started.

**Difference in differences.** The twin's model never matched the network exactly (hidden
shadowing, building loss, antenna errors): the gap learners know that old mismatch. A resync must
find what *changed*, not re-explain the old mismatch, so the objective compares the residuals of
the periods since the episode started with each cell's mean residual over the periods just before
it (under the calibration then in force): for the episode's cells, connected UEs and PRB load
(weight 1), throughput (0.25), the mean SS-SINR (0.5 per 3 dB) and the mean SS-RSRP (0.1 per
3 dB); for the other cells, connected UEs and PRB load (0.5: UEs a failing cell loses go to its
neighbours), the mean SS-SINR (0.2: a neighbour's antenna interferes less or more) and the mean
SS-RSRP (0.1: a change of the cluster's path loss shows in every cell). Residuals are the gap
learners' (log-ratio with floors, ``twin.gap.target``); the traffic is scaled per period to the
connected UEs the cluster reported, exactly as a prediction is.

A weak prior pulls every parameter toward no change; the traffic scale's is the firmest (a
change of 30 % costs as much as one of 60 dB gain): in one period a cell that lost gain and one
whose traffic fell look alike in their UEs and load, and only the radio levels tell them apart.
Measured on six antenna faults (-15 and -4 dB, three seeds of fault-midrun, the trigger's
period as evidence): the SS-SINR term and this prior took the fitted gain's mean error from
1.7 dB (largest 3.0) to 0.7 dB (largest 1.5).

**Places.** With located UE reports (``twin.mirror.radio_map``) each cell's SS-RSRP change at the
places it was heard measures its gain and azimuth change and the cluster's path loss directly
(``radio_model_db``), so a cell heard at ``MIN_PLACES`` places or more has its traffic scale's
prior loosened a hundredfold (``_PLACED_TRAFFIC_PRIOR_SCALE``: its places, not the prior, tell a
lost gain from lost traffic); and the change of the interference plus noise its UEs heard at their
places (SS-RSRP minus SS-SINR) measures its **interference margin**, which is fitted only for
cells with such places (the aggregates cannot tell an interferer from a change of load or UE mix).

**Search.** Per episode cell a gain change (dB), an azimuth change (degrees), a traffic scale
change and, with interference places, an interference margin change (dB); per cluster a
path-loss change (dB). The model is piecewise constant in them (each of its
UE points switches serving cell at some value), which stalls finite-difference gradients (scipy's
``least_squares`` stopped at its start on one- and two-period windows), so the sum of squares is
minimised by a coordinate search: a coarse grid per parameter, then a fine grid around the best,
two rounds, the episode's cells in the order of their misfit under the calibration in force (the
cell that moved most first: searched after its neighbours, a -15 dB fault was fitted as -12 dB
plus a few dB on the neighbours; eight captured faults: mean gain error 1.6 -> 1.1 dB). A few
hundred model evaluations: seconds for a 21-cell cluster.

>>> from twin.resync.calibration import Calibration
>>> FitResult(Calibration(), Calibration(), 1.0, 0.5, 3, 12, 0.2, {}).improved
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from twin.gap.target import LEVEL_KPIS, RATIO_KPIS, RSRP_MEAN, SINR_MEAN, level_means, residual
from twin.mirror.radio_map import interfered_cell
from twin.resync.calibration import BOUNDS, Calibration, CellCalibration
from twin.sim.antenna import antenna_gain_db
from twin.sim.kpis import CONN, PRB, THP
from twin.sim.simulator import SimResult, Simulator
from twin.sim.topology import Sector

__all__ = ["MIN_PLACES", "PRIOR_WEIGHT", "RADIO_RESOLUTION_DB", "RADIO_WEIGHT", "Evidence", "FitResult", "RadioPlaces",
           "change_error", "fit_change", "predict_window", "radio_excess", "radio_model_db", "radio_visible",
           "residuals", "split_places"]

_OWN = {CONN: 1.0, PRB: 1.0, THP: 0.25, RSRP_MEAN: 0.1, SINR_MEAN: 0.5}
_OTHER = {CONN: 0.5, PRB: 0.5, RSRP_MEAN: 0.1, SINR_MEAN: 0.2}
_LEVEL_UNIT_DB = 3.0
#: the weak prior: (change / scale) squared per parameter, times PRIOR_WEIGHT, added to the cost
_PRIOR_SCALE = {"gain_db": 60.0, "azimuth_deg": 30.0, "log_traffic": 0.3, "pathloss_db": 10.0,
                "interference_db": 60.0}
PRIOR_WEIGHT = 0.02
#: the traffic scale's prior for a cell whose located reports pin its gain and azimuth
_PLACED_TRAFFIC_PRIOR_SCALE = 3.0
# (coarse grid, fine step) per parameter; the fine grid spans one coarse step either side
_GRID = {
    "gain_db": (np.arange(-30.0, 10.01, 2.5), 0.5),
    "azimuth_deg": (np.arange(-60.0, 60.01, 10.0), 2.0),
    "log_traffic": (np.arange(-1.5, 1.51, 0.25), 0.05),
    "pathloss_db": (np.arange(-8.0, 8.01, 2.0), 0.5),
    "interference_db": (np.arange(-30.0, 30.01, 3.0), 0.5),
}


@dataclass(frozen=True)
class Evidence:
    """What the cluster reported in one period: ``real[cell][kpi]`` (the gap KPIs) and the total
    connected UEs the twin's traffic is scaled to; ``changed``: the period is after the start of
    the divergence episode (the change being fitted is in force), else one just before it."""

    period_end: int
    real: Mapping[str, Mapping[str, float]]
    connected_total: float
    changed: bool = True


@dataclass(frozen=True)
class RadioPlaces:
    """One measured cell's change of SS-RSRP at each place it was heard both before the episode and
    since (``twin.mirror.radio_map.RadioChange``), in the simulator's frame: ``x_m``, ``y_m``
    [places] (m), ``delta_db`` [places] (since minus before), ``weight`` [places] (the reports
    behind the difference: 1 / (1 / before + 1 / since))."""

    x_m: npt.NDArray[np.float64]
    y_m: npt.NDArray[np.float64]
    delta_db: npt.NDArray[np.float64]
    weight: npt.NDArray[np.float64]


#: a cell's places enter the fit from this many on (fewer: one odd report would steer its gain)
MIN_PLACES = 5
#: weight of the per-place term against the aggregates' (both dimensionless: levels in 3 dB units)
RADIO_WEIGHT = 0.2
_RADIO_REPORTS = 20.0  # a cell's term is its places' summed misfit over this: more reports, more weight
#: per cell, what fitting its gain and azimuth to the places' noise alone lowers the misfit by (about
#: two, one per parameter, for places of one report each): a resync is not credited with it
_RADIO_ALLOWANCE = 0.1
_RADIO_HUBER = 2.0  # in 3 dB units: beyond 6 dB a place counts linearly (two UEs in one bin, a bad fix)
_UE_HEIGHT_M = 1.5


def radio_model_db(sector: Sector, places: RadioPlaces, gain_db: float, azimuth_deg: float,
                   pathloss_db: float) -> npt.NDArray[np.float64]:
    """[places] the change of the sector's SS-RSRP at each place (dB) when its gain changes by
    ``gain_db``, its azimuth by ``azimuth_deg`` (degrees, clockwise) and the cluster's path loss by
    ``pathloss_db``: what a place's own path, building and shadowing leave unchanged.

    >>> s = Sector("nr:a", "1", 0.0, 0.0, azimuth_deg=90.0)  # facing east
    >>> p = RadioPlaces(np.array([300.0, 0.0]), np.array([0.0, 300.0]), np.zeros(2), np.ones(2))
    >>> radio_model_db(s, p, -15.0, 0.0, 0.0).round(1).tolist()
    [-15.0, -15.0]
    >>> d = radio_model_db(s, p, 0.0, -40.0, 0.0)  # turned 40 degrees toward the north
    >>> bool(d[0] < -3.0 and d[1] > 3.0)
    True
    """
    dx, dy = places.x_m - sector.x_m, places.y_m - sector.y_m
    zenith = 90.0 + np.degrees(np.arctan2(sector.height_m - _UE_HEIGHT_M, np.hypot(dx, dy)))
    direction = np.degrees(np.arctan2(dy, dx))

    def gain(azimuth: float) -> npt.NDArray[np.float64]:
        return antenna_gain_db(zenith, direction, azimuth, sector.mech_tilt_deg, sector.elec_tilt_deg,
                               sector.v_beamwidth_deg, sector.h_beamwidth_deg, sector.max_gain_dbi)

    turned = gain(sector.azimuth_deg + azimuth_deg) - gain(sector.azimuth_deg) if azimuth_deg else 0.0
    return np.full(len(places.x_m), gain_db - pathloss_db, dtype=np.float64) + turned


def _huber(u: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    a = np.abs(u)
    return np.where(a <= _RADIO_HUBER, u * u, 2.0 * _RADIO_HUBER * a - _RADIO_HUBER ** 2)


def _radio_part(sector: Sector, places: RadioPlaces, gain_db: float, azimuth_deg: float, pathloss_db: float) -> float:
    """One cell's Huber misfit of its per-place changes (levels in 3 dB units), summed with each
    place's weight (its reports) and divided by ``_RADIO_REPORTS``: a likelihood, so a cell heard
    at few places cannot steer its azimuth as firmly as one heard at many."""
    misfit = (places.delta_db - radio_model_db(sector, places, gain_db, azimuth_deg, pathloss_db)) / _LEVEL_UNIT_DB
    return float(np.sum(places.weight * _huber(misfit))) / _RADIO_REPORTS


def _bounded(name: str, value: float) -> float:
    """``value`` held within the range ``BOUNDS`` gives the calibration parameter ``name``."""
    lo, hi = BOUNDS[name]
    return min(max(value, lo), hi)


def _interference_part(places: RadioPlaces, margin_change_db: float) -> float:
    """One cell's Huber misfit of its UEs' interference-plus-noise changes at their places against a
    margin change of ``margin_change_db`` (the margin raises every place's level by as much), as
    ``_radio_part``."""
    return float(np.sum(places.weight * _huber((places.delta_db - margin_change_db) / _LEVEL_UNIT_DB))) / _RADIO_REPORTS


def _interference_floor(places: RadioPlaces, margin_db: float) -> float:
    """The least misfit any margin (from ``margin_db`` in force) leaves: the places' noise."""
    lo, hi = BOUNDS["interference_db"]
    return min(_interference_part(places, float(m) - margin_db) for m in np.arange(lo, hi + 0.01, 0.5))


def split_places(radio: Mapping[str, RadioPlaces]) -> tuple[dict[str, RadioPlaces], dict[str, RadioPlaces]]:
    """``radio`` (``twin.mirror.radio_map`` keys) as the cells' SS-RSRP places and, by serving cell,
    their interference-plus-noise places, each with at least ``MIN_PLACES`` places."""
    rsrp, heard = {}, {}
    for key, pl in radio.items():
        if len(pl.delta_db) < MIN_PLACES:
            continue
        cell = interfered_cell(key)
        if cell is None:
            rsrp[key] = pl
        else:
            heard[cell] = pl
    return rsrp, heard


def _radio_floor(sector: Sector, places: RadioPlaces) -> float:
    """The least misfit any change of the cell's own gain and azimuth leaves (its places' noise:
    two UEs in one bin, the reports' own error): what a resync cannot be asked to remove."""
    best = math.inf
    for turn in np.arange(-60.0, 60.01, 2.0):
        turned = radio_model_db(sector, places, 0.0, float(turn), 0.0)
        gain = float(np.median(places.delta_db - turned))
        best = min(best, _radio_part(sector, places, gain, float(turn), 0.0))
    return best


def _rsrp_floor(sector: Sector, places: RadioPlaces) -> float:
    """What a resync is not credited with on a cell's SS-RSRP places: the least misfit any change of
    its own gain and azimuth leaves (or none, if lower) plus what fitting those two parameters to
    the places' noise alone gains (``_RADIO_ALLOWANCE``)."""
    return min(_radio_floor(sector, places), _radio_part(sector, places, 0.0, 0.0, 0.0)) + _RADIO_ALLOWANCE


def _heard_floor(places: RadioPlaces, margin_db: float) -> float:
    """The same for a cell's interference places under the margin ``margin_db`` in force (one
    parameter: half the allowance)."""
    return min(_interference_floor(places, margin_db), _interference_part(places, 0.0)) + _RADIO_ALLOWANCE / 2


#: a change below this (dB, at a cell's places) is within the places' noise: a verification does not judge it there
RADIO_RESOLUTION_DB = 1.0


def radio_visible(sim: Simulator, places: Mapping[str, RadioPlaces], start: Calibration,
                  change: Mapping[str, Mapping[str, float]], cells: Collection[str]) -> list[str]:
    """The cells of ``cells`` whose ``change`` moves the model at their places by at least
    ``RADIO_RESOLUTION_DB`` on average (SS-RSRP places: gain, azimuth and path loss; interference
    places: the margin): the only ones whose places can judge it. With one report per place and
    2-3 dB of report noise, a fit's 0.5 dB or 2 degrees moved a verification's radio term by more
    than the aggregates' whole difference, either way."""
    index = {k: i for i, k in enumerate(sim.cluster.cell_keys)}
    rsrp, heard = split_places(places)
    pathloss = float(change.get("cluster", {}).get("pathlossDb", 0.0))
    out = []
    for c in cells:
        moved = change.get(c, {})
        seen = []
        if c in rsrp and c in index:
            sector = sim.cluster.sectors[index[c]]
            sector = replace(sector, azimuth_deg=sector.azimuth_deg + start.cell(c).azimuth_deg)
            model = radio_model_db(sector, rsrp[c], float(moved.get("gainDb", 0.0)),
                                   float(moved.get("azimuthDeg", 0.0)), pathloss)
            seen.append(float(np.average(np.abs(model), weights=rsrp[c].weight)))
        if c in heard:
            seen.append(abs(float(moved.get("interferenceDb", 0.0))))
        if seen and max(seen) >= RADIO_RESOLUTION_DB:
            out.append(c)
    return out


def radio_excess(sim: Simulator, places: Mapping[str, RadioPlaces], start: Calibration,
                 change: Mapping[str, Mapping[str, float]], cells: Collection[str]) -> float | None:
    """The radio part of the error a resync must lower (``FitResult.error_before`` and
    ``error_after``), on the places of one period: for each of ``cells`` (the episode's) with at
    least ``MIN_PLACES`` places, the misfit of its SS-RSRP places and of its UEs' interference
    places under ``change`` (``FitResult.change``: per cell ``gainDb``, ``azimuthDeg``,
    ``interferenceDb``, ``cluster.pathlossDb``; ``{}`` is no change) on top of ``start``, each above
    its floor (the places' noise, which no change removes), times ``RADIO_WEIGHT``. None without
    such places. A resync's verification adds it to each later period's error, with and without the
    change: the places' noise cancels, a change they show does not."""
    index = {k: i for i, k in enumerate(sim.cluster.cell_keys)}
    rsrp, heard = split_places(places)
    used = {c: p for c, p in rsrp.items() if c in index and c in cells}
    margins = {c: p for c, p in heard.items() if c in index and c in cells}
    if not used and not margins:
        return None
    pathloss = float(change.get("cluster", {}).get("pathlossDb", 0.0))
    total = 0.0
    for c, pl in used.items():
        sector = sim.cluster.sectors[index[c]]
        sector = replace(sector, azimuth_deg=sector.azimuth_deg + start.cell(c).azimuth_deg)
        moved = change.get(c, {})
        misfit = _radio_part(sector, pl, float(moved.get("gainDb", 0.0)), float(moved.get("azimuthDeg", 0.0)),
                             pathloss)
        total += max(misfit - _rsrp_floor(sector, pl), 0.0)
    for c, pl in margins.items():
        now = start.cell(c).interference_db
        after = _bounded("interference_db", now + float(change.get(c, {}).get("interferenceDb", 0.0)))
        total += max(_interference_part(pl, after - now) - _heard_floor(pl, now), 0.0)
    return RADIO_WEIGHT * total


@dataclass(frozen=True)
class FitResult:
    before: Calibration  # in force before the resync
    after: Calibration  # fitted: in force now
    error_before: float  # weighted mean squared residual change, on the periods since the episode began
    error_after: float
    evaluations: int
    observations: int
    seconds: float
    change: Mapping[str, Mapping[str, float]]  # per cell: gainDb, azimuthDeg, trafficScale; "pathlossDb"
    #: per cell and KPI the mean residual of the periods before the episode, under ``before`` (what
    #: the verification compares later periods with: ``change_error``)
    baseline: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @property
    def improved(self) -> bool:
        return self.error_after < self.error_before


def predict_window(sim: Simulator, cal: Calibration, home: npt.NDArray[np.int64],
             evidence: Sequence[Evidence]) -> list[SimResult]:
    """The twin's model of every period of ``evidence`` under ``cal``."""
    overlay = cal.cm_overlay(sim.cluster.sectors)
    factor = cal.ue_factor(sim.cluster.cell_keys, home)
    rise = cal.interference_rise_db(sim.cluster.cell_keys, home)
    unit = sim.evaluate(cm=overlay, ue_scale=factor, extra_loss_db=cal.pathloss_db, interference_rise_db=rise)
    base = float(np.sum(np.where(unit.ue.connected, sim.ues.weight * factor, 0.0)))
    return [sim.evaluate(cm=overlay, ue_scale=(ev.connected_total / base if base > 0 else 0.0) * factor,
                         extra_loss_db=cal.pathloss_db, interference_rise_db=rise) for ev in evidence]


def residuals(sim: Simulator, cal: Calibration, home: npt.NDArray[np.int64],
              evidence: Sequence[Evidence]) -> dict[tuple[str, str], list[float]]:
    """``(cell, kpi) -> [residual per period]`` of ``cal`` on ``evidence`` (real against model)."""
    out: dict[tuple[str, str], list[float]] = {}
    for ev, result in zip(evidence, predict_window(sim, cal, home, evidence), strict=True):
        kpi = result.kpi
        for i, key in enumerate(result.cell_keys):
            real = ev.real.get(key)
            if not real:
                continue
            for name in RATIO_KPIS:
                if name in real and np.isfinite(kpi.values[name][i]):
                    out.setdefault((key, name), []).append(residual(name, float(kpi.values[name][i]), real[name]))
            levels = level_means(kpi.rsrp_bins[i], kpi.sinr_bins[i])
            for name in LEVEL_KPIS:
                if name in real and name in levels:
                    out.setdefault((key, name), []).append((real[name] - levels[name]) / _LEVEL_UNIT_DB)
    return out


def fit_change(sim: Simulator, evidence: Sequence[Evidence], cells: Sequence[str],
               start: Calibration | None = None, home: npt.NDArray[np.int64] | None = None,
               clock: Callable[[], float] = time.perf_counter,
               radio: Mapping[str, RadioPlaces] | None = None) -> FitResult:
    """Fit the change of ``cells``' gain, azimuth, traffic scale and (where measured) interference
    margin and of the cluster's path loss since the episode began, on top of ``start`` (the
    calibration in force).

    ``evidence``: periods since the episode began (``changed``) and, for the old mismatch, periods
    just before it; ``sim``: the twin's simulator of the cluster (the CM in effect over the
    window); ``home``: the serving cell of each UE point in the uncalibrated model (default:
    evaluated here); ``radio``: per measured cell, its SS-RSRP change at the places it was heard
    before and since the episode began (``RadioPlaces``; cells with at least ``MIN_PLACES``): a
    direct measure of its gain and azimuth change and of the cluster's path loss change, added to
    the cost with ``RADIO_WEIGHT`` (Huber beyond 6 dB); under ``interference_key(cell)`` the change
    of the interference plus noise the cell's UEs heard at their places, which gives an episode
    cell its interference margin parameter. Raises ``ValueError`` without changed periods or with a
    cell the simulator does not have.
    """
    t0 = clock()
    start = start or Calibration()
    keys = sim.cluster.cell_keys
    unknown = [c for c in cells if c not in keys]
    if unknown:
        raise ValueError(f"cells {unknown} are not in the simulated cluster {sim.cluster.cluster_id!r}")
    after_ev = [e for e in evidence if e.changed]
    before_ev = [e for e in evidence if not e.changed]
    if not after_ev:
        raise ValueError("no evidence: a fit needs at least one period reported since the episode began")
    if home is None:
        home = sim.evaluate().ue.serving
    own = set(cells)
    old = {k: float(np.mean(v)) for k, v in residuals(sim, start, home, before_ev).items()} if before_ev else {}
    evaluations = 0
    observations = 0

    def cost(cal: Calibration, per_cell: dict[str, float] | None = None) -> float:
        nonlocal evaluations, observations
        evaluations += 1
        total, n = 0.0, 0
        for (cell, kpi), values in residuals(sim, cal, home, after_ev).items():
            weight = (_OWN if cell in own else _OTHER).get(kpi)
            if weight is None:
                continue
            base = old.get((cell, kpi), 0.0)
            part = weight * sum((v - base) ** 2 for v in values)
            total += part
            n += len(values)
            if per_cell is not None:
                per_cell[cell] = per_cell.get(cell, 0.0) + part
        observations = n
        return total / max(n, 1)

    index = {k: i for i, k in enumerate(keys)}
    rsrp_places, heard_places = split_places(radio or {})
    places = {c: v for c, v in rsrp_places.items() if c in index}
    # the interference margin is fitted only where the data supports it: an episode cell whose UEs'
    # interference plus noise was measured at enough places (aggregates cannot tell it from load)
    heard = {c: v for c, v in heard_places.items() if c in own}
    memo: dict[tuple[str, float, float, float], float] = {}

    def sector_of(c: str) -> Sector:
        sector = sim.cluster.sectors[index[c]]
        return replace(sector, azimuth_deg=sector.azimuth_deg + start.cell(c).azimuth_deg)

    def places_excess(change: Mapping[str, Mapping[str, float]]) -> float:
        """The places' part of the error a resync must lower: the episode's cells' places only (the
        other cells' places hold the path loss in the search, but their noise would swamp a change
        the aggregates show), each above its floor (``radio_excess``)."""
        return radio_excess(sim, radio or {}, start, change, own) or 0.0

    def interference_cost(c: str, margin_change: float) -> float:
        now = start.cell(c).interference_db
        return _interference_part(heard[c], _bounded("interference_db", now + margin_change) - now)

    def radio_cost(p: Mapping[str, float]) -> float:
        """Per measured cell, its places' Huber misfit, summed."""
        total = 0.0
        for c, pl in places.items():
            moved = c in own
            gain, turn = (p[f"{c}|gain_db"], p[f"{c}|azimuth_deg"]) if moved else (0.0, 0.0)
            key = (c, gain, turn, p["pathloss_db"])
            part = memo.get(key)
            if part is None:
                part = memo[key] = _radio_part(sector_of(c), pl, gain, turn, p["pathloss_db"])
            total += part
        for c in heard:
            total += interference_cost(c, p.get(f"{c}|interference_db", 0.0))
        return RADIO_WEIGHT * total

    def prior_scale(name: str) -> float:
        cell, _, kind = name.rpartition("|")
        if kind == "log_traffic" and cell in places:  # its places pin its gain: the traffic may move freely
            return _PLACED_TRAFFIC_PRIOR_SCALE
        return _PRIOR_SCALE[kind]

    scored: dict[tuple[float, ...], float] = {}  # the search revisits points (about one in eight)

    def penalised(p: Mapping[str, float]) -> float:
        """The cost plus a weak prior toward no change (where the data cannot tell, nothing changed),
        plus the per-place radio term when located reports were kept."""
        point = tuple(p[name] for name in params)
        known = scored.get(point)
        if known is not None:
            return known
        prior = sum((value / prior_scale(name)) ** 2 for name, value in p.items())
        radio_part = radio_cost(p) if places or heard else 0.0
        scored[point] = value = cost(calibration(p)) + PRIOR_WEIGHT * prior + radio_part
        return value

    misfit: dict[str, float] = {}
    # the error a resync must lower: the aggregates' and, with located reports, the per-place term
    # above its floor (the places' own noise, which no change removes)
    error_before = cost(start, misfit) + places_excess({})
    params: dict[str, float] = {"pathloss_db": 0.0}
    # the cell that moved most first: searched before it, its neighbours would take up part of its change
    for c in sorted(cells, key=lambda c: (-misfit.get(c, 0.0), c)):
        params[f"{c}|gain_db"] = params[f"{c}|azimuth_deg"] = params[f"{c}|log_traffic"] = 0.0
        if c in heard:
            params[f"{c}|interference_db"] = 0.0

    def calibration(p: Mapping[str, float]) -> Calibration:
        fitted = {}
        for c in cells:
            now = start.cell(c)
            fitted[c] = CellCalibration(
                _bounded("gain_db", now.gain_db + p[f"{c}|gain_db"]),
                _bounded("azimuth_deg", now.azimuth_deg + p[f"{c}|azimuth_deg"]),
                _bounded("traffic_scale", now.traffic_scale * math.exp(p[f"{c}|log_traffic"])),
                _bounded("interference_db", now.interference_db + p.get(f"{c}|interference_db", 0.0)))
        return start.with_cells(fitted, _bounded("pathloss_db", start.pathloss_db + p["pathloss_db"]))

    best = penalised(params)
    for _ in range(2):
        for name in params:
            kind = name.split("|")[-1]
            coarse, fine = _GRID[kind]
            step = float(coarse[1] - coarse[0])
            low = -start.cell(name.split("|")[0]).interference_db if kind == "interference_db" else -math.inf
            for grid in (coarse, np.arange(params[name] - step, params[name] + step + 1e-9, fine)):
                for value in grid:
                    if value < low - 1e-9:  # a margin below zero: the same model as zero
                        continue
                    trial = {**params, name: float(value)}
                    trial_cost = penalised(trial)
                    if trial_cost < best - 1e-12:
                        best, params = trial_cost, trial
    after = calibration(params)
    change: dict[str, dict[str, float]] = {
        c: {"gainDb": params[f"{c}|gain_db"], "azimuthDeg": params[f"{c}|azimuth_deg"],
            "trafficScale": math.exp(params[f"{c}|log_traffic"]),
            "interferenceDb": params.get(f"{c}|interference_db", 0.0)} for c in cells}
    change["cluster"] = {"pathlossDb": params["pathloss_db"]}
    error_after = cost(after) + places_excess(change)
    baseline: dict[str, dict[str, float]] = {}
    for (cell, kpi), value in old.items():
        baseline.setdefault(cell, {})[kpi] = round(value, 6)
    return FitResult(start, after, error_before, error_after, evaluations, observations, clock() - t0, change,
                     baseline)


def change_error(values: Mapping[str, Mapping[str, float]], real: Mapping[str, Mapping[str, float]],
                 baseline: Mapping[str, Mapping[str, float]], own: Collection[str]) -> float | None:
    """The fit's objective on one later period: the weighted mean squared change of each cell's
    residual (``values`` predicted, ``real`` reported; gap KPIs) from its ``baseline`` before the
    episode, the ``own`` cells (the episode's) weighted as in the fit; ``None`` when no cell of
    ``baseline`` has both. A resync is verified by it rather than by the raw twin's error, which
    also carries the twin's old mismatch (on a hotspot cluster it hid an exact fit).

    >>> base = {"nr:a": {"RRC.ConnMean": 0.077}}  # 22 UEs reported where 20 were predicted: ln(27 / 25)
    >>> change_error({"nr:a": {"RRC.ConnMean": 20.0}}, {"nr:a": {"RRC.ConnMean": 22.0}}, base, ["nr:a"]) < 1e-4
    True
    >>> change_error({"nr:b": {"RRC.ConnMean": 20.0}}, {"nr:b": {"RRC.ConnMean": 22.0}}, base, ["nr:a"]) is None
    True
    """
    total, n = 0.0, 0
    for cell, base in baseline.items():
        model, seen = values.get(cell), real.get(cell)
        if not model or not seen:
            continue
        weights = _OWN if cell in own else _OTHER
        for kpi, reference in base.items():
            weight = weights.get(kpi)
            if weight is None or kpi not in model or kpi not in seen:
                continue
            if kpi in LEVEL_KPIS:
                value = (seen[kpi] - model[kpi]) / _LEVEL_UNIT_DB
            else:
                value = residual(kpi, model[kpi], seen[kpi])
            if math.isfinite(value):
                total += weight * (value - reference) ** 2
                n += 1
    return total / n if n else None
