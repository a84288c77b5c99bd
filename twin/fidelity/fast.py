"""The fast exact DT-BSM solver (§3.4): coupling iteration with certified stopping.

Why it is fast and still exact:
- supports only, compiled warm-started transportation simplex, lazy actions (``kernels``);
- coupling iteration (modified policy iteration for the minimising coupling): one exact sweep
  improves every coupling, then up to ``evaluation_sweeps`` cheap sweeps keep them fixed and only
  re-evaluate their costs. It starts from a constant super-solution D (T(D) <= D, ``BisimOperator.
  start_value``), so every iterate stays above the fixed point d* and falls monotonically towards
  it (an exact sweep's couplings are greedy where they were computed, so the evaluation operator
  T_μ maps the super-solution it produced below itself);
- certified stopping (§3.1, §3.4 item 5): after an exact sweep that changed d by δ (sup norm),
  ‖d* − d‖ <= γδ/(1 − γ), and d >= d*, so every entry of d* lies in [d − γδ/(1 − γ) − e, d + e],
  where e = γ·eps_lp + float slack covers the simplex's optimality tolerance and rounding.

A warm start d0 (§9.3) is not a super-solution in general: one exact Jacobi sweep d1 = T(d0) gives
δ; if γδ/(1 − γ) is already within tolerance the result is certified (two-sided); otherwise
min(d1 + γδ/(1 − γ), D) is a super-solution (T(d1 + k) <= d1 + γδ + γk = d1 + k) and the
iteration above continues from it.

>>> from twin.fidelity.validate import check_pair
>>> from twin.fidelity.operator import BisimOperator
>>> pair = check_pair([[0.0, 1.0]], [[[1.0], [1.0]]], [[0.5, 1.0]], [[[1.0], [1.0]]], 0.9)
>>> out = solve_fast(BisimOperator.plain(pair), tol=1e-9)
>>> round(float(out.matrix[0, 0]), 6), out.below + out.above <= 1e-9  # spec §8 Example 4: d = 5
(5.0, True)
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
import numpy.typing as npt

from . import kernels
from .errors import FidelityInputError
from .kernels import compile_kernels, evaluation_sweep, exact_sweep, init_bases
from .operator import BisimOperator
from .simplex import MAX_PIVOTS
from .sparse import SparseRows

__all__ = ["EVALUATION_SWEEPS", "Solved", "ensure_compiled", "solve_fast"]

EVALUATION_SWEEPS = 10
"""Cheap sweeps with fixed couplings after each exact sweep, at most: they stop once a sweep changes
d by less than ``EVALUATION_STOP`` times the last exact sweep's change."""
EVALUATION_STOP = 0.25
FIRST_EVALUATION_SWEEPS = 10
"""Cheap sweeps after the first (Jacobi) sweep from the constant start, all of them: they bring d
near the fixed point's shape before the first pivots, which cuts the pivots by a fifth."""

FloatArray = npt.NDArray[np.float64]
MAX_THREADS: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]


class Solved(NamedTuple):
    """A solver's output: every entry of the fixed point lies in [matrix − below, matrix + above]."""

    matrix: FloatArray
    iterations: int
    sweeps: int
    delta: float
    below: float
    above: float
    transport_solves: int
    pivots: int


def ensure_compiled() -> float:
    """Compile or load the kernels once per process; seconds spent (0.0 when already done)."""
    return 0.0 if kernels.ready() else compile_kernels()


def float_slack(scale: float) -> float:
    """Rounding allowance of a certificate for metric values up to ``scale``."""
    return 1e-13 * max(1.0, scale)


