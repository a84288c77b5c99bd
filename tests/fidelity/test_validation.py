"""Every input check: the error is a FidelityInputError (a TwinError, a ValueError) whose message
names the argument and the offending index or value."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from twin.errors import TwinError
from twin.fidelity import FidelityInputError, dt_bsm, tv_bound, tv_closed_form

R = [[0.0, 1.0], [1.0, 0.0]]
P = [[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]]


def _with(array: Any, index: tuple[int, ...], value: float) -> np.ndarray:
    out = np.array(array, dtype=float)
    out[index] = value
    return out


CASES: list[tuple[dict[str, Any], str]] = [
    ({"R_real": [0.0, 1.0]}, "R_real must be a 2-D array [states, actions], got shape (2,)"),
    ({"P_real": [[1.0, 0.0]]}, "P_real must be a 3-D array [states, actions, next states], got shape (1, 2)"),
    ({"P_real": np.ones((2, 2, 3)) / 3},
     "P_real has shape (2, 2, 3) but R_real has shape (2, 2): P_real must be [S, A, S] = (2, 2, 2)"),
    ({"P_twin": np.ones((2, 1, 2)) / 2}, "P_twin has shape (2, 1, 2) but R_twin has shape (2, 2)"),
    ({"R_twin": [[0.0], [1.0]], "P_twin": np.ones((2, 1, 2)) / 2},
     "R_twin has shape (2, 1) but R_real has shape (2, 2): the twin must have the real MDP's states"),
    ({"R_twin": np.zeros((3, 2)), "P_twin": np.ones((3, 2, 3)) / 3},
     "R_twin has shape (3, 2) but R_real has shape (2, 2)"),
    ({"P_real": _with(_with(P, (1, 0, 0), -0.25), (1, 0, 1), 1.25)},
     "P_real[1, 0, 0] = -0.25 is negative: transition probabilities must be >= 0"),
    ({"P_twin": _with(P, (0, 1, 1), 0.4)}, "P_twin[0, 1, :] sums to 0.9, not 1 (tolerance 1e-06)"),
    ({"R_real": _with(R, (1, 1), np.nan)}, "R_real[1, 1] is nan: inputs must be finite (1 non-finite entry)"),
    ({"R_twin": _with(R, (0, 0), np.inf)}, "R_twin[0, 0] is inf: inputs must be finite"),
    ({"P_real": _with(P, (0, 0, 0), np.nan)}, "P_real[0, 0, 0] is nan"),
    ({"R_real": [["a", "b"], ["c", "d"]]}, "R_real must be a numeric array [states, actions]"),
    ({"gamma": 1.0}, "gamma must be in (0, 1), got 1.0"),
    ({"gamma": 0.0}, "gamma must be in (0, 1), got 0.0"),
    ({"gamma": float("nan")}, "gamma must be in (0, 1), got nan"),
    ({"gamma": "high"}, "gamma must be a number in (0, 1), got 'high'"),
    ({"tol": 0.0}, "tol must be finite and > 0, got 0.0"),
    ({"tol": -1e-3}, "tol must be finite and > 0, got -0.001"),
    ({"tol": 1e-14}, "tol = 1e-14 is below 2e-12, what float64 can certify for values up to d_max = 2"),
    ({"weights": [1.0]}, "weights must have length 2 (one per real state), got 1"),
    ({"weights": [1.0, -0.5]}, "weights[1] = -0.5 is negative: weights are real-state frequencies"),
    ({"weights": [0.0, 0.0]}, "weights sum to 0"),
    ({"weights": [1.0, np.nan]}, "weights[1] is nan"),
    ({"d0": np.zeros((3, 3))}, "d0 must have shape (2, 2), got (3, 3)"),
    ({"d0": [[0.0, -1.0], [0.0, 0.0]]}, "d0[0, 1] = -1 is negative: a DT-BSM matrix is >= 0"),
    ({"r_max": 0.5}, "r_max = 0.5 is below the largest reward gap 1 between the real and the twin rewards"),
    ({"r_max": -1.0}, "r_max must be finite and >= 0, got -1.0"),
    ({"method": "emd"}, "method must be 'fast' or 'pot', got 'emd'"),
    ({"evaluation_sweeps": -1}, "evaluation_sweeps must be >= 0, got -1"),
]


@pytest.mark.parametrize(("change", "message"), CASES, ids=[m[:40] for _c, m in CASES])
def test_dt_bsm_refuses(change: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"R_real": R, "P_real": P, "R_twin": R, "P_twin": P, "gamma": 0.5} | change
    with pytest.raises(FidelityInputError, match=re.escape(message)) as info:
        dt_bsm(**args)
    assert isinstance(info.value, TwinError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(("change", "message"), [c for c in CASES if set(c[0]) <= {"R_real", "P_real", "R_twin",
                                                                                      "P_twin", "gamma", "r_max"}][:8])
def test_tv_bounds_refuse_the_same(change: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"R_real": R, "P_real": P, "R_twin": R, "P_twin": P, "gamma": 0.5} | change
    for fn in (tv_bound, tv_closed_form):
        with pytest.raises(FidelityInputError, match=re.escape(message)):
            fn(**args)
    with pytest.raises(FidelityInputError, match="tol must be finite and > 0"):
        tv_bound(R, P, R, P, 0.5, tol=0.0)


def test_rows_within_the_tolerance_are_accepted_and_renormalised() -> None:
    nearly = _with(P, (0, 0, 0), 1.0 + 5e-7)
    res = dt_bsm(R, nearly, R, P, gamma=0.5, tol=1e-9)
    assert res.value == pytest.approx(0.0, abs=1e-6)
