"""The DT-BSM operator in the one generalised form both solvers iterate.

    T(d)(x, y) = min(cap, max_a [ rterm(x,y,a) + γ · max(0, W1_d(P(·|x,a), P'(·|y,a)) + shift(x,y,a)) ])
    rterm(x,y,a) = max(0, |R(x,a) − R'(y,a)| + cr[x,a] + ct[y,a]),   shift(x,y,a) = sr[x,a] + st[y,a]

Why one form: the plain metric (§2.1: all adjustments 0, no cap) and the two ends of the interval
metric (§9.2: ±reward radii in ``cr``/``ct``, ±d_max·TV radii in ``sr``/``st``, upper end capped
at d_max) are then the same solver. T is monotone and a γ-contraction in the sup norm for any
adjustments, so every certificate of the plain metric holds for the interval ends too.

>>> import numpy as np
>>> from twin.fidelity.validate import check_pair
>>> pair = check_pair([[0.0], [1.0]], [[[0.0, 1.0]], [[1.0, 0.0]]], [[1.0], [2.0]], [[[0.0, 1.0]], [[1.0, 0.0]]], 0.5)
>>> op = BisimOperator.plain(pair)
>>> op.start_value()  # a constant D with T(D) <= D: the largest reward gap over (1 − γ)
4.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .validate import MDPPair

__all__ = ["EXCLUDED", "BisimOperator"]

FloatArray = npt.NDArray[np.float64]
#: the adjustment that takes an (x, a) out of the max (``BisimOperator.restricted``): far below any
#: reward gap or transport cost the metric can hold
EXCLUDED = -1e12


@dataclass(frozen=True)
class BisimOperator:
    """A checked MDP pair plus the adjustments of the generalised operator (module doc).

    ``cr``, ``sr``: [S, A] per real (x, a); ``ct``, ``st``: [S, A] per twin (y, a); ``cap``: upper
    limit of every entry (``inf`` for the plain metric).
    """

    pair: MDPPair
    cr: FloatArray
    ct: FloatArray
    sr: FloatArray
    st: FloatArray
    cap: float

    @classmethod
    def plain(cls, pair: MDPPair) -> BisimOperator:
        """The DT-BSM operator F of §2.1."""
        z = np.zeros_like(pair.R_real)
        return cls(pair, z, z.copy(), z.copy(), z.copy(), float("inf"))

    def restricted(self, actions: npt.NDArray[np.bool_] | None) -> BisimOperator:
        """The operator whose max at each real state x takes only the actions ``actions[x]`` allows
        (§9.2's A_cov(x)): an excluded (x, a) gets ``EXCLUDED`` in ``cr`` and ``sr``, so its reward
        term and its transport term clip to 0 and it cannot raise the max of the others, which are
        >= 0; a state with no action allowed gets 0 (the max over nothing). Monotone and a
        γ-contraction as before, so the solvers and their certificates are unchanged."""
        if actions is None:
            return self
        out = ~actions
        return BisimOperator(self.pair, np.where(out, EXCLUDED, self.cr), self.ct,
                             np.where(out, EXCLUDED, self.sr), self.st, self.cap)

    @property
    def gamma(self) -> float:
        return self.pair.gamma

    def start_value(self) -> float:
        """A constant D >= 0 with T(D) <= D (a super-solution), so D >= every entry of the fixed point:
        (largest rterm + γ·max(0, largest shift)) / (1 − γ), capped at ``cap``."""
        Rr, Rt = self.pair.R_real, self.pair.R_twin
        gap = np.maximum(Rr.max(axis=0) - Rt.min(axis=0), Rt.max(axis=0) - Rr.min(axis=0))
        g = max(0.0, float(gap.max() + self.cr.max() + self.ct.max()))
        s = max(0.0, float(self.sr.max() + self.st.max()))
        return float(min(self.cap, (g + self.gamma * s) / (1.0 - self.gamma)))
