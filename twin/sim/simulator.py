"""The cluster simulator: ``Simulator(cluster).evaluate(cm)`` and ``simulator.whatif(changes)``.

Construction drops the UEs and computes everything that no CM change touches: link geometry
(distances, angles), LoS draws, shadowing, O2I losses and path loss per cell. ``evaluate``
applies a CM view to the cluster's cells, computes antenna gains, RSRP, association, the
load-coupled SINR fixed point and the KPIs, and keeps that state as the baseline.
``whatif`` re-evaluates only what a change touches: the changed cells' gain rows (and path
loss rows if height or frequency changed), an incremental association from the cached best
two cells per UE, interference as the baseline's matrix product plus a low-rank correction,
and a fixed point warm-started from the baseline loads. All randomness comes from ``seed``.

>>> from twin.sim.topology import hex_cluster
>>> from twin.sim.traffic import TrafficMap
>>> sim = Simulator(hex_cluster(rings=1), TrafficMap(n_ues=600), seed=1)
>>> base = sim.evaluate()
>>> key = sim.cluster.cell_keys[0]
>>> wi = sim.whatif({key: {"digitalTilt": 120}})
>>> sorted(wi.deltas[key]) == sorted(KPI_NAMES)
True
>>> bool(wi.result.converged), sim.evaluate().kpis == base.kpis
(True, True)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from twin.sim.antenna import sector_gain_rows
from twin.sim.changes import normalise_changes
from twin.sim.cm import apply_cm_to_sector
from twin.sim.kpis import KPI_NAMES, KpiArrays, PowerModel, cell_kpis, pm_values
from twin.sim.link import LINK_MODELS, LinkModel, LinkModelName, default_link_model, n_prb, re_per_second
from twin.sim.propagation import LinkGeometry, PropagationModel, StatisticalPropagation
from twin.sim.radio import Top2, associate_with_changes, noise_psd_dbm_per_hz, solve_load, top2
from twin.sim.topology import CellArrays, Cluster, Sector
from twin.sim.traffic import TrafficMap, UePoints

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
CmView = Mapping[str, Mapping[str, Any]]

__all__ = ["KPI_NAMES", "ConvergenceWarning", "SimConfig", "SimResult", "Simulator", "WhatIfResult"]


class ConvergenceWarning(RuntimeWarning):
    """The load-coupling fixed point did not reach its tolerance within ``max_iter``."""


@dataclass(frozen=True)
class SimConfig:
    """Model parameters that are not CM.

    ``noise_figure_db`` UE noise figure; ``idle_load`` share of power an idle cell still
    radiates (SSB, PDCCH); a UE is connected when its serving SS-RSRP is at least
    ``min_rsrp_dbm``, its SS-SINR at least ``min_ss_sinr_db`` and its peak rate with every
    neighbour at full load at least ``min_peak_rate_bps`` (below that the link abstraction
    gives next to nothing and the UE would be in radio-link failure); ``layers`` MIMO layers
    per UE; ``link_model`` ``"table"`` (Sionna) or ``"shannon"``; ``mcs_table`` NR PDSCH MCS
    table of the link table;
    ``shadowing`` and ``o2i_model`` for the 38.901 propagation; ``tol`` and ``max_iter`` of the
    load fixed point.
    """

    noise_figure_db: float = 7.0
    idle_load: float = 0.1
    min_rsrp_dbm: float = -130.0
    min_ss_sinr_db: float = -10.0
    min_peak_rate_bps: float = 1e6
    layers: int = 1
    link_model: LinkModelName = "table"
    mcs_table: int = 1
    shadowing: bool = True
    o2i_model: Literal["low", "high"] = "low"
    tol: float = 1e-4
    max_iter: int = 200
    power_model: PowerModel = field(default_factory=PowerModel)

    def __post_init__(self) -> None:
        """Reject a bad value when the configuration is built, naming the field.

        >>> SimConfig(link_model="turbo")  # type: ignore[arg-type]
        Traceback (most recent call last):
        ...
        ValueError: SimConfig.link_model='turbo' is not one of 'table', 'shannon'
        >>> SimConfig(idle_load=1.5)
        Traceback (most recent call last):
        ...
        ValueError: SimConfig.idle_load=1.5 must be in 0..1
        """
        def bad(name: str, rule: str) -> ValueError:
            return ValueError(f"SimConfig.{name}={getattr(self, name)!r} {rule}")

        for name in ("noise_figure_db", "min_rsrp_dbm", "min_ss_sinr_db"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise bad(name, "must be a finite number")
        if not isinstance(self.idle_load, int | float) or not 0.0 <= self.idle_load <= 1.0:
            raise bad("idle_load", "must be in 0..1")
        if not isinstance(self.min_peak_rate_bps, int | float) or not self.min_peak_rate_bps >= 0:
            raise bad("min_peak_rate_bps", "must be >= 0")
        if self.link_model not in LINK_MODELS:
            raise bad("link_model", f"is not one of {', '.join(map(repr, LINK_MODELS))}")
        if self.o2i_model not in ("low", "high"):
            raise bad("o2i_model", "is not one of 'low', 'high'")
        for name, lo in (("layers", 1), ("mcs_table", 1), ("max_iter", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise bad(name, f"must be an integer >= {lo}")
        if self.mcs_table not in (1, 2):
            raise bad("mcs_table", "is not an NR PDSCH MCS table the link model ships (1 or 2)")
        if not isinstance(self.tol, int | float) or not 0.0 < self.tol < 1.0:
            raise bad("tol", "must be in (0, 1)")
        if not isinstance(self.shadowing, bool):
            raise bad("shadowing", "must be true or false")


@dataclass(frozen=True)
class UeResult:
    """Per-UE results, each [n_ues]: serving cell row, connected flag, RSRP (dBm) and
    SS-SINR (dB) of the serving cell, data SINR (dB), peak rate and throughput (bit/s)."""

    serving: IntArray
    connected: npt.NDArray[np.bool_]
    rsrp_dbm: FloatArray
    ss_sinr_db: FloatArray
    sinr_db: FloatArray
    rate_bps: FloatArray
    throughput_bps: FloatArray


@dataclass(frozen=True)
class SimResult:
    """KPIs of one simulated state of the cluster (see ``twin.sim.kpis`` for the names)."""

    cell_keys: tuple[str, ...]
    kpi: KpiArrays
    ue: UeResult
    load: FloatArray
    iterations: int
    converged: bool
    residual: float

    @property
    def kpis(self) -> dict[str, dict[str, float]]:
        """``{cell_key: {PM name: value}}`` for the scalar KPIs."""
        return {k: pm_values(self.kpi, i, bins=False) for i, k in enumerate(self.cell_keys)}

    def pm_values(self, cell_key: str, bins: bool = True) -> dict[str, float]:
        """One cell's KPIs with the non-zero distribution bins, as in ``ran.pm.cell.v1``."""
        if cell_key not in self.cell_keys:
            raise ValueError(f"unknown cell {cell_key!r}")
        return pm_values(self.kpi, self.cell_keys.index(cell_key), bins=bins)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kpis": self.kpis,
            "iterations": self.iterations,
            "converged": self.converged,
            "residual": self.residual,
        }


