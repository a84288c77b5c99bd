"""The guarded CM loop of a run in the summary: every change the optimiser proposed, what the guard
decided, what was pushed, what the verification concluded, and the cluster's throughput over the
run (``twin demo``; ``docs/demo.md``).

Built from the ledger (``twin.ledger``), so the report shows what was recorded, not what the caller
believes happened: a change's state, who decided it and why are the ledger's; the verification's
verdict (effect against the counterfactual, real before and after) is the detail of its
CONFIRMED or ROLLING_BACK event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from twin.guard.guard import OBJECTIVE
from twin.ledger import ChangeView, State
from twin.sim.kpis import THP

__all__ = ["change_row", "cm_summary"]

_PUSHED = {State.APPLYING, State.APPLIED, State.OBSERVING, State.CONFIRMED, State.ROLLING_BACK, State.ROLLED_BACK,
           State.FAILED}


def _r(x: float | None, n: int = 3) -> float | None:
    return None if x is None else round(float(x), n)


def change_row(view: ChangeView, truth_thp_pct: float | None = None) -> dict[str, Any]:
    """One change as a row of the report: cell, attribute, from, to, predicted gain, state, who
    decided (the guard), the verdict's author and reason, the verification's figures."""
    r = view.request
    history = view.history
    decision = next((e for e in history if e.state in (State.REJECTED, State.APPROVED, State.PENDING_APPROVAL,
                                                       State.DRY_RUN)), None)
    verdict = next((e for e in history if e.actor == "verification"), None)
    pushed = next((e for e in history if e.state is State.APPLYING and e.step == State.APPLYING.value), None)
    final = next((e for e in reversed(history) if e.detail.get("reason")), None)
    verdicts = verdict.detail.get("verdicts", []) if verdict else []
    thp = next((v for v in verdicts if v.get("kpi") == THP), None)
    return {
        "changeId": r.change_id, "cell": r.cell_key, "class": r.class_, "attribute": r.attribute,
        "from": r.from_, "to": r.to, "requester": r.requester, "requestedAt": r.requested_at.isoformat(),
        "predictedGainPct": _r(r.expected_kpi_impact.get(OBJECTIVE)),
        "predictedThpPct": _r(r.expected_kpi_impact.get(THP)),
        "twinVersion": r.twin_version, "uncertaintyPct": r.uncertainty_pct,
        "state": view.state.value,
        "guardDecision": decision.state.value if decision else None,
        "decidedBy": decision.actor if decision else view.decided_by,
        "pushedAt": pushed.at.isoformat() if pushed else None,
        "verifiedAt": verdict.at.isoformat() if verdict else None,
        "outcomeBy": verdict.actor if verdict else (final.actor if final else view.actor),
        "reason": (verdict.detail.get("reason") if verdict else None) or (final.detail.get("reason") if final else
                                                                          view.reason),
        "verification": None if thp is None else {
            "kpi": THP, "effectPct": _r(thp["effect_pct"]), "realBefore": _r(thp["real_before"], 1),
            "realAfter": _r(thp["real_after"], 1), "counterfactual": _r(thp["counterfactual"], 1),
            "vsPredictionPct": _r(thp.get("vs_prediction_pct")), "tolerancePct": thp["max_degradation_pct"],
            "degraded": thp["degraded"], "normalised": thp["normalised"]},
        "truthThpPct": _r(truth_thp_pct),
        "truthAgrees": _truth_agrees(view.state, truth_thp_pct, thp),
    }


def _truth_agrees(state: State, truth_pct: float | None, verdict: Mapping[str, Any] | None) -> bool | None:
    """Whether the hidden truth agrees with the verification's verdict: a roll back is right when the
    change's own effect on the truth was a degradation beyond the tolerance, a confirmation when it
    was not; None for a change not judged (or no truth)."""
    if truth_pct is None or verdict is None or state not in (State.CONFIRMED, State.ROLLED_BACK):
        return None
    harmful = -truth_pct > float(verdict["max_degradation_pct"])
    return harmful == (state is State.ROLLED_BACK)


def cm_summary(views: Sequence[ChangeView], rounds: Sequence[Mapping[str, Any]], policy: Mapping[str, Any],
               thp_by_period: Sequence[Sequence[Any]], truth: Mapping[str, Any] | None = None,
               truth_per_change: Mapping[str, float] | None = None,
               published: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``cm`` section of ``summary.json``.

    ``thp_by_period``: [period end, real cluster mean, twin's raw predicted cluster mean]; the real
    gain compares the periods before the first push (``policy['baseline_periods']`` of them) with
    every period after it, so it moves with the hour of the day as much as with the changes; the
    like-for-like figure is ``truth`` (the same hours and load, initial vs final configuration)."""
    rows = [change_row(v, (truth_per_change or {}).get(v.request.change_id)) for v in views]
    states = [v.state for v in views]
    pushes = sorted(r["pushedAt"] for r in rows if r["pushedAt"])
    first = pushes[0] if pushes else None
    before, after = [], []
    if first is not None:
        t0 = datetime.fromisoformat(first).timestamp()
        prior = [x for x in thp_by_period if x[0] <= t0 and x[1] is not None]
        before = [x[1] for x in prior[-int(policy.get("baseline_periods", 4)):]]
        after = [x[1] for x in thp_by_period if x[0] > t0 and x[1] is not None]
    mean_b = sum(before) / len(before) if before else None
    mean_a = sum(after) / len(after) if after else None
    return {
        "policy": dict(policy),
        "rounds": [dict(r) for r in rounds],
        "changes": rows,
        "counts": {"proposed": len(views), "guardRejected": states.count(State.REJECTED),
                   "pushed": sum(1 for v in views if any(e.state in _PUSHED for e in v.history)),
                   "confirmed": states.count(State.CONFIRMED), "rolledBack": states.count(State.ROLLED_BACK),
                   "failed": states.count(State.FAILED), "observing": states.count(State.OBSERVING),
                   "verifiedByVerification": sum(1 for r in rows if r["outcomeBy"] == "verification")},
        "throughput": {
            "kpi": THP, "unit": "kbit/s",
            "byPeriod": [[int(e), _r(real, 1), _r(pred, 1)] for e, real, pred in thp_by_period],
            "firstPush": first, "realBefore": _r(mean_b, 1), "realAfter": _r(mean_a, 1),
            "realBeforePeriods": len(before), "realAfterPeriods": len(after),
            "realChangePct": _r(100.0 * (mean_a / mean_b - 1.0)) if mean_a and mean_b else None,
            **({"truth": dict(truth)} if truth else {}),
        },
        "published": dict(published or {}),
    }