def solve_fast(op: BisimOperator, tol: float, d0: FloatArray | None = None, threads: int = 1,
               evaluation_sweeps: int = EVALUATION_SWEEPS, pivot_cap: int = MAX_PIVOTS,
               max_iterations: int = 10_000) -> Solved:
    """Fixed point of ``op`` certified within ``tol`` (width of the interval of every entry)."""
    ensure_compiled()
    pair = op.pair
    S, A, gamma = pair.n_states, pair.n_actions, op.gamma
    real = SparseRows.from_dense(pair.P_real)
    twin = SparseRows.from_dense(pair.P_twin)
    msz, nsz = real.sizes(), twin.sizes()
    sizes = (msz[:, None, :] + nsz[None, :, :] - 1).ravel()
    boff = np.zeros(S * S * A + 1, dtype=np.int64)
    np.cumsum(sizes, out=boff[1:])
    if max(int(msz.max()), int(nsz.max())) > np.iinfo(np.int16).max:  # pragma: no cover - 32767 successors
        raise FidelityInputError("a transition row has more than 32767 successor states")
    if np.iinfo(np.int32).max < S * S:  # pragma: no cover - 46341 states
        raise FidelityInputError(f"{S} states is too many for the fast solver (S*S must fit int32)")
    bi = np.empty(int(boff[-1]), dtype=np.int16)
    bj = np.empty(int(boff[-1]), dtype=np.int16)
    fl = np.empty(int(boff[-1]), dtype=np.float64)
    gidx = np.empty(int(boff[-1]), dtype=np.int32)
    mmax, nmax = int(msz.max()), int(nsz.max())

    top = op.start_value()
    eps = 1e-13 * max(1.0, top)
    slack = float_slack(top) + gamma * eps
    rows = np.zeros(S)
    lp_rows = np.zeros(S, dtype=np.int64)
    piv_rows = np.zeros(S, dtype=np.int64)
    cut_rows = np.zeros(S, dtype=np.int64)
    fail_rows = np.zeros(S, dtype=np.int64)
    solves = pivots = 0
    rewards = (pair.R_real, pair.R_twin, op.cr, op.ct, op.sr, op.st)

    def improve(dread: FloatArray, dwrite: FloatArray, max_pivots: int) -> tuple[float, bool]:
        """(largest change, exact: no solve stopped early) of one improvement sweep."""
        nonlocal solves, pivots
        exact_sweep(S, A, gamma, op.cap, dread, dwrite, *rewards, real.ptr, real.idx, twin.ptr, twin.idx,
                    boff, bi, bj, fl, gidx, mmax, nmax, eps, max_pivots, rows, lp_rows, piv_rows, cut_rows, fail_rows)
        if fail_rows.any():  # pragma: no cover - never seen; a loud guard rather than a wrong value
            raise RuntimeError(f"transportation simplex failed on {int(fail_rows.sum())} problem(s)")
        solves += int(lp_rows.sum())
        pivots += int(piv_rows.sum())
        return float(rows.max()), not cut_rows.any()

    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(threads), MAX_THREADS)))
    try:
        init_bases(S, A, real.ptr, real.idx, real.w, twin.ptr, twin.idx, twin.w, boff, bi, bj, fl, gidx)
        d = np.empty((S, S))
        if d0 is None:
            # Jacobi from the constant super-solution: every coupling is optimal for a constant d
            delta, _exact = improve(np.full((S, S), top), d, MAX_PIVOTS)
            budget, stop = FIRST_EVALUATION_SWEEPS, 0.0
            below = gamma * delta / (1.0 - gamma) + slack
            if below + slack <= tol:
                return Solved(d, 1, 1, delta, below, slack, solves, pivots)
        else:
            delta, _exact = improve(np.ascontiguousarray(d0, dtype=np.float64), d, MAX_PIVOTS)
            width = gamma * delta / (1.0 - gamma)
            if 2.0 * (width + slack) <= tol:
                return Solved(d, 1, 1, delta, width + slack, width + slack, solves, pivots)
            np.minimum(d + width, top, out=d)  # a super-solution: T(d1 + k) <= d1 + γδ + γk = d1 + k
            budget, stop = evaluation_sweeps, EVALUATION_STOP
        iterations = sweeps = 1
        while True:
            for _ in range(budget):
                evaluation_sweep(S, A, gamma, op.cap, d, d, *rewards, real.ptr, twin.ptr, boff, fl, gidx, rows)
                sweeps += 1
                if rows.max() <= stop * delta:
                    break
            budget, stop = evaluation_sweeps, EVALUATION_STOP
            delta, exact = improve(d, d, pivot_cap)
            iterations += 1
            sweeps += 1
            width = gamma * delta / (1.0 - gamma)
            if exact and width + 2.0 * slack <= tol:
                return Solved(d, iterations, sweeps, delta, width + slack, slack, solves, pivots)
            if iterations >= max_iterations:
                raise FidelityInputError(f"no certified value within tol={tol:g} after {iterations} exact sweeps "
                                         f"(last change {delta:g}); tol is too small for float64 at this scale")
    finally:
        numba.set_num_threads(previous)
