"""Total-variation upper bounds of the diagonal of DT-BSM (§4): no transport problems at all.

Why: exact W1 costs a transport problem per (x, y, a); this bound needs one pass over the non-zero
transition entries per iteration (O(nnz)), and its closed form one pass in total. Both need the
shared state encoder (twin states = real states) and bound ``d(x, x)`` only.

Recursive bound: the fixed point over δ ∈ R^S of

    G(δ)(x) = max_a [ |R(x,a) − R'(x,a)| + γ · ( Σ_x' m(x') δ(x') + TV(x,a) · d_max ) ]

with m = min(P(·|x,a), P'(·|x,a)) and TV = ½ Σ |P − P'| = 1 − Σ m. Then d(x, x) <= δ(x) (the
maximal coupling leaves m on the diagonal and moves the rest at cost <= d_max). Closed form:
max δ <= (ε_R + γ d_max ε_TV) / (1 − γ), ε_R = max |R − R'|, ε_TV = max TV.

Spec §8, Example 3 (only the transitions differ): δ(0) = 1/3, closed form 0.4.

>>> R = np.array([[0.0], [1.0]])
>>> P = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
>>> Pt = np.array([[[0.8, 0.2]], [[0.0, 1.0]]])
>>> b = tv_bound(R, P, R, Pt, 0.5, tol=1e-12)
>>> round(b.value, 9), round(b.closed_form, 9), b.lower <= 1 / 3 <= b.upper
(0.333333333, 0.4, True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from .operator import EXCLUDED
from .sparse import SparseRows
from .validate import MDPPair, check_actions, check_pair, check_r_max, check_tol, reward_span

__all__ = ["TVBound", "tv_bound", "tv_closed_form"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TVBound:
    """The recursive TV bound, certified.

    ``delta`` [S]: the last iterate, which rises monotonically towards the fixed point δ*, so
    ``delta <= δ* <= delta + (upper − value)`` entrywise. ``value`` = max(delta); ``lower`` /
    ``upper`` bracket max δ* (``upper − lower <= tol``); use ``upper`` as the bound of DT-BSM_sup.
    ``closed_form``: the closed-form scalar bound (>= max δ*). ``d_max = r_max / (1 − γ)``.
    """

    delta: FloatArray
    value: float
    lower: float
    upper: float
    closed_form: float
    iterations: int
    r_max: float
    d_max: float
    gamma: float
    elapsed_s: float


@njit(cache=True, nogil=True)
def _tv_iterate(S: int, A: int, gamma: float, d_max: float, c: np.ndarray, tv: np.ndarray,
                mptr: np.ndarray, midx: np.ndarray, mw: np.ndarray, delta: np.ndarray, tol: float,
                max_iter: int) -> tuple[int, float, float]:
    """Gauss–Seidel iteration of G from ``delta`` (in place) until the certified width
    κ·change/(1 − κ) <= tol, κ = γ·max(1 − TV); returns (iterations, width, κ)."""
    kappa = 0.0
    for x in range(S):
        for a in range(A):
            k = gamma * (1.0 - tv[x, a])
            if k > kappa:
                kappa = k
    width = np.inf
    it = 0
    while it < max_iter:
        it += 1
        change = 0.0
        for x in range(S):
            best = 0.0
            for a in range(A):
                r = x * A + a
                s = 0.0
                for k in range(mptr[r], mptr[r + 1]):
                    s += mw[k] * delta[midx[k]]
                val = c[x, a] + gamma * (s + tv[x, a] * d_max)
                if val > best:
                    best = val
            diff = abs(best - delta[x])
            if diff > change:
                change = diff
            delta[x] = best
        width = kappa * change / (1.0 - kappa)
        if width <= tol:
            break
    return it, width, kappa


def _tv_terms(pair: MDPPair) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(|R − R'| [S, A], TV [S, A], m = min(P, P') [S, A, S])."""
    m = np.minimum(pair.P_real, pair.P_twin)
    tv = np.clip(0.5 * np.abs(pair.P_real - pair.P_twin).sum(axis=2), 0.0, 1.0)  # 0 exactly for equal rows
    return np.abs(pair.R_real - pair.R_twin), tv, m


def tv_closed_form(R_real: Any, P_real: Any, R_twin: Any, P_twin: Any, gamma: float,
                   r_max: float | None = None) -> float:
    """The closed-form bound (ε_R + γ·d_max·ε_TV)/(1 − γ) of DT-BSM_sup, one pass, no iteration.

    ``r_max``: the reward bound behind d_max = r_max/(1 − γ); by default the largest reward gap
    max |R(x,a) − R'(y,a)| over all state pairs (which bounds every entry of the metric).

    >>> tv_closed_form([[0.0]], [[[1.0]]], [[0.5]], [[[1.0]]], 0.5)
    1.0
    """
    pair = check_pair(R_real, P_real, R_twin, P_twin, gamma)
    d_max = check_r_max(r_max, reward_span(pair.R_real, pair.R_twin)) / (1.0 - pair.gamma)
    c, tv, _m = _tv_terms(pair)
    return float((c.max() + pair.gamma * d_max * tv.max()) / (1.0 - pair.gamma))


def tv_bound(R_real: Any, P_real: Any, R_twin: Any, P_twin: Any, gamma: float, tol: float = 1e-6,
             r_max: float | None = None, max_iterations: int = 100_000, actions: Any = None) -> TVBound:
    """The recursive TV bound δ [S] of the diagonal of DT-BSM, certified within ``tol``.

    Inputs as ``dt_bsm``: R [S, A], P [S, A, S] for the real MDP and the twin (same states).
    ``tol``: absolute width of the certified interval [lower, upper] of max δ*. Iterates from 0,
    so they rise monotonically and ``lower`` is the last iterate's max. ``actions``: boolean [S, A],
    the actions G's max may take at each state (as in ``dt_bsm``, which it then bounds); default
    all. ``closed_form`` keeps every pair (it is a bound of the unrestricted metric too).
    """
    t0 = time.perf_counter()
    pair = check_pair(R_real, P_real, R_twin, P_twin, gamma)
    tol = check_tol(tol)
    r = check_r_max(r_max, reward_span(pair.R_real, pair.R_twin))
    g = pair.gamma
    d_max = r / (1.0 - g)
    c, tv, m = _tv_terms(pair)
    closed = float((c.max() + g * d_max * tv.max()) / (1.0 - g))
    allowed = check_actions(actions, pair.n_states, pair.n_actions)
    if allowed is not None:  # an excluded (x, a) cannot raise G's max over the others (>= 0)
        c = np.where(allowed, c, EXCLUDED)
    rows = SparseRows.from_dense(m)
    delta = np.zeros(pair.n_states)
    iterations, width, _kappa = _tv_iterate(pair.n_states, pair.n_actions, g, d_max, c, tv, rows.ptr, rows.idx,
                                            rows.w, delta, tol, max_iterations)
    value = float(delta.max())
    delta.flags.writeable = False
    return TVBound(delta=delta, value=value, lower=value, upper=value + float(width), closed_form=closed,
                   iterations=int(iterations), r_max=r, d_max=d_max, gamma=g,
                   elapsed_s=time.perf_counter() - t0)
