"""The empirical metric: counts, radii, sample sizes, convergence of d̂ and the interval metric."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.fidelity import (
    EmpiricalModel,
    FidelityInputError,
    TransitionCounts,
    confidence_radii,
    dt_bsm,
    dt_bsm_interval,
    random_mdp_pair,
    samples_gbsm,
    samples_uniform,
)


def _sample(R: np.ndarray, P: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """n samples of every (x, a): next states from P, Bernoulli rewards with mean R."""
    S, A = R.shape
    xs, acts = np.repeat(np.arange(S), A * n), np.tile(np.repeat(np.arange(A), n), S)
    u = rng.random(len(xs))
    cdf = np.cumsum(P[xs, acts], axis=1)
    x2 = np.minimum((u[:, None] > cdf).sum(axis=1), S - 1)
    rewards = (rng.random(len(xs)) < R[xs, acts]).astype(float)
    order = rng.permutation(len(xs))
    return xs[order], acts[order], rewards[order], x2[order]


def test_add_and_add_many_agree_with_and_without_forgetting() -> None:
    rng = np.random.default_rng(0)
    R, P, _Rt, _Pt = random_mdp_pair(4, 2, seed=0)
    batch = _sample(R, P, 50, rng)
    for lam in (1.0, 0.99, 0.5):
        one, many = TransitionCounts(4, 2, forgetting=lam), TransitionCounts(4, 2, forgetting=lam)
        for x, a, r, x2 in zip(*batch, strict=True):
            one.add(int(x), int(a), float(r), int(x2))
        many.add_many(*batch)
        np.testing.assert_allclose(one.transition_counts, many.transition_counts, rtol=1e-9, atol=1e-300)
        np.testing.assert_allclose(one.estimates()[0], many.estimates()[0], rtol=1e-9)
        assert one.samples == many.samples == 400


def test_forgetting_follows_a_change_and_bounds_the_effective_count() -> None:
    counts = TransitionCounts(2, 1, forgetting=0.9)
    counts.add_many([0] * 500, [0] * 500, [1.0] * 500, [0] * 500)
    counts.add_many([0] * 60, [0] * 60, [0.0] * 60, [1] * 60)
    R, P = counts.estimates()
    assert P[0, 0, 1] > 0.99 and R[0, 0] < 0.01  # the old regime is forgotten
    assert counts.counts[0, 0] == pytest.approx(1 / (1 - 0.9), rel=1e-2)  # N_eff -> 1/(1 − λ)
    assert counts.samples == 560
    plain = TransitionCounts(2, 1)
    plain.add_many([0] * 500, [0] * 500, [1.0] * 500, [0] * 500)
    assert plain.counts[0, 0] == 500


def test_long_streams_with_forgetting_stay_finite() -> None:
    counts = TransitionCounts(1, 1, forgetting=0.5)
    for _ in range(3000):  # 0.5^-3000 would overflow without renormalising
        counts.add(0, 0, 0.5, 0)
    assert np.isfinite(counts.transition_counts).all() and counts.counts[0, 0] == pytest.approx(2.0)
    counts.add_many([0] * 5000, [0] * 5000, [0.5] * 5000, [0] * 5000)
    assert counts.counts[0, 0] == pytest.approx(2.0)


def test_rewards_are_mapped_into_the_bound() -> None:
    counts = TransitionCounts(1, 2, r_bar=2.0, reward_range=(-10.0, 10.0))
    counts.add_many([0, 0, 0], [0, 0, 1], [-10.0, 10.0, 50.0], [0, 0, 0])
    R, _P = counts.estimates()
    assert R.tolist() == [[1.0, 2.0]]  # mean of 0 and 2; 50 clipped to R̄


def test_unsampled_pairs_are_placeholders_with_the_widest_radii() -> None:
    counts = TransitionCounts(3, 2)
    counts.add(1, 0, 0.3, 2)
    R, P = counts.estimates()
    assert P[0, 1].tolist() == [1.0, 0.0, 0.0] and P[2, 0].tolist() == [0.0, 0.0, 1.0] and R[0, 1] == 0.0
    r, rho = counts.radii(alpha=0.05)
    assert r[0, 1] == 1.0 and rho[0, 1] == 1.0 and r[1, 0] == 1.0  # N = 1 is not enough for r < 1 here
    assert counts.missing_mass()[1, 0] == 1.0 and counts.missing_mass()[0, 0] == 1.0


def test_radii_formulas() -> None:
    N = np.array([[0.0, 10.0, 1000.0]])
    r, rho = confidence_radii(N, 5, 0.01, 2.0)
    expected_r = 0.5 * math.sqrt((2 / 1000) * (5 * math.log(2) + math.log(100)))
    expected_rho = 2.0 * math.sqrt(math.log(200) / 2000)
    assert r[0, 2] == pytest.approx(expected_r) and rho[0, 2] == pytest.approx(expected_rho)
    assert r[0, 0] == 1.0 and rho[0, 0] == 2.0 and r[0, 1] < 1.0
    with pytest.raises(FidelityInputError, match="alpha must be in"):
        confidence_radii(N, 5, 0.0, 1.0)


def test_coverage_and_enough_data() -> None:
    counts = TransitionCounts(2, 2)
    k = samples_uniform(2, 2, 0.5, 0.5, 0.1)
    counts.add_many([0] * k, [0] * k, [0.0] * k, [1] * k)
    counts.add_many([1] * 3, [1] * 3, [0.0] * 3, [1] * 3)
    assert counts.coverage(n_min=3) == 0.5 and counts.coverage(n_min=4) == 0.25
    assert counts.enough(eps=0.5, alpha=0.1, gamma=0.5).tolist() == [[True, False], [False, False]]
    assert not counts.enough(eps=0.5, alpha=0.1, gamma=0.5, formula="gbsm")[0, 0]  # (a) asks for more
    with pytest.raises(FidelityInputError, match="formula must be"):
        counts.enough(eps=0.5, alpha=0.1, gamma=0.5, formula="hoeffding")  # type: ignore[arg-type]


def test_sample_sizes_of_the_spec() -> None:
    assert samples_gbsm(20, 0.5, 0.1, 0.05) == pytest.approx(2.95e5, rel=5e-3)
    assert samples_gbsm(20, 0.5, 0.1, 0.05, n_actions=2) == pytest.approx(8.3e5, rel=5e-3)
    assert samples_uniform(20, 2, 0.5, 0.1, 0.05) == pytest.approx(4.1e3, rel=5e-3)
    # (a) grows as |S|², (b) about linearly
    assert samples_gbsm(40, 0.5, 0.1, 0.05) / samples_gbsm(20, 0.5, 0.1, 0.05) == pytest.approx(4.0, rel=1e-4)
    assert 1.5 < samples_uniform(40, 2, 0.5, 0.1, 0.05) / samples_uniform(20, 2, 0.5, 0.1, 0.05) < 2.0
    by_hand = (40 * math.log(2) + math.log(40 * 2 / 0.05)) * 0.25 / (2 * 0.5 ** 4 * 0.1 ** 2)
    assert samples_uniform(40, 2, 0.5, 0.1, 0.05) == math.ceil(by_hand)
    for bad in ({"eps": 0.0}, {"alpha": 0.0}, {"gamma": 1.0}, {"r_bar": -1.0}):
        args = {"n_states": 20, "gamma": 0.5, "eps": 0.1, "alpha": 0.05, "r_bar": 1.0} | bad
        with pytest.raises(FidelityInputError, match=next(iter(bad))):
            samples_gbsm(**args)  # type: ignore[arg-type]


def test_empirical_metric_converges_within_the_perturbation_bound() -> None:
    """d̂ -> d as samples grow, and ‖d̂ − d‖ <= (ε_R + γ·d_max·ε_TV)/(1 − γ) (§5.2) at every size."""
    gamma, rng = 0.7, np.random.default_rng(1)
    R, P, Rt, Pt = random_mdp_pair(5, 2, seed=2, max_successors=3)
    d = dt_bsm(R, P, Rt, Pt, gamma=gamma, tol=1e-10, r_max=1.0).matrix
    errors = []
    for n in (20, 200, 2000, 20000):
        counts = TransitionCounts(5, 2)
        counts.add_many(*_sample(R, P, n, rng))
        Rh, Ph = counts.estimates()
        dh = dt_bsm(Rh, Ph, Rt, Pt, gamma=gamma, tol=1e-10, r_max=1.0).matrix
        err = float(np.abs(dh - d).max())
        eps_r = float(np.abs(Rh - R).max())
        eps_tv = float(0.5 * np.abs(Ph - P).sum(axis=2).max())
        assert err <= (eps_r + gamma * (1 / (1 - gamma)) * eps_tv) / (1 - gamma) + 1e-9
        errors.append(err)
    assert errors[-1] < errors[0] / 5 and errors[-1] < 0.05, errors


@pytest.mark.parametrize("method", ["fast", "pot"])
def test_interval_brackets_the_true_metric(method: str) -> None:
    gamma, rng = 0.6, np.random.default_rng(3)
    R, P, Rt, Pt = random_mdp_pair(4, 2, seed=4, max_successors=3)
    true = dt_bsm(R, P, Rt, Pt, gamma=gamma, tol=1e-10, r_max=1.0)
    real, twin = TransitionCounts(4, 2), TransitionCounts(4, 2)
    real.add_many(*_sample(R, P, 3000, rng))
    twin.add_many(*_sample(Rt, Pt, 3000, rng))
    iv = dt_bsm_interval(real.model(alpha=0.001), twin.model(alpha=0.001), gamma=gamma, tol=1e-9,
                         method=method)  # type: ignore[arg-type]
    assert iv.lower <= true.value <= iv.upper
    assert (iv.lower_end.matrix - iv.lower_end.width <= true.matrix + 1e-9).all()
    assert (true.matrix <= iv.upper_end.matrix + iv.upper_end.width + 1e-9).all()
    plug_in = dt_bsm(*real.estimates(), *twin.estimates(), gamma=gamma, tol=1e-9, r_max=1.0)
    assert iv.lower <= plug_in.value <= iv.upper
    assert iv.upper - iv.lower < iv.d_max  # informative, not the trivial [0, d_max]


def test_interval_with_an_exact_twin_and_unsampled_pairs() -> None:
    R, P, Rt, Pt = random_mdp_pair(4, 2, seed=5, max_successors=3)
    twin = EmpiricalModel.exact(Rt, Pt, r_bar=1.0)
    real = TransitionCounts(4, 2)
    rng = np.random.default_rng(4)
    xs, acts, rs, x2 = _sample(R, P, 500, rng)
    keep = ~((xs == 0) & (acts == 1))  # (0, 1) never tried
    real.add_many(xs[keep], acts[keep], rs[keep], x2[keep])
    iv = dt_bsm_interval(real.model(alpha=0.01), twin, gamma=0.8, tol=1e-8)
    fast_pot = dt_bsm_interval(real.model(alpha=0.01), twin, gamma=0.8, tol=1e-8, method="pot")
    assert iv.lower == pytest.approx(fast_pot.lower, abs=2e-8) and iv.upper == pytest.approx(fast_pot.upper, abs=2e-8)
    # the unsampled pair drives the upper end of its row to d_max (rewards in [0, 1]: d_max = 5)
    assert iv.upper_end.matrix[0, 0] == pytest.approx(5.0) and iv.d_max == pytest.approx(5.0)
    assert iv.lower < dt_bsm(R, P, Rt, Pt, gamma=0.8, tol=1e-8).upper


def test_interval_and_counts_refuse_bad_inputs() -> None:
    with pytest.raises(FidelityInputError, match="real must be an EmpiricalModel"):
        dt_bsm_interval((np.zeros((1, 1)), np.ones((1, 1, 1))), EmpiricalModel.exact([[0.0]], [[[1.0]]], 1.0),  # type: ignore[arg-type]
                        gamma=0.5)
    for kwargs, message in [({"n_states": 0, "n_actions": 1}, "n_states must be an integer >= 1"),
                            ({"n_states": 2, "n_actions": 1, "forgetting": 0.0}, "forgetting must be in"),
                            ({"n_states": 2, "n_actions": 1, "r_bar": 0.0}, "r_bar must be finite and > 0"),
                            ({"n_states": 2, "n_actions": 1, "reward_range": (1.0, 1.0)}, "reward_range")]:
        with pytest.raises(FidelityInputError, match=message):
            TransitionCounts(**kwargs)  # type: ignore[arg-type]
    counts = TransitionCounts(2, 1)
    with pytest.raises(FidelityInputError, match=r"next state x_next = 2 is outside 0\.\.1"):
        counts.add(0, 0, 0.0, 2)
    with pytest.raises(FidelityInputError, match="reward r must be finite"):
        counts.add(0, 0, float("nan"), 1)
    with pytest.raises(FidelityInputError, match="states must be integers"):
        counts.add_many([0.5], [0], [0.0], [1])
    with pytest.raises(FidelityInputError, match="equal length"):
        counts.add_many([0, 1], [0], [0.0], [1])
    with pytest.raises(FidelityInputError, match=r"rewards must be finite \(first bad index 1\)"):
        counts.add_many([0, 1], [0, 0], [0.0, np.inf], [1, 1])


def test_interval_restricted_to_covered_pairs_drops_the_unsampled_pair_from_the_max() -> None:
    """§9.2: computed over A_cov(x) the unsampled (0, 1) no longer drives row 0 to d_max, and the
    restricted interval still brackets the true metric restricted the same way."""
    R, P, Rt, Pt = random_mdp_pair(4, 2, seed=5, max_successors=3)
    twin = EmpiricalModel.exact(Rt, Pt, r_bar=1.0)
    real = TransitionCounts(4, 2)
    rng = np.random.default_rng(4)
    xs, acts, rs, x2 = _sample(R, P, 4000, rng)
    keep = ~((xs == 0) & (acts == 1))
    real.add_many(xs[keep], acts[keep], rs[keep], x2[keep])
    covered = real.covered(5.0)
    assert not covered[0, 1] and covered.sum() == 7
    iv = dt_bsm_interval(real.model(alpha=0.001), twin, gamma=0.8, tol=1e-8, actions=covered)
    true = dt_bsm(R, P, Rt, Pt, gamma=0.8, tol=1e-10, r_max=1.0, actions=covered)
    assert iv.upper_end.matrix[0, 0] < 5.0 - 0.5
    assert iv.lower <= true.value <= iv.upper
    assert (true.matrix <= iv.upper_end.matrix + iv.upper_end.width + 1e-9).all()
