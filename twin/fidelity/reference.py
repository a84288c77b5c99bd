"""The reference DT-BSM solver: the plain loop of §3.1 with one ``ot.emd2`` call per (x, y, a).

Why keep it: it is short enough to check by eye against the spec, so it is what the fast solver
is tested against. Jacobi sweeps from 0 (or from a warm start d0); each W1 is POT's network
simplex on the supports only, ``emd2(p[Ix], q[Iy], d[np.ix_(Ix, Iy)])``. It is slow (~140 µs of
Python wrapper per call): use it for small state spaces.

Certificate: after a sweep that changed d by δ, ‖d* − d‖ <= γδ/(1 − γ). From 0 the iterates rise
monotonically (T is monotone and T(0) >= 0), so d <= d* and every entry of d* lies in
[d − e, d + γδ/(1 − γ) + e] (e: float slack); from a warm start the interval is two-sided.

>>> from twin.fidelity.validate import check_pair
>>> from twin.fidelity.operator import BisimOperator
>>> pair = check_pair([[0.0], [1.0]], [[[1.0, 0.0]], [[0.0, 1.0]]], [[0.0], [1.0]], [[[0.8, 0.2]], [[0.0, 1.0]]], 0.5)
>>> out = solve_pot(BisimOperator.plain(pair), tol=1e-10)  # spec §8 Example 3
>>> np.round(out.matrix, 6).tolist()
[[0.333333, 2.0], [1.666667, 0.0]]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .errors import FidelityInputError
from .fast import Solved, float_slack
from .operator import BisimOperator
from .sparse import SparseRows

__all__ = ["operator_step", "solve_pot"]

FloatArray = npt.NDArray[np.float64]


class _Terms:
    """Per-(x, y, a) terms of ``op`` and the supports of every row, computed once per solve."""

    def __init__(self, op: BisimOperator) -> None:
        pair = op.pair
        S, A = pair.n_states, pair.n_actions
        real = SparseRows.from_dense(pair.P_real)
        twin = SparseRows.from_dense(pair.P_twin)
        self.rsup = [real.support(x, a) for x in range(S) for a in range(A)]
        self.tsup = [twin.support(y, a) for y in range(S) for a in range(A)]
        gap = np.abs(pair.R_real[:, None, :] - pair.R_twin[None, :, :]) + op.cr[:, None, :] + op.ct[None, :, :]
        self.rterm = np.maximum(gap, 0.0)  # [S, S, A]
        self.shift = op.sr[:, None, :] + op.st[None, :, :]
        self.op = op


def _step(terms: _Terms, d: FloatArray) -> FloatArray:
    import ot  # imported here: POT is only needed by the reference path

    op = terms.op
    S, A, gamma = op.pair.n_states, op.pair.n_actions, op.gamma
    new = np.empty((S, S))
    for x in range(S):
        for y in range(S):
            best = 0.0
            for a in range(A):
                Ix, p = terms.rsup[x * A + a]
                Iy, q = terms.tsup[y * A + a]
                w1 = float(ot.emd2(p, q, np.ascontiguousarray(d[np.ix_(Ix, Iy)]), numItermax=1_000_000))
                best = max(best, terms.rterm[x, y, a] + gamma * max(0.0, w1 + terms.shift[x, y, a]))
            new[x, y] = min(op.cap, best)
    return new


def operator_step(op: BisimOperator, d: FloatArray) -> FloatArray:
    """T(d) [S, S]: one exact Jacobi application of the operator to d [S, S] (every W1 by ``ot.emd2``)."""
    return _step(_Terms(op), np.asarray(d, dtype=np.float64))


def solve_pot(op: BisimOperator, tol: float, d0: FloatArray | None = None,
              max_iterations: int = 100_000) -> Solved:
    """Fixed point of ``op`` by Jacobi sweeps of exact ``ot.emd2`` calls, certified within ``tol``."""
    pair = op.pair
    S, A, gamma = pair.n_states, pair.n_actions, op.gamma
    terms = _Terms(op)
    slack = float_slack(op.start_value())
    d = np.zeros((S, S)) if d0 is None else np.array(d0, dtype=np.float64)
    iterations = 0
    while True:
        new = _step(terms, d)
        delta = float(np.abs(new - d).max())
        d = new
        iterations += 1
        solves = iterations * S * S * A
        width = gamma * delta / (1.0 - gamma)
        if d0 is None and width + 2.0 * slack <= tol:
            return Solved(d, iterations, iterations, delta, slack, width + slack, solves, 0)
        if d0 is not None and 2.0 * (width + slack) <= tol:
            return Solved(d, iterations, iterations, delta, width + slack, width + slack, solves, 0)
        if iterations >= max_iterations:
            raise FidelityInputError(f"no certified value within tol={tol:g} after {iterations} sweeps "
                                     f"(last change {delta:g}); tol is too small for float64 at this scale")
