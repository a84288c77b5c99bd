"""Empirical MDPs from streamed ``(x, a, r, x')`` samples (§5.1, §9.2, §9.3).

``TransitionCounts`` keeps, per real (x, a), the next-state counts N(x, a, x') and reward sums, one
O(1) update per sample, with optional exponential forgetting. It gives the plug-in model
P̂ = N(x,a,x')/N(x,a), R̂ = mean reward, the coverage, the per-pair "enough data yet" indicator of
the §5.3 sample sizes, and the confidence radii of §9.2 that the interval DT-BSM needs.

Conventions (say them, since the spec leaves them open):
- Rewards are mapped into [0, R̄] when added: linearly from ``reward_range`` when given, then
  clipped. R̄ enters every bound.
- Forgetting λ is global and per sample: on each sample every count is multiplied by λ and the
  new one counts 1 (N ← λN + 1 for the pair sampled, N ← λN for the others), so a pair not seen
  for a while loses confidence (its radii grow). N(x, a) is then the effective count N_eff. Done
  lazily with one scale factor, so a sample still costs O(1).
- A pair never sampled (N = 0) gets P̂ = a self-loop and R̂ = 0 as placeholders; its radii are the
  largest possible (TV radius 1, reward radius R̄), so the interval metric does not trust them.

>>> counts = TransitionCounts(2, 1, r_bar=1.0)
>>> for x, r, x2 in [(0, 1.0, 1), (0, 0.0, 0), (0, 2.0, 1), (1, 0.5, 1)]:
...     counts.add(x, 0, r, x2)
>>> R, P = counts.estimates()
>>> R.ravel().tolist(), P[0, 0].tolist()  # the 2.0 reward is clipped to R̄ = 1
([0.6666666666666666, 0.5], [0.3333333333333333, 0.6666666666666666])
>>> counts.counts.ravel().tolist(), counts.coverage(n_min=2)
([3.0, 1.0], 0.5)
>>> counts.add(0, 1, 0.0, 0)
Traceback (most recent call last):
...
twin.fidelity.errors.FidelityInputError: action a = 1 is outside 0..0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .errors import FidelityInputError
from .samples import samples_gbsm, samples_uniform
from .validate import check_mdp

__all__ = ["EmpiricalModel", "TransitionCounts", "confidence_radii", "thin_pair_estimates"]

FloatArray = npt.NDArray[np.float64]
_RENORMALISE = 1e150


def confidence_radii(counts: Any, n_states: int, alpha: float, r_bar: float) -> tuple[FloatArray, FloatArray]:
    """(TV radius, reward radius) per (x, a) from the (effective) counts N [S, A] (§9.2).

    r(x, a) = min(1, ½·√((2/N)(|S| ln 2 + ln(1/α)))) bounds TV(P̂(·|x,a), P(·|x,a)) and
    ρ(x, a) = min(R̄, R̄·√(ln(2/α)/(2N))) bounds |R̂ − R|, each with probability >= 1 − α per pair
    (use α/(2|S||A|) per pair for one statement over all pairs). N = 0 gives r = 1, ρ = R̄.

    >>> r, rho = confidence_radii([[0.0, 100.0]], 4, 0.05, 1.0)
    >>> r.round(4).tolist(), rho.round(4).tolist()
    ([[1.0, 0.1698]], [[1.0, 0.1358]])
    """
    N = np.asarray(counts, dtype=np.float64)
    if not (0.0 < alpha < 1.0):
        raise FidelityInputError(f"alpha must be in (0, 1), got {alpha!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(N > 0, 0.5 * np.sqrt((2.0 / N) * (n_states * math.log(2.0) + math.log(1.0 / alpha))), 1.0)
        rho = np.where(N > 0, r_bar * np.sqrt(math.log(2.0 / alpha) / (2.0 * N)), r_bar)
    return np.minimum(r, 1.0), np.minimum(rho, r_bar)


@dataclass(frozen=True)
class EmpiricalModel:
    """A model with its uncertainty: R [S, A] in [0, r_bar], P [S, A, S], and per (x, a) the
    (effective) sample count, the TV radius of P's row and the reward radius (0 for an exact model)."""

    R: FloatArray
    P: FloatArray
    counts: FloatArray
    tv_radius: FloatArray
    reward_radius: FloatArray
    r_bar: float

    @classmethod
    def exact(cls, R: Any, P: Any, r_bar: float) -> EmpiricalModel:
        """An analytic model (e.g. a twin with known P', R'): zero radii, infinite counts.

        >>> EmpiricalModel.exact([[0.5]], [[[1.0]]], r_bar=1.0).tv_radius.tolist()
        [[0.0]]
        >>> EmpiricalModel.exact([[1.5]], [[[1.0]]], r_bar=1.0)
        Traceback (most recent call last):
        ...
        twin.fidelity.errors.FidelityInputError: R[0, 0] = 1.5 is outside [0, r_bar] = [0, 1]
        """
        R_arr, P_arr = check_mdp(R, P)
        _check_r_bar(r_bar)
        bad = np.argwhere((R_arr < 0) | (R_arr > r_bar))
        if len(bad):
            x, a = (int(i) for i in bad[0])
            raise FidelityInputError(f"R[{x}, {a}] = {R_arr[x, a]:g} is outside [0, r_bar] = [0, {r_bar:g}]")
        z = np.zeros_like(R_arr)
        return cls(R_arr, P_arr, np.full_like(R_arr, np.inf), z, z.copy(), float(r_bar))

    @property
    def n_states(self) -> int:
        return int(self.R.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.R.shape[1])


