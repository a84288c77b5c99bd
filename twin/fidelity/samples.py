"""How many samples per state-action pair the empirical DT-BSM needs (§5.3).

Both formulas give K such that |d̂ − d| <= ε with probability >= 1 − α when every (x, a) has K
samples. They are conservative (on a 4-state test the observed error was ~160x below (a)): use them
as stopping rules for data collection and the confidence radii of §9.2 for monitoring.

(a) ``samples_gbsm``, the authors' closed form (GBSM, Thm 4.5, as quoted; grows as |S|²):
    K = −ln(α/2) · γ² · R̄² · |S|² / (2 ε² (1 − γ)⁴)
    Hoeffding per transition entry; α is per entry unless ``n_actions`` is given, which applies the
    union bound α → α / (|S|² |A|).
(b) ``samples_uniform``, tighter and uniform over all (x, a) (Weissman L1 deviation + union bound,
    rewards assumed known; grows as |S|):
    K = (|S| ln 2 + ln(|S||A|/α)) · γ² · R̄² / (2 (1 − γ)⁴ ε²)

Spec example: |S| = 20, |A| = 2, γ = 0.5, R̄ = 1, ε = 0.1, α = 0.05.

>>> samples_gbsm(20, 0.5, 0.1, 0.05), samples_gbsm(20, 0.5, 0.1, 0.05, n_actions=2)
(295111, 829880)
>>> samples_uniform(20, 2, 0.5, 0.1, 0.05)
4110
>>> samples_uniform(20, 2, 0.5, 0.1, 1.5)
Traceback (most recent call last):
...
twin.fidelity.errors.FidelityInputError: alpha must be in (0, 1), got 1.5
"""

from __future__ import annotations

import math

from .errors import FidelityInputError
from .validate import check_gamma, check_tol

__all__ = ["samples_gbsm", "samples_uniform"]


def _check(n_states: int, gamma: float, eps: float, alpha: float, r_bar: float) -> tuple[float, float, float]:
    if int(n_states) != n_states or n_states < 1:
        raise FidelityInputError(f"n_states must be an integer >= 1, got {n_states!r}")
    g = check_gamma(gamma)
    e = check_tol(eps, "eps")
    if not (0.0 < alpha < 1.0):
        raise FidelityInputError(f"alpha must be in (0, 1), got {alpha!r}")
    if not (math.isfinite(r_bar) and r_bar > 0):
        raise FidelityInputError(f"r_bar must be finite and > 0, got {r_bar!r}")
    return g, e, float(alpha)


def samples_gbsm(n_states: int, gamma: float, eps: float, alpha: float, r_bar: float = 1.0,
                 n_actions: int | None = None) -> int:
    """Formula (a): samples per (x, a), rounded up. ``n_actions`` switches on the union bound."""
    g, e, a = _check(n_states, gamma, eps, alpha, r_bar)
    if n_actions is not None:
        if int(n_actions) != n_actions or n_actions < 1:
            raise FidelityInputError(f"n_actions must be an integer >= 1, got {n_actions!r}")
        a = a / (n_states ** 2 * n_actions)
    k = -math.log(a / 2.0) * g ** 2 * r_bar ** 2 * n_states ** 2 / (2.0 * e ** 2 * (1.0 - g) ** 4)
    return math.ceil(k)


def samples_uniform(n_states: int, n_actions: int, gamma: float, eps: float, alpha: float, r_bar: float = 1.0) -> int:
    """Formula (b): samples per (x, a), rounded up, for a statement uniform over all (x, a)."""
    g, e, a = _check(n_states, gamma, eps, alpha, r_bar)
    if int(n_actions) != n_actions or n_actions < 1:
        raise FidelityInputError(f"n_actions must be an integer >= 1, got {n_actions!r}")
    k = (n_states * math.log(2.0) + math.log(n_states * n_actions / a)) * g ** 2 * r_bar ** 2 \
        / (2.0 * (1.0 - g) ** 4 * e ** 2)
    return math.ceil(k)
