"""Simulator: physics sanity, what-if consistency, determinism, invalid CM, KPI bookkeeping."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from twin.schemas.mr import rsrp_index, sinr_index
from twin.sim import (
    KPI_NAMES,
    PrecomputedPropagation,
    SimConfig,
    Simulator,
    TrafficMap,
    UePoints,
    cluster_from_mirror,
    hex_cluster,
)
from twin.sim.kpis import rsrp_index_array, sinr_index_array
from twin.sim.link import ShannonLink, TableLink, load_link_table

CLUSTER = hex_cluster(rings=1)  # 7 sites, 21 cells
CENTRE = CLUSTER.cell_keys[0]  # centre site, bearing 30 degrees


@pytest.fixture(scope="module")
def grid_ues() -> UePoints:
    """A dense regular grid of outdoor UEs over the cluster (so 'served area' is countable)."""
    xs = np.arange(-900.0, 901.0, 20.0)
    x, y = np.meshgrid(xs, xs)
    keep = np.hypot(x, y) > 40.0
    return UePoints.at(x[keep], y[keep], demand_bps=20e3)


@pytest.fixture(scope="module")
def sim(grid_ues: UePoints) -> Simulator:
    s = Simulator(CLUSTER, grid_ues, seed=5)
    s.evaluate()
    return s


def served(result_serving: np.ndarray, connected: np.ndarray, row: int) -> int:
    return int(np.sum((result_serving == row) & connected))


def test_kpis_have_pm_names_and_sane_values(sim: Simulator) -> None:
    res = sim.baseline
    assert set(res.kpis[CENTRE]) == set(KPI_NAMES)
    k = res.kpi.values
    assert np.all((k["RRU.PrbTotDl"] >= 0) & (k["RRU.PrbTotDl"] <= 100))
    assert np.all(k["DRB.UEThpDl"] >= 0)
    assert np.all(k["PEE.AvgPower"] >= 260.0)
    assert np.all(k["CARR.MeanTxPwr"] <= 46.0 + 1e-9)
    # distributions count exactly the connected UEs of each cell
    assert np.allclose(res.kpi.rsrp_bins.sum(axis=1), k["RRC.ConnMean"])
    assert np.allclose(res.kpi.sinr_bins.sum(axis=1), k["RRC.ConnMean"])
    assert res.converged and res.iterations >= 1
    pm = res.pm_values(CENTRE)
    assert any(n.startswith("L1M.SS-RSRP.Bin") for n in pm)
    assert any(n.startswith("MR.NRScSSSINR.Bin") for n in pm)
    json.dumps(res.to_dict())


def test_index_grids_match_the_mr_schema() -> None:
    vals = np.linspace(-170.0, -20.0, 601)
    assert rsrp_index_array(vals).tolist() == [rsrp_index(float(v)) for v in vals]
    db = np.linspace(-30.0, 45.0, 601)
    assert sinr_index_array(db).tolist() == [sinr_index(float(v)) for v in db]


def test_more_power_raises_rsrp(sim: Simulator) -> None:
    base = sim.baseline
    wi = sim.whatif({CENTRE: {"configuredMaxTxPower": 80000}})  # 46 dBm -> 49.03 dBm
    mask = (base.ue.serving == 0) & (wi.result.ue.serving == 0)
    assert mask.sum() > 50
    assert np.allclose(wi.result.ue.rsrp_dbm[mask] - base.ue.rsrp_dbm[mask], 10 * np.log10(80000) - 46.0)
    assert served(wi.result.ue.serving, wi.result.ue.connected, 0) > served(
        base.ue.serving, base.ue.connected, 0
    )
    assert wi.deltas[CENTRE]["CARR.MeanTxPwr"] > 0
    assert wi.deltas[CENTRE]["PEE.AvgPower"] > 0


def test_downtilt_shrinks_the_served_area(sim: Simulator) -> None:
    base = served(sim.baseline.ue.serving, sim.baseline.ue.connected, 0)
    counts = [base]
    for tilt in (120, 160, 200):  # 12, 16, 20 degrees (the base is ~8)
        r = sim.whatif({CENTRE: {"digitalTilt": tilt}}).result
        counts.append(served(r.ue.serving, r.ue.connected, 0))
    assert counts == sorted(counts, reverse=True) and counts[-1] < 0.8 * counts[0], counts


def test_positive_cio_pulls_ues_in(sim: Simulator) -> None:
    base = served(sim.baseline.ue.serving, sim.baseline.ue.connected, 0)
    more = sim.whatif({CENTRE: {"cellIndividualOffset": 6}}).result
    less = sim.whatif({CENTRE: {"cellIndividualOffset": {"rsrpOffsetSSB": -6}}}).result
    assert served(more.ue.serving, more.ue.connected, 0) > base > served(less.ue.serving, less.ue.connected, 0)
    # CIO moves UEs, it does not change what they measure
    assert np.allclose(more.ue.rsrp_dbm[more.ue.serving == 0] >= -200, True)


def test_more_neighbour_load_lowers_sinr(grid_ues: UePoints, sim: Simulator) -> None:
    serving = sim.baseline.ue.serving
    own = serving == 0
    heavy = dataclasses.replace(grid_ues, weight=np.where(own, 1.0, 4.0))
    loaded = Simulator(CLUSTER, heavy, seed=5).evaluate()
    base = sim.baseline
    assert np.all(loaded.load[1:] >= base.load[1:] - 1e-9) and loaded.load[1:].sum() > base.load[1:].sum()
    assert np.mean(loaded.ue.sinr_db[own]) < np.mean(base.ue.sinr_db[own]) - 0.1
    assert np.all(loaded.ue.sinr_db[own] <= base.ue.sinr_db[own] + 1e-6)
    # the SSB SINR does not depend on load
    assert np.allclose(loaded.ue.ss_sinr_db, base.ue.ss_sinr_db)


def test_an_interference_rise_lowers_the_ss_sinr_of_its_points_by_as_much(grid_ues: UePoints) -> None:
    """The calibrated interference margin (``interference_rise_db``): the points given a rise hear
    that much more interference plus noise (their SS-SINR falls by exactly the rise, their SS-RSRP
    stays), the others nothing; their data SINR and throughput fall; a what-if keeps the external
    PSD fixed (a power change of the cell does not move the interferer)."""
    fresh = Simulator(CLUSTER, grid_ues, seed=5)
    base = fresh.evaluate()
    own = base.ue.serving == 0
    rise = np.where(own, 6.0, 0.0)
    raised = fresh.evaluate(interference_rise_db=rise)
    assert np.array_equal(raised.ue.serving, base.ue.serving)
    assert np.allclose(raised.ue.rsrp_dbm, base.ue.rsrp_dbm)
    assert np.allclose(raised.ue.ss_sinr_db[own], base.ue.ss_sinr_db[own] - 6.0, atol=1e-9)
    assert np.allclose(raised.ue.ss_sinr_db[~own], base.ue.ss_sinr_db[~own], atol=1e-9)
    assert np.all(raised.ue.sinr_db[own] < base.ue.sinr_db[own])
    assert raised.kpis[CENTRE]["DRB.UEThpDl"] < base.kpis[CENTRE]["DRB.UEThpDl"]
    # a what-if after a rise everywhere: the external PSD stays what the cells as configured fixed,
    # so at the neighbours' points 1 / SS-SINR = 1 / (the change's, no rise) + (10^0.6 - 1) / (before's)
    change = {CENTRE: {"configuredMaxTxPower": 40000}}
    fresh.evaluate(interference_rise_db=6.0)
    more = fresh.whatif(change).result
    louder = Simulator(CLUSTER, grid_ues, seed=5).evaluate(change)
    other = (base.ue.serving != 0) & (more.ue.serving == base.ue.serving)
    lin = lambda db: 10.0 ** (db / 10.0)  # noqa: E731
    expected = 1.0 / (1.0 / lin(louder.ue.ss_sinr_db[other]) + (lin(6.0) - 1.0) / lin(base.ue.ss_sinr_db[other]))
    assert np.allclose(more.ue.ss_sinr_db[other], 10.0 * np.log10(expected), atol=1e-6)
    assert fresh.evaluate(interference_rise_db=0.0).kpis == base.kpis


def test_locking_a_cell_moves_its_ues_and_saves_energy(sim: Simulator) -> None:
    wi = sim.whatif({CENTRE: {"administrativeState": "LOCKED"}})
    assert served(wi.result.ue.serving, wi.result.ue.connected, 0) == 0
    assert wi.kpis[CENTRE]["RRC.ConnMean"] == 0 and np.isnan(wi.kpis[CENTRE]["CARR.MeanTxPwr"])
    assert wi.deltas[CENTRE]["PEE.AvgPower"] < 0
    lost = sim.baseline.kpis[CENTRE]["RRC.ConnMean"]
    gained = sum(d["RRC.ConnMean"] for k, d in wi.deltas.items() if k != CENTRE)
    assert gained > 0.8 * lost


@pytest.mark.parametrize(
    "change",
    [
        {"digitalTilt": 30},
        {"configuredMaxTxPower": 10000},
        {"cellIndividualOffset": 4},
        {"mechanicalTilt": 40, "beamVertWidth": 80},
        {"antennaHeight": 35},
        {"azimuth": 60},
    ],
)
def test_whatif_equals_a_full_evaluation(sim: Simulator, change: dict[str, float]) -> None:
    cell = CLUSTER.cell_keys[4]
    wi = sim.whatif({cell: change})
    fresh = Simulator(CLUSTER, sim.ues, seed=5)
    full = fresh.evaluate({cell: change})
    assert np.array_equal(wi.result.ue.serving, full.ue.serving)
    assert np.allclose(wi.result.ue.rsrp_dbm, full.ue.rsrp_dbm, atol=1e-9)
    assert np.allclose(wi.result.ue.ss_sinr_db, full.ue.ss_sinr_db, atol=1e-6)
    assert np.allclose(wi.result.load, full.load, atol=5e-4)
    for name in KPI_NAMES:
        a, b = wi.result.kpi.values[name], full.kpi.values[name]
        assert np.allclose(a, b, rtol=5e-3, atol=1e-3, equal_nan=True), name


def test_whatif_leaves_the_baseline_alone_and_noop_has_zero_delta(sim: Simulator) -> None:
    before = sim.baseline.kpis
    sim.whatif({CENTRE: {"digitalTilt": 150, "configuredMaxTxPower": 5000}})
    assert sim.baseline.kpis == before
    same = sim.whatif({CENTRE: {"cellIndividualOffset": 0}})
    assert all(v == 0.0 for d in same.deltas.values() for v in d.values() if not np.isnan(v))
    req = sim.whatif([{"cellKey": CENTRE, "attribute": "digitalTilt", "to": 150}])
    tup = sim.whatif([(CENTRE, "digitalTilt", 150)])
    assert req.kpis == tup.kpis == sim.whatif({CENTRE: {"digitalTilt": 150}}).kpis


def test_evaluations_in_sequence_equal_fresh_ones_whatever_they_change() -> None:
    """The antenna gains of the last evaluation are reused for cells whose antenna did not change:
    every evaluation in a sequence (each antenna parameter changed, then put back, with what-ifs
    between) equals, bit for bit, the same evaluation on a fresh simulator."""
    t = TrafficMap(n_ues=300)
    cell, other = CLUSTER.cell_keys[4], CLUSTER.cell_keys[9]
    steps: list[dict[str, dict[str, float]]] = [
        {}, {cell: {"digitalTilt": 30}}, {cell: {"digitalTilt": 30}, other: {"azimuth": 200}},
        {cell: {"mechanicalTilt": 40, "beamVertWidth": 80}}, {cell: {"antennaHeight": 35}},
        {other: {"beamHorizWidth": 90, "configuredMaxTxPower": 10000}}, {}, {cell: {"cellIndividualOffset": 3}},
    ]
    sim = Simulator(CLUSTER, t, seed=3)
    for i, cm in enumerate(steps):
        got = sim.evaluate(cm, hour=12.0)
        sim.whatif({other: {"digitalTilt": 90}})
        want = Simulator(CLUSTER, t, seed=3).evaluate(cm, hour=12.0)
        assert got.kpis == want.kpis, (i, cm)
        assert np.array_equal(got.ue.rsrp_dbm, want.ue.rsrp_dbm) and np.array_equal(got.ue.sinr_db, want.ue.sinr_db)
    assert sim._state is not None and not sim._state.gain.flags.writeable  # shared between states: never written
    gain = sim._state.gain
    sim.evaluate(steps[-1], hour=3.0, ue_scale=2.0)  # the same antennas: the gains are not computed again
    assert sim._state.gain is gain


def test_an_evaluation_with_the_baselines_inputs_is_the_baseline() -> None:
    """The same inputs as the baseline's, value for value, give the baseline itself (the optimiser's
    what-ifs each evaluate their period first); any other input is computed, and a what-if after a
    repeated evaluation equals one on a fresh simulator (the extra loss and the interference rise
    of the baseline are the ones it keeps)."""
    t = TrafficMap(n_ues=300)
    cell = CLUSTER.cell_keys[4]
    sim = Simulator(CLUSTER, t, seed=3)
    variants: list[dict[str, object]] = [
        {"hour": 12.0}, {"hour": 12.0, "extra_loss_db": 1.5}, {"hour": 12.0, "interference_rise_db": 2.0},
        {"hour": 12.0, "interference_rise_db": 2.0, "extra_loss_db": 1.5}, {"hour": 13.0},
        {"hour": 12.0, "ue_scale": 2.0}, {"hour": 12.0, "demand_scale": 3.0},
        {"cm": {cell: {"digitalTilt": 30}}, "hour": 12.0},
    ]
    for kw in variants:
        first = sim.evaluate(**kw)  # type: ignore[arg-type]
        assert sim.evaluate(**kw) is first, kw  # type: ignore[arg-type]
        fresh = Simulator(CLUSTER, t, seed=3)
        want = fresh.evaluate(**kw)  # type: ignore[arg-type]
        assert first.kpis == want.kpis, kw
        got_wi = sim.whatif({cell: {"antennaHeight": 35, "configuredMaxTxPower": 10000}})
        want_wi = fresh.whatif({cell: {"antennaHeight": 35, "configuredMaxTxPower": 10000}})
        assert got_wi.kpis == want_wi.kpis, kw
    with pytest.raises(ValueError, match="ue_scale"):  # invalid inputs are refused before any comparison
        sim.evaluate(hour=13.0, ue_scale=-1.0)


def test_deterministic_per_seed() -> None:
    t = TrafficMap(n_ues=400, indoor_fraction=0.8)
    a = Simulator(CLUSTER, t, seed=3).evaluate()
    b = Simulator(CLUSTER, t, seed=3).evaluate()
    c = Simulator(CLUSTER, t, seed=4).evaluate()
    assert a.kpis == b.kpis
    assert np.array_equal(a.ue.sinr_db, b.ue.sinr_db)
    assert a.kpis != c.kpis


@pytest.mark.parametrize(
    ("cm", "match"),
    [
        ({CENTRE: {"digitalTilt": 1200}}, r"digitalTilt=1200 outside the allowed range -900..900"),
        ({CENTRE: {"digitalTilt": 250}}, r"digitalTilt=250 gives an electrical tilt of 25°"),
        ({CENTRE: {"bSChannelBwDL": -20}}, r"bSChannelBwDL=-20 outside the allowed range"),
        ({CENTRE: {"bSChannelBwDL": 33}}, r"bSChannelBwDL=33 is not an NR channel bandwidth"),
        ({"nr:00101-00000beef": {"digitalTilt": 10}}, r"unknown cell 'nr:00101-00000beef'"),
        ({CENTRE: {"configuredMaxTxPower": "high"}}, r"configuredMaxTxPower='high' is not a number"),
        ({CENTRE: {"configuredMaxTxPower": 0}}, r"configuredMaxTxPower=0 outside"),
        ({CENTRE: {"administrativeState": "SLEEPING"}}, r"administrativeState='SLEEPING'"),
        ({CENTRE: {"cellIndividualOffset": 30}}, r"cellIndividualOffset=30 outside the allowed range -24..24"),
    ],
)
def test_invalid_cm_names_field_and_value(sim: Simulator, cm: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sim.whatif(cm)
    with pytest.raises(ValueError, match=match):
        sim.evaluate(cm)
    sim.evaluate()


def test_whatif_rejects_what_it_cannot_simulate(sim: Simulator) -> None:
    with pytest.raises(ValueError, match=r"attribute 'nrPci' \(value 7\) is not simulated"):
        sim.whatif({CENTRE: {"nrPci": 7}})
    with pytest.raises(ValueError, match="sites are fixed"):
        sim.whatif({CENTRE: {"lat": 45.0}})
    # a full mirror view may carry such attributes: evaluate ignores them
    assert sim.evaluate({CENTRE: {"nrPci": 7}}).kpis == sim.evaluate().kpis


def test_time_of_day_scales_load() -> None:
    t = TrafficMap(n_ues=600)
    s = Simulator(CLUSTER, t, seed=1)
    night, evening = s.evaluate(hour=4), s.evaluate(hour=20)
    assert night.load.sum() < evening.load.sum()
    assert night.kpi.values["RRC.ConnMean"].sum() < evening.kpi.values["RRC.ConnMean"].sum()


def test_hotspot_loads_its_cell() -> None:
    from twin.sim import Hotspot

    x, y = CLUSTER.sectors[0].x_m + 150.0, CLUSTER.sectors[0].y_m + 100.0  # in the 30-degree sector
    flat = Simulator(CLUSTER, TrafficMap(n_ues=800), seed=2).evaluate()
    hot = Simulator(CLUSTER, TrafficMap(n_ues=800, hotspots=(Hotspot(x, y, 60.0, 0.3),)), seed=2).evaluate()
    assert hot.kpi.values["RRC.ConnMean"][0] > flat.kpi.values["RRC.ConnMean"][0] + 100


def test_precomputed_propagation_plugs_in(sim: Simulator) -> None:
    grid = PrecomputedPropagation(sim._base_loss.copy())
    plugged = Simulator(CLUSTER, sim.ues, seed=5, propagation=grid).evaluate()
    assert plugged.kpis == Simulator(CLUSTER, sim.ues, seed=5).evaluate().kpis


def test_link_models() -> None:
    table = load_link_table()
    assert isinstance(table, TableLink), "the Sionna link table must ship as package data"
    s = 10 ** (np.linspace(-10, 40, 500) / 10)
    se = table.se_per_re(s)
    assert se[0] == 0.0 and 5.0 < se[-1] < 5.6
    # rises with SINR, up to the small dips of Sionna's ILLA at MCS switches (10 % BLER target)
    assert np.all(se >= 0.85 * np.maximum.accumulate(se))
    assert np.mean(np.diff(se) >= 0) > 0.9
    assert load_link_table(mcs_table=2).max_se > 7.0  # 256QAM
    # absent table -> fallback (attenuated Shannon)
    from pathlib import Path

    assert load_link_table(Path("/nonexistent/link_table.json")) is None
    shannon = Simulator(CLUSTER, TrafficMap(n_ues=300), seed=1, config=SimConfig(link_model="shannon"))
    assert isinstance(shannon.link, ShannonLink)
    assert shannon.evaluate().converged


def test_cluster_from_mirror_view() -> None:
    base = hex_cluster(rings=1)
    lat0, lon0 = 45.07, 7.68
    cells = {}
    for s in base.sectors:
        cells[s.cell_key] = {
            "lat": lat0 + s.y_m / 6_371_000 * 180 / np.pi,
            "lon": lon0 + s.x_m / (6_371_000 * np.cos(np.radians(lat0))) * 180 / np.pi,
            "azimuth": s.azimuth_deg,
            "NRSectorCarrier.configuredMaxTxPower": [39811, 1.7e9, "dn"],
            "CommonBeamformingFunction.digitalTilt": {"value": 80},
            "NRCellDU.bSChannelBwDL": 20,
            "NRCellDU.nRPCI": 17,
        }
    cl = cluster_from_mirror(cells, cluster_id="turin-1")
    assert cl.isd_m == pytest.approx(500.0, rel=1e-3)
    assert len({s.site_id for s in cl.sectors}) == 7
    a = Simulator(cl, TrafficMap(n_ues=500), seed=2).evaluate()
    b = Simulator(base, TrafficMap(n_ues=500), seed=2).evaluate()
    assert abs(a.load.mean() - b.load.mean()) < 0.05


def test_cluster_from_the_mirror_objects() -> None:
    from twin.mirror.cluster import ClusterMirror

    mirror = ClusterMirror("c1")
    for i, s in enumerate(hex_cluster(rings=0).sectors):
        cell = mirror.cell(s.cell_key)
        cell.apply_cm("NRSectorCarrier", f"ME=1,GNBDUFunction=1,NRSectorCarrier={i}",
                      {"configuredMaxTxPower": 20000}, 1.0)
        cell.apply_cm("CommonBeamformingFunction", "dn", {"digitalTilt": 60}, 1.0)
        cell.apply_cm(None, "topology", {"x": s.x_m, "y": s.y_m, "azimuth": s.azimuth_deg, "siteId": "s1"}, 1.0)
    cl = cluster_from_mirror({k: c.cm for k, c in mirror.cells.items()}, cluster_id=mirror.cluster_id)
    assert [round(s.tx_power_dbm, 2) for s in cl.sectors] == [43.01] * 3
    assert {s.elec_tilt_deg for s in cl.sectors} == {6.0} and {s.site_id for s in cl.sectors} == {"s1"}
    assert Simulator(cl, TrafficMap(n_ues=200), seed=0).evaluate().converged