def thin_pair_estimates(real: FloatArray, twin: FloatArray, n_real: FloatArray, n_twin: FloatArray,
                        n_min: float) -> tuple[FloatArray, FloatArray]:
    """The estimates a point value compares, per (state, action) pair (``real``/``twin``: [S, A, ...],
    rewards or next-state rows; ``n_real``/``n_twin``: [S, A] samples): a pair one side has fewer than
    ``n_min`` samples of takes the other side's estimate, a pair both sides have fewer of takes their
    pooled (count-weighted) estimate on both; below the coverage threshold a difference is noise.

    >>> r, t = thin_pair_estimates(np.array([[1.0], [1.0]]), np.array([[0.0], [0.0]]),
    ...                            np.array([[9.0], [1.0]]), np.array([[1.0], [3.0]]), n_min=5)
    >>> r.tolist(), t.tolist()  # pair 0: the twin's is thin; pair 1: both, pooled 1/4 real
    ([[1.0], [0.25]], [[1.0], [0.25]])
    """
    real_ok, twin_ok = n_real >= n_min, n_twin >= n_min
    total = n_real + n_twin
    extra = (slice(None), slice(None)) + (None,) * (real.ndim - 2)  # broadcast [S, A] over trailing axes
    w = np.where(total > 0, n_real / np.where(total > 0, total, 1.0), 0.5)[extra]  # the real side's share
    pool = w * real + (1.0 - w) * twin
    both_low = (~real_ok & ~twin_ok)[extra]
    return (np.where(both_low, pool, np.where(real_ok[extra], real, twin)),
            np.where(both_low, pool, np.where(twin_ok[extra], twin, real)))


def _check_r_bar(r_bar: float) -> None:
    if not (isinstance(r_bar, int | float) and math.isfinite(r_bar) and r_bar > 0):
        raise FidelityInputError(f"r_bar must be finite and > 0, got {r_bar!r}")