@dataclass(frozen=True)
class WhatIfResult:
    """A what-if: the changed state's KPIs, the baseline's, and their differences."""

    changes: dict[str, dict[str, Any]]
    result: SimResult
    baseline: SimResult

    @property
    def kpis(self) -> dict[str, dict[str, float]]:
        return self.result.kpis

    @property
    def deltas(self) -> dict[str, dict[str, float]]:
        """``{cell_key: {PM name: what-if - baseline}}``."""
        new, old = self.result.kpi.values, self.baseline.kpi.values
        return {
            k: {name: float(new[name][i] - old[name][i]) for name in KPI_NAMES}
            for i, k in enumerate(self.result.cell_keys)
        }


@dataclass
class _State:
    sectors: tuple[Sector, ...]
    cells: CellArrays
    loss: FloatArray  # [C, U] dB
    gain: FloatArray  # [C, U] dBi
    zenith: FloatArray  # [C, U] deg
    psd_dbm: FloatArray  # [C] dBm/Hz radiated
    p_re_dbm: FloatArray  # [C] dBm per RE
    layer: IntArray  # [C]
    n_layers: int
    rx32: npt.NDArray[np.float32]  # [C, U] mW/Hz at the UE, 0 for locked cells
    total_full: FloatArray  # [n_layers, U] mW/Hz of all active co-channel cells
    top2: Top2
    weight: FloatArray  # [U] connected UEs per point
    demand: FloatArray  # [U] offered DL load per connected UE, bit/s
    result: SimResult
    extra_loss: FloatArray  # [C] dB added to every link's path loss (``evaluate``'s ``extra_loss_db``)
    rise: FloatArray | None  # [U] dB, ``evaluate``'s interference rise (None: none)


