"""The resync's per-place radio term (``twin.resync.fit``, ``RadioPlaces``): a cell's SS-RSRP
change at the places it was heard measures its gain and azimuth change directly, and the change of
the interference plus noise its UEs heard there measures its interference margin.

The "network" here is the twin's own model under a known calibration change (its KPIs are the
aggregate evidence) and per-place changes drawn from that change plus report noise: a test of how
the fit uses the term. The emulated network's hidden truth is in ``twin bench fidelity``."""

from __future__ import annotations

import numpy as np
import pytest

from twin.mirror.radio_map import interference_key
from twin.prediction.model import kpi_values
from twin.resync.calibration import Calibration, CellCalibration
from twin.resync.fit import (
    MIN_PLACES,
    Evidence,
    RadioPlaces,
    fit_change,
    predict_window,
    radio_excess,
    radio_model_db,
    radio_visible,
)
from twin.sim.simulator import Simulator
from twin.sim.topology import hex_cluster

END = 1_800_000_000


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(hex_cluster(rings=1, isd_m=500.0), seed=3)


def _evidence(sim: Simulator, truth: Calibration) -> list[Evidence]:
    home = sim.evaluate().ue.serving
    total = float(np.sum(np.where(sim.evaluate().ue.connected, sim.ues.weight, 0.0)))
    out = []
    for end, cal, changed in ((END - 900, Calibration(), False), (END, truth, True)):
        real = kpi_values(predict_window(sim, cal, home, [Evidence(end, {}, total, changed)])[0])
        out.append(Evidence(end, real, sum(v["RRC.ConnMean"] for v in real.values()), changed))
    return out


def _places(sim: Simulator, cell: str, gain_db: float, azimuth_deg: float, n: int = 40,
            seed: int = 0) -> dict[str, RadioPlaces]:
    """Places around every cell's site: the moved cell's change plus 2 dB of report noise, and one
    place that is 25 dB off (two UEs in one bin); the other cells unchanged."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in sim.cluster.sectors:
        r, a = rng.uniform(60.0, 400.0, n), rng.uniform(0.0, 2 * np.pi, n)
        pl = RadioPlaces(s.x_m + r * np.cos(a), s.y_m + r * np.sin(a), np.zeros(n), np.full(n, 2.0))
        moved = radio_model_db(s, pl, gain_db, azimuth_deg, 0.0) if s.cell_key == cell else np.zeros(n)
        delta = moved + rng.normal(0.0, 2.0, n)
        delta[0] += 25.0
        out[s.cell_key] = RadioPlaces(pl.x_m, pl.y_m, delta, pl.weight)
    return out


@pytest.mark.parametrize(("gain_db", "azimuth_deg"), [(-15.0, 0.0), (-4.0, 0.0), (0.0, 40.0)])
def test_the_places_give_the_cells_gain_and_azimuth_change(sim: Simulator, gain_db: float,
                                                           azimuth_deg: float) -> None:
    cell = sim.cluster.cell_keys[4]
    truth = Calibration({cell: CellCalibration(gain_db=gain_db, azimuth_deg=azimuth_deg)})
    places = _places(sim, cell, gain_db, azimuth_deg)
    fit = fit_change(sim, _evidence(sim, truth), [cell], radio=places)
    change = fit.change[cell]
    assert abs(change["gainDb"] - gain_db) <= 1.0, change
    assert abs(change["azimuthDeg"] - azimuth_deg) <= 4.0, change
    assert abs(fit.change["cluster"]["pathlossDb"]) <= 0.5
    assert fit.error_after < 0.5 * fit.error_before
    # the verification's per-period term: lower with the fitted change than without any
    misfit_fit = radio_excess(sim, places, Calibration(), fit.change, [cell])
    misfit_none = radio_excess(sim, places, Calibration(), {}, [cell])
    assert misfit_fit is not None and misfit_none is not None and misfit_fit < misfit_none


def test_the_places_noise_is_not_counted_for_or_against_a_resync(sim: Simulator) -> None:
    """Places of a cell that did not change: a small change (what a fit to their noise finds) is
    below what they resolve, so a verification leaves them out (the aggregates decide); a change
    they can see is judged by them."""
    cell = sim.cluster.cell_keys[4]
    places = {**_places(sim, cell, 0.0, 0.0), interference_key(cell): _heard(sim, cell, 0.0)}
    small = {cell: {"gainDb": -0.5, "azimuthDeg": 2.0, "interferenceDb": 0.5}}
    assert radio_visible(sim, places, Calibration(), small, [cell]) == []
    assert radio_excess(sim, places, Calibration(), small, []) is None
    # a change the places can judge is judged: here they contradict it
    wrong = {cell: {"gainDb": -6.0}}
    assert radio_visible(sim, places, Calibration(), wrong, [cell]) == [cell]
    excess = radio_excess(sim, places, Calibration(), wrong, [cell])
    none = radio_excess(sim, places, Calibration(), {}, [cell])
    assert excess is not None and none is not None and excess > none + 0.5


def test_an_azimuth_the_aggregates_cannot_see_is_found_in_the_places(sim: Simulator) -> None:
    cell = sim.cluster.cell_keys[4]
    truth = Calibration({cell: CellCalibration(azimuth_deg=40.0)})
    evidence = _evidence(sim, truth)
    alone = fit_change(sim, evidence, [cell])
    with_places = fit_change(sim, evidence, [cell], radio=_places(sim, cell, 0.0, 40.0))
    assert abs(with_places.change[cell]["azimuthDeg"] - 40.0) < abs(alone.change[cell]["azimuthDeg"] - 40.0)


def test_too_few_places_are_left_out(sim: Simulator) -> None:
    cell = sim.cluster.cell_keys[4]
    few = {cell: RadioPlaces(np.zeros(MIN_PLACES - 1), np.full(MIN_PLACES - 1, 200.0),
                             np.full(MIN_PLACES - 1, -30.0), np.ones(MIN_PLACES - 1))}
    assert radio_excess(sim, few, Calibration(), {}, [cell]) is None
    evidence = _evidence(sim, Calibration())
    assert fit_change(sim, evidence, [cell], radio=few).change == fit_change(sim, evidence, [cell]).change


def _heard(sim: Simulator, cell: str, margin_db: float, n: int = 30, seed: int = 1) -> RadioPlaces:
    """The interference-plus-noise places of ``cell``'s UEs (``twin.mirror.radio_map``): at ``n`` of
    the twin's UE points it serves, a rise of ``margin_db`` plus 3 dB of report noise (SS-RSRP's and
    SS-SINR's), and one place 25 dB off."""
    rng = np.random.default_rng(seed)
    ue = sim.evaluate().ue
    served = np.flatnonzero((ue.serving == sim.cluster.cell_keys.index(cell)) & ue.connected)
    idx = rng.choice(served, size=min(n, served.size), replace=False)
    delta = margin_db + rng.normal(0.0, 3.0, idx.size)
    delta[0] += 25.0
    return RadioPlaces(sim.ues.x_m[idx], sim.ues.y_m[idx], delta, np.ones(idx.size))


