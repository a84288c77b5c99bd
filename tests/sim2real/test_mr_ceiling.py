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
