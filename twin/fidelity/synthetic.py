"""Random sparse real/twin MDP pairs, as in the benchmark of §3.4, for benchmarks and tests.

Real MDP: each (x, a) has 3–10 successor states (uniformly drawn, without replacement) with
Dirichlet(1) weights, rewards uniform in [0, 1]. Twin: the real MDP perturbed the way a fitted
model errs: rewards plus Gaussian noise (clipped to [0, 1]), transition weights multiplied by
log-normal noise on the same supports (renormalised), and occasionally (probability ``move``
per row) one successor moved to a state outside the support.

>>> R, P, Rt, Pt = random_mdp_pair(5, 2, seed=1)
>>> R.shape, P.shape, bool(np.allclose(Pt.sum(axis=2), 1.0)), bool(((Rt >= 0) & (Rt <= 1)).all())
((5, 2), (5, 2, 5), True, True)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["random_mdp", "random_mdp_pair"]

FloatArray = npt.NDArray[np.float64]


def random_mdp(states: int, actions: int, rng: np.random.Generator, min_successors: int = 3,
               max_successors: int = 10) -> tuple[FloatArray, FloatArray]:
    """(R [S, A] in [0, 1], P [S, A, S] with min..max successors per row, capped at S)."""
    R = rng.random((states, actions))
    P = np.zeros((states, actions, states))
    lo, hi = min(min_successors, states), min(max_successors, states)
    for x in range(states):
        for a in range(actions):
            k = int(rng.integers(lo, hi + 1))
            succ = rng.choice(states, size=k, replace=False)
            P[x, a, succ] = rng.dirichlet(np.ones(k))
    return R, P


def perturb(R: FloatArray, P: FloatArray, rng: np.random.Generator, reward_noise: float = 0.05,
            weight_noise: float = 0.2, move: float = 0.1) -> tuple[FloatArray, FloatArray]:
    """A twin of (R, P): noisy rewards in [0, 1], noisy weights on the same supports, a few moved successors."""
    S = R.shape[0]
    Rt = np.clip(R + rng.normal(0.0, reward_noise, R.shape), 0.0, 1.0)
    Pt = P * np.exp(rng.normal(0.0, weight_noise, P.shape))
    for x, a in zip(*np.nonzero(rng.random(R.shape) < move), strict=True):
        succ = np.flatnonzero(Pt[x, a])
        free = np.setdiff1d(np.arange(S), succ)
        if len(free):
            src = rng.choice(succ)
            Pt[x, a, rng.choice(free)] = Pt[x, a, src]
            Pt[x, a, src] = 0.0
    Pt /= Pt.sum(axis=2, keepdims=True)
    return Rt, Pt


def random_mdp_pair(states: int, actions: int, seed: int = 0, min_successors: int = 3, max_successors: int = 10,
                    reward_noise: float = 0.05, weight_noise: float = 0.2,
                    move: float = 0.1) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """(R_real, P_real, R_twin, P_twin) of a random sparse real MDP and its perturbed twin."""
    rng = np.random.default_rng(seed)
    R, P = random_mdp(states, actions, rng, min_successors, max_successors)
    Rt, Pt = perturb(R, P, rng, reward_noise, weight_noise, move)
    return R, P, Rt, Pt