def test_the_interference_its_ues_heard_gives_a_cells_interference_margin(sim: Simulator) -> None:
    """An external interferer: the cell's UEs hear 6 dB more interference plus noise, its SS-RSRP is
    unchanged. The fit gives the cell the margin (a gain or traffic change cannot raise what its UEs
    hear besides their cell)."""
    cell = sim.cluster.cell_keys[4]
    truth = Calibration({cell: CellCalibration(interference_db=6.0)})
    places = {**_places(sim, cell, 0.0, 0.0), interference_key(cell): _heard(sim, cell, 6.0)}
    fit = fit_change(sim, _evidence(sim, truth), [cell], radio=places)
    change = fit.change[cell]
    assert abs(change["interferenceDb"] - 6.0) <= 1.0, change
    assert abs(change["gainDb"]) <= 1.0 and abs(change["trafficScale"] - 1.0) < 0.1, change
    assert fit.after.cell(cell).interference_db == change["interferenceDb"]
    assert fit.error_after < 0.5 * fit.error_before
    misfit_fit = radio_excess(sim, places, Calibration(), fit.change, [cell])
    misfit_none = radio_excess(sim, places, Calibration(), {}, [cell])
    assert misfit_fit is not None and misfit_none is not None and misfit_fit < misfit_none


def test_a_gain_fault_gets_no_interference_margin(sim: Simulator) -> None:
    """A -15 dB fault: the cell's UEs hear their interference unchanged (signal and SS-SINR fell
    together), so the margin stays 0 however its SS-SINR mean fell."""
    cell = sim.cluster.cell_keys[4]
    truth = Calibration({cell: CellCalibration(gain_db=-15.0)})
    places = {**_places(sim, cell, -15.0, 0.0), interference_key(cell): _heard(sim, cell, 0.0)}
    fit = fit_change(sim, _evidence(sim, truth), [cell], radio=places)
    assert abs(fit.change[cell]["gainDb"] + 15.0) <= 1.0, fit.change
    assert fit.change[cell]["interferenceDb"] <= 1.0, fit.change


def test_without_interference_places_no_margin_is_fitted(sim: Simulator) -> None:
    """Where the data does not support it (no located SS-SINR), the margin is not a parameter."""
    cell = sim.cluster.cell_keys[4]
    truth = Calibration({cell: CellCalibration(interference_db=6.0)})
    fit = fit_change(sim, _evidence(sim, truth), [cell], radio=_places(sim, cell, 0.0, 0.0))
    assert fit.change[cell]["interferenceDb"] == 0.0 and fit.after.cell(cell).interference_db == 0.0
