"""``Optimizer``: searches CM changes of one cluster with ``Twin.whatif`` and proposes the best.

Why a greedy search over single steps: every change the runtime pushes is one attribute of one
cell, bounded by the guard's policy (bounds, largest step, cells changing at once), so the search
space is exactly those steps. First each allowed single step is scored alone (a what-if each),
then the best ones are combined greedily, each addition kept only when the combined what-if
beats the set without it; proposals come out in that order with their marginal gain. The budget
is the number of what-ifs; ``SearchResult.curve`` records how the best gain grows with it.

Relative KPI changes are reported: the gap learners calibrate per cell multiplicatively (residuals
of log ratios), so a relative change of the raw twin is the same relative change of the
calibrated prediction.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from twin.gap.target import RSRP_MEAN
from twin.guard.guard import OBJECTIVE
from twin.guard.policy import GuardPolicy
from twin.metrics import WHATIF_SECONDS
from twin.optimize.objective import ObjectiveSettings, Score, UeSummary, score
from twin.schemas import CmChangeRequest
from twin.sim.kpis import PRB, THP

if TYPE_CHECKING:
    from twin.digital_twin import Twin, WhatIf

__all__ = ["ATTRIBUTES", "Candidate", "Optimizer", "Proposal", "SearchResult"]

ATTRIBUTES = ("digitalTilt", "configuredMaxTxPower", "cellIndividualOffset")
"""Attributes searched by default: electrical tilt, transmit power, CIO (extensible)."""


_RSRP_OFFSET_MAX_DB = 20.0  # a learned RSRP offset beyond this is the learner's trouble, not the cell's


def _ratio(raw: float | None, cal: float | None) -> float:
    """calibrated / modelled, clipped to 0.1-10; 1 where either is unknown, zero or not finite."""
    if raw and cal and raw > 0 and cal > 0 and math.isfinite(cal):
        return min(max(cal / raw, 0.1), 10.0)
    return 1.0


@dataclass(frozen=True)
class _Calibration:
    """Per cell of a what-if (``cell_keys`` order): DL throughput ratio, SS-RSRP offset (dB) and PRB
    utilisation ratio of the calibrated prediction over the what-if's baseline."""

    thp: npt.NDArray[np.float64]
    rsrp_db: npt.NDArray[np.float64]
    prb: npt.NDArray[np.float64]


@dataclass(frozen=True)
class Candidate:
    """One step: ``attribute`` of ``cls`` on ``cell`` from ``from_`` to ``to`` (the instance ``dn``)."""

    cell: str
    cls: str
    attribute: str
    from_: Any
    to: Any
    dn: str

    def label(self) -> str:
        return f"{self.cell} {self.cls}.{self.attribute} {self.from_!r}->{self.to!r}"


@dataclass(frozen=True)
class Proposal:
    """A ranked change: its marginal gain over the proposals before it and the cumulative score."""

    rank: int
    candidate: Candidate
    marginal_gain_pct: float
    cumulative: Score
    cluster_thp_pct: float
    cell_deltas_pct: dict[str, float]
    request: CmChangeRequest


@dataclass
class SearchResult:
    cluster: str
    period_end: int
    model_version: str
    proposals: list[Proposal]
    whatifs: int
    seconds: float
    curve: list[tuple[int, float]] = field(default_factory=list)
    singles: list[tuple[Candidate, Score]] = field(default_factory=list, repr=False)

    @property
    def whatifs_per_s(self) -> float:
        return self.whatifs / self.seconds if self.seconds > 0 else 0.0

    @property
    def gain_pct(self) -> float:
        return self.proposals[-1].cumulative.gain_pct if self.proposals else 0.0


def _cm_value(entry: Any) -> Any:
    return entry[0] if isinstance(entry, list | tuple) else entry


