"""``dt_bsm``: the exact DT-BSM of a real/twin pair of finite MDPs, with a certified interval.

d(x, y) is the distance from real state x to twin state y, the fixed point of (§2.1)

    F(d)(x, y) = max_a [ |R(x,a) − R'(y,a)| + γ · W1_d(P(·|x,a), P'(·|y,a)) ]

The twin's states are the real states (one shared state encoder), so the scalar DT-BSM is the
diagonal's max, DTBSM_sup (the value the regret bound of §6 uses), or its mean under the real
state frequencies, DTBSM_avg (a monitoring signal only).

Spec §8, Example 2 (rewards differ by 1, swapped deterministic transitions, γ = 0.5): the diagonal
is 2 = c/(1 − γ) and the off-diagonal is asymmetric, 8/3 and 4/3.

>>> R = [[0.0], [1.0]]
>>> P = [[[0.0, 1.0]], [[1.0, 0.0]]]
>>> res = dt_bsm(R, P, [[1.0], [2.0]], P, gamma=0.5, tol=1e-9)
>>> np.round(res.matrix, 6).tolist()
[[2.0, 2.666667], [1.333333, 2.0]]
>>> res.lower <= 2.0 <= res.upper, res.upper - res.lower <= 1e-9
(True, True)
>>> dt_bsm(R, P, R, P, gamma=0.5, method="simplex")
Traceback (most recent call last):
...
twin.fidelity.errors.FidelityInputError: method must be 'fast' or 'pot', got 'simplex'
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .errors import FidelityInputError
from .fast import EVALUATION_SWEEPS, Solved, ensure_compiled, solve_fast
from .operator import BisimOperator
from .reference import solve_pot
from .validate import check_actions, check_matrix, check_pair, check_r_max, check_tol, check_weights, reward_span

__all__ = ["METHODS", "DTBSMResult", "dt_bsm", "min_tol", "solve_operator"]

METHODS = ("fast", "pot")
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DTBSMResult:
    """A DT-BSM fixed point, certified.

    - ``matrix`` [S, S]: rows real states, columns twin states (read-only). Every entry of the exact
      fixed point lies in [matrix − (value − lower), matrix + (upper − value)].
    - ``value``: max of the diagonal of ``matrix`` (DTBSM_sup). ``lower`` <= exact DTBSM_sup <=
      ``upper``, with ``upper − lower <= tol``.
    - ``mean``: the diagonal weighted by the real-state frequencies ``weights`` (normalised), or
      None when no weights were given (DTBSM_avg: a monitoring signal, no guarantee attaches).
    - ``iterations``: exact sweeps (every W1 solved); ``sweeps``: all sweeps, including the fast
      method's evaluation sweeps; ``delta``: change of the last exact sweep (sup norm).
    - ``r_max``: the reward bound; ``d_max = r_max / (1 − γ)`` bounds every entry.
    - ``elapsed_s``: seconds of this call without ``compile_s`` (compiling or loading the numba
      kernels, once per process; 0.0 afterwards and for ``method="pot"``).
    - ``transport_solves``: W1 problems solved; ``pivots``: simplex pivots (fast method only).
    """

    matrix: FloatArray
    value: float
    mean: float | None
    lower: float
    upper: float
    iterations: int
    sweeps: int
    delta: float
    r_max: float
    d_max: float
    gamma: float
    tol: float
    method: str
    elapsed_s: float
    compile_s: float
    transport_solves: int
    pivots: int

    @property
    def diagonal(self) -> FloatArray:
        """d(x, x) [S]: the distance of each real state to the same twin state."""
        return np.diagonal(self.matrix)

    @property
    def width(self) -> float:
        return self.upper - self.lower

    @property
    def certified(self) -> bool:
        """True when the certified interval is no wider than ``tol``."""
        return self.width <= self.tol


def min_tol(d_max: float) -> float:
    """The smallest ``tol`` accepted for metric values up to ``d_max`` (float64 rounding)."""
    return 1e-12 * max(1.0, d_max)


def solve_operator(op: BisimOperator, tol: float, method: str, d0: FloatArray | None, threads: int,
                   evaluation_sweeps: int) -> tuple[Solved, float]:
    """(solution, compile seconds) of ``op`` by ``method``."""
    if method == "fast":
        compile_s = ensure_compiled()
        return solve_fast(op, tol, d0, threads=threads, evaluation_sweeps=evaluation_sweeps), compile_s
    return solve_pot(op, tol, d0), 0.0


def dt_bsm(R_real: Any, P_real: Any, R_twin: Any, P_twin: Any, gamma: float, tol: float = 1e-6,
           weights: Any = None, method: Literal["fast", "pot"] = "fast", d0: Any = None,
           r_max: float | None = None, threads: int = 1,
           evaluation_sweeps: int = EVALUATION_SWEEPS, actions: Any = None) -> DTBSMResult:
    """The exact DT-BSM matrix of a real MDP and its twin over the same states, certified within ``tol``.

    - ``R_real``, ``R_twin``: rewards [S, A]; ``P_real``, ``P_twin``: next-state distributions
      [S, A, S] (entries >= 0, rows summing to 1 within 1e-6; renormalised). Twin states are the
      real states (shared encoder); both MDPs have the same A actions.
    - ``gamma``: discount in (0, 1).
    - ``tol``: absolute target width of the certified interval: the call returns once
      ``upper − lower <= tol``, where [lower, upper] contains the exact DTBSM_sup (and each entry
      of the exact matrix lies within the same width of ``matrix``). Units: reward units, like d.
      At least ``min_tol(d_max)``.
    - ``weights``: real-state frequencies [S] (>= 0, any scale) for ``mean``; optional.
    - ``method``: "fast" (compiled coupling iteration, §3.4) or "pot" (plain §3.1 loop with
      ``ot.emd2``, Jacobi sweeps from 0; slow, the reference).
    - ``d0``: warm start [S, S] (e.g. the previous matrix, §9.3); the result is certified all the same.
    - ``r_max``: reward bound for ``d_max``; default the largest |R(x,a) − R'(y,a)| over all pairs.
    - ``threads``: numba threads over blocks of real states for the fast method (capped at the
      cores numba sees). Default 1: on a 2-core machine shared with another busy process, 2 threads
      were 2.3x slower (OpenMP threads spin at every sweep's barrier), see ``docs/benchmarks.md``.
    - ``evaluation_sweeps``: the fast method's cheap sweeps per exact sweep (0 = value iteration).
    - ``actions``: boolean [S, A], the actions the max may take at each real state (§9.2: the
      covered ones, A_cov(x)); default all. A state with none allowed has a row of 0.
    """
    t0 = time.perf_counter()
    if method not in METHODS:
        raise FidelityInputError(f"method must be 'fast' or 'pot', got {method!r}")
    pair = check_pair(R_real, P_real, R_twin, P_twin, gamma)
    tol = check_tol(tol)
    w = check_weights(weights, pair.n_states)
    start = None if d0 is None else check_matrix(d0, pair.n_states, "d0")
    r = check_r_max(r_max, reward_span(pair.R_real, pair.R_twin))
    d_max = r / (1.0 - pair.gamma)
    if tol < min_tol(d_max):
        raise FidelityInputError(f"tol = {tol:g} is below {min_tol(d_max):g}, what float64 can certify for values "
                                 f"up to d_max = {d_max:g}")
    if int(evaluation_sweeps) < 0:
        raise FidelityInputError(f"evaluation_sweeps must be >= 0, got {evaluation_sweeps}")
    op = BisimOperator.plain(pair).restricted(check_actions(actions, pair.n_states, pair.n_actions))
    solved, compile_s = solve_operator(op, tol, method, start, threads, int(evaluation_sweeps))
    return make_result(solved, pair.gamma, tol, method, r, w, time.perf_counter() - t0 - compile_s, compile_s)


def make_result(solved: Solved, gamma: float, tol: float, method: str, r_max: float, weights: FloatArray | None,
                elapsed_s: float, compile_s: float) -> DTBSMResult:
    """The public result of a solver's output: diagonal reductions and their certified interval."""
    d = solved.matrix
    d.flags.writeable = False
    diag = np.diagonal(d)
    value = float(diag.max())
    d_max = r_max / (1.0 - gamma)
    lower = max(0.0, value - solved.below)
    upper = value + solved.above
    mean = None if weights is None else float(weights @ diag)
    return DTBSMResult(matrix=d, value=value, mean=mean, lower=lower, upper=upper, iterations=solved.iterations,
                       sweeps=solved.sweeps, delta=solved.delta, r_max=r_max, d_max=d_max, gamma=gamma, tol=tol,
                       method=method, elapsed_s=elapsed_s, compile_s=compile_s,
                       transport_solves=solved.transport_solves, pivots=solved.pivots)
