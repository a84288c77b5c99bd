"""The worked examples of spec §8, each checked with both solvers (the values were checked there
with an exact LP)."""

from __future__ import annotations

import numpy as np
import pytest

from twin.fidelity import dt_bsm, regret_bound, tv_bound, tv_closed_form

from .mdp import policy_value, q_star

SWAP = [[[0.0, 1.0]], [[1.0, 0.0]]]  # 0 -> 1, 1 -> 0
METHODS = ["fast", "pot"]


@pytest.mark.parametrize("method", METHODS)
def test_ex1_identical_mdps(method: str) -> None:
    res = dt_bsm([[0.0], [1.0]], SWAP, [[0.0], [1.0]], SWAP, gamma=0.5, tol=1e-10, method=method)
    assert res.matrix[0, 0] == pytest.approx(0.0, abs=1e-9) and res.matrix[1, 1] == pytest.approx(0.0, abs=1e-9)
    assert res.matrix[0, 1] == pytest.approx(2.0, abs=1e-9) and res.matrix[1, 0] == pytest.approx(2.0, abs=1e-9)
    assert res.value == pytest.approx(0.0, abs=1e-9) and res.lower == 0.0


@pytest.mark.parametrize("method", METHODS)
def test_ex2_reward_shift_is_asymmetric(method: str) -> None:
    res = dt_bsm([[0.0], [1.0]], SWAP, [[1.0], [2.0]], SWAP, gamma=0.5, tol=1e-10, method=method)
    np.testing.assert_allclose(res.matrix, [[2.0, 8 / 3], [4 / 3, 2.0]], atol=1e-9)
    assert res.value == pytest.approx(2.0, abs=1e-9)  # c / (1 - γ)
    # the value bound is tight: V* = (2/3, 4/3), V'* = (8/3, 10/3)
    V = q_star(np.array([[0.0], [1.0]]), np.array(SWAP), 0.5).max(axis=1)
    Vt = q_star(np.array([[1.0], [2.0]]), np.array(SWAP), 0.5).max(axis=1)
    np.testing.assert_allclose(np.abs(V[:, None] - Vt[None, :]), res.matrix, atol=1e-9)


EX3 = ([[0.0], [1.0]], [[[1.0, 0.0]], [[0.0, 1.0]]], [[0.0], [1.0]], [[[0.8, 0.2]], [[0.0, 1.0]]])


@pytest.mark.parametrize("method", METHODS)
def test_ex3_only_transitions_differ(method: str) -> None:
    res = dt_bsm(*EX3, gamma=0.5, tol=1e-10, method=method)
    np.testing.assert_allclose(res.matrix, [[1 / 3, 2.0], [5 / 3, 0.0]], atol=1e-9)
    assert res.value == pytest.approx(1 / 3, abs=1e-9)
    assert res.lower <= 1 / 3 <= res.upper
    assert res.r_max == 1.0 and res.d_max == 2.0


def test_ex3_tv_bound_and_closed_form() -> None:
    b = tv_bound(*EX3, gamma=0.5, tol=1e-12)
    assert b.delta[0] == pytest.approx(1 / 3, abs=1e-9) and b.delta[1] == pytest.approx(0.0, abs=1e-12)
    assert b.lower <= 1 / 3 <= b.upper and b.upper - b.lower <= 1e-12
    assert b.closed_form == pytest.approx(0.4) and tv_closed_form(*EX3, gamma=0.5) == pytest.approx(0.4)
    assert b.d_max == 2.0


@pytest.mark.parametrize("method", METHODS)
def test_ex4_max_over_actions(method: str) -> None:
    res = dt_bsm([[0.0, 1.0]], [[[1.0], [1.0]]], [[0.5, 1.0]], [[[1.0], [1.0]]], gamma=0.9, tol=1e-9, method=method)
    assert res.value == pytest.approx(5.0, abs=1e-8)


def test_ex4_regret_check() -> None:
    R, Rt = np.array([[0.0, 1.0]]), np.array([[1.0, 0.5]])
    P = np.ones((1, 2, 1))
    res = dt_bsm(R, P, Rt, P, gamma=0.5, tol=1e-10)
    assert res.value == pytest.approx(2.0, abs=1e-9)
    policy = q_star(Rt, P, 0.5).argmax(axis=1)  # the twin-optimal policy picks action 0
    assert policy.tolist() == [0]
    regret = float((q_star(R, P, 0.5).max(axis=1) - policy_value(R, P, policy, 0.5)).max())
    assert regret == pytest.approx(2.0)
    assert regret_bound(res.upper, 0.0, gamma=0.5) == pytest.approx(8.0, abs=1e-8)
    assert regret <= regret_bound(res.upper, 0.0, gamma=0.5)
