"""Input checks shared by every fidelity function: shapes, probabilities, discount, tolerances.

Each check raises ``FidelityInputError`` naming the argument and the offending index or value, and
returns the input as a C-contiguous float64 array, so the solvers can assume clean data (rows of
``P`` renormalised to sum to exactly 1, which the transport problems need to be balanced).

>>> check_gamma(0.9)
0.9
>>> check_gamma(1.0)
Traceback (most recent call last):
...
twin.fidelity.errors.FidelityInputError: gamma must be in (0, 1), got 1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import FidelityInputError

__all__ = [
    "ROW_SUM_TOLERANCE",
    "MDPPair",
    "check_gamma",
    "check_matrix",
    "check_mdp",
    "check_pair",
    "check_r_max",
    "check_tol",
    "check_weights",
    "reward_span",
]

ROW_SUM_TOLERANCE = 1e-6
"""How far a row of ``P`` may sum from 1 before it is refused (it is then renormalised)."""

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class MDPPair:
    """A checked real/twin pair of finite MDPs over the same states and actions.

    ``R_real``, ``R_twin``: [S, A] rewards. ``P_real``, ``P_twin``: [S, A, S] next-state
    distributions, rows renormalised to sum to 1. ``gamma``: the discount in (0, 1).
    """

    R_real: FloatArray
    P_real: FloatArray
    R_twin: FloatArray
    P_twin: FloatArray
    gamma: float

    @property
    def n_states(self) -> int:
        return int(self.R_real.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.R_real.shape[1])


def _finite_array(value: Any, name: str, ndim: int, what: str) -> FloatArray:
    try:
        arr = np.array(value, dtype=np.float64, order="C")
    except (TypeError, ValueError) as exc:
        raise FidelityInputError(f"{name} must be a numeric array {what}: {exc}") from exc
    if arr.ndim != ndim:
        raise FidelityInputError(f"{name} must be a {ndim}-D array {what}, got shape {arr.shape}")
    bad = np.argwhere(~np.isfinite(arr))
    if len(bad):
        index = tuple(int(i) for i in bad[0])
        raise FidelityInputError(f"{name}[{', '.join(map(str, index))}] is {arr[index]}: inputs must be finite "
                                 f"({len(bad)} non-finite entr{'y' if len(bad) == 1 else 'ies'})")
    return arr


def check_mdp(R: Any, P: Any, r_name: str = "R", p_name: str = "P") -> tuple[FloatArray, FloatArray]:
    """``(R, P)`` as float64 arrays after checking shapes [S, A] / [S, A, S] and that rows of P are
    distributions (entries >= 0, sums within ``ROW_SUM_TOLERANCE`` of 1, then renormalised).

    >>> R, P = check_mdp([[0.0], [1.0]], [[[0.0, 1.0]], [[1.0, 0.0]]])
    >>> R.shape, P.shape
    ((2, 1), (2, 1, 2))
    >>> check_mdp([[0.0], [1.0]], [[[0.5, 0.4]], [[1.0, 0.0]]], "R_real", "P_real")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    twin.fidelity.errors.FidelityInputError: P_real[0, 0, :] sums to 0.9, not 1 (tolerance 1e-06): each row ...
    >>> check_mdp([[0.0], [1.0]], [[[1.5, -0.5]], [[1.0, 0.0]]], "R_real", "P_real")
    Traceback (most recent call last):
    ...
    twin.fidelity.errors.FidelityInputError: P_real[0, 0, 1] = -0.5 is negative: transition probabilities must be >= 0
    >>> check_mdp([[0.0], [1.0]], [[[1.0, 0.0]], [[1.0, 0.0]], [[1.0, 0.0]]], "R_real", "P_real")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    twin.fidelity.errors.FidelityInputError: P_real has shape (3, 1, 2) but R_real has shape (2, 1): ... (2, 1, 2)
    """
    R_arr = _finite_array(R, r_name, 2, "[states, actions]")
    P_arr = _finite_array(P, p_name, 3, "[states, actions, next states]")
    S, A = R_arr.shape
    if S < 1 or A < 1:
        raise FidelityInputError(f"{r_name} must have at least one state and one action, got shape {R_arr.shape}")
    if P_arr.shape != (S, A, S):
        raise FidelityInputError(f"{p_name} has shape {P_arr.shape} but {r_name} has shape {R_arr.shape}: "
                                 f"{p_name} must be [S, A, S] = {(S, A, S)}")
    neg = np.argwhere(P_arr < 0)
    if len(neg):
        x, a, x2 = (int(i) for i in neg[0])
        raise FidelityInputError(f"{p_name}[{x}, {a}, {x2}] = {P_arr[x, a, x2]:g} is negative: "
                                 "transition probabilities must be >= 0")
    sums = P_arr.sum(axis=2)
    off = np.argwhere(np.abs(sums - 1.0) > ROW_SUM_TOLERANCE)
    if len(off):
        x, a = (int(i) for i in off[0])
        raise FidelityInputError(f"{p_name}[{x}, {a}, :] sums to {sums[x, a]:.10g}, not 1 (tolerance "
                                 f"{ROW_SUM_TOLERANCE:g}): each row of {p_name} must be a distribution over next "
                                 "states")
    P_arr /= sums[:, :, None]
    return R_arr, P_arr


def check_gamma(gamma: Any) -> float:
    """The discount as a float, refused unless strictly between 0 and 1."""
    try:
        g = float(gamma)
    except (TypeError, ValueError) as exc:
        raise FidelityInputError(f"gamma must be a number in (0, 1), got {gamma!r}") from exc
    if not (0.0 < g < 1.0):
        raise FidelityInputError(f"gamma must be in (0, 1), got {gamma!r}")
    return g


def check_tol(tol: Any, name: str = "tol") -> float:
    """A tolerance as a float, refused unless finite and > 0.

    >>> check_tol(0.0)
    Traceback (most recent call last):
    ...
    twin.fidelity.errors.FidelityInputError: tol must be finite and > 0, got 0.0
    """
    try:
        t = float(tol)
    except (TypeError, ValueError) as exc:
        raise FidelityInputError(f"{name} must be a number > 0, got {tol!r}") from exc
    if not (math.isfinite(t) and t > 0):
        raise FidelityInputError(f"{name} must be finite and > 0, got {tol!r}")
    return t


def check_pair(R_real: Any, P_real: Any, R_twin: Any, P_twin: Any, gamma: Any) -> MDPPair:
    """Check both MDPs and that the twin has the real MDP's states (shared encoder) and actions.

    >>> check_pair([[0.0]], [[[1.0]]], [[0.0, 1.0]], [[[1.0], [1.0]]], 0.5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    twin.fidelity.errors.FidelityInputError: R_twin has shape (1, 2) but R_real has shape (1, 1): the twin must ...
    """
    Rr, Pr = check_mdp(R_real, P_real, "R_real", "P_real")
    Rt, Pt = check_mdp(R_twin, P_twin, "R_twin", "P_twin")
    if Rt.shape != Rr.shape:
        raise FidelityInputError(f"R_twin has shape {Rt.shape} but R_real has shape {Rr.shape}: the twin must have "
                                 "the real MDP's states (one shared state encoder) and the same actions")
    return MDPPair(Rr, Pr, Rt, Pt, check_gamma(gamma))


def check_weights(weights: Any, n_states: int) -> FloatArray | None:
    """Real-state frequencies normalised to sum to 1, or None when not given.

    >>> check_weights([1, 3], 2)
    array([0.25, 0.75])
    >>> check_weights([1, -1], 2)
    Traceback (most recent call last):
    ...
    twin.fidelity.errors.FidelityInputError: weights[1] = -1 is negative: weights are real-state frequencies
    """
    if weights is None:
        return None
    w = _finite_array(weights, "weights", 1, "[states]")
    if w.shape != (n_states,):
        raise FidelityInputError(f"weights must have length {n_states} (one per real state), got {w.shape[0]}")
    neg = np.flatnonzero(w < 0)
    if len(neg):
        raise FidelityInputError(f"weights[{neg[0]}] = {w[neg[0]]:g} is negative: weights are real-state frequencies")
    total = float(w.sum())
    if total <= 0:
        raise FidelityInputError("weights sum to 0: at least one real state must have a positive frequency")
    return w / total


def check_actions(actions: Any, n_states: int, n_actions: int) -> npt.NDArray[np.bool_] | None:
    """The actions the max may take at each real state (§9.2's A_cov(x)): a boolean array [S, A],
    or None (every action everywhere). A state whose row is all False has no action to take: its
    row of the metric is 0 (the max over nothing).

    >>> check_actions([[True, False], [True, True]], 2, 2).tolist()
    [[True, False], [True, True]]
    >>> check_actions([[1, 0]], 2, 2)
    Traceback (most recent call last):
    ...
    twin.fidelity.errors.FidelityInputError: actions must be booleans [states, actions] = [2, 2], got int64 [1, 2]
    """
    if actions is None:
        return None
    a = np.asarray(actions)
    if a.dtype != np.bool_ or a.shape != (n_states, n_actions):
        raise FidelityInputError(f"actions must be booleans [states, actions] = [{n_states}, {n_actions}], "
                                 f"got {a.dtype} [{', '.join(str(n) for n in a.shape)}]")
    return a


def check_matrix(d: Any, n_states: int, name: str) -> FloatArray:
    """A state-pair matrix [S, S] with finite entries >= 0 (a warm start ``d0``).

    >>> check_matrix([[0.0, -1.0], [0.0, 0.0]], 2, "d0")
    Traceback (most recent call last):
    ...
    twin.fidelity.errors.FidelityInputError: d0[0, 1] = -1 is negative: a DT-BSM matrix is >= 0
    """
    arr = _finite_array(d, name, 2, "[real states, twin states]")
    if arr.shape != (n_states, n_states):
        raise FidelityInputError(f"{name} must have shape {(n_states, n_states)}, got {arr.shape}")
    neg = np.argwhere(arr < 0)
    if len(neg):
        x, y = (int(i) for i in neg[0])
        raise FidelityInputError(f"{name}[{x}, {y}] = {arr[x, y]:g} is negative: a DT-BSM matrix is >= 0")
    return arr


def reward_span(R_real: FloatArray, R_twin: FloatArray) -> float:
    """The largest reward gap ``max_{x,y,a} |R_real[x,a] − R_twin[y,a]|`` over all state pairs.

    Every DT-BSM entry is at most ``reward_span / (1 − gamma)``.

    >>> reward_span(np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]]))
    2.0
    """
    up = R_real.max(axis=0) - R_twin.min(axis=0)
    down = R_twin.max(axis=0) - R_real.min(axis=0)
    return float(max(0.0, up.max(), down.max()))


def check_r_max(r_max: Any, span: float) -> float:
    """The reward bound behind ``d_max``: ``r_max`` if given (it must cover ``span``), else ``span``.

    >>> check_r_max(None, 0.5), check_r_max(1.0, 0.5)
    (0.5, 1.0)
    >>> check_r_max(0.25, 0.5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    twin.fidelity.errors.FidelityInputError: r_max = 0.25 is below the largest reward gap 0.5 between ...
    """
    if r_max is None:
        return span
    try:
        r = float(r_max)
    except (TypeError, ValueError) as exc:
        raise FidelityInputError(f"r_max must be a number >= 0, got {r_max!r}") from exc
    if not (math.isfinite(r) and r >= 0):
        raise FidelityInputError(f"r_max must be finite and >= 0, got {r_max!r}")
    if r < span * (1 - 1e-12):
        raise FidelityInputError(f"r_max = {r:g} is below the largest reward gap {span:g} between the real and the "
                                 "twin rewards: it would not bound the metric")
    return r
