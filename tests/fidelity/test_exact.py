"""The exact metric: fast vs the POT reference vs an LP reference; certificates; warm starts."""

from __future__ import annotations

import numpy as np
import pytest

from twin.fidelity import dt_bsm, random_mdp_pair
from twin.fidelity.operator import BisimOperator
from twin.fidelity.reference import operator_step
from twin.fidelity.validate import check_pair

from .mdp import dtbsm_lp, small_pair


@pytest.mark.parametrize(("S", "A", "gamma", "seed"), [(3, 2, 0.5, 0), (4, 2, 0.6, 1), (4, 3, 0.5, 2)])
def test_fast_pot_and_lp_agree(S: int, A: int, gamma: float, seed: int) -> None:
    pair = small_pair(S, A, seed)
    ref, ref_err = dtbsm_lp(*pair, gamma=gamma, tol=1e-11)
    fast = dt_bsm(*pair, gamma=gamma, tol=1e-11)
    pot = dt_bsm(*pair, gamma=gamma, tol=1e-11, method="pot")
    assert ref.max() > 0.05  # not a trivial case
    np.testing.assert_allclose(fast.matrix, ref, atol=1e-9)
    np.testing.assert_allclose(pot.matrix, ref, atol=1e-9)
    true = float(np.diagonal(ref).max())
    for res in (fast, pot):
        assert res.lower - 1e-10 <= true <= res.upper + ref_err + 1e-10
        assert res.certified and res.width <= 1e-11


@pytest.mark.parametrize("seed", [3, 4])
def test_fast_matches_pot_on_larger_sparse_pairs(seed: int) -> None:
    pair = random_mdp_pair(8, 3, seed=seed, max_successors=5)
    fast = dt_bsm(*pair, gamma=0.7, tol=1e-10)
    pot = dt_bsm(*pair, gamma=0.7, tol=1e-10, method="pot")
    np.testing.assert_allclose(fast.matrix, pot.matrix, atol=3e-10)
    assert fast.lower <= pot.upper and pot.lower <= fast.upper  # the certified intervals overlap
    assert fast.transport_solves < pot.transport_solves / 5  # lazy actions skip most problems


def test_one_and_two_threads_give_the_same_certified_value() -> None:
    pair = random_mdp_pair(30, 4, seed=5)
    one = dt_bsm(*pair, gamma=0.9, tol=1e-9, threads=1)
    two = dt_bsm(*pair, gamma=0.9, tol=1e-9, threads=2)
    np.testing.assert_allclose(one.matrix, two.matrix, atol=2e-9)


def test_the_stopping_rule_meets_the_tolerance() -> None:
    """At a loose tol the interval is wide, and still holds the value computed to 1e-11."""
    pair = random_mdp_pair(12, 3, seed=6)
    exact = dt_bsm(*pair, gamma=0.9, tol=1e-11)
    for tol in (1.0, 0.1, 1e-3):
        for method in ("fast", "pot") if tol >= 0.1 else ("fast",):
            res = dt_bsm(*pair, gamma=0.9, tol=tol, method=method)  # type: ignore[arg-type]
            assert res.width <= tol
            assert res.lower <= exact.value + 1e-10 and exact.value - 1e-10 <= res.upper, (method, tol)
            # every entry of the exact matrix is within the same width of the returned matrix
            assert np.abs(res.matrix - exact.matrix).max() <= res.width + 1e-10


def test_fast_iterates_from_above_and_pot_from_below() -> None:
    pair = random_mdp_pair(12, 3, seed=7)
    exact = dt_bsm(*pair, gamma=0.8, tol=1e-11)
    fast = dt_bsm(*pair, gamma=0.8, tol=0.05)
    pot = dt_bsm(*pair, gamma=0.8, tol=0.05, method="pot")
    assert (fast.matrix >= exact.matrix - 1e-10).all() and fast.upper == pytest.approx(fast.value, abs=1e-9)
    assert (pot.matrix <= exact.matrix + 1e-10).all() and pot.lower == pytest.approx(pot.value, abs=1e-9)


def test_iterates_rise_monotonically_from_zero() -> None:
    R, P, Rt, Pt = small_pair(4, 2, seed=8)
    op = BisimOperator.plain(check_pair(R, P, Rt, Pt, 0.6))
    exact = dt_bsm(R, P, Rt, Pt, gamma=0.6, tol=1e-11).matrix
    d = np.zeros((4, 4))
    for _ in range(25):
        new = operator_step(op, d)
        assert (new >= d - 1e-14).all() and (new <= exact + 1e-10).all()
        d = new
    assert np.abs(d - exact).max() < 1e-4


