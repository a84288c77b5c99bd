"""The compiled transportation simplex against an independent LP (scipy HiGHS), cold and warm."""

from __future__ import annotations

import numpy as np
import pytest

from twin.fidelity import FidelityInputError, transport_cost, transport_plan
from twin.fidelity.simplex import MAX_PIVOTS, northwest_corner, solve_transport, workspace_size

from .mdp import w1_lp


def _problems(seed: int, count: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Random problems, a third of them degenerate (equal or integer weights, integer costs with ties)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        m, n = (int(v) for v in rng.integers(1, 11, 2))
        if k % 3 == 0:
            p, q = rng.random(m), rng.random(n)
        elif k % 3 == 1:
            p, q = np.ones(m), np.ones(n)
        else:
            p, q = rng.integers(1, 4, m).astype(float), rng.integers(1, 4, n).astype(float)
        C = rng.random((m, n)) * 10 if k % 2 else rng.integers(0, 3, (m, n)).astype(float)
        out.append((p / p.sum(), q / q.sum(), C))
    return out


def test_cold_solves_match_highs() -> None:
    for p, q, C in _problems(0, 300):
        assert transport_cost(p, q, C) == pytest.approx(w1_lp(p, q, C), abs=1e-12)


def test_the_plan_is_a_coupling_with_the_reported_cost() -> None:
    for p, q, C in _problems(1, 50):
        cost, plan = transport_plan(p, q, C)
        assert (plan >= 0).all()
        np.testing.assert_allclose(plan.sum(axis=1), p, atol=1e-14)
        np.testing.assert_allclose(plan.sum(axis=0), q, atol=1e-14)
        assert float((plan * C).sum()) == pytest.approx(cost, abs=1e-13)


def test_warm_solves_from_the_previous_basis_match_highs() -> None:
    """The solver's use in the metric: marginals fixed, costs changing, basis kept between solves."""
    rng = np.random.default_rng(2)
    for p, q, C in _problems(3, 60):
        m, n = C.shape
        bi, bj, fl = np.empty(m + n - 1, np.int16), np.empty(m + n - 1, np.int16), np.empty(m + n - 1)
        northwest_corner(p, q, bi, bj, fl)
        iw, fw, u, v = np.empty(workspace_size(m, n), np.int64), np.empty(m + n), np.empty(m), np.empty(n)
        for _ in range(5):
            cost, _pivots, status = solve_transport(m, n, C, bi, bj, fl, u, v, iw, fw, 1e-13, MAX_PIVOTS)
            assert status == 0
            assert cost == pytest.approx(w1_lp(p, q, C), abs=1e-12)
            C = np.abs(C + rng.normal(0, 0.5, C.shape))
        np.testing.assert_allclose(np.bincount(bi, weights=fl, minlength=m), p, atol=1e-13)
        np.testing.assert_allclose(np.bincount(bj, weights=fl, minlength=n), q, atol=1e-13)


def test_an_unchanged_optimum_needs_no_pivot() -> None:
    p, q = np.array([0.2, 0.3, 0.5]), np.array([0.6, 0.4])
    C = np.array([[5.0, 0.0], [0.0, 1.0], [2.0, 0.5]])  # the north-west corner is not optimal
    bi, bj, fl = np.empty(4, np.int16), np.empty(4, np.int16), np.empty(4)
    northwest_corner(p, q, bi, bj, fl)
    iw, fw, u, v = np.empty(workspace_size(3, 2), np.int64), np.empty(5), np.empty(3), np.empty(2)
    first = solve_transport(3, 2, C, bi, bj, fl, u, v, iw, fw, 1e-13, MAX_PIVOTS)
    again = solve_transport(3, 2, C, bi, bj, fl, u, v, iw, fw, 1e-13, MAX_PIVOTS)
    assert first[1] > 0 and again[1] == 0 and again[0] == pytest.approx(first[0], abs=1e-15)
    capped_bi, capped_bj, capped_fl = np.empty(4, np.int16), np.empty(4, np.int16), np.empty(4)
    northwest_corner(p, q, capped_bi, capped_bj, capped_fl)
    nw_cost = float((capped_fl * C[capped_bi, capped_bj]).sum())
    capped = solve_transport(3, 2, C, capped_bi, capped_bj, capped_fl, u, v, iw, fw, 1e-13, 0)
    assert capped[2] == 1 and capped[0] == pytest.approx(nw_cost)  # stopped: the given coupling's cost


@pytest.mark.parametrize(("p", "q", "C", "message"), [
    ([0.5, 0.5], [0.5, 0.6], [[0, 1], [1, 0]], "equal sums"),
    ([0.5, 0.5], [1.0], [[0, 1], [1, 0]], "cost must have shape (2, 1)"),
    ([1.5, -0.5], [1.0], [[0], [1]], "must be >= 0"),
    ([1.0], [1.0], [[np.nan]], "cost must be finite"),
    ([], [1.0], [[]], "non-empty"),
])
def test_bad_problems_are_refused(p: list[float], q: list[float], C: list[list[float]], message: str) -> None:
    with pytest.raises(FidelityInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        transport_cost(p, q, C)