def _same_inputs(st: _State, sectors: tuple[Sector, ...], weight: FloatArray, demand: FloatArray,
                 extra: FloatArray, rise: FloatArray | None) -> bool:
    """Are these the inputs ``st`` was evaluated from, value for value? A what-if sets its baseline
    by evaluating the period first (``twin.prediction``), and the optimiser asks hundreds of what-ifs
    of one period: those evaluations need not be computed again."""
    if st.sectors != sectors:
        return False
    if st.rise is None or rise is None:
        if st.rise is not rise:  # one of them has a rise
            return False
    elif not np.array_equal(st.rise, rise):
        return False
    return (np.array_equal(st.extra_loss, extra) and np.array_equal(st.weight, weight)
            and (st.demand is demand or np.array_equal(st.demand, demand)))


class Simulator:
    """Vectorised system-level simulator of one cluster.

    Input
    -----
    cluster: the cells (``twin.sim.topology.Cluster``)
    traffic: a ``TrafficMap`` to drop UEs from, fixed ``UePoints``, or ``None`` (5000 UEs)
    seed: all randomness (UE drop, LoS, shadowing, O2I) derives from it
    config: model parameters (``SimConfig``)
    propagation: a ``PropagationModel``; ``None`` builds the TR 38.901 statistical model
    link: a link model; ``None`` uses ``config.link_model``
    """

    #: rows of the antenna gains computed together (bounds the temporaries of large clusters)
    GAIN_BLOCK = 16

    def __init__(
        self,
        cluster: Cluster,
        traffic: TrafficMap | UePoints | None = None,
        seed: int = 0,
        config: SimConfig | None = None,
        propagation: PropagationModel | None = None,
        link: LinkModel | None = None,
    ) -> None:
        self.cluster = cluster
        self.config = config or SimConfig()
        self.seed = int(seed)
        self.traffic = traffic if isinstance(traffic, TrafficMap) else None
        if isinstance(traffic, UePoints):
            self.ues = traffic
        else:
            self.ues = (traffic or TrafficMap()).sample(cluster, seed=self.seed)
        self.link: LinkModel = link or default_link_model(self.config.link_model, self.config.mcs_table)
        self.noise_psd = 10 ** (noise_psd_dbm_per_hz(self.config.noise_figure_db) / 10.0)
        self._keys = cluster.cell_keys
        self._index = {k: i for i, k in enumerate(self._keys)}
        self._cols = np.arange(self.ues.n)
        # exact ties (UEs behind two sectors, both at the pattern floor) go to the lower row,
        # the same way in a full evaluation and in an incremental what-if
        self._tie = -1e-9 * np.arange(len(self._keys), dtype=np.float64)
        base_cells = CellArrays.of(cluster.sectors)
        dx = self.ues.x_m[None, :] - base_cells.x_m[:, None]
        dy = self.ues.y_m[None, :] - base_cells.y_m[:, None]
        self._d2d = np.hypot(dx, dy)
        self._azimuth = np.degrees(np.arctan2(dy, dx))
        self.propagation: PropagationModel = propagation or StatisticalPropagation(
            cluster.scenario,
            cluster.site_index(),
            self.ues.x_m,
            self.ues.y_m,
            self.ues.h_m,
            self.ues.indoor,
            seed=[self.seed, 3],
            shadowing=self.config.shadowing,
            o2i_model=self.config.o2i_model,
        )
        all_rows = np.arange(len(self._keys), dtype=np.int64)
        zen = self._zenith(all_rows, base_cells.height_m)
        self._base_zenith = zen
        self._base_loss = self._chunked(self._loss_rows, all_rows, base_cells, zen)
        self._base_loss_key = np.stack([base_cells.height_m, base_cells.fc_ghz], axis=1)
        self._extra_loss = np.zeros(len(self._keys))  # [C] dB, of the last ``evaluate``
        # the antenna gains of the last full state ([C, n_ues] dBi, read-only) and the sector
        # parameters they were computed with ([C, 7]): a new state recomputes only rows that differ
        self._gain_memo: tuple[FloatArray, FloatArray] | None = None
        self._noise: float | FloatArray = self.noise_psd  # scalar or [n_ues] mW/Hz, of the last ``evaluate``
        self._state: _State | None = None

    # -- geometry and gains -----------------------------------------------------------------
    def _zenith(self, rows: IntArray, height_m: FloatArray) -> FloatArray:
        return np.degrees(np.arctan2(self._d2d[rows], self.ues.h_m[None, :] - height_m[rows][:, None]))

    def _geometry(self, rows: IntArray, zenith_rows: FloatArray, height_m: FloatArray) -> LinkGeometry:
        d2d = self._d2d[rows]
        d3d = np.hypot(d2d, height_m[rows][:, None] - self.ues.h_m[None, :])
        return LinkGeometry(d2d, d3d, self._azimuth[rows], zenith_rows)

    def _chunked(
        self,
        fn: Callable[[IntArray, CellArrays, FloatArray], FloatArray],
        rows: IntArray,
        cells: CellArrays,
        zenith: FloatArray,
        chunk: int = 16,
    ) -> FloatArray:
        """``fn`` over all rows in blocks, to bound the temporaries of large clusters."""
        out = np.empty((rows.size, self.ues.n))
        for i in range(0, rows.size, chunk):
            r = rows[i : i + chunk]
            out[i : i + chunk] = fn(r, cells, zenith[r])
        return out

    def _loss_rows(self, rows: IntArray, cells: CellArrays, zenith_rows: FloatArray) -> FloatArray:
        geo = self._geometry(rows, zenith_rows, cells.height_m)
        return self.propagation.loss_db(rows, geo, cells.height_m[rows], cells.fc_ghz[rows])

    def _gain_rows(self, rows: IntArray, cells: CellArrays, zenith_rows: FloatArray) -> FloatArray:
        if self.propagation.includes_antenna:
            return np.zeros((rows.size, self.ues.n))
        geo = LinkGeometry(self._d2d[rows], self._d2d[rows], self._azimuth[rows], zenith_rows)
        return sector_gain_rows(
            geo, cells.azimuth_deg[rows], cells.mech_tilt_deg[rows], cells.elec_tilt_deg[rows],
            cells.v_beamwidth_deg[rows], cells.h_beamwidth_deg[rows], cells.max_gain_dbi[rows],
        )

    def _gains(self, cells: CellArrays, zenith: FloatArray) -> FloatArray:
        """Every cell's antenna gain towards every UE, [C, n_ues] dBi (read-only).

        The pattern is a third of an evaluation's cost and each period's evaluation changes few
        cells' antennas (usually none), so the rows of the last state whose sector parameters are
        unchanged are reused (the zenith of a row depends on the cell's height alone). The blocks
        holding a changed row are recomputed whole, as a first evaluation computes them, so a
        result never depends on the evaluations before it (bit for bit: a restarted worker's
        predictions equal an uninterrupted one's).
        """
        key = np.stack([cells.height_m, cells.azimuth_deg, cells.mech_tilt_deg, cells.elec_tilt_deg,
                        cells.v_beamwidth_deg, cells.h_beamwidth_deg, cells.max_gain_dbi], axis=1)
        n = len(key)
        if self._gain_memo is None:
            rows = np.arange(n, dtype=np.int64)
            gain = np.empty((n, self.ues.n))
        else:
            old_key, old_gain = self._gain_memo
            changed = np.flatnonzero(np.any(key != old_key, axis=1))
            if changed.size == 0:
                return old_gain
            starts = np.unique(changed // self.GAIN_BLOCK) * self.GAIN_BLOCK
            rows = np.concatenate([np.arange(b, min(b + self.GAIN_BLOCK, n), dtype=np.int64) for b in starts])
            gain = old_gain.copy()
        gain[rows] = self._chunked(self._gain_rows, rows, cells, zenith, chunk=self.GAIN_BLOCK)
        gain.flags.writeable = False
        self._gain_memo = (key, gain)
        return gain

    # -- CM ---------------------------------------------------------------------------------
    def _apply(self, base: tuple[Sector, ...], cm: CmView, strict: bool) -> tuple[tuple[Sector, ...], IntArray]:
        sectors = list(base)
        rows: list[int] = []
        for cell, attrs in cm.items():
            i = self._index.get(cell)
            if i is None:
                raise ValueError(f"unknown cell {cell!r}: not in cluster {self.cluster.cluster_id!r}")
            if not isinstance(attrs, Mapping):
                raise ValueError(f"CM of cell {cell!r} must map attribute -> value, got {attrs!r}")
            new = apply_cm_to_sector(sectors[i], attrs, strict=strict)
            if new != sectors[i]:
                rows.append(i)
            sectors[i] = new
        return tuple(sectors), np.array(sorted(set(rows)), dtype=np.int64)

    @staticmethod
    def _per_cell(cells: CellArrays) -> tuple[FloatArray, FloatArray, FloatArray, IntArray, int]:
        prb = np.array([n_prb(b, s) for b, s in zip(cells.bandwidth_mhz, cells.scs_khz, strict=True)], float)
        psd_dbm = cells.tx_power_dbm - 10.0 * np.log10(cells.bandwidth_mhz * 1e6)
        p_re = cells.tx_power_dbm - 10.0 * np.log10(12.0 * prb)
        re_rate = np.array(
            [re_per_second(b, s) for b, s in zip(cells.bandwidth_mhz, cells.scs_khz, strict=True)], float
        )
        _, layer = np.unique(np.round(cells.fc_ghz, 6), return_inverse=True)
        return psd_dbm, p_re, re_rate, layer.astype(np.int64), int(layer.max()) + 1

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(
        self,
        cm: CmView | None = None,
        hour: float | None = None,
        ue_scale: float | npt.ArrayLike = 1.0,
        demand_scale: float = 1.0,
        extra_loss_db: float | npt.ArrayLike = 0.0,
        interference_rise_db: float | npt.ArrayLike = 0.0,
    ) -> SimResult:
        """Simulate the cluster with the CM view ``cm`` applied to its cells; set the baseline.

        ``cm`` maps cell key -> attributes (``twin.sim.cm`` names; attributes the model does
        not simulate are ignored, invalid values raise ``ValueError``). The connected UEs of
        every point are ``ues.weight`` times ``ue_scale`` (a scalar, or one factor per UE point,
        shape [n_ues]) times the traffic map's time-of-day profile at ``hour``; the offered load
        per connected UE is ``ues.demand_bps * demand_scale`` (bit/s). ``extra_loss_db`` is added
        to the path loss of every link (a scalar, or one value per cell, shape [n_cells]: the
        resync's calibrated path-loss offset, ``twin.resync``). ``interference_rise_db`` (>= 0, a
        scalar or one value per UE point, shape [n_ues]) raises the interference plus noise each
        point hears from the cells at full power (its SS-SINR's denominator) by that many dB, with
        interference from outside the model (an external interferer; the resync's calibrated
        interference margin): a PSD fixed here, which a ``whatif`` keeps (with the traffic and the
        extra loss of the last ``evaluate``) whatever the cells it changes radiate. The UE points
        themselves never change.

        >>> from twin.sim.topology import hex_cluster
        >>> sim = Simulator(hex_cluster(rings=0), TrafficMap(n_ues=200), seed=2)
        >>> key = sim.cluster.cell_keys[0]
        >>> one, two = sim.evaluate().kpis[key], sim.evaluate(ue_scale=2.0).kpis[key]
        >>> round(two["RRC.ConnMean"] / one["RRC.ConnMean"], 6)
        2.0
        >>> sim.evaluate(ue_scale=-1.0)
        Traceback (most recent call last):
        ...
        ValueError: ue_scale must be finite and >= 0, got -1.0
        >>> sim.evaluate(interference_rise_db=-3.0)
        Traceback (most recent call last):
        ...
        ValueError: interference_rise_db must be finite and >= 0 (a scalar or one value per UE point, 200), got -3.0
        """
        sectors, _ = self._apply(self.cluster.sectors, cm or {}, strict=False)
        scale = np.asarray(ue_scale, dtype=np.float64)
        if scale.ndim not in (0, 1) or (scale.ndim == 1 and scale.shape != (self.ues.n,)):
            raise ValueError(f"ue_scale must be a scalar or have shape ({self.ues.n},), got shape {scale.shape}")
        if not np.all(np.isfinite(scale)) or np.any(scale < 0):
            shown = float(scale) if scale.ndim == 0 else "an array with negative or non-finite factors"
            raise ValueError(f"ue_scale must be finite and >= 0, got {shown}")
        if not (np.isfinite(demand_scale) and demand_scale >= 0):
            raise ValueError(f"demand_scale must be finite and >= 0, got {demand_scale}")
        extra = np.broadcast_to(np.asarray(extra_loss_db, dtype=np.float64), (len(self._keys),)) \
            if np.ndim(extra_loss_db) in (0, 1) and np.size(extra_loss_db) in (1, len(self._keys)) else None
        if extra is None or not np.all(np.isfinite(extra)):
            raise ValueError(f"extra_loss_db must be finite, a scalar or one value per cell ({len(self._keys)})")
        rise = np.asarray(interference_rise_db, dtype=np.float64)
        if rise.ndim not in (0, 1) or (rise.ndim == 1 and rise.shape != (self.ues.n,)) \
                or not np.all(np.isfinite(rise)) or np.any(rise < 0):
            shown = float(rise) if rise.ndim == 0 else f"an array of shape {rise.shape}"
            raise ValueError(f"interference_rise_db must be finite and >= 0 (a scalar or one value per UE point, "
                             f"{self.ues.n}), got {shown}")
        weight = self.ues.weight * scale
        if hour is not None:
            weight = weight * (self.traffic or TrafficMap()).hour_factor(hour)
        demand = self.ues.demand_bps * demand_scale if demand_scale != 1.0 else self.ues.demand_bps
        rise_or_none = np.array(np.broadcast_to(rise, (self.ues.n,))) if np.any(rise) else None
        if self._state is not None and _same_inputs(self._state, sectors, weight, demand, extra, rise_or_none):
            return self._state.result  # this state's inputs, value for value: the same state
        self._extra_loss = np.array(extra)
        self._noise = self.noise_psd  # the rise's PSD is added by ``_build_state``, from the cells as configured
        self._state = self._build_state(sectors, weight, demand, rise_or_none)
        return self._state.result

    def _build_state(self, sectors: tuple[Sector, ...], weight: FloatArray, demand: FloatArray,
                     rise: FloatArray | None = None) -> _State:
        """Everything CM-dependent from scratch (path loss only for cells whose height or
        frequency differ from the cluster's, antenna gains only for blocks of cells whose antenna
        differs from the last state's: ``_gains``); ``rise`` (an ``evaluate``'s interference rise, [n_ues]
        dB) fixes the external PSD from these cells, kept by later what-ifs."""
        cells = CellArrays.of(sectors)
        key = np.stack([cells.height_m, cells.fc_ghz], axis=1)
        stale = np.flatnonzero(np.any(key != self._base_loss_key, axis=1))
        zen = self._base_zenith
        loss = self._base_loss
        if stale.size:
            zen = zen.copy()
            loss = loss.copy()
            zen[stale] = self._zenith(stale, cells.height_m)
            loss[stale] = self._loss_rows(stale, cells, zen[stale])
        if np.any(self._extra_loss):
            loss = loss + self._extra_loss[:, None]
        gain = self._gains(cells, zen)
        psd_dbm, p_re, re_rate, layer, n_layers = self._per_cell(cells)
        cg = gain - loss
        rx = 10 ** ((psd_dbm[:, None] + cg) / 10.0) * cells.active[:, None]
        total_full = np.zeros((n_layers, self.ues.n))
        for lay in range(n_layers):
            total_full[lay] = rx[layer == lay].sum(axis=0)
        bias = p_re + cells.cio_db + self._tie
        biased = np.where(cells.active[:, None], cg + bias[:, None], -np.inf)
        t2 = top2(biased)
        rx32 = rx.astype(np.float32)
        del rx, biased
        serving = t2.best
        sig = 10 ** ((psd_dbm[serving] + cg[serving, self._cols]) / 10.0)
        rsrp = p_re[serving] + cg[serving, self._cols]
        del cg
        if rise is not None:  # the external PSD that raises each point's SS interference plus noise
            tot = total_full[layer[serving], self._cols] if n_layers > 1 else total_full[0]
            base = np.maximum(tot - sig, 0.0) + self.noise_psd
            self._noise = self.noise_psd + base * (10.0 ** (rise / 10.0) - 1.0)
        result = self._solve(cells, serving, rsrp, sig, total_full, layer, n_layers, rx32, None, None,
                             re_rate, weight, demand, np.zeros(len(sectors)))
        return _State(sectors, cells, loss, gain, zen, psd_dbm, p_re, layer, n_layers, rx32,
                      total_full, t2, weight, demand, result, self._extra_loss, rise)

    @property
    def base_loss_db(self) -> FloatArray:
        """The propagation loss of the cluster as built, [n_cells, n_ues] dB (read-only view): the
        model a per-place calibration is laid on (``twin.sim2real.ClusterModel.extra_loss_db``)."""
        view = self._base_loss.view()
        view.flags.writeable = False
        return view

    @property
    def baseline(self) -> SimResult:
        """The state of the last ``evaluate`` (evaluating the cluster as configured if none)."""
        if self._state is None:
            self.evaluate()
        assert self._state is not None
        return self._state.result

    def whatif(self, changes: CmView | Iterable[Any] | Any) -> WhatIfResult:
        """KPIs and deltas against the baseline for a set of CM changes (not applied).

        ``changes``: ``{cell_key: {attribute: value}}`` or change requests (``CmChangeRequest``
        objects, ``{"cellKey", "attribute", "to"}`` mappings, ``(cell, attribute, value)`` tuples;
        see ``twin.sim.changes``). Unknown cells, attributes the model cannot simulate and
        invalid values raise ``ValueError`` naming the cell, attribute and value.
        """
        norm = normalise_changes(changes)
        if self._state is None:
            self.evaluate()
        st = self._state
        assert st is not None
        sectors, rows = self._apply(st.sectors, norm, strict=True)
        if rows.size == 0:
            return WhatIfResult(norm, st.result, st.result)
        cells = CellArrays.of(sectors)
        old = st.cells
        zen_rows = st.zenith[rows]
        loss_rows = st.loss[rows]
        moved = (cells.height_m[rows] != old.height_m[rows]) | (cells.fc_ghz[rows] != old.fc_ghz[rows])
        if moved.any():
            zen_rows = zen_rows.copy()
            loss_rows = loss_rows.copy()
            r = rows[moved]
            zen_rows[moved] = self._zenith(r, cells.height_m)
            loss_rows[moved] = self._loss_rows(r, cells, zen_rows[moved]) + self._extra_loss[r][:, None]
        gain_rows = self._gain_rows(rows, cells, zen_rows)
        psd_dbm, p_re, re_rate, layer, n_layers = self._per_cell(cells)
        if n_layers != st.n_layers or np.any(layer != st.layer):
            # a carrier moved between layers: rebuild the layer sums (rare, not the fast path)
            return WhatIfResult(norm, self._full_rebuild(sectors, st), st.result)
        cg_rows = gain_rows - loss_rows
        act = cells.active[rows][:, None]
        rx_rows = 10 ** ((psd_dbm[rows][:, None] + cg_rows) / 10.0) * act
        old_cg_rows = st.gain[rows] - st.loss[rows]
        old_rx_rows = 10 ** ((st.psd_dbm[rows][:, None] + old_cg_rows) / 10.0) * old.active[rows][:, None]
        total_full = st.total_full.copy()
        np.add.at(total_full, layer[rows], rx_rows - old_rx_rows)
        bias = p_re + cells.cio_db + self._tie
        biased_rows = np.where(act, cg_rows + bias[rows][:, None], -np.inf)

        def full_biased() -> FloatArray:
            b = np.where(cells.active[:, None], st.gain - st.loss + bias[:, None], -np.inf)
            b[rows] = biased_rows
            return np.asarray(b)

        serving, _ = associate_with_changes(st.top2, rows, biased_rows, len(sectors), full_biased)
        pos = np.full(len(sectors), -1, dtype=np.int64)
        pos[rows] = np.arange(rows.size)
        cg = st.gain[serving, self._cols] - st.loss[serving, self._cols]
        hit = pos[serving] >= 0
        cg[hit] = cg_rows[pos[serving[hit]], self._cols[hit]]
        sig = 10 ** ((psd_dbm[serving] + cg) / 10.0)
        rsrp = p_re[serving] + cg
        delta32 = (rx_rows - st.rx32[rows]).astype(np.float32)
        result = self._solve(cells, serving, rsrp, sig, total_full, layer, n_layers, st.rx32, rows, delta32,
                             re_rate, st.weight, st.demand, st.result.load)
        return WhatIfResult(norm, result, st.result)

    def _full_rebuild(self, sectors: tuple[Sector, ...], st: _State) -> SimResult:
        """Evaluate ``sectors`` from scratch without disturbing the baseline."""
        return self._build_state(sectors, st.weight, st.demand).result

    def _solve(
        self,
        cells: CellArrays,
        serving: IntArray,
        rsrp: FloatArray,
        sig: FloatArray,
        total_full: FloatArray,
        layer: IntArray,
        n_layers: int,
        rx32: npt.NDArray[np.float32],
        rows: IntArray | None,
        delta32: npt.NDArray[np.float32] | None,
        re_rate: FloatArray,
        weight: FloatArray,
        demand: FloatArray,
        rho0: FloatArray,
    ) -> SimResult:
        cfg = self.config
        n_cells = len(cells.x_m)
        layer_ue = layer[serving]
        tot = total_full[layer_ue, self._cols] if n_layers > 1 else total_full[0]
        ss_sinr = sig / (np.maximum(tot - sig, 0.0) + self._noise)
        ss_sinr_db = 10.0 * np.log10(np.maximum(ss_sinr, 1e-30))
        rate_per_se = re_rate[serving] * cfg.layers
        connected = (
            cells.active[serving]
            & (rsrp >= cfg.min_rsrp_dbm)
            & (ss_sinr_db >= cfg.min_ss_sinr_db)
            & (self.link.se_per_re(ss_sinr) * rate_per_se >= cfg.min_peak_rate_bps)
        )
        masks = np.stack([(layer == lay) for lay in range(n_layers)]).astype(np.float32)

        def interference(eff: FloatArray) -> FloatArray:
            w = masks * eff.astype(np.float32)[None, :]
            t = w @ rx32
            if rows is not None and delta32 is not None:
                t = t + w[:, rows] @ delta32
            out = t[0] if n_layers == 1 else t[layer_ue, self._cols]
            return np.asarray(out, dtype=np.float64)

        sol = solve_load(
            interference, sig, serving, connected, weight * demand,
            rate_per_se, self.link.se_per_re, self._noise, n_cells, rho0,
            cells.active, idle=cfg.idle_load, tol=cfg.tol, max_iter=cfg.max_iter,
        )
        if not sol.converged:
            warnings.warn(
                f"load fixed point not converged after {sol.iterations} iterations "
                f"(residual {sol.residual:.2e} > tol {cfg.tol:g})",
                ConvergenceWarning,
                stacklevel=3,
            )
        kpi, thp = cell_kpis(
            n_cells, serving, connected, weight, weight * demand, sol.rate_bps, sol.rho,
            rsrp, ss_sinr_db, cells.tx_power_dbm, cells.active, cfg.idle_load, cfg.power_model,
        )
        ue = UeResult(
            serving=serving,
            connected=connected,
            rsrp_dbm=rsrp,
            ss_sinr_db=ss_sinr_db,
            sinr_db=10.0 * np.log10(np.maximum(sol.sinr, 1e-30)),
            rate_bps=sol.rate_bps,
            throughput_bps=thp,
        )
        return SimResult(self._keys, kpi, ue, sol.rho, sol.iterations, sol.converged, sol.residual)
