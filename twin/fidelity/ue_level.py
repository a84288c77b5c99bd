"""UE-level DT-BSM: a decision epoch finer than the cell-period (spec ``dt-bsm.md`` §9.1).

Why: the cell-period estimator (``twin.fidelity.stream``) gets one real transition per cell and
period, so a single faulty cell needs ``n_min`` periods before its new state is compared, and a
resync that the gap learners trigger in the fault's first period has repaired the model by then
(``docs/fidelity.md``, "The fault story"). A cell's SS-SINR distribution (its
``MR.NRScSSSINR.BinX`` histogram, from every measurement report of the period) says in one period
where its UEs are; this estimator compares the model's distributions with the network's, per cell,
as an MDP whose states are a UE's radio quality.

- **States**: ``ELSEWHERE`` (0: served by another cell) and a UE's SS-SINR bin (``edges_db``,
  inner edges; a value on an edge goes up), ranked in that order.
- **Transitions**: consecutive periods of one cell, coupled by rank (:func:`population_coupling`:
  a UE keeps its rank in its cell's SINR distribution from one period to the next; when the cell
  serves fewer UEs, the lowest ranks, its cell-edge UEs, leave to ``ELSEWHERE``; when it serves
  more, the newcomers come from there into the lowest ranks). PM histograms carry no UE identity,
  so this is the modelling assumption; it makes the next state depend on the state (a UE at the
  cell edge stays near the edge). Real: the cell's histograms at t and t + 1; twin: the *real*
  histogram at t and the model's at t + 1 (from the same real states, as every twin sample is).
- **Mass**: the UEs the histograms count (every report), per-period forgetting ``forgetting`` (0.5:
  the last two periods weigh three quarters).
- **Actions**: the cell's CM change class between the two periods (``twin.fidelity.encoder``); the
  twin gives samples only for periods whose model holds the CM the network had (no what-ifs here),
  so the metric is restricted to the actions the network took.
- **Reward**: the next state's SS-SINR at the bin's centre, linear in dB from ``floor_db`` (0) to
  ``cap_db`` (1), as CQI is; 0 for ``ELSEWHERE`` (the cell serves it no more). So R̄ = 1 and
  d_max = 1/(1 − γ).

Per cell the value is DTBSM_sup of the point estimates (``dt_bsm``), with the cell-period
estimator's rule for thin pairs (one side below ``n_min``: the other side's estimate; both: pooled);
the cluster's value is its worst cell's. A resync resets the twin's counts (§9.3).

>>> p = np.array([0.5, 0.5, 0.0]); q = np.array([0.0, 0.5, 0.5])
>>> quantile_coupling(p, q).tolist()  # each half moves up one bin, in rank order
[[0.0, 0.5, 0.0], [0.0, 0.0, 0.5], [0.0, 0.0, 0.0]]
>>> quantile_coupling(p, np.array([1.0]))
Traceback (most recent call last):
...
twin.fidelity.errors.FidelityInputError: distributions of 3 and 1 bins: the coupling needs the same bins
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .empirical import thin_pair_estimates
from .errors import FidelityInputError
from .exact import dt_bsm

__all__ = ["DEFAULT_EDGES_DB", "ELSEWHERE", "UeLevelEstimator", "population_coupling", "quantile_coupling", "shift_db",
           "sinr_counts", "sinr_states"]

FloatArray = npt.NDArray[np.float64]

DEFAULT_EDGES_DB: tuple[float, ...] = (-5.0, -2.5, 0.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 17.5, 20.0, 22.5, 25.0)
"""Inner SS-SINR edges (dB) of the UE states: 14 states, 2.5 dB apart where UEs mostly are."""

_NEGLIGIBLE = 1e-6  # UEs: a transition count forgotten below this is dropped
N_GRID = 128  # the TS 38.133 SS-SINR index grid of ``MR.NRScSSSINR.BinX``: index/2 − 23.5 dB
ELSEWHERE = 0  # the state of a UE the cell no longer serves (the lowest rank)


def sinr_states(hist: Any, edges_db: Sequence[float] = DEFAULT_EDGES_DB) -> FloatArray | None:
    """The distribution over SS-SINR bins of a 128-bin SS-SINR histogram (counts on the index grid);
    None when it counts nothing.

    >>> h = np.zeros(128); h[47] = 3.0; h[97] = 1.0  # 0.0 dB and 25.0 dB
    >>> sinr_states(h, (0.0, 10.0)).tolist()
    [0.0, 0.75, 0.25]
    >>> sinr_states(np.zeros(128)) is None
    True
    """
    counts = sinr_counts(hist, edges_db)
    total = float(counts.sum())
    return counts / total if total > 0 else None


def sinr_counts(hist: Any, edges_db: Sequence[float] = DEFAULT_EDGES_DB) -> FloatArray:
    """A 128-bin SS-SINR histogram's counts per SS-SINR bin (``len(edges_db) + 1``)."""
    counts = np.asarray(hist, dtype=np.float64)
    if counts.shape != (N_GRID,):
        raise FidelityInputError(f"an SS-SINR histogram has {N_GRID} bins, got shape {counts.shape}")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise FidelityInputError("an SS-SINR histogram's counts must be finite and >= 0")
    state = np.searchsorted(np.asarray(edges_db, dtype=np.float64), np.arange(N_GRID) / 2.0 - 23.5, side="right")
    return np.asarray(np.bincount(state, weights=counts, minlength=len(edges_db) + 1), dtype=np.float64)


