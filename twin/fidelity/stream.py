"""The streaming DT-BSM estimator of one cluster (spec ``dt-bsm.md`` §9; ``docs/fidelity.md``).

Transport-free and mirror-free: it is fed encoded samples (``twin.fidelity.encoder``) and keeps

- ``real``: a ``TransitionCounts`` of the real network's transitions (s_t, a_t, r_t, s_{t+1}) of the
  cluster's cells, pooled (one MDP per cluster, its cells are its samples);
- ``twin``: a ``TransitionCounts`` of the twin's transitions from the same real states under each
  action (the caller runs the what-ifs: ``twin.prediction.fidelity``);

both with exponential forgetting. Every ``recompute_periods`` periods :meth:`FidelityEstimator.compute`
solves, on the states either side has seen (the sub-MDP they span is closed under both sides'
transitions) and the actions the real side has covered somewhere:

- the point estimate ``dt_bsm(R̂, P̂, R̂', P̂')`` → ``value`` (DTBSM_sup);
- the interval ``dt_bsm_interval`` with the §9.2 radii (computed with the number of states used,
  not |S|) → ``lower``/``upper``;

each warm-started from the previous computation's matrices when the states and actions are the
same. In the point value, a pair one side has fewer than ``n_min`` samples of takes the other side's
estimate, and a pair both have fewer of their pooled estimate (below the coverage threshold a
difference is noise, not evidence: at the end of a demo day a state with 6 real and 3 twin
samples put the cluster's value at 1.7, and on fault-midrun's night such pairs gave 1.2-1.5 where
the covered ones give 0.02; docs/fidelity.md); ``comparedPairs`` counts the
pairs in the max with ``n_min`` samples on both sides (few right after a resync reset the twin's).
The interval keeps each side's own estimate (only a pair one side has never sampled takes the
other's): its radii carry the doubt. ``coverage`` is the share of (visited state, action) pairs
with at least ``n_min`` real samples, every action counted (the trust gate reads it: a network
that never changed CM has not shown how it answers a change); ``coverageUsed`` the same over the
actions used.

Restriction (§9.2, "compute over A_cov(x) and label the result restricted"): the max over actions
at a visited state x runs over the actions covered at x (at least ``n_min`` real samples there),
among the actions covered somewhere; a state with no covered action keeps all of those (its rows
keep their doubt: the upper end goes toward d_max). ``restricted`` is true when any (state, action)
was left out of the max, ``restrictedPairs`` counts the (visited state, used action) pairs left out
(an uncovered pair's rows would say nothing but d_max).

Between computations (§9.3's early warning), :meth:`FidelityEstimator.tv_rose` bounds the point
estimates' DTBSM_sup by the recursive TV bound (§4: no transport problem, well under a millisecond
here) and says when it has risen more than a configured amount since the last computation; the
caller then computes at once (``early`` in the record) instead of waiting for its period. Each
record carries the bound at its computation (``tvBound``, and the closed form ``tvClosedForm``).

The trigger (§9.2, §9.3): a computation whose ``lower`` exceeds τ is *confident drift*; ``k``
consecutive ones make :meth:`signals` fire, scoped on the cells whose own recent real states carry
the largest lower-end diagonal (the cells whose contribution is worst). Whether the twin may be
acted on is :func:`trust`.

>>> import numpy as np
>>> est = FidelityEstimator(n_states=2, n_actions=1, gamma=0.5, n_min=5, tau=0.1, k=1, forgetting=1.0)
>>> rng = np.random.default_rng(0)
>>> for _ in range(2000):
...     x = int(rng.integers(2))
...     est.add_real("c1", x, 0, 0.2 + 0.6 * x, 1 - x)
...     est.add_twin(x, 0, 0.2 + 0.6 * x, 1 - x)
>>> rec = est.compute(900)
>>> rec["value"], rec["lower"], rec["coverage"], rec["restricted"]  # identical behaviour: 0, lower bound 0
(0.0, 0.0, 1.0, False)
>>> trust(rec, tau=0.5, min_coverage=0.5).trusted
True
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from .empirical import EmpiricalModel, TransitionCounts, confidence_radii, thin_pair_estimates
from .exact import dt_bsm
from .interval import dt_bsm_interval
from .tv import tv_bound
from .ue_level import UeLevelEstimator

__all__ = ["FORMAT", "FidelityEstimator", "TrustVerdict", "signal_cells", "trust"]

FloatArray = npt.NDArray[np.float64]
FORMAT = 1  # of ``to_bytes``
_RECENT = 16  # real states kept per cell for its contribution


@dataclass(frozen=True)
class TrustVerdict:
    """The trust gate's answer for one cluster (the CM guard reads it): ``trusted`` only when an
    estimate exists, its ``upper`` bound is at most τ_trust and its ``coverage`` at least c_min;
    ``reasons`` names every failing rule with its values (empty when trusted)."""

    trusted: bool
    reasons: list[str]
    value: float | None = None
    lower: float | None = None
    upper: float | None = None
    coverage: float | None = None
    restricted: bool | None = None
    period_end: int | None = None
    tau: float | None = None
    min_coverage: float | None = None
    record: Mapping[str, Any] | None = field(default=None, repr=False)


def trust(record: Mapping[str, Any] | None, tau: float, min_coverage: float) -> TrustVerdict:
    """The trust gate on a cluster's latest DT-BSM record (``FidelityEstimator.compute``).

    >>> trust(None, 0.1, 0.5).reasons
    ['no DT-BSM estimate yet: the cluster has not had enough periods']
    >>> v = trust({"value": 0.05, "lower": 0.0, "upper": 3.2, "coverage": 0.2, "restricted": True, "periodEnd": 900},
    ...           0.1, 0.5)
    >>> v.trusted
    False
    >>> for reason in v.reasons:
    ...     print(reason)
    insufficient data: coverage 0.2 < 0.5 (state-action pairs with enough real samples)
    insufficient data: upper bound 3.2 > tau 0.1 (the twin may be this far from the network)
    restricted: (state, action) pairs without enough real samples were left out of the max
    """
    if record is None:
        return TrustVerdict(False, ["no DT-BSM estimate yet: the cluster has not had enough periods"],
                            tau=tau, min_coverage=min_coverage)
    reasons: list[str] = []
    lower, upper, cov = float(record["lower"]), float(record["upper"]), float(record["coverage"])
    if lower > tau:
        reasons.append(f"confident drift: lower bound {lower:.4g} > tau {tau:.4g}")
    if cov < min_coverage:
        reasons.append(f"insufficient data: coverage {cov:.4g} < {min_coverage:.4g} "
                       "(state-action pairs with enough real samples)")
    if upper > tau and lower <= tau:
        reasons.append(f"insufficient data: upper bound {upper:.4g} > tau {tau:.4g} "
                       "(the twin may be this far from the network)")
    elif upper > tau:
        reasons.append(f"upper bound {upper:.4g} > tau {tau:.4g}")
    if record.get("restricted"):
        reasons.append("restricted: (state, action) pairs without enough real samples were left out of the max")
    # restricted alone does not fail the gate when the rest holds: the max over the covered actions is
    # what the optimiser may use; the reason is still given
    failing = [r for r in reasons if not r.startswith("restricted")]
    return TrustVerdict(not failing, reasons if failing else [r for r in reasons if r.startswith("restricted")],
                        float(record["value"]), lower, upper, cov, bool(record.get("restricted")),
                        int(record.get("periodEnd", 0)), tau, min_coverage, record)


class FidelityEstimator:
    """Counts, computation, hysteresis and state of one cluster's DT-BSM (module docstring)."""

    def __init__(self, n_states: int, n_actions: int, gamma: float = 0.8, n_min: float = 5.0, alpha: float = 0.05,
                 tau: float = 0.1, k: int = 2, forgetting: float = 0.999, tol: float = 1e-3,
                 ue: UeLevelEstimator | None = None) -> None:
        self.n_states, self.n_actions = n_states, n_actions
        self.gamma, self.n_min, self.alpha, self.tau, self.k, self.tol = gamma, n_min, alpha, tau, k, tol
        self.forgetting = forgetting
        self.real = TransitionCounts(n_states, n_actions, 1.0, forgetting)
        self.twin = TransitionCounts(n_states, n_actions, 1.0, forgetting)
        self.last: dict[str, list[int]] = {}  # cell -> [period end, real state]
        self.recent: dict[str, list[int]] = {}  # cell -> its latest real states
        self.robin = 0  # next (cell, action) of the what-if round robin
        self.since = 0  # periods since the last computation
        self.above = 0  # consecutive computations with lower > tau
        self.computations = 0
        self.calibration_from: int | None = None  # the calibration the twin counts were taken under
        self.twin_resets = 0
        self.warm: dict[str, Any] | None = None  # {"states", "actions", "point", "lower", "upper"}
        self.tv_last: float | None = None  # the TV bound at the last computation (the early warning's base)
        self.tv_now: float | None = None  # the TV bound of the latest check
        self.whatif_seconds = 0.0  # what-ifs since the last computation (the caller adds)
        self.whatifs = 0
        self.periods = 0
        self.ue = ue  # the UE-level estimator (``twin.fidelity.ue_level``), None when off
        self.ue_now: dict[str, Any] | None = None  # its latest figures (``ue_moved``)
        self.ue_last: dict[str, float] | None = None  # its cells' values at the last computation

    @classmethod
    def from_settings(cls, s: Any, n_states: int, n_actions: int) -> FidelityEstimator:
        ue = UeLevelEstimator(n_actions, tuple(s.ue_sinr_edges_db), s.gamma, s.n_min, s.ue_forgetting,
                              tol=s.tol) if getattr(s, "ue_level", False) else None
        return cls(n_states, n_actions, s.gamma, s.n_min, s.alpha, s.threshold(), s.trigger_evaluations,
                   s.forgetting, s.tol, ue)

    # -- samples -----------------------------------------------------------------------------
    def add_real(self, cell: str, x: int, a: int, r: float, x_next: int) -> None:
        self.real.add(x, a, r, x_next)
        self._seen(cell, x)

    def _seen(self, cell: str, x: int) -> None:
        states = self.recent.setdefault(cell, [])
        states.append(int(x))
        del states[:-_RECENT]

    def add_twin(self, x: int, a: int, r: float, x_next: int) -> None:
        self.twin.add(x, a, r, x_next)

    def reset_twin(self) -> None:
        """Forget the twin's samples (after a resync changed the model, §9.3); the real ones are kept."""
        self.twin = TransitionCounts(self.n_states, self.n_actions, 1.0, self.forgetting)
        if self.ue is not None:
            self.ue.reset_twin()
        self.twin_resets += 1

    def ue_moved(self, change: float) -> bool:
        """Compute the UE-level figures now (``ue_now``); True when a cell's value moved by more than
        ``change`` (> 0) since the last computation (brings the computation forward: one cell's fault
        shows in its own value before it shows in the cluster's, its worst cell's)."""
        if self.ue is None:
            return False
        self.ue_now = self.ue.compute()
        if change <= 0 or self.ue_last is None:
            return False
        last = self.ue_last
        return any(abs(v - last[c]) > change for c, v in self.ue_now["cells"].items() if c in last)

    # -- computation -------------------------------------------------------------------------
    def due(self, every: int) -> bool:
        """Count one period; True when this one should compute (every ``every`` periods)."""
        self.periods += 1
        self.since += 1
        return self.since >= every

    def _problem(self) -> tuple[list[int], list[int], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """The sub-MDP a computation solves: the visited states (either side), the actions covered
        somewhere, per state the actions covered there (a state with none keeps them all), and the
        real side's coverage of every pair [S, A] it was derived from."""
        real_n = self.real.transition_counts
        twin_n = self.twin.transition_counts
        visited = (real_n.sum(axis=(1, 2)) > 0) | (real_n.sum(axis=(0, 1)) > 0) \
            | (twin_n.sum(axis=(1, 2)) > 0) | (twin_n.sum(axis=(0, 1)) > 0)
        states = [int(i) for i in np.flatnonzero(visited)]
        covered_real = self.real.covered(self.n_min)
        actions = [a for a in range(self.n_actions) if states and covered_real[states, a].any()]
        allowed = covered_real[np.ix_(states, actions)]  # A_cov(x) per visited state, over the used actions
        # a state with no covered action keeps them all: its rows keep the doubt (upper toward d_max)
        allowed[~allowed.any(axis=1)] = True
        return states, actions, allowed, covered_real

    def _tv(self, real_m: EmpiricalModel, twin_m: EmpiricalModel,
            allowed: npt.NDArray[np.bool_]) -> tuple[float, float]:
        """(recursive TV bound, closed form) of the point estimates' DTBSM_sup (§4), with
        d_max = r̄ / (1 − γ) as the interval's; under a millisecond, no transport problem."""
        b = tv_bound(real_m.R, real_m.P, twin_m.R, twin_m.P, self.gamma, tol=self.tol,
                     r_max=max(real_m.r_bar, twin_m.r_bar), actions=allowed)
        return b.upper, b.closed_form

    def tv_rose(self, rise: float | None) -> bool:
        """Between computations (§9.3's early warning): the TV bound of the current point estimates;
        True when it is more than ``rise`` above the bound at the last computation (the caller then
        computes at once instead of waiting for its period). ``rise`` None or 0: never."""
        if not rise or self.tv_last is None:
            return False
        states, actions, allowed, _ = self._problem()
        if not states or not actions:
            return False
        self.tv_now = self._tv(*self._point(*self._pair(states, actions)), allowed)[0]
        return self.tv_now - self.tv_last > rise

    def compute(self, period_end: int, cluster_id: str = "", early: bool = False) -> dict[str, Any]:
        """The cluster's DT-BSM record now (module docstring); updates the hysteresis counter.
        ``early``: computed before its period because the TV bound rose (``tv_rose``)."""
        t0 = time.perf_counter()
        self.since = 0
        states, actions, allowed, covered_real = self._problem()
        coverage = float(covered_real[states].mean()) if states else 0.0
        left_out = int((~allowed).sum())
        restricted = len(actions) < self.n_actions or left_out > 0
        coverage_used = float(covered_real[np.ix_(states, actions)].mean()) if actions else 0.0
        record: dict[str, Any] = {
            "clusterId": cluster_id, "periodEnd": int(period_end), "gamma": self.gamma, "tau": self.tau,
            "coverage": round(coverage, 6), "coverageUsed": round(coverage_used, 6), "restricted": restricted,
            "restrictedPairs": left_out, "nMin": self.n_min,
            "states": states, "actions": actions, "realSamples": self.real.samples, "twinSamples": self.twin.samples,
            "whatifs": self.whatifs, "whatifSeconds": round(self.whatif_seconds, 4), "early": early,
        }
        d_max = 1.0 / (1.0 - self.gamma)
        if not states or not actions:
            record.update(value=0.0, lower=0.0, upper=d_max, firing=False, cells={}, cellsValue={}, comparedPairs=0)
            self.above = 0
            self.tv_last = None
        else:
            real_m, twin_m = self._pair(states, actions)
            real_p, twin_p = self._point(real_m, twin_m)
            warm = self.warm if self.warm is not None and self.warm["states"] == states \
                and self.warm["actions"] == actions else None
            point = dt_bsm(real_p.R, real_p.P, twin_p.R, twin_p.P, self.gamma, tol=self.tol,
                           d0=None if warm is None else warm["point"], actions=allowed)
            iv = dt_bsm_interval(real_m, twin_m, self.gamma, tol=self.tol,
                                 d0=None if warm is None else (warm["lower"], warm["upper"]), actions=allowed)
            self.warm = {"states": states, "actions": actions, "point": np.array(point.matrix),
                         "lower": np.array(iv.lower_end.matrix), "upper": np.array(iv.upper_end.matrix)}
            lower_diag = dict(zip(states, np.diagonal(iv.lower_end.matrix).tolist(), strict=True))
            cells = {c: round(max(lower_diag.get(x, 0.0) for x in xs), 6) for c, xs in sorted(self.recent.items())
                     if xs}
            point_diag = dict(zip(states, np.diagonal(point.matrix).tolist(), strict=True))
            cells_value = {c: round(point_diag.get(xs[-1], 0.0), 6) for c, xs in sorted(self.recent.items()) if xs}
            self.above = self.above + 1 if iv.lower > self.tau else 0
            tv, closed = self._tv(real_p, twin_p, allowed)
            self.tv_last = self.tv_now = tv
            compared = int((allowed & (real_m.counts >= self.n_min) & (twin_m.counts >= self.n_min)).sum())
            record.update(value=round(point.value, 6), lower=round(iv.lower, 6), upper=round(iv.upper, 6),
                          comparedPairs=compared,
                          iterations=point.iterations, cells=cells, cellsValue=cells_value, firing=self.above >= self.k,
                          tvBound=round(tv, 6), tvClosedForm=round(closed, 6))
        if self.ue is not None:
            record["ueLevel"] = self.ue_now if self.ue_now is not None else self.ue.compute()
            self.ue_last = dict(record["ueLevel"]["cells"])
        record["consecutiveAbove"] = self.above
        record["computeSeconds"] = round(time.perf_counter() - t0, 4)
        self.computations += 1
        self.whatifs, self.whatif_seconds = 0, 0.0
        return record

    def _pair(self, states: Sequence[int], actions: Sequence[int]) -> tuple[EmpiricalModel, EmpiricalModel]:
        """Both sides' models on the sub-MDP. A pair one side has no sample of takes the other
        side's estimate (no evidence of a difference in the point value; after a resync reset the
        twin's pairs are empty): its radii stay the widest, so the interval still carries the
        doubt (the upper end goes to d_max, the lower end gains nothing from it)."""
        real_m, twin_m = self._models(self.real, states, actions), self._models(self.twin, states, actions)
        real_seen, twin_seen = real_m.counts > 0, twin_m.counts > 0
        R_real = np.where(real_seen, real_m.R, twin_m.R)
        R_twin = np.where(twin_seen, twin_m.R, real_m.R)
        P_real = np.where(real_seen[:, :, None], real_m.P, twin_m.P)
        P_twin = np.where(twin_seen[:, :, None], twin_m.P, real_m.P)
        return (EmpiricalModel(R_real, P_real, real_m.counts, real_m.tv_radius, real_m.reward_radius, real_m.r_bar),
                EmpiricalModel(R_twin, P_twin, twin_m.counts, twin_m.tv_radius, twin_m.reward_radius, twin_m.r_bar))

    def _point(self, real_m: EmpiricalModel, twin_m: EmpiricalModel) -> tuple[EmpiricalModel, EmpiricalModel]:
        """The estimates the point value compares: a pair one side has fewer than ``n_min`` samples of
        takes the other side's estimate, and a pair both sides have fewer of takes their pooled one on
        both (below the coverage threshold a difference is not evidence: a twin resynced a period ago,
        with two samples of a state, must not look 4 units away, nor a network a state visited twice).
        The interval keeps the sides' own estimates: its radii carry the doubt."""
        nr, nt = real_m.counts, twin_m.counts
        R_real, R_twin = thin_pair_estimates(real_m.R, twin_m.R, nr, nt, self.n_min)
        P_real, P_twin = thin_pair_estimates(real_m.P, twin_m.P, nr, nt, self.n_min)
        return (replace(real_m, R=R_real, P=P_real), replace(twin_m, R=R_twin, P=P_twin))

    def _models(self, counts: TransitionCounts, states: Sequence[int], actions: Sequence[int]) -> EmpiricalModel:
        R, P = counts.estimates()
        ix = np.ix_(states, actions)
        R_sub = R[ix]
        P_sub = P[np.ix_(states, actions, states)]
        sums = P_sub.sum(axis=2, keepdims=True)
        P_sub = np.where(sums > 0, P_sub / np.where(sums > 0, sums, 1.0), 0.0)
        N = counts.counts[ix]
        r, rho = confidence_radii(N, len(states), self.alpha, counts.r_bar)
        return EmpiricalModel(R_sub, P_sub, N, r, rho, counts.r_bar)

    def signals_scope(self, record: Mapping[str, Any]) -> list[str]:
        """The cells a firing record's signal names (``signal_cells`` at this estimator's τ)."""
        return signal_cells(record, self.tau)

    # -- state -------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Counts, per-cell states, counters and the last matrices (an npz; exact round trip)."""
        head = {"format": FORMAT, "last": self.last, "recent": self.recent, "robin": self.robin,
                "since": self.since, "above": self.above, "computations": self.computations,
                "calibrationFrom": self.calibration_from, "twinResets": self.twin_resets, "periods": self.periods,
                "whatifs": self.whatifs, "whatifSeconds": self.whatif_seconds, "tv": [self.tv_last, self.tv_now],
                "samples": [self.real.samples, self.twin.samples], "scale": [self.real._scale, self.twin._scale],
                "warm": None if self.warm is None else {"states": self.warm["states"], "actions": self.warm["actions"]}}
        arrays: dict[str, Any] = {}
        if self.ue is not None:
            ue_head, ue_arrays = self.ue.arrays()
            head["ue"] = {**ue_head, "last": self.ue_last, "now": self.ue_now}
            arrays.update(ue_arrays)
        arrays["head"] = np.frombuffer(orjson.dumps(head), dtype=np.uint8)
        for name, c in (("real", self.real), ("twin", self.twin)):
            idx = np.nonzero(c._n)
            arrays[f"{name}_idx"] = np.stack(idx).astype(np.int32) if idx[0].size else np.zeros((3, 0), np.int32)
            arrays[f"{name}_n"] = c._n[idx]
            arrays[f"{name}_rsum"] = c._rsum
        if self.warm is not None:
            for k in ("point", "lower", "upper"):
                arrays[f"warm_{k}"] = self.warm[k]
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes, s: Any, n_states: int, n_actions: int) -> FidelityEstimator:
        """The estimator saved by ``to_bytes``, with the settings ``s`` (``FidelitySettings``).
        Unreadable or of other dimensions: ``ValueError``."""
        est = cls.from_settings(s, n_states, n_actions)
        with np.load(io.BytesIO(blob)) as z:
            head = orjson.loads(z["head"].tobytes())
            if head.get("format") != FORMAT:
                raise ValueError(f"fidelity state format {head.get('format')!r}, expected {FORMAT}")
            for i, (name, c) in enumerate((("real", est.real), ("twin", est.twin))):
                if z[f"{name}_rsum"].shape != (n_states, n_actions):
                    raise ValueError(f"fidelity state of {z[f'{name}_rsum'].shape} pairs, expected "
                                     f"{(n_states, n_actions)} (the encoder changed)")
                idx = z[f"{name}_idx"]
                c._n[tuple(idx.astype(np.int64))] = z[f"{name}_n"]
                c._rsum[...] = z[f"{name}_rsum"]
                c._samples = int(head["samples"][i])
                c._scale = float(head["scale"][i])
            if head["warm"] is not None:
                est.warm = {**head["warm"], **{k: np.array(z[f"warm_{k}"]) for k in ("point", "lower", "upper")}}
            if est.ue is not None and head.get("ue") is not None:  # absent in states saved before it
                est.ue.restore(head["ue"], z)
                est.ue_last, est.ue_now = head["ue"]["last"], head["ue"]["now"]
        est.last = {k: [int(v[0]), int(v[1])] for k, v in head["last"].items()}
        est.recent = {k: [int(x) for x in v] for k, v in head["recent"].items()}
        est.robin, est.since, est.above = int(head["robin"]), int(head["since"]), int(head["above"])
        est.computations, est.twin_resets = int(head["computations"]), int(head["twinResets"])
        est.calibration_from = head["calibrationFrom"]
        est.periods, est.whatifs, est.whatif_seconds = int(head["periods"]), int(head["whatifs"]), \
            float(head["whatifSeconds"])
        est.tv_last, est.tv_now = head.get("tv", [None, None])  # absent in states saved before the warning
        return est


def signal_cells(record: Mapping[str, Any], tau: float) -> list[str]:
    """The cells a firing DT-BSM record's signal names: those whose contribution (the largest
    lower-end diagonal over their recent real states) is above ``tau``, else the worst one."""
    cells: Mapping[str, float] = record.get("cells") or {}
    if not cells:
        return []
    over = [c for c, v in cells.items() if v > tau]
    if over:
        return sorted(over)
    worst = max(cells.values())
    return sorted(c for c, v in cells.items() if v == worst)
