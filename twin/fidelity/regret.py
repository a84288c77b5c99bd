"""The performance bound of §6: how much a twin-trained policy can lose on the real network.

For any deterministic policy π trained in the twin (same states, shared encoder):

    max_x [V*_M(x) − V^π_M(x)] <= α·DTBSM_sup + β·ε_train,   α = 2/(1 − γ), β = 1/(1 − γ)
    ε_train = max_y [V*_M'(y) − V^π_M'(y)]

(our proof, spec §6; the paper's constants may differ, hence ``alpha``/``beta`` overrides).
Use an upper end of DTBSM_sup (``DTBSMResult.upper``, ``TVBound.upper``, ``DTBSMInterval.upper``)
for a guarantee. Spec §8 Example 4: γ = 0.5, DTBSM_sup = 2, ε_train = 0 gives 8 (observed regret 2).

>>> regret_bound(2.0, 0.0, gamma=0.5)
8.0
>>> resync_threshold(8.0, 0.0, gamma=0.5)  # the DT-BSM that keeps the regret within a budget of 8
2.0
>>> regret_bound(-1.0, 0.0, gamma=0.5)
Traceback (most recent call last):
...
twin.fidelity.errors.FidelityInputError: dtbsm must be finite and >= 0, got -1.0
"""

from __future__ import annotations

import math

from .errors import FidelityInputError
from .validate import check_gamma

__all__ = ["regret_bound", "resync_threshold"]


def _nonnegative(name: str, value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise FidelityInputError(f"{name} must be finite and >= 0, got {value!r}")
    return float(value)


def regret_bound(dtbsm: float, eps_train: float, gamma: float, alpha: float | None = None,
                 beta: float | None = None) -> float:
    """α·dtbsm + β·eps_train, by default α = 2/(1 − γ), β = 1/(1 − γ) (reward units × 1/(1 − γ))."""
    g = check_gamma(gamma)
    a = 2.0 / (1.0 - g) if alpha is None else _nonnegative("alpha", alpha)
    b = 1.0 / (1.0 - g) if beta is None else _nonnegative("beta", beta)
    return a * _nonnegative("dtbsm", dtbsm) + b * _nonnegative("eps_train", eps_train)


def resync_threshold(budget: float, eps_train: float, gamma: float) -> float:
    """τ = (G(1 − γ) − ε_train)/2: the largest DTBSM_sup whose regret bound stays within the budget G
    (negative when the training error alone exceeds the budget)."""
    g = check_gamma(gamma)
    return (_nonnegative("budget", budget) * (1.0 - g) - _nonnegative("eps_train", eps_train)) / 2.0