def population_coupling(before: Any, after: Any) -> FloatArray:
    """UE transitions [K + 1, K + 1] (counts; state 0 ``ELSEWHERE``, then the K SS-SINR bins) between a
    cell's UE counts per bin ``before`` and ``after``, by rank with ``ELSEWHERE`` lowest: UEs that
    leave are the cell's lowest ranks, newcomers take the lowest ranks.

    >>> population_coupling([0.0, 10.0], [0.0, 4.0]).tolist()  # 6 of 10 leave: the lowest ranks
    [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [6.0, 0.0, 4.0]]
    >>> population_coupling([4.0, 0.0], [2.0, 6.0]).tolist()  # 4 arrive into the lowest ranks
    [[0.0, 2.0, 2.0], [0.0, 0.0, 4.0], [0.0, 0.0, 0.0]]
    """
    b, a = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    nb, na = float(b.sum()), float(a.sum())
    total = max(nb, na)
    if not total > 0:
        raise FidelityInputError("population_coupling needs UEs before or after")
    source = np.concatenate(([max(0.0, na - nb)], b))
    target = np.concatenate(([max(0.0, nb - na)], a))
    return total * quantile_coupling(source, target)


def shift_db(hist: Any, delta_db: float) -> FloatArray:
    """A 128-bin SS-SINR histogram moved by ``delta_db`` (to the nearest 0.5 dB index; what leaves the
    grid piles into its end bins): the model's distribution at a level the gap learners corrected.

    >>> h = np.zeros(128); h[10] = 1.0; h[126] = 2.0
    >>> out = shift_db(h, 1.0); float(out[12]), float(out[127])
    (1.0, 2.0)
    """
    counts = np.asarray(hist, dtype=np.float64)
    k = round(2.0 * float(delta_db))
    if k == 0 or not math.isfinite(delta_db):
        return counts
    out = np.zeros_like(counts)
    np.add.at(out, np.clip(np.arange(counts.size) + k, 0, counts.size - 1), counts)
    return out