class TransitionCounts:
    """Counts of ``(x, a, r, x')`` samples of one MDP over S states and A actions (module doc).

    ``r_bar``: the reward bound R̄; ``forgetting``: λ in (0, 1] (1 = no forgetting);
    ``reward_range``: (low, high) of raw rewards, mapped linearly onto [0, R̄] (default: none,
    rewards are only clipped into [0, R̄]).
    """

    def __init__(self, n_states: int, n_actions: int, r_bar: float = 1.0, forgetting: float = 1.0,
                 reward_range: tuple[float, float] | None = None) -> None:
        for name, value in (("n_states", n_states), ("n_actions", n_actions)):
            if not isinstance(value, int | np.integer) or value < 1:
                raise FidelityInputError(f"{name} must be an integer >= 1, got {value!r}")
        _check_r_bar(r_bar)
        if not (0.0 < forgetting <= 1.0):
            raise FidelityInputError(f"forgetting must be in (0, 1], got {forgetting!r}")
        if reward_range is not None:
            lo, hi = reward_range
            if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
                raise FidelityInputError(f"reward_range must be (low, high) with low < high, got {reward_range!r}")
        self.n_states = int(n_states)
        self.n_actions = int(n_actions)
        self.r_bar = float(r_bar)
        self.forgetting = float(forgetting)
        self.reward_range = reward_range
        self._n = np.zeros((self.n_states, self.n_actions, self.n_states))
        self._rsum = np.zeros((self.n_states, self.n_actions))
        self._scale = 1.0  # effective = stored * _scale
        self._samples = 0

    def _reward(self, r: Any) -> Any:
        if self.reward_range is not None:
            lo, hi = self.reward_range
            r = (np.asarray(r, dtype=np.float64) - lo) * (self.r_bar / (hi - lo))
        return np.clip(r, 0.0, self.r_bar)

    def _check_index(self, name: str, value: Any, upper: int) -> None:
        arr = np.asarray(value)
        if arr.dtype.kind not in "iu":
            raise FidelityInputError(f"{name} must be integers, got {arr.dtype} ({value!r})")
        bad = np.flatnonzero((arr.ravel() < 0) | (arr.ravel() >= upper))
        if len(bad):
            raise FidelityInputError(f"{name} = {arr.ravel()[bad[0]]} is outside 0..{upper - 1}")

    def add(self, x: int, a: int, r: float, x_next: int) -> None:
        """One sample: in state x, action a gave reward r and led to x_next. O(1)."""
        self._check_index("state x", x, self.n_states)
        self._check_index("action a", a, self.n_actions)
        self._check_index("next state x_next", x_next, self.n_states)
        if not math.isfinite(r):
            raise FidelityInputError(f"reward r must be finite, got {r!r}")
        if self.forgetting < 1.0:
            self._scale *= self.forgetting
            if 1.0 / self._scale > _RENORMALISE:
                self._renormalise()
        w = 1.0 / self._scale
        self._n[x, a, x_next] += w
        self._rsum[x, a] += w * float(self._reward(r))
        self._samples += 1

    def add_many(self, states: Any, actions: Any, rewards: Any, next_states: Any) -> None:
        """Samples in arrival order (arrays of equal length); the same as ``add`` one by one."""
        xs, acts, rs, x2s = (np.asarray(v) for v in (states, actions, rewards, next_states))
        if not (xs.shape == acts.shape == rs.shape == x2s.shape) or xs.ndim != 1:
            raise FidelityInputError("states, actions, rewards and next_states must be 1-D arrays of equal length, "
                                     f"got shapes {xs.shape}, {acts.shape}, {rs.shape}, {x2s.shape}")
        self._check_index("states", xs, self.n_states)
        self._check_index("actions", acts, self.n_actions)
        self._check_index("next_states", x2s, self.n_states)
        rs = rs.astype(np.float64)
        if not np.isfinite(rs).all():
            first = int(np.flatnonzero(~np.isfinite(rs))[0])
            raise FidelityInputError(f"rewards must be finite (first bad index {first})")
        rs = self._reward(rs)
        chunk = len(xs) if self.forgetting == 1.0 else max(1, int(100 / -math.log(self.forgetting)))
        for lo in range(0, len(xs), chunk):
            sl = slice(lo, lo + chunk)
            k = len(xs[sl])
            if self.forgetting < 1.0:
                if 1.0 / (self._scale * self.forgetting ** k) > _RENORMALISE:
                    self._renormalise()
                w = 1.0 / (self._scale * self.forgetting ** np.arange(1, k + 1))
                self._scale *= self.forgetting ** k
            else:
                w = np.ones(k)
            np.add.at(self._n, (xs[sl], acts[sl], x2s[sl]), w)
            np.add.at(self._rsum, (xs[sl], acts[sl]), w * rs[sl])
        self._samples += len(xs)

    def _renormalise(self) -> None:
        self._n *= self._scale
        self._rsum *= self._scale
        self._scale = 1.0

    @property
    def samples(self) -> int:
        """Samples added (not discounted)."""
        return self._samples

    @property
    def transition_counts(self) -> FloatArray:
        """N(x, a, x') [S, A, S], effective under forgetting."""
        return self._n * self._scale

    @property
    def counts(self) -> FloatArray:
        """N(x, a) [S, A], effective under forgetting."""
        return self._n.sum(axis=2) * self._scale

    def estimates(self) -> tuple[FloatArray, FloatArray]:
        """(R̂ [S, A] in [0, R̄], P̂ [S, A, S]); unsampled pairs: self-loop, reward 0."""
        raw = self._n.sum(axis=2)
        seen = raw > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            P = np.where(seen[:, :, None], self._n / raw[:, :, None], 0.0)
            R = np.where(seen, self._rsum / raw, 0.0)
        xs, acts = np.nonzero(~seen)
        P[xs, acts, xs] = 1.0
        return np.clip(R, 0.0, self.r_bar), P

    def covered(self, n_min: float) -> npt.NDArray[np.bool_]:
        """[S, A]: N(x, a) >= n_min."""
        return self.counts >= n_min

    def coverage(self, n_min: float) -> float:
        """Fraction of (x, a) pairs with N(x, a) >= n_min (report it with the metric, §9.2)."""
        return float(self.covered(n_min).mean())

    def enough(self, eps: float, alpha: float, gamma: float,
               formula: Literal["uniform", "gbsm"] = "uniform") -> npt.NDArray[np.bool_]:
        """[S, A]: N(x, a) >= K, K the §5.3 sample size for accuracy ``eps`` at confidence 1 − ``alpha``
        (``formula`` "uniform" is (b), "gbsm" is (a) with the union bound)."""
        if formula == "uniform":
            k = samples_uniform(self.n_states, self.n_actions, gamma, eps, alpha, self.r_bar)
        elif formula == "gbsm":
            k = samples_gbsm(self.n_states, gamma, eps, alpha, self.r_bar, n_actions=self.n_actions)
        else:
            raise FidelityInputError(f"formula must be 'uniform' or 'gbsm', got {formula!r}")
        return self.counts >= k

    def missing_mass(self) -> FloatArray:
        """Good–Turing estimate of the unseen next-state mass per (x, a): #{x' seen once}/N (1 when N = 0).
        Meaningful without forgetting only."""
        N = self.counts
        once = (np.abs(self.transition_counts - 1.0) < 1e-9).sum(axis=2)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(N > 0, once / N, 1.0)

    def radii(self, alpha: float) -> tuple[FloatArray, FloatArray]:
        """(TV radius [S, A], reward radius [S, A]) at confidence 1 − alpha per pair (``confidence_radii``)."""
        return confidence_radii(self.counts, self.n_states, alpha, self.r_bar)

    def model(self, alpha: float) -> EmpiricalModel:
        """The plug-in model with its confidence radii at 1 − alpha per pair."""
        R, P = self.estimates()
        r, rho = self.radii(alpha)
        return EmpiricalModel(R, P, self.counts, r, rho, self.r_bar)