class Optimizer:
    """Searches one cluster's CM steps allowed by ``policy`` to improve ``objective``."""

    def __init__(self, twin: Twin, policy: GuardPolicy, objective: ObjectiveSettings | None = None,
                 attributes: Sequence[str] = ATTRIBUTES, pool: int = 12, min_step_gain_pct: float = 0.05,
                 seed: int = 0) -> None:
        self.twin = twin
        self.policy = policy
        self.objective = objective or ObjectiveSettings()
        self.attributes = tuple(attributes)
        self.pool = pool
        self.min_step_gain_pct = min_step_gain_pct
        self.seed = seed
        self._scale_key: tuple[str, tuple[str, ...], int] | None = None
        self._scale: _Calibration | None = None

    # -- the search space ---------------------------------------------------------------------------
    def candidates(self, cluster: str, cells: Sequence[str] | None = None) -> list[Candidate]:
        """Every allowed single step: per cell and attribute, +-max_step and +-max_step/2 within bounds."""
        mirror = self.twin.mirror(cluster)
        out = []
        for cell in cells or self.twin.cells(cluster):
            cm = mirror.cells[cell].cm if cell in mirror.cells else {}
            for attribute in self.attributes:
                key = next((k for k in cm if k.endswith("." + attribute)), None)
                if key is None:
                    continue
                cls = key.split(".", 1)[0]
                rule = self.policy.rule_for(cls, attribute)
                current = _cm_value(cm[key])
                if rule is None or isinstance(current, bool) or not isinstance(current, int | float):
                    continue
                dn = str(cm[key][2]) if isinstance(cm[key], list | tuple) and len(cm[key]) > 2 else ""
                values = set()
                for frac in (1.0, 0.5, -0.5, -1.0):
                    step = rule.max_step * frac
                    to = current * 10 ** (step / 10.0) if rule.step_scale == "db" else current + step
                    to = round(to) if rule.integer else round(to, 3)
                    if rule.min <= to <= rule.max and to != current and rule.step(current, to) <= rule.max_step:
                        values.add(to)
                out += [Candidate(cell, cls, attribute, current, v, dn) for v in sorted(values)]
        return out

    # -- evaluation ---------------------------------------------------------------------------------
    def _calibration(self, cluster: str, w: WhatIf) -> _Calibration | None:
        """The gap learners' per-cell view of the real cells, laid on the what-if's model (whose UE
        points may be denser than the prediction's: ``ue_points``): per cell of ``w.cell_keys`` the
        calibrated DL throughput of the newest predicted period over the what-if's baseline
        (a ratio), the calibrated mean SS-RSRP minus the baseline's (dB), and the calibrated PRB
        utilisation over the baseline's (a ratio); 1, 0 and 1 where unknown. Cached per cluster,
        cells and period (the baseline is the period's, whatever the change)."""
        cells, baseline = w.cell_keys, w.baseline
        if not cells:
            return None
        key = (cluster, cells, w.period_end)
        if self._scale_key == key and self._scale is not None:
            return self._scale
        try:
            pred = self.twin.predict(cluster)
        except ValueError:
            return None
        thp, rsrp, prb = np.ones(len(cells)), np.zeros(len(cells)), np.ones(len(cells))
        for i, c in enumerate(cells):
            raw_of, cal_of = baseline.get(c, {}), pred.calibrated.get(c, {})
            thp[i] = _ratio(raw_of.get(THP), cal_of.get(THP))
            prb[i] = _ratio(raw_of.get(PRB), cal_of.get(PRB))
            raw, cal = raw_of.get(RSRP_MEAN), cal_of.get(RSRP_MEAN)
            if raw is not None and cal is not None and math.isfinite(raw) and math.isfinite(cal):
                rsrp[i] = min(max(cal - raw, -_RSRP_OFFSET_MAX_DB), _RSRP_OFFSET_MAX_DB)
        self._scale_key, self._scale = key, _Calibration(thp, rsrp, prb)
        return self._scale

    def _power(self, cluster: str, changes: Sequence[Candidate]) -> tuple[float, float]:
        mirror = self.twin.mirror(cluster)
        base = 0.0
        for cell in self.twin.cells(cluster):
            cm = mirror.cells[cell].cm if cell in mirror.cells else {}
            base += float(_cm_value(cm.get("NRSectorCarrier.configuredMaxTxPower", [0.0])) or 0.0)
        changed = base + sum(float(c.to) - float(c.from_) for c in changes if c.attribute == "configuredMaxTxPower")
        return base, changed

    def evaluate(self, cluster: str, changes: Sequence[Candidate],
                 period_end: int | None = None) -> tuple[Score, WhatIf]:
        """The objective's score of ``changes`` applied together (one what-if)."""
        with WHATIF_SECONDS.labels(caller="optimizer").time():
            w = self.twin.whatif(cluster, {c.cell: {c.attribute: c.to} for c in changes} if changes else {},
                                 period_end=period_end, ue_points=self.objective.ue_points)
        assert w.ue_baseline is not None and w.ue_changed is not None
        o = self.objective
        cal = self._calibration(cluster, w) if o.calibrated else None
        ub, uc = w.ue_baseline, w.ue_changed
        thp_b, thp_c, rsrp_b, rsrp_c = ub.throughput_bps, uc.throughput_bps, ub.rsrp_dbm, uc.rsrp_dbm
        cells = list(w.cell_keys)
        prb_b = np.array([w.baseline.get(c, {}).get(PRB, 0.0) for c in cells])
        prb_c = np.array([w.changed.get(c, {}).get(PRB, 0.0) for c in cells])
        if cal is not None:
            # each UE seen as its serving cell's real counterpart: throughput and RSRP level as the
            # gap learners see that cell, so the coverage floor and the PRB ceiling are judged on
            # the real network's levels, not the raw model's
            thp_b, thp_c = thp_b * cal.thp[ub.serving], thp_c * cal.thp[uc.serving]
            rsrp_b, rsrp_c = rsrp_b + cal.rsrp_db[ub.serving], rsrp_c + cal.rsrp_db[uc.serving]
            prb_b, prb_c = prb_b * cal.prb, prb_c * cal.prb  # not capped at 100: a rise must stay a rise
        base = UeSummary.of(thp_b, ub.connected, rsrp_b, o.coverage_rsrp_dbm)
        new = UeSummary.of(thp_c, uc.connected, rsrp_c, o.coverage_rsrp_dbm)
        p_base, p_new = self._power(cluster, changes)
        return score(o, base, new, prb_b, prb_c, p_base, p_new), w

    # -- the search ---------------------------------------------------------------------------------
    def search(self, cluster: str, budget: int = 300, period_end: int | None = None,
               now: datetime | None = None, fidelity: float | None = None,
               max_changes: int | None = None) -> SearchResult:
        """Search with at most ``budget`` what-ifs; proposals ranked, each a change request."""
        started = time.perf_counter()
        cands = self.candidates(cluster)
        limit = max_changes or self.policy.max_cells_per_cluster
        singles_budget = max(budget - (limit - 1) * self.pool, budget // 2)  # keep some for combining
        if len(cands) > singles_budget:
            cands = random.Random(self.seed).sample(cands, singles_budget)
        curve: list[tuple[int, float]] = []
        best = 0.0
        n = 0
        singles: list[tuple[Candidate, Score]] = []
        top_single: tuple[Candidate, Score, WhatIf] | None = None  # its what-if is the first step's
        period = None
        for cand in cands:
            s, w = self.evaluate(cluster, [cand], period_end)
            period = w.period_end
            n += 1
            singles.append((cand, s))
            if s.feasible and (top_single is None or s.gain_pct > top_single[1].gain_pct):
                top_single = (cand, s, w)
            if s.gain_pct > best:
                best = s.gain_pct
            curve.append((n, best))
        ranked = sorted((x for x in singles if x[1].feasible and x[1].gain_pct > self.min_step_gain_pct),
                        key=lambda x: -x[1].gain_pct)
        chosen: list[Candidate] = []
        steps: list[tuple[Candidate, Score, WhatIf]] = []
        current = 0.0
        if ranked:
            assert top_single is not None and top_single[0] is ranked[0][0]  # the first of the best, both ways
            first, s, w = top_single
            chosen, current = [first], s.gain_pct
            steps.append((first, s, w))
        pool = [c for c, _ in ranked[1:self.pool + 1]]
        while chosen and len(chosen) < limit and n < budget:
            trial = [c for c in pool if c.cell not in {x.cell for x in chosen}]
            if not trial:
                break
            scored = []
            for cand in trial:
                if n >= budget:
                    break
                s, w = self.evaluate(cluster, [*chosen, cand], period_end)
                n += 1
                scored.append((cand, s, w))
                best = max(best, s.gain_pct)
                curve.append((n, best))
            top = max(scored, key=lambda x: x[1].gain_pct, default=None)
            if top is None or not top[1].feasible or top[1].gain_pct < current + self.min_step_gain_pct:
                break
            chosen.append(top[0])
            steps.append(top)
            current = top[1].gain_pct
            pool = [c for c in pool if c is not top[0]]
        seconds = time.perf_counter() - started
        version = self.twin.predict_config.model_version
        uncertainty = self.twin.calibrated_error(cluster)
        proposals = []
        prev = 0.0
        when = now or datetime.now(UTC)
        for rank, (cand, s, w) in enumerate(steps, start=1):
            thp_b = [w.baseline[c][THP] for c in w.baseline if THP in w.baseline[c]]
            thp_c = [w.changed[c][THP] for c in w.baseline if THP in w.changed.get(c, {})]
            cluster_pct = 100.0 * (sum(thp_c) / sum(thp_b) - 1.0) if thp_b and sum(thp_b) > 0 else 0.0
            own = {k: 100.0 * (w.changed[cand.cell][k] / v - 1.0) for k, v in w.baseline.get(cand.cell, {}).items()
                   if k in w.changed.get(cand.cell, {}) and v and math.isfinite(v)}
            impact = {OBJECTIVE: round(s.gain_pct - prev, 4), THP: round(cluster_pct, 4),
                      "ueThpMeanPct": round(s.mean_pct, 4), "ueThpP5Pct": round(s.p5_pct, 4),
                      "objectiveCumulativePct": round(s.gain_pct, 4)}
            request = CmChangeRequest(
                change_id=str(uuid.uuid4()), requested_at=when, requester="optimizer", cell_key=cand.cell,
                target_dn=cand.dn or cand.cell, class_=cand.cls, attribute=cand.attribute, from_=cand.from_,
                to=cand.to, reason=f"rank {rank} of {len(steps)}: objective {s.gain_pct - prev:+.2f} % "
                f"(cumulative {s.gain_pct:+.2f} %) by twin {version}",
                expected_kpi_impact=impact, twin_version=version, fidelity=fidelity,
                uncertainty_pct=None if uncertainty is None else round(100.0 * uncertainty, 3))
            proposals.append(Proposal(rank, cand, s.gain_pct - prev, s, cluster_pct, own, request))
            prev = s.gain_pct
        return SearchResult(cluster, int(period or 0), version, proposals, n, seconds, curve, singles)
