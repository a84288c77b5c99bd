"""Interval DT-BSM from estimated models with confidence radii (§9.2).

Why: the plug-in metric d̂ of two estimated models says nothing about how far it may be from the
true d. Widening each step by the radii gives two fixed points that bracket d with high probability:

    upper: T⁺(d) = min(d_max, max_a [ |R̂ − R̂'| + ρ + ρ' + γ·( W1_d(P̂, P̂') + d_max·(r + r') ) ])
    lower: T⁻(d) = max_a [ max(0, |R̂ − R̂'| − ρ − ρ') + γ·max(0, W1_d(P̂, P̂') − d_max·(r + r')) ]

with r, r' the TV radii and ρ, ρ' the reward radii of the real (x, a) and twin (y, a). If every
|R̂ − R| <= ρ and TV(P̂, P) <= r (and the same on the twin side), then T⁻(d) <= F(d) <= T⁺(d) for
every d, and since all three are monotone γ-contractions their fixed points satisfy d⁻ <= d <= d⁺.
An unsampled pair (r = 1) drives the upper end towards d_max, the worst case. d_max = R̄/(1 − γ)
with R̄ the models' reward bound (the true rewards must lie in [0, R̄]).

Both ends are solved by the same solver as ``dt_bsm`` (its generalised operator, ``operator``),
with the fast method by default or the POT reference (``method="pot"``); each end is certified
within ``tol``, and the reported bounds are the outer ends of the two certificates.

>>> from twin.fidelity.empirical import EmpiricalModel, TransitionCounts
>>> real = TransitionCounts(1, 1)
>>> real.add_many([0] * 400, [0] * 400, [0.5] * 400, [0] * 400)
>>> twin = EmpiricalModel.exact([[0.5]], [[[1.0]]], r_bar=1.0)
>>> iv = dt_bsm_interval(real.model(alpha=0.05), twin, gamma=0.5, tol=1e-9)
>>> iv.lower == 0.0, round(iv.upper, 4)  # true d = 0; radii ρ = r = 0.0679: (ρ + γ·d_max·r)/(1 − γ)
(True, 0.2716)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from .empirical import EmpiricalModel
from .errors import FidelityInputError
from .exact import METHODS, DTBSMResult, make_result, min_tol, solve_operator
from .fast import EVALUATION_SWEEPS
from .operator import BisimOperator
from .validate import check_actions, check_gamma, check_matrix, check_pair, check_tol, check_weights

__all__ = ["DTBSMInterval", "dt_bsm_interval"]


@dataclass(frozen=True)
class DTBSMInterval:
    """Both ends of the interval metric. ``lower_end``/``upper_end``: the certified fixed points of
    T⁻ and T⁺ (matrices [S, S]). ``lower`` <= DTBSM_sup <= ``upper`` with the models' confidence:
    ``lower = lower_end.lower``, ``upper = upper_end.upper``."""

    lower_end: DTBSMResult
    upper_end: DTBSMResult

    @property
    def lower(self) -> float:
        return self.lower_end.lower

    @property
    def upper(self) -> float:
        return self.upper_end.upper

    @property
    def d_max(self) -> float:
        return self.upper_end.d_max


def dt_bsm_interval(real: EmpiricalModel, twin: EmpiricalModel, gamma: float, tol: float = 1e-6,
                    weights: Any = None, method: Literal["fast", "pot"] = "fast",
                    threads: int = 1, d0: tuple[Any, Any] | None = None, actions: Any = None) -> DTBSMInterval:
    """The interval DT-BSM of two models with radii (``TransitionCounts.model`` or
    ``EmpiricalModel.exact``) over the same states and actions; ``tol`` bounds the width of each
    end's certificate. ``weights``: real-state frequencies for the ends' ``mean``. ``d0``: warm
    starts (lower end's matrix, upper end's matrix), e.g. the previous interval's (§9.3); each end is
    certified the same way from any start. ``actions``: boolean [S, A], the actions each end's max
    may take at each real state (§9.2's A_cov(x), as in ``dt_bsm``); default all."""
    if method not in METHODS:
        raise FidelityInputError(f"method must be 'fast' or 'pot', got {method!r}")
    for name, model in (("real", real), ("twin", twin)):
        if not isinstance(model, EmpiricalModel):
            raise FidelityInputError(f"{name} must be an EmpiricalModel (TransitionCounts.model(alpha) or "
                                     f"EmpiricalModel.exact), got {type(model).__name__}")
    g = check_gamma(gamma)
    pair = check_pair(real.R, real.P, twin.R, twin.P, g)
    tol = check_tol(tol)
    w = check_weights(weights, pair.n_states)
    allowed = check_actions(actions, pair.n_states, pair.n_actions)
    r_bar = max(real.r_bar, twin.r_bar)
    d_max = r_bar / (1.0 - g)
    if tol < min_tol(d_max):
        raise FidelityInputError(f"tol = {tol:g} is below {min_tol(d_max):g}, what float64 can certify for values "
                                 f"up to d_max = {d_max:g}")
    starts = (None, None) if d0 is None else tuple(
        None if m is None else check_matrix(m, pair.n_states, name) for m, name in zip(d0, ("d0[0]", "d0[1]"),
                                                                                     strict=True))
    ends = []
    for sign, start in zip((-1.0, 1.0), starts, strict=True):
        op = BisimOperator(pair, sign * real.reward_radius, sign * twin.reward_radius,
                           sign * d_max * real.tv_radius, sign * d_max * twin.tv_radius,
                           d_max if sign > 0 else float("inf")).restricted(allowed)
        t0 = time.perf_counter()
        solved, compile_s = solve_operator(op, tol, method, start, threads, EVALUATION_SWEEPS)
        ends.append(make_result(solved, g, tol, method, r_bar, w, time.perf_counter() - t0 - compile_s, compile_s))
    lower_end, upper_end = ends
    return DTBSMInterval(lower_end, upper_end)

