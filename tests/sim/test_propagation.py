"""TR 38.901 propagation: hand-checked values, physical sanity, shadowing and O2I."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.sim import los_probability, o2i_loss_db, pathloss_db
from twin.sim.propagation import (
    CorrelatedShadowing,
    StatisticalPropagation,
    breakpoint_distance_m,
    shadow_sigma_db,
)

H_BS = {"uma": 25.0, "umi": 10.0, "rma": 35.0}


def test_hand_computed_values() -> None:
    # UMa LoS at 100 m, 3.5 GHz: d3d = sqrt(100^2 + 23.5^2); below the breakpoint -> PL1
    d3d = math.hypot(100.0, 23.5)
    assert pathloss_db("uma", 100.0, 25.0, 1.5, 3.5, True) == pytest.approx(
        28.0 + 22.0 * math.log10(d3d) + 20.0 * math.log10(3.5), abs=1e-9
    )
    # UMi NLoS at 50 m: PL'_NLOS dominates
    d3d = math.hypot(50.0, 8.5)
    assert pathloss_db("umi", 50.0, 10.0, 1.5, 3.5, False) == pytest.approx(
        35.3 * math.log10(d3d) + 22.4 + 21.3 * math.log10(3.5), abs=1e-9
    )
    # RMa breakpoint 2 pi hBS hUT fc / c
    assert breakpoint_distance_m("rma", 35.0, 1.5, 0.7) == pytest.approx(
        2 * math.pi * 35.0 * 1.5 * 0.7e9 / 299_792_458.0
    )
    # LoS probability, UMa at 100 m and h_UT = 1.5 m
    assert los_probability("uma", 100.0, 1.5) == pytest.approx(0.18 + math.exp(-100 / 63) * 0.82)
    assert los_probability("rma", 1010.0, 1.5) == pytest.approx(math.exp(-1.0))


@pytest.mark.parametrize("scenario", ["uma", "umi", "rma"])
@pytest.mark.parametrize("los", [True, False])
def test_pathloss_grows_with_distance(scenario: str, los: bool) -> None:
    d = np.geomspace(10.0, 5000.0, 400)
    pl = pathloss_db(scenario, d, H_BS[scenario], 1.5, 3.5, los)
    assert pl.shape == d.shape
    assert np.all(np.diff(pl) > 0)


@pytest.mark.parametrize("scenario", ["uma", "umi", "rma"])
def test_nlos_is_never_below_los_and_grows_with_frequency(scenario: str) -> None:
    d = np.geomspace(10.0, 5000.0, 200)
    los = pathloss_db(scenario, d, H_BS[scenario], 1.5, 3.5, True)
    nlos = pathloss_db(scenario, d, H_BS[scenario], 1.5, 3.5, False)
    assert np.all(nlos >= los - 1e-12)
    assert np.all(pathloss_db(scenario, d, H_BS[scenario], 1.5, 6.0, False) > nlos)


@pytest.mark.parametrize("scenario", ["uma", "umi"])
def test_los_pathloss_is_continuous_at_the_breakpoint(scenario: str) -> None:
    d_bp = float(breakpoint_distance_m(scenario, H_BS[scenario], 1.5, 3.5))
    below = pathloss_db(scenario, d_bp * (1 - 1e-9), H_BS[scenario], 1.5, 3.5, True)
    above = pathloss_db(scenario, d_bp * (1 + 1e-9), H_BS[scenario], 1.5, 3.5, True)
    assert float(above - below) == pytest.approx(0.0, abs=0.05)


@settings(max_examples=60, deadline=None)
@given(
    scenario=st.sampled_from(["uma", "umi", "rma"]),
    d=st.floats(10.0, 10_000.0),
    h_ut=st.floats(1.0, 10.0),
)
def test_los_probability_is_a_probability_and_decreases(scenario: str, d: float, h_ut: float) -> None:
    p = float(los_probability(scenario, d, h_ut))
    assert 0.0 <= p <= 1.0
    assert float(los_probability(scenario, d * 1.5, h_ut)) <= p + 1e-12


def test_vectorised_broadcasting_and_errors() -> None:
    d = np.array([[50.0], [500.0]])
    out = pathloss_db("uma", d, np.array([25.0, 30.0]), 1.5, 3.5, np.array([True, False]))
    assert out.shape == (2, 2)
    with pytest.raises(ValueError, match="scenario 'inh'"):
        pathloss_db("inh", 100.0, 3.0, 1.5, 3.5, True)
    with pytest.raises(ValueError, match="fc_ghz"):
        pathloss_db("uma", 100.0, 25.0, 1.5, -3.5, True)


def test_shadow_sigma_and_o2i() -> None:
    assert shadow_sigma_db("uma", np.array([True, False])).tolist() == [4.0, 6.0]
    assert shadow_sigma_db("umi", False) == pytest.approx(7.82)
    low, high = o2i_loss_db(3.5, 10.0, "low"), o2i_loss_db(3.5, 10.0, "high")
    assert high > low > 5.0 + 0.5 * 10.0
    assert o2i_loss_db(3.5, 10.0, "low", 1.0) - low == pytest.approx(4.4)
    with pytest.raises(ValueError, match="O2I model"):
        o2i_loss_db(3.5, 0.0, "medium")  # type: ignore[arg-type]


def test_correlated_shadowing_statistics() -> None:
    sh = CorrelatedShadowing(n_sites=400, corr_m=50.0, seed=11)
    sites = np.arange(400)
    a = sh.sample(sites, np.zeros(400), np.zeros(400))
    near = sh.sample(sites, np.full(400, 5.0), np.zeros(400))
    far = sh.sample(sites, np.full(400, 500.0), np.zeros(400))
    assert np.std(a) == pytest.approx(1.0, abs=0.12)
    assert np.corrcoef(a, near)[0, 1] > 0.8  # exp(-5/50) ~ 0.9
    assert abs(np.corrcoef(a, far)[0, 1]) < 0.25  # exp(-10) ~ 0
    assert np.array_equal(a, sh.sample(sites, np.zeros(400), np.zeros(400)))


def test_statistical_propagation_is_reproducible_per_site_and_ue() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-500, 500, 300), rng.uniform(-500, 500, 300)
    sites = np.array([0, 0, 1])

    def build(seed: int) -> StatisticalPropagation:
        return StatisticalPropagation("uma", sites, x, y, np.full(300, 1.5), rng.random(300) < 0.5, seed=seed)

    from twin.sim import LinkGeometry

    d2d = np.hypot(x, y)[None, :].repeat(3, axis=0)
    geo = LinkGeometry(d2d, d2d, np.zeros_like(d2d), np.full_like(d2d, 95.0))
    rows = np.arange(3)
    p1 = build(4)
    l1 = p1.loss_db(rows, geo, np.full(3, 25.0), np.full(3, 3.5))
    assert np.array_equal(l1, p1.loss_db(rows, geo, np.full(3, 25.0), np.full(3, 3.5)))
    assert np.array_equal(l1[0], l1[1])  # co-sited sectors share LoS and shadowing
    assert not np.array_equal(l1[0], l1[2])
    assert not np.array_equal(l1, build(5).loss_db(rows, geo, np.full(3, 25.0), np.full(3, 3.5)))
