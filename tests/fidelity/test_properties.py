"""The property tests of spec §8 on random small MDPs (3–6 states): value bound, regret bound,
diag(d) <= δ <= closed form, d = 0 on the diagonal when M = M'."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.fidelity import dt_bsm, regret_bound, tv_bound

from .mdp import policy_value, q_star, small_pair

CASES = [(S, A, gamma, seed) for seed, (S, A, gamma) in enumerate(
    [(3, 2, 0.5), (4, 2, 0.9), (5, 3, 0.7), (6, 2, 0.95), (4, 4, 0.8), (6, 3, 0.6)])]


@pytest.mark.parametrize(("S", "A", "gamma", "seed"), CASES)
def test_value_bound(S: int, A: int, gamma: float, seed: int) -> None:
    """|Q*_M(x, a) − Q*_M'(y, a)| <= d(x, y) for all x, y, a."""
    R, P, Rt, Pt = small_pair(S, A, seed)
    d = dt_bsm(R, P, Rt, Pt, gamma=gamma, tol=1e-9).matrix
    gap = np.abs(q_star(R, P, gamma)[:, None, :] - q_star(Rt, Pt, gamma)[None, :, :]).max(axis=2)
    assert (gap <= d + 1e-8).all()
    assert gap.max() > 0.01 * d.max()  # the bound is not vacuous here


@pytest.mark.parametrize(("S", "A", "gamma", "seed"), CASES)
def test_regret_bound(S: int, A: int, gamma: float, seed: int) -> None:
    """A twin-optimal policy, and a twin-suboptimal one (ε_train > 0), lose at most α·DT-BSM + β·ε_train."""
    R, P, Rt, Pt = small_pair(S, A, seed)
    res = dt_bsm(R, P, Rt, Pt, gamma=gamma, tol=1e-9)
    Qt = q_star(Rt, Pt, gamma)
    V = q_star(R, P, gamma).max(axis=1)
    rng = np.random.default_rng(seed)
    for policy in (Qt.argmax(axis=1), rng.integers(0, A, S)):
        eps_train = max(0.0, float((Qt.max(axis=1) - policy_value(Rt, Pt, policy, gamma)).max()))
        regret = float((V - policy_value(R, P, policy, gamma)).max())
        assert regret <= regret_bound(res.upper, eps_train, gamma) + 1e-9
        assert regret <= 2 * res.upper + eps_train + 1e-9  # what the spec observed (no proof)


@pytest.mark.parametrize(("S", "A", "gamma", "seed"), CASES)
def test_diagonal_below_tv_bound_below_closed_form(S: int, A: int, gamma: float, seed: int) -> None:
    R, P, Rt, Pt = small_pair(S, A, seed)
    res = dt_bsm(R, P, Rt, Pt, gamma=gamma, tol=1e-9)
    tv = tv_bound(R, P, Rt, Pt, gamma=gamma, tol=1e-9)
    exact_diag_low = np.diagonal(res.matrix) - res.width  # the exact diagonal is above this
    assert (exact_diag_low <= tv.delta + (tv.upper - tv.value) + 1e-12).all()
    assert res.lower <= tv.upper and tv.lower <= tv.closed_form + 1e-12
    assert tv.value == pytest.approx(float(tv.delta.max())) and tv.upper - tv.lower <= 1e-9


def test_the_tv_bound_is_tighter_than_the_closed_form_and_above_the_exact_value() -> None:
    from twin.fidelity import random_mdp_pair

    pair = random_mdp_pair(40, 4, seed=3)
    res = dt_bsm(*pair, gamma=0.9, tol=1e-6, r_max=1.0)
    tv = tv_bound(*pair, gamma=0.9, r_max=1.0)
    assert res.upper < tv.lower < tv.upper < tv.closed_form


@settings(max_examples=15, deadline=None)
@given(S=st.integers(2, 5), A=st.integers(1, 3), gamma=st.sampled_from([0.3, 0.6, 0.9]), seed=st.integers(0, 10**6))
def test_identical_mdps_have_zero_diagonal(S: int, A: int, gamma: float, seed: int) -> None:
    R, P, _Rt, _Pt = small_pair(S, A, seed)
    res = dt_bsm(R, P, R, P, gamma=gamma, tol=1e-10)
    assert np.abs(np.diagonal(res.matrix)).max() <= 1e-9 and res.lower == 0.0
    tv = tv_bound(R, P, R, P, gamma=gamma)
    assert tv.upper == 0.0
    if (R.max(axis=0) > R.min(axis=0) + 0.1).any():  # distinct states stay apart
        assert res.matrix.max() > 0.05


@pytest.mark.parametrize(("S", "A", "gamma", "seed"), CASES)
def test_restricted_diagonal_below_restricted_tv_bound(S: int, A: int, gamma: float, seed: int) -> None:
    R, P, Rt, Pt = small_pair(S, A, seed)
    actions = np.random.default_rng(seed).random((S, A)) < 0.5
    actions[:, 0] |= ~actions.any(axis=1)  # every state keeps one action
    res = dt_bsm(R, P, Rt, Pt, gamma=gamma, tol=1e-9, actions=actions)
    tv = tv_bound(R, P, Rt, Pt, gamma=gamma, tol=1e-9, actions=actions)
    full = tv_bound(R, P, Rt, Pt, gamma=gamma, tol=1e-9)
    assert (np.diagonal(res.matrix) - res.width <= tv.delta + (tv.upper - tv.value) + 1e-12).all()
    assert (tv.delta <= full.delta + (full.upper - full.value) + 1e-12).all()
    assert tv.closed_form == full.closed_form