def test_warm_start_gives_the_same_certified_value_with_fewer_iterations() -> None:
    R, P, Rt, Pt = random_mdp_pair(40, 4, seed=9)
    before = dt_bsm(R, P, Rt, Pt, gamma=0.9, tol=1e-6)
    rng = np.random.default_rng(0)
    Rt2 = np.clip(Rt + rng.normal(0, 0.01, Rt.shape), 0, 1)  # the twin moves a little
    cold = dt_bsm(R, P, Rt2, Pt, gamma=0.9, tol=1e-6)
    warm = dt_bsm(R, P, Rt2, Pt, gamma=0.9, tol=1e-6, d0=before.matrix)
    assert warm.width <= 1e-6 and warm.lower <= cold.upper and cold.lower <= warm.upper
    assert warm.value == pytest.approx(cold.value, abs=2e-6)
    assert warm.iterations < cold.iterations and warm.sweeps < cold.sweeps
    # a warm start at the fixed point itself is certified by its first sweep
    again = dt_bsm(R, P, Rt2, Pt, gamma=0.9, tol=1e-5, d0=cold.matrix)
    assert again.iterations == 1 and again.lower <= cold.upper and cold.lower <= again.upper


def test_warm_start_from_far_away_is_still_certified() -> None:
    pair = random_mdp_pair(15, 3, seed=10)
    cold = dt_bsm(*pair, gamma=0.9, tol=1e-8)
    for d0 in (np.zeros((15, 15)), np.full((15, 15), 50.0), np.random.default_rng(1).random((15, 15)) * 20):
        warm = dt_bsm(*pair, gamma=0.9, tol=1e-8, d0=d0)
        assert warm.lower <= cold.upper and cold.lower <= warm.upper
        np.testing.assert_allclose(warm.matrix, cold.matrix, atol=2e-8)


def test_result_fields() -> None:
    R, P, Rt, Pt = random_mdp_pair(10, 2, seed=11)
    weights = np.arange(1, 11, dtype=float)
    res = dt_bsm(R, P, Rt, Pt, gamma=0.9, tol=1e-8, weights=weights)
    diag = np.diagonal(res.matrix)
    assert res.value == diag.max() and res.mean == pytest.approx(float(weights @ diag / weights.sum()))
    assert res.mean is not None and res.mean < res.value
    assert dt_bsm(R, P, Rt, Pt, gamma=0.9, tol=1e-8).mean is None
    span = max((R[:, None, :] - Rt[None, :, :]).max(), (Rt[None, :, :] - R[:, None, :]).max())
    assert res.r_max == pytest.approx(span) and res.d_max == pytest.approx(span / 0.1)
    assert (res.matrix <= res.d_max + 1e-9).all()
    assert dt_bsm(R, P, Rt, Pt, gamma=0.9, r_max=1.0).d_max == pytest.approx(10.0)
    assert res.elapsed_s > 0 and res.compile_s == 0.0 and res.iterations >= 1 and res.sweeps >= res.iterations
    assert res.method == "fast" and res.gamma == 0.9 and res.tol == 1e-8
    with pytest.raises(ValueError):
        res.matrix[0, 0] = 1.0  # read-only


@pytest.mark.parametrize(("S", "A", "seed"), [(4, 3, 5), (5, 2, 6)])
def test_per_state_actions_agree_with_an_independent_restricted_fixed_point(S: int, A: int, seed: int) -> None:
    """§9.2's A_cov(x): the max at each real state over its allowed actions only, one state with
    none (its row is 0), against value iteration with HiGHS LPs that skips the excluded pairs."""
    pair = small_pair(S, A, seed)
    rng = np.random.default_rng(seed)
    actions = rng.random((S, A)) < 0.6
    actions[0] = False
    actions[1] = True
    ref, ref_err = dtbsm_lp(*pair, gamma=0.6, tol=1e-11, actions=actions)
    full = dt_bsm(*pair, gamma=0.6, tol=1e-11)
    for method in ("fast", "pot"):
        res = dt_bsm(*pair, gamma=0.6, tol=1e-11, method=method, actions=actions)
        np.testing.assert_allclose(res.matrix, ref, atol=1e-9)
        assert res.lower - 1e-10 <= float(np.diagonal(ref).max()) <= res.upper + ref_err + 1e-10
    assert np.all(ref[0] == 0.0)
    assert np.all(ref <= full.matrix + 1e-9) and (ref < full.matrix - 1e-6).any()  # fewer actions, smaller max


def test_every_action_allowed_is_the_unrestricted_metric_and_one_action_its_slice() -> None:
    R, P, Rt, Pt = random_mdp_pair(8, 3, seed=7, max_successors=5)
    full = dt_bsm(R, P, Rt, Pt, gamma=0.7, tol=1e-10)
    every = dt_bsm(R, P, Rt, Pt, gamma=0.7, tol=1e-10, actions=np.ones((8, 3), bool))
    np.testing.assert_allclose(every.matrix, full.matrix, atol=2e-10)
    first = np.zeros((8, 3), bool)
    first[:, 0] = True
    only = dt_bsm(R, P, Rt, Pt, gamma=0.7, tol=1e-10, actions=first)
    sliced = dt_bsm(R[:, :1], P[:, :1], Rt[:, :1], Pt[:, :1], gamma=0.7, tol=1e-10,
                    r_max=float(np.abs(R[:, None, :] - Rt[None, :, :]).max()))
    np.testing.assert_allclose(only.matrix, sliced.matrix, atol=2e-10)
