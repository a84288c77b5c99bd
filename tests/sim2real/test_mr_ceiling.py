"""``twin bench mr-ceiling``: the offsets located reports show, and the ranking machinery, on the
emulator's real physics (no mock: the emulated network is the peer)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from replay.bench_mr_ceiling import reported_offsets, run_mr_ceiling
from replay.emulator import NetworkEmulator
from replay.sim2real_data import Band, real_samples

START = datetime(2024, 3, 1, tzinfo=UTC)


def test_reports_show_the_extra_loss_of_the_cells_they_hear() -> None:
    emu = NetworkEmulator("suburban-quiet", seed=0, start=START, granularity_s=3600, mr_per_cell=0)
    period = real_samples(emu, 2, Band(), seed=0).periods[1]
    t = emu.physics.truth
    n_cells = t.extra_loss_db.shape[0]
    # antennas without errors: a place's offset against the public model is its extra loss, exactly
    exact = emu.physics.with_truth(replace(t, gain_db=np.zeros(n_cells), azimuth_deg=np.zeros(n_cells)))
    offsets, heard = reported_offsets(exact, period, n_cells, 0.0, 1.0, np.random.default_rng(0))
    assert heard.all() and np.allclose(offsets, t.extra_loss_db, atol=1e-9)
    # two cells heard at half of the places: those pairs exact, the rest the place's (or the overall) mean
    offsets, heard = reported_offsets(exact, period, 2, 0.0, 0.5, np.random.default_rng(1))
    places = heard.any(0)
    assert (heard.sum(0)[places] == 2).all() and 0.4 < places.mean() < 0.6
    assert np.allclose(offsets[heard], t.extra_loss_db[heard], atol=1e-9)
    place_mean = np.where(heard, t.extra_loss_db, 0.0).sum(0) / 2
    assert np.allclose(np.where(heard, place_mean[None, :], offsets)[:, places], place_mean[None, places], atol=1e-9)
    assert np.allclose(offsets[:, ~places], t.extra_loss_db[heard].mean(), atol=1e-9)
    # the truth itself is untouched
    assert emu.physics.truth is t


def test_the_truth_ranks_itself_exactly_and_the_public_model_does_not() -> None:
    doc = run_mr_ceiling(cells_heard=21, noise_db=0.0, places_share=1.0, pairs=1, days=1, seed=0,
                         scenarios=("suburban-quiet",))
    tau = doc["kendall_tau"]
    assert tau["per_place_exact_antennas"] == 1.0  # every pair heard exactly, the antennas' own errors: the truth
    assert -1.0 <= tau["public_model"] < 1.0 and -1.0 <= tau["per_place"] <= 1.0
    assert doc["pairs"] == 1 and doc["candidates"] == 21


@pytest.mark.parametrize(("field", "kwargs"), [("cells_heard", {"cells_heard": 0}), ("noise_db", {"noise_db": -1.0}),
                                               ("places_share", {"places_share": 0.0}), ("pairs", {"pairs": 0}),
                                               ("days", {"days": 0})])
def test_bad_settings_are_refused_by_name(field: str, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=f"^{field}=") as err:
        run_mr_ceiling(**kwargs)  # type: ignore[arg-type]
    assert str(kwargs[field]) in str(err.value)


def test_offsets_from_the_emulators_own_reports_are_the_places_offsets() -> None:
    """Reports without measurement error and a configuration that does not move: at every (cell,
    place) a report heard, the fitted offset is the public model's RSRP less the true one (to the
    reports' 0.1 dB); a cell not heard takes its place's mean."""
    from replay.bench_mr_ceiling import offsets_from_reports
    from replay.emulator.scenario import load_scenario
    from replay.sim2real_data import PeriodReports

    base = load_scenario("suburban-quiet")
    exact = replace(base, truth=replace(base.truth, mr_rsrp_noise_db=0.0))
    emu = NetworkEmulator(exact, seed=0, start=START, granularity_s=3600, mr_per_cell=20)
    collected: list[PeriodReports] = []
    data = real_samples(emu, 3, Band(change_share=0.0), seed=0, reports=collected)
    assert len(collected) == 3 and all(len(p.reports) == 20 * len(emu.cells) for p in collected)
    topo = emu.scenario.topology
    offsets, heard = offsets_from_reports(emu.physics, topo.lat0, topo.lon0, emu.cells, collected)
    t = emu.physics.truth
    public = emu.physics.with_truth(replace(t, gain_db=np.zeros_like(t.gain_db),
                                            azimuth_deg=np.zeros_like(t.azimuth_deg),
                                            extra_loss_db=np.zeros_like(t.extra_loss_db)))
    period = data.periods[0]
    every = np.arange(t.extra_loss_db.shape[1])
    truth = emu.physics.rsrp_matrix(emu.physics.evaluate(period.public, period.hour, list(period.active)), every)
    expected = public.rsrp_matrix(public.evaluate(period.public, period.hour, list(period.active)), every)
    unclipped = heard & (truth > -155.0)
    assert heard.sum() >= 2 * len(collected) * 20 * len(emu.cells) // 4  # many distinct pairs heard
    assert np.abs(offsets[unclipped] - (expected - truth)[unclipped]).max() < 0.06
    places = heard.any(0)
    place_mean = np.where(heard, offsets, 0.0).sum(0)[places] / heard.sum(0)[places]
    assert np.allclose(np.where(heard[:, places], place_mean[None, :], offsets[:, places]), place_mean[None, :])


def test_a_cluster_model_lays_its_per_place_loss_on_the_models() -> None:
    from replay.sim2real_data import twin_models
    from twin.sim.kpis import CONN
    from twin.sim2real import ClusterModel

    emu = NetworkEmulator("suburban-quiet", seed=0, start=START, granularity_s=3600, mr_per_cell=0)
    plain = twin_models([emu])[0]
    base = plain.simulator.base_loss_db
    assert not base.flags.writeable  # a view the caller cannot change under the simulator
    same = ClusterModel(plain.cluster, plain.traffic, plain.seed, plain.config, extra_loss_db=np.zeros_like(base))
    assert np.array_equal(same.simulator.evaluate().kpi.values[CONN], plain.simulator.evaluate().kpi.values[CONN])
    weaker = np.zeros_like(base)
    weaker[0] = 30.0  # cell 0 30 dB weaker at every place: it serves fewer UEs, the others more
    moved = ClusterModel(plain.cluster, plain.traffic, plain.seed, plain.config, extra_loss_db=weaker)
    before, after = plain.simulator.evaluate().kpi.values[CONN], moved.simulator.evaluate().kpi.values[CONN]
    assert after[0] < 0.5 * before[0] and after[1:].sum() > before[1:].sum()
    with pytest.raises(ValueError, match="extra_loss_db must be finite with shape"):
        _ = ClusterModel(plain.cluster, plain.traffic, plain.seed, plain.config,
                         extra_loss_db=np.zeros((2, 2))).simulator
    with pytest.raises(ValueError, match="extra_loss_db"):
        _ = ClusterModel(plain.cluster, plain.traffic, plain.seed, plain.config,
                         extra_loss_db=np.full_like(base, np.nan)).simulator
