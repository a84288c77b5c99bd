"""The physical network: ``twin.sim`` run on the *true* network instead of the published one.

The physics starts from exactly the twin's public model (same UE points, LoS draws, 38.901
shadowing and O2I as ``Simulator(cluster_from_mirror(cm), TrafficMap(**model), seed=model.seed)``)
and adds the hidden truth: antenna gain/azimuth errors on the true sectors, an extra loss matrix
(own shadowing, building loss, weather), external interferers as phantom transmitters that radiate
but serve nobody, and a true load (profile, hotspots, surges). With a zero truth it reduces to the
twin's model, which is what the "honest error" test checks.

Loss matrices are [n_cells, n_ues] dB; weights [n_ues] connected UEs per point.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from replay.emulator.scenario import Event, Scenario
from replay.emulator.truth import HiddenTruth, draw_truth, load_multiplier
from twin.sim import PrecomputedPropagation, SimConfig, SimResult, Simulator, StatisticalPropagation
from twin.sim.antenna import sector_gain_rows
from twin.sim.propagation import LinkGeometry
from twin.sim.topology import CellArrays, Cluster, Sector, hex_site_positions
from twin.sim.traffic import TrafficMap, UePoints

__all__ = ["PhysicalNetwork", "PhysicalState", "model_traffic"]

FloatArray = npt.NDArray[np.float64]
PHANTOM_CIO_DB = -300.0  # an interferer never wins the cell selection


def model_traffic(scenario: Scenario) -> TrafficMap:
    """The twin's public traffic model of the scenario (``[model]``, the twin's ``PredictConfig``)."""
    return scenario.model.traffic_map()


def link_geometry(x_m: FloatArray, y_m: FloatArray, h_m: FloatArray, ues: UePoints) -> LinkGeometry:
    """Geometry of transmitters at (x, y, h) [R] towards every UE: arrays [R, n_ues], computed
    the way ``twin.sim.Simulator`` does."""
    dx = ues.x_m[None, :] - x_m[:, None]
    dy = ues.y_m[None, :] - y_m[:, None]
    d2d = np.hypot(dx, dy)
    zen = np.degrees(np.arctan2(d2d, ues.h_m[None, :] - h_m[:, None]))
    d3d = np.hypot(d2d, h_m[:, None] - ues.h_m[None, :])
    return LinkGeometry(d2d, d3d, np.degrees(np.arctan2(dy, dx)), zen)


@dataclass(frozen=True)
class PhysicalState:
    """One evaluated period: the simulator result over real cells then phantoms, the true
    sectors ([n_cells + n_phantoms]), the loss matrix used and the true UE weights [n_ues]."""

    result: SimResult
    sectors: tuple[Sector, ...]
    loss_db: FloatArray
    n_cells: int
    weight: FloatArray


class PhysicalNetwork:
    """The true network behind the published CM of ``public`` (cells in cell-key order)."""

    def __init__(self, public: Cluster, scenario: Scenario, seed: int, config: SimConfig | None = None) -> None:
        self.public = public
        self.scenario = scenario
        self.seed = int(seed)
        self.config = config or SimConfig()
        m = scenario.model
        self.ues = model_traffic(scenario).sample(public, seed=m.seed)
        self._truth_traffic = TrafficMap(hourly_profile=scenario.traffic.profile())
        self._prop = StatisticalPropagation(
            public.scenario, public.site_index(), self.ues.x_m, self.ues.y_m, self.ues.h_m, self.ues.indoor,
            seed=[m.seed, 3], shadowing=self.config.shadowing, o2i_model=self.config.o2i_model,
        )
        self.truth = draw_truth(scenario, public, self.ues, self.seed)
        self._loss_rows: dict[tuple[int, float, float], FloatArray] = {}
        self._key: object = None
        self._sim: Simulator | None = None
        self._state_parts: tuple[tuple[Sector, ...], FloatArray] | None = None
        self._outer: list[tuple[Sector, FloatArray]] | None = None

    def with_truth(self, truth: HiddenTruth) -> PhysicalNetwork:
        """The same network (sites, UE points, model loss, outer ring) with another hidden truth:
        what a benchmark evaluates to ask how much of the truth a model would need to know. The
        model-loss rows are shared (they do not depend on the truth), the built simulator is not."""
        if truth.extra_loss_db.shape != self.truth.extra_loss_db.shape:
            raise ValueError(f"truth.extra_loss_db has shape {truth.extra_loss_db.shape}, "
                             f"expected {self.truth.extra_loss_db.shape}")
        other = copy.copy(self)
        other.truth = truth
        other._key, other._sim, other._state_parts = None, None, None
        return other

    # -- loss -------------------------------------------------------------------------------
    def _model_loss(self, sectors: tuple[Sector, ...]) -> FloatArray:
        """The model's loss (38.901 + its shadowing + O2I) of the real cells, [n_cells, n_ues]."""
        cells = CellArrays.of(sectors)
        out = np.empty((len(sectors), self.ues.n))
        todo = [i for i, s in enumerate(sectors) if (i, s.height_m, s.fc_ghz) not in self._loss_rows]
        if todo:
            rows = np.array(todo, dtype=np.int64)
            for start in range(0, rows.size, 16):
                r = rows[start : start + 16]
                geo = link_geometry(cells.x_m[r], cells.y_m[r], cells.height_m[r], self.ues)
                loss = self._prop.loss_db(r, geo, cells.height_m[r], cells.fc_ghz[r])
                for j, i in enumerate(r):
                    self._loss_rows[(int(i), sectors[i].height_m, sectors[i].fc_ghz)] = loss[j]
        for i, s in enumerate(sectors):
            out[i] = self._loss_rows[(i, s.height_m, s.fc_ghz)]
        return out

    def _phantom(self, k: int, ev: Event, template: Sector) -> tuple[Sector, FloatArray]:
        """An external interferer: an omni transmitter that radiates ``power_dbm`` on the
        cells' carrier and serves nobody; its loss row [n_ues] comes from its own 38.901 draws."""
        p = ev.params
        x, y = float(p.get("x_m", 0.0)), float(p.get("y_m", 0.0))
        h = float(p.get("height_m", 15.0))
        power = float(p.get("power_dbm", 30.0))
        # an idle transmitter radiates idle_load of its power in the load model: compensate
        tx = power - 10.0 * math.log10(self.config.idle_load)
        sector = replace(
            template, cell_key=f"interferer-{k}", site_id=f"interferer-{k}", x_m=x, y_m=y, height_m=h,
            azimuth_deg=0.0, mech_tilt_deg=0.0, elec_tilt_deg=0.0, v_beamwidth_deg=65.0, h_beamwidth_deg=360.0,
            max_gain_dbi=0.0, tx_power_dbm=tx, cio_db=PHANTOM_CIO_DB, active=True,
        )
        prop = StatisticalPropagation(
            self.public.scenario, np.array([0]), self.ues.x_m, self.ues.y_m, self.ues.h_m, self.ues.indoor,
            seed=[self.seed, 0x1F, k],
        )
        geo = link_geometry(np.array([x]), np.array([y]), np.array([h]), self.ues)
        return sector, prop.loss_db(np.array([0]), geo, np.array([h]), np.array([template.fc_ghz]))[0]

    def _outer_ring(self, template: Sector) -> list[tuple[Sector, FloatArray]]:
        """The ring of sites just outside the cluster (3 sectors each, the layout's
        configuration), radiating at ``truth.outer_ring_load``; they serve nobody here."""
        load = self.scenario.truth.outer_ring_load
        if load <= 0:
            return []
        if self._outer is None:
            rings = self.scenario.topology.rings
            pts = hex_site_positions(rings + 1, self.public.isd_m)[len(hex_site_positions(rings, self.public.isd_m)):]
            idle = self.config.idle_load
            tx = template.tx_power_dbm + 10.0 * math.log10((idle + (1.0 - idle) * load) / idle)
            sectors = [
                replace(template, cell_key=f"outer-{i}-{j}", site_id=f"outer-{i}", x_m=float(x), y_m=float(y),
                        azimuth_deg=b, tx_power_dbm=tx, cio_db=PHANTOM_CIO_DB, active=True)
                for i, (x, y) in enumerate(pts) for j, b in enumerate((30.0, 150.0, 270.0))
            ]
            site = np.repeat(np.arange(len(pts)), 3)
            prop = StatisticalPropagation(self.public.scenario, site, self.ues.x_m, self.ues.y_m, self.ues.h_m,
                                          self.ues.indoor, seed=[self.seed, 0x0E])
            arr = CellArrays.of(tuple(sectors))
            geo = link_geometry(arr.x_m, arr.y_m, arr.height_m, self.ues)
            loss = prop.loss_db(np.arange(len(sectors)), geo, arr.height_m, arr.fc_ghz)
            self._outer = [(s, loss[i]) for i, s in enumerate(sectors)]
        return self._outer

    # -- evaluation -------------------------------------------------------------------------
    def true_sectors(self, public: tuple[Sector, ...], active: list[Event]) -> tuple[Sector, ...]:
        """The public sectors with the hidden antenna errors and active faults applied."""
        t = self.truth
        out = []
        for i, s in enumerate(public):
            gain = s.max_gain_dbi + float(t.gain_db[i])
            azimuth = float(t.azimuth_deg[i])
            for ev in active:
                if ev.kind == "antenna_fault" and self._cell_row(ev.params["cell"]) == i:
                    gain -= float(ev.params.get("gain_drop_db", 10.0))
                elif ev.kind == "azimuth_shift" and self._cell_row(ev.params["cell"]) == i:
                    azimuth += float(ev.params.get("deg", 30.0))
            if gain == s.max_gain_dbi and azimuth == 0.0:
                out.append(s)
            else:
                out.append(replace(s, max_gain_dbi=gain, azimuth_deg=(s.azimuth_deg + azimuth) % 360.0))
        return tuple(out)

    def _cell_row(self, cell: int | str) -> int:
        return self.public.index(cell) if isinstance(cell, str) else int(cell)

    def _build(self, public: tuple[Sector, ...], active: list[Event]) -> None:
        sectors = self.true_sectors(public, active)
        loss = self._model_loss(public) + self.truth.extra_loss_db
        for ev in active:
            if ev.kind == "weather":
                p = ev.params
                d = np.hypot(self.ues.x_m - float(p.get("x_m", 0.0)), self.ues.y_m - float(p.get("y_m", 0.0)))
                loss = loss + np.where(d <= float(p.get("radius_m", 1e9)), float(p.get("extra_db", 3.0)), 0.0)[None, :]
        phantoms = [self._phantom(k, ev, public[0]) for k, ev in enumerate(active) if ev.kind == "interference"]
        phantoms += self._outer_ring(public[0])
        if phantoms:
            sectors = sectors + tuple(s for s, _ in phantoms)
            loss = np.vstack([loss, *[row[None, :] for _, row in phantoms]])
        cluster = Cluster(self.public.cluster_id, sectors, self.public.scenario, self.public.isd_m,
                          self.public.min_ue_distance_m)
        self._sim = Simulator(cluster, self.ues, seed=self.scenario.model.seed, config=self.config,
                              propagation=PrecomputedPropagation(loss))
        self._state_parts = (sectors, loss)

    def evaluate(self, public: tuple[Sector, ...], hour_of_day: float, active: list[Event]) -> PhysicalState:
        """Simulate one period of the true network with the public configuration ``public``."""
        physics = [ev for ev in active if ev.kind in ("antenna_fault", "azimuth_shift", "weather", "interference")]
        key = (public, tuple(id(ev) for ev in physics))
        if key != self._key or self._sim is None:
            self._build(public, physics)
            self._key = key
        assert self._sim is not None and self._state_parts is not None
        weight = self.ues.weight * self._truth_traffic.hour_factor(hour_of_day)
        if self.scenario.traffic.hotspots:
            weight = weight * load_multiplier(self.scenario.traffic, self.ues, hour_of_day)
        for ev in active:
            if ev.kind == "traffic_surge":
                p = ev.params
                d = np.hypot(self.ues.x_m - float(p.get("x_m", 0.0)), self.ues.y_m - float(p.get("y_m", 0.0)))
                weight = weight * np.where(d <= float(p.get("radius_m", 1e9)), float(p.get("factor", 2.0)), 1.0)
        # the UE points carry weight 1, so the weights are the per-point scale factors exactly
        result = self._sim.evaluate(ue_scale=weight / self.ues.weight,
                                    demand_scale=self.scenario.traffic.demand_scale)
        sectors, loss = self._state_parts
        return PhysicalState(result, sectors, loss, len(public), weight)

    def rsrp_matrix(self, state: PhysicalState, ue_idx: npt.NDArray[np.int64]) -> FloatArray:
        """RSRP (dBm per RE) of every real cell at the UEs ``ue_idx``: [n_cells, len(ue_idx)]."""
        sectors = state.sectors[: state.n_cells]
        cells = CellArrays.of(sectors)
        sub = replace(self.ues, x_m=self.ues.x_m[ue_idx], y_m=self.ues.y_m[ue_idx], h_m=self.ues.h_m[ue_idx],
                      indoor=self.ues.indoor[ue_idx], weight=self.ues.weight[ue_idx],
                      demand_bps=self.ues.demand_bps[ue_idx])
        geo = link_geometry(cells.x_m, cells.y_m, cells.height_m, sub)
        geo = LinkGeometry(geo.d2d_m, geo.d2d_m, geo.azimuth_deg, geo.zenith_deg)
        gain = sector_gain_rows(geo, cells.azimuth_deg, cells.mech_tilt_deg, cells.elec_tilt_deg,
                                cells.v_beamwidth_deg, cells.h_beamwidth_deg, cells.max_gain_dbi)
        from twin.sim.link import n_prb

        prb = np.array([n_prb(s.bandwidth_mhz, s.scs_khz) for s in sectors], dtype=np.float64)
        p_re = cells.tx_power_dbm - 10.0 * np.log10(12.0 * prb)
        return np.asarray(p_re[:, None] + gain - state.loss_db[: state.n_cells][:, ue_idx])
