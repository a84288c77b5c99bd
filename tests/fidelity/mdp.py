"""Independent references for the fidelity tests: MDP values by value iteration and linear solves,
W1 by scipy's HiGHS LP, and the DT-BSM fixed point by value iteration whose W1 steps are HiGHS LPs
(no POT, no numba: nothing shared with the code under test)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.optimize import linprog

FloatArray = npt.NDArray[np.float64]


def q_star(R: FloatArray, P: FloatArray, gamma: float, tol: float = 1e-12) -> FloatArray:
    """Optimal Q [S, A] by value iteration to a sup-norm change below tol."""
    Q = np.zeros_like(R)
    while True:
        new = R + gamma * P @ Q.max(axis=1)
        if np.abs(new - Q).max() < tol * (1 - gamma):
            return new
        Q = new


def policy_value(R: FloatArray, P: FloatArray, policy: npt.NDArray[np.int64], gamma: float) -> FloatArray:
    """V^π [S] of a deterministic policy by one linear solve."""
    S = R.shape[0]
    idx = np.arange(S)
    return np.linalg.solve(np.eye(S) - gamma * P[idx, policy], R[idx, policy])


def w1_lp(p: FloatArray, q: FloatArray, cost: FloatArray) -> float:
    """Optimal transport cost by HiGHS."""
    m, n = cost.shape
    A = np.zeros((m + n, m * n))
    for i in range(m):
        A[i, i * n:(i + 1) * n] = 1.0
    for j in range(n):
        A[m + j, j::n] = 1.0
    res = linprog(cost.ravel(), A_eq=A, b_eq=np.r_[p, q], bounds=(0, None), method="highs")
    assert res.status == 0, res.message
    return float(res.fun)


def dtbsm_lp(R: FloatArray, P: FloatArray, Rt: FloatArray, Pt: FloatArray, gamma: float,
             tol: float = 1e-11, actions: npt.NDArray[np.bool_] | None = None) -> tuple[FloatArray, float]:
    """(d, certified error bound) by Jacobi value iteration from 0; each sweep is one block-diagonal
    HiGHS LP holding every (x, y, a) transport problem on the supports (the blocks are independent,
    so each block's part of the optimum is that problem's W1). ``actions`` [S, A]: the max at real
    state x runs over the actions allowed there only (none allowed: 0)."""
    S, A = R.shape
    blocks = []
    for x in range(S):
        for y in range(S):
            for a in range(A):
                Ix, Iy = np.flatnonzero(P[x, a]), np.flatnonzero(Pt[y, a])
                blocks.append((x, y, a, Ix, Iy))
    rows, cols, b = [], [], []
    col0 = row0 = 0
    spans = []
    for _x, _y, _a, Ix, Iy in blocks:
        m, n = len(Ix), len(Iy)
        for i in range(m):
            for j in range(n):
                rows += [row0 + i, row0 + m + j]
                cols += [col0 + i * n + j] * 2
        spans.append((col0, m, n))
        col0 += m * n
        row0 += m + n
    b = np.concatenate([np.r_[P[x, a, Ix], Pt[y, a, Iy]] for x, y, a, Ix, Iy in blocks])
    A_eq = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(row0, col0))
    gap = np.abs(R[:, None, :] - Rt[None, :, :])
    d = np.zeros((S, S))
    while True:
        c = np.concatenate([d[np.ix_(Ix, Iy)].ravel() for _x, _y, _a, Ix, Iy in blocks])
        res = linprog(c, A_eq=A_eq, b_eq=b, bounds=(0, None), method="highs",
                      options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10})
        assert res.status == 0, res.message
        new = np.zeros((S, S))
        for (x, y, a, _Ix, _Iy), (c0, m, n) in zip(blocks, spans, strict=True):
            w1 = float(c[c0:c0 + m * n] @ res.x[c0:c0 + m * n])
            if actions is None or actions[x, a]:
                new[x, y] = max(new[x, y], gap[x, y, a] + gamma * w1)
        delta = float(np.abs(new - d).max())
        d = new
        bound = gamma * delta / (1 - gamma)
        if bound <= tol:
            return d, bound


def small_pair(S: int, A: int, seed: int, max_successors: int = 3) -> tuple[FloatArray, FloatArray, FloatArray,
                                                                              FloatArray]:
    """A random sparse pair with 1..max_successors successors per row, rewards in [0, 1]."""
    from twin.fidelity import random_mdp_pair

    return random_mdp_pair(S, A, seed=seed, min_successors=1, max_successors=max_successors, reward_noise=0.2,
                           weight_noise=0.5, move=0.3)
