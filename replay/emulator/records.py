"""Telemetry of one period, as a real OSS reports it: PM per cell and MR for a sample of UEs.

PM values are the physical network's KPIs under the ``twin.sim.kpis`` 3GPP names (with the
SS-RSRP / SS-SINR distribution bins) plus relative measurement noise. MR events report, for
UEs sampled per cell in proportion to their weight:

* SS-RSRP (dBm) of the serving cell and the two strongest neighbours, plus noise;
* SS-SINR (dB) with every neighbour radiating (what a reference-signal SINR sees), plus noise;
* RSRQ (dB) = ``N_RB RSRP / RSSI`` with the RSSI over the carrier:
  ``-10 log10(12 (rho'_s + 1 / SINR_data))`` where ``rho'_s`` is the serving cell's radiated
  share and ``SINR_data`` the load-coupled data SINR;
* DL throughput (kbit/s) over the report interval: 0 with probability ``mr_idle_share`` (the UE
  had nothing to receive, as in the app-driven Raca traces), else the UE's burst throughput
  times an activity share ``U(0, 1)^2``.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from replay.emulator.cm import xy_to_latlon
from replay.emulator.physics import PhysicalNetwork, PhysicalState
from replay.emulator.scenario import Scenario
from twin.schemas import CellMeas, Location, MrEvent, MrSource, PmCellRecord, Rat, UeInfo
from twin.schemas.mr import LocationMethod, rsrp_index, rsrq_index, sinr_index
from twin.schemas.pm import MeasObjClass, PmSource
from twin.sim.kpis import CONN, POWER, PRB, THP, TXPWR

__all__ = ["EMULATOR_NS", "PM_SOURCE", "mr_events", "pm_records"]

EMULATOR_NS = uuid.UUID("0c9e4b1a-6d2f-4f3e-9a57-2b8c1d0e7f31")
PM_SOURCE = PmSource(format="emulator", vendor="ran-twin-emulator")


def pm_records(
    state: PhysicalState, keys: list[str], dns: dict[str, str], end: datetime, gp_s: int,
    scenario: Scenario, rng: np.random.Generator,
) -> list[PmCellRecord]:
    """One ``PmCellRecord`` per real cell for the period ending at ``end``."""
    rel = scenario.truth.pm_noise_rel
    out = []
    for key in keys:
        values = state.result.pm_values(key, bins=True)
        if rel:
            z = rng.normal(0.0, 1.0, 5)
            values[THP] = max(values[THP] * (1.0 + rel * z[0]), 0.0)
            values[PRB] = min(max(values[PRB] * (1.0 + rel * z[1]), 0.0), 100.0)
            values[CONN] = max(values[CONN] * (1.0 + rel * z[2]), 0.0)
            values[POWER] = max(values[POWER] * (1.0 + rel * z[3]), 0.0)
            values[TXPWR] = values[TXPWR] + 10.0 * rel * z[4]
        values = {k: v for k, v in values.items() if math.isfinite(v)}
        out.append(PmCellRecord(
            cell_key=key, meas_obj_dn=dns[key], meas_obj_class=MeasObjClass.NRCellDU, period_end=end,
            granularity_period_s=gp_s, source=PM_SOURCE, values=values,
        ))
    return out


def _sample(
    serving: npt.NDArray[np.int64], ok: npt.NDArray[np.bool_], weight: npt.NDArray[np.float64], n_cells: int,
    per_cell: int, rng: np.random.Generator,
) -> npt.NDArray[np.int64]:
    """UE indices: ``per_cell`` draws (with replacement, weight-proportional) per cell with UEs."""
    picks = []
    for c in range(n_cells):
        idx = np.flatnonzero(ok & (serving == c))
        if idx.size == 0 or per_cell <= 0:
            continue
        p = weight[idx] / weight[idx].sum()
        picks.append(rng.choice(idx, size=per_cell, replace=True, p=p))
    return np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)


def mr_events(
    physics: PhysicalNetwork, state: PhysicalState, keys: list[str], pcis: dict[str, int], arfcn: dict[str, int],
    start: datetime, gp_s: int, per_cell: int, scenario: Scenario, seed: int, period: int,
    rng: np.random.Generator,
) -> list[MrEvent]:
    """MR events of the period starting at ``start`` (``per_cell`` per cell that serves UEs)."""
    res = state.result
    ue = res.ue
    weight = state.weight
    ok = ue.connected & (ue.serving < state.n_cells) & (weight > 0)
    idx = _sample(ue.serving, ok, weight, state.n_cells, per_cell, rng)
    if idx.size == 0:
        return []
    t = scenario.truth
    n = idx.size
    serving = ue.serving[idx]
    rsrp = ue.rsrp_dbm[idx] + t.mr_rsrp_noise_db * rng.normal(0.0, 1.0, n)
    sinr = ue.ss_sinr_db[idx] + t.mr_sinr_noise_db * rng.normal(0.0, 1.0, n)
    idle = physics.config.idle_load
    eff = idle + (1.0 - idle) * res.load[serving]
    sinr_data = 10 ** (ue.sinr_db[idx] / 10.0)
    rsrq = -10.0 * np.log10(12.0 * (eff + 1.0 / np.maximum(sinr_data, 1e-12)))
    rsrq = rsrq + 0.5 * t.mr_sinr_noise_db * rng.normal(0.0, 1.0, n)
    active = rng.random(n) >= t.mr_idle_share
    thp = np.where(active, ue.throughput_bps[idx] / 1e3 * rng.random(n) ** 2, 0.0)
    neigh = physics.rsrp_matrix(state, idx)
    alive = np.array([s.active for s in state.sectors[: state.n_cells]])
    neigh[~alive] = -np.inf
    neigh[serving, np.arange(n)] = -np.inf
    top = np.argsort(-neigh, axis=0)[:2]
    topo = scenario.topology
    out = []
    for j in range(n):
        u = int(idx[j])
        key = keys[int(serving[j])]
        r = float(np.clip(rsrp[j], -156.0, -31.0))
        q = float(np.clip(rsrq[j], -43.0, 19.5))
        s = float(np.clip(sinr[j], -23.5, 40.0))
        nbs = []
        for c in top[:, j]:
            v = float(neigh[c, j])
            if not math.isfinite(v) or v < -156.0:
                continue
            v = float(np.clip(v + t.mr_rsrp_noise_db * rng.normal(), -156.0, -31.0))
            nk = keys[int(c)]
            nbs.append(CellMeas(cell_key=nk, rat=Rat.NR, pci=pcis[nk], arfcn=arfcn[nk], rsrp_dbm=round(v, 1),
                                rsrp_idx=rsrp_index(v)))
        lat, lon = xy_to_latlon(float(physics.ues.x_m[u]), float(physics.ues.y_m[u]), topo.lat0, topo.lon0)
        out.append(MrEvent(
            event_id=str(uuid.uuid5(EMULATOR_NS, f"{scenario.name}:{seed}:{period}:{j}")),
            event_time=start + timedelta(seconds=gp_s * (j + 0.5) / n),
            cell_key=key,
            ue_ref=f"emu-ue-{u:05d}",
            source=MrSource.RRC_MEAS_REPORT,
            trigger="PERIODIC",
            rat=Rat.NR,
            serving=CellMeas(cell_key=key, rat=Rat.NR, pci=pcis[key], arfcn=arfcn[key], rsrp_dbm=round(r, 1),
                             rsrq_db=round(q, 1), sinr_db=round(s, 1), rsrp_idx=rsrp_index(r),
                             rsrq_idx=rsrq_index(q), sinr_idx=sinr_index(s)),
            neighbours=nbs,
            ue=UeInfo(dl_throughput_kbps=round(float(thp[j]), 1)),
            location=Location(lat=lat, lon=lon, accuracy_m=5.0, method=LocationMethod.GNSS),
        ))
    return out