def quantile_coupling(p: Any, q: Any) -> FloatArray:
    """The joint distribution [K, K] that keeps ranks (the monotone coupling of two distributions
    over the same ordered bins): rows sum to ``p``, columns to ``q`` (both normalised here)."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 1:
        raise FidelityInputError(f"distributions of {p.size} and {q.size} bins: the coupling needs the same bins")
    if not (p.sum() > 0 and q.sum() > 0) or np.any(p < 0) or np.any(q < 0):
        raise FidelityInputError("the coupling needs two non-negative distributions with some mass")
    cp, cq = np.cumsum(p / p.sum()), np.cumsum(q / q.sum())
    cp[-1] = cq[-1] = 1.0
    cuts = np.unique(np.clip(np.concatenate(([0.0], cp, cq)), 0.0, 1.0))
    mid = (cuts[:-1] + cuts[1:]) / 2.0
    k = p.size
    i = np.minimum(np.searchsorted(cp, mid, side="right"), k - 1)
    j = np.minimum(np.searchsorted(cq, mid, side="right"), k - 1)
    joint = np.zeros((k, k))
    np.add.at(joint, (i, j), np.diff(cuts))
    return joint


@dataclass
class _Cell:
    last_end: int  # the period of ``last``
    last: FloatArray  # the real UE counts per SS-SINR bin of that period
    real: FloatArray  # [K, A, K] effective counts
    twin: FloatArray


@dataclass
class UeLevelEstimator:
    """Per-cell UE-level MDPs of one cluster (module docstring)."""

    n_actions: int
    edges_db: tuple[float, ...] = DEFAULT_EDGES_DB
    gamma: float = 0.8
    n_min: float = 5.0
    forgetting: float = 0.5
    floor_db: float = -10.0
    cap_db: float = 30.0
    tol: float = 1e-3
    cells: dict[str, _Cell] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (0.0 < self.forgetting <= 1.0):
            raise FidelityInputError(f"forgetting must be in (0, 1], got {self.forgetting!r}")
        if any(b <= a for a, b in zip(self.edges_db, self.edges_db[1:], strict=False)) or not self.edges_db:
            raise FidelityInputError(f"edges_db {list(self.edges_db)} must be a non-empty increasing list")

    @property
    def n_states(self) -> int:
        """``ELSEWHERE`` and the SS-SINR bins."""
        return len(self.edges_db) + 2

    def rewards(self) -> FloatArray:
        """The reward of landing in each state [K]: the bin's centre SS-SINR, linear in dB from
        ``floor_db`` (0) to ``cap_db`` (1), as CQI is."""
        e = np.asarray(self.edges_db, dtype=np.float64)
        step = float(np.min(np.diff(e))) if e.size > 1 else 5.0
        centre = np.concatenate(([e[0] - step / 2], (e[:-1] + e[1:]) / 2, [e[-1] + step / 2]))
        return np.concatenate(([0.0], np.clip((centre - self.floor_db) / (self.cap_db - self.floor_db), 0.0, 1.0)))

    def add(self, cell: str, end: int, prev_end: int, real_hist: Any, twin_hist: Any | None, action: int) -> bool:
        """Count the period ``end`` of ``cell``: its real SS-SINR histogram then (UE counts) and, when
        the period's model holds the network's CM, the model's (``twin_hist``; None: no twin sample).
        A transition needs the real histogram of ``prev_end``; True when one was counted."""
        if not 0 <= action < self.n_actions:
            raise FidelityInputError(f"action {action} is outside 0..{self.n_actions - 1}")
        now = sinr_counts(real_hist, self.edges_db)
        c = self.cells.get(cell)
        if not now.sum() > 0:
            return False  # nothing reported: the next period counts from the last one reported
        k = self.n_states
        if c is None:
            self.cells[cell] = _Cell(end, now, np.zeros((k, self.n_actions, k)), np.zeros((k, self.n_actions, k)))
            return False
        counted = c.last_end == prev_end
        if counted:
            for counts in (c.real, c.twin):
                counts *= self.forgetting
                counts[counts < _NEGLIGIBLE] = 0.0  # keeps the arrays sparse for the checkpoint
            c.real[:, action, :] += population_coupling(c.last, now)
            model = None if twin_hist is None else sinr_counts(twin_hist, self.edges_db)
            if model is not None:  # ``last`` counts UEs, so the coupling has mass
                c.twin[:, action, :] += population_coupling(c.last, model)
        c.last_end, c.last = end, now
        return counted

    def reset_twin(self) -> None:
        """Forget the twin's counts (a resync changed the model, §9.3)."""
        for c in self.cells.values():
            c.twin[...] = 0.0

    def forget(self, keep: Sequence[str]) -> None:
        """Drop cells no longer in the cluster."""
        for cell in [c for c in self.cells if c not in keep]:
            del self.cells[cell]

    def cell_value(self, cell: str) -> float | None:
        """The cell's DTBSM_sup now (None before both sides have counted a transition)."""
        c = self.cells.get(cell)
        if c is None:
            return None
        nr, nt = c.real.sum(axis=2), c.twin.sum(axis=2)
        if not (nr.sum() > 0 and nt.sum() > 0):
            return None
        reached = (c.real + c.twin).sum(axis=(0, 1)) > 0  # closed under both sides' transitions
        states = np.flatnonzero((nr.sum(axis=1) > 0) | (nt.sum(axis=1) > 0) | reached)
        actions = np.flatnonzero(nr.sum(axis=0) > 0)
        if not actions.size:
            return None
        ix = np.ix_(states, actions)
        rew = self.rewards()[states]
        real_P, twin_P = _rows(c.real[np.ix_(states, actions, states)]), _rows(c.twin[np.ix_(states, actions, states)])
        P_real, P_twin = thin_pair_estimates(real_P, twin_P, nr[ix], nt[ix], self.n_min)
        allowed = nr[ix] >= self.n_min
        allowed[~allowed.any(axis=1)] = True  # a state with no covered action keeps those used
        # a row neither side has stays where it is (self-loop) and earns that state's reward: an
        # empty row must not look like a state of reward 0
        P_real, P_twin = _stochastic(P_real), _stochastic(P_twin)
        res = dt_bsm(P_real @ rew, P_real, P_twin @ rew, P_twin, self.gamma, tol=self.tol, r_max=1.0, actions=allowed)
        return float(res.value)

    def compute(self) -> dict[str, Any]:
        """The cluster's UE-level figures: ``value`` (its worst cell's), ``cells`` and ``worstCell``."""
        values = {cell: v for cell in sorted(self.cells) if (v := self.cell_value(cell)) is not None}
        if not values:
            return {"value": None, "cells": {}, "worstCell": None, "states": self.n_states}
        worst = max(values, key=lambda c: values[c])
        return {"value": round(values[worst], 6), "cells": {c: round(v, 6) for c, v in values.items()},
                "worstCell": worst, "states": self.n_states}

    # -- state -------------------------------------------------------------------------------
    def arrays(self) -> tuple[dict[str, Any], dict[str, FloatArray]]:
        """(head, arrays) of the state, for the cluster's npz (``FidelityEstimator.to_bytes``)."""
        cells = sorted(self.cells)
        head = {"cells": cells, "ends": [self.cells[c].last_end for c in cells], "edges": list(self.edges_db)}
        k = self.n_states
        arrays = {"ue_last": np.array([self.cells[c].last for c in cells]).reshape(len(cells), k - 1)}
        for side in ("real", "twin"):  # sparse: [5, nnz] indices (cell, x, a, x') and their counts
            dense = np.array([getattr(self.cells[c], side) for c in cells]).reshape(len(cells), k, self.n_actions, k)
            idx = np.nonzero(dense)
            arrays[f"ue_{side}_idx"] = np.stack(idx).astype(np.int32) if idx[0].size else np.zeros((4, 0), np.int32)
            arrays[f"ue_{side}_n"] = dense[idx]
        return head, arrays

    def restore(self, head: Mapping[str, Any], z: Mapping[str, Any]) -> None:
        """Read back ``arrays``' output; of other bins or actions: ``ValueError``."""
        if [float(e) for e in head["edges"]] != list(self.edges_db):
            raise ValueError(f"UE-level state of SINR edges {head['edges']}, expected {list(self.edges_db)}")
        k, a = self.n_states, self.n_actions
        last = np.asarray(z["ue_last"])
        if last.shape[1:] != (k - 1,):
            raise ValueError(f"UE-level state of {last.shape[1:]} SS-SINR bins, expected {k - 1}")
        dense = {}
        for side in ("real", "twin"):
            idx = np.asarray(z[f"ue_{side}_idx"]).astype(np.int64)
            if idx.size and (idx[2].max() >= a or idx[1].max() >= k or idx[3].max() >= k):
                raise ValueError(f"UE-level state of other dimensions than {k} states and {a} actions")
            dense[side] = np.zeros((len(head["cells"]), k, a, k))
            dense[side][tuple(idx)] = z[f"ue_{side}_n"]
        self.cells = {c: _Cell(int(e), last[i].copy(), dense["real"][i], dense["twin"][i])
                      for i, (c, e) in enumerate(zip(head["cells"], head["ends"], strict=True))}


def _rows(n: FloatArray) -> FloatArray:
    """Counts [S, A, S] as next-state distributions (a row without counts stays 0)."""
    s = n.sum(axis=2, keepdims=True)
    return np.where(s > 0, n / np.where(s > 0, s, 1.0), 0.0)


def _stochastic(P: FloatArray) -> FloatArray:
    """Rows of ``P`` with no mass become self-loops (never compared: the pair is the other side's)."""
    out = P.copy()
    empty = out.sum(axis=2) <= 0
    xs, acts = np.nonzero(empty)
    out[xs, acts, xs] = 1.0
    return out
