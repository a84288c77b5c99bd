"""``ChangeRunner``: takes each CM change through guard, ledger, adapter, verification and roll back.

Every step is recorded in the ledger *before* the action it announces (APPLYING before the
adapter is called, ROLLING_BACK before the restore), so a crash between any two steps leaves a
state from which ``reconcile`` can finish the change by reading the device: a change whose
value the device already holds is recorded as applied, never pushed again; one the device does
not hold is pushed (after the guard's checks pass again); one whose device value is neither the
old nor the new one is recorded FAILED with that value, and an operator is alerted. Results for
``ran.cm.change.results.v1`` and alerts are recorded in the ledger's outbox in the transaction of
the step that caused them (``twin.ledger.OutboxRecord``; a publisher sends them and marks them,
so a crash between a step and its send loses nothing), and collect in ``results`` and ``alerts``
for a caller in the same process (the core imports no transport).
"""

from __future__ import annotations

import math
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

from twin import topics
from twin.guard import Guard, GuardContext, GuardPolicy, ProtectedKpi
from twin.ledger import UNSETTLED, ChangeView, Ledger, State
from twin.logs import traceback_field
from twin.ports import AdapterUnavailable, CmAdapter
from twin.rollout.verify import KpiVerdict, control_verdict, kpi_verdict
from twin.schemas import Alert, AlertType, ChangeState, CmChangeRequest, CmChangeResult
from twin.schemas.outputs import Severity

__all__ = ["ChangeRunner", "ContextFn", "ScopeFn", "same_value"]

log = structlog.get_logger(__name__)

MAX_HOLD_BACK = 6
"""A change whose step failed n times running sits out the next 2**min(n, this) - 1 reconciles."""

ContextFn = Callable[[str, datetime], GuardContext]
"""(cluster, event time) -> what the guard needs beyond the ledger (trust, calibrated error)."""
ScopeFn = Callable[[CmChangeRequest, str], tuple[list[str], float | None]]
"""(request, cluster) -> the cells the change moves (the changed one included) and the twin's
predicted change of their protected KPI in percent (``twin.rollout.whatif_scope``)."""

_WIRE = {State.DRY_RUN: ChangeState.ACCEPTED, State.REJECTED: ChangeState.REJECTED,
         State.DENIED: ChangeState.REJECTED, State.EXPIRED: ChangeState.REJECTED, State.APPLIED: ChangeState.APPLIED,
         State.CONFIRMED: ChangeState.CONFIRMED, State.ROLLED_BACK: ChangeState.ROLLED_BACK,
         State.FAILED: ChangeState.FAILED}


def same_value(a: Any, b: Any) -> bool:
    """Device values compare as numbers where both are numbers (150 == 150.0), else exactly.

    >>> same_value(150, 150.0), same_value(-3, -3.0000001), same_value("LOCKED", "LOCKED"), same_value(None, 0)
    (True, True, True, False)
    """
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool) | isinstance(b, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-6)
    return bool(a == b)


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


class ChangeRunner:
    """Drives changes through the ledger; one runner per worker (the ledger serialises writers).

    ``context`` supplies the trust verdict and calibrated error of a cluster; ``crash_hook`` is
    called with the name of each step boundary (tests kill the process there).
    """

    def __init__(self, ledger: Ledger, policy: GuardPolicy, adapter: CmAdapter,
                 context: ContextFn | None = None, crash_hook: Callable[[str], None] | None = None,
                 scope: ScopeFn | None = None) -> None:
        self.ledger = ledger
        self.policy = policy
        self.guard = Guard(policy, ledger)
        self.adapter = adapter
        self._context = context
        self._hook = crash_hook or (lambda _: None)
        self._scope = scope
        self.results: list[CmChangeResult] = []
        self.alerts: list[Alert] = []
        self.change_failures = 0  # steps of one change that raised (logged; the other changes went on)
        self._failing: dict[str, tuple[int, int]] = {}  # change id -> (failures running, reconciles to sit out)
        self._history: dict[str, deque[tuple[int, dict[str, float], dict[str, float],
                                             dict[str, dict[str, float]], dict[str, dict[str, float]]]]] = {}

    # -- context and history -------------------------------------------------------------------------
    def context(self, cluster: str, now: datetime) -> GuardContext:
        base = self._context(cluster, now) if self._context else GuardContext(now=now, cluster=cluster)
        periods = len(self._history.get(cluster, ()))
        return GuardContext(now=now, cluster=cluster, trusted=base.trusted, trust_reasons=base.trust_reasons,
                            calibrated_error=base.calibrated_error,
                            baseline_periods=base.baseline_periods if base.baseline_periods is not None else periods)

    def _baseline(self, cluster: str) -> dict[str, Any]:
        rows = list(self._history.get(cluster, ()))[-self.policy.baseline_periods:]
        real: dict[str, list[float]] = {}
        pred: dict[str, list[float]] = {}
        cells: dict[str, dict[str, list[float]]] = {}
        cells_pred: dict[str, dict[str, list[float]]] = {}
        for _, r, p, by_cell, pred_by_cell in rows:
            for k, v in r.items():
                real.setdefault(k, []).append(v)
            for k, v in p.items():
                pred.setdefault(k, []).append(v)
            for c, kv in by_cell.items():
                for k, v in kv.items():
                    cells.setdefault(c, {}).setdefault(k, []).append(v)
            for c, kv in pred_by_cell.items():
                for k, v in kv.items():
                    cells_pred.setdefault(c, {}).setdefault(k, []).append(v)
        return {"periods": [row[0] for row in rows],
                "byPeriod": [{"byCell": row[3], "byCellPredicted": row[4]} for row in rows],
                "real": {k: sum(v) / len(v) for k, v in real.items()},
                "predicted": {k: sum(v) / len(v) for k, v in pred.items() if len(v) == len(rows)},
                "cells": {c: {k: sum(v) / len(v) for k, v in kv.items() if len(v) == len(rows)}
                          for c, kv in cells.items()},
                "cellsPredicted": {c: {k: sum(v) / len(v) for k, v in kv.items() if len(v) == len(rows)}
                                   for c, kv in cells_pred.items()}}

    # -- outputs ----------------------------------------------------------------------------------------
    def _result(self, request: CmChangeRequest, state: State, **kw: Any) -> CmChangeResult | None:
        """The ``ran.cm.change.results.v1`` message of reaching ``state`` (None: a state without one)."""
        wire = _WIRE.get(state)
        if wire is None:
            return None
        return CmChangeResult(change_id=request.change_id, cell_key=request.cell_key, state=wire,
                              transport=self.adapter.transport, applied_at=kw.get("applied_at"),
                              observed_value=kw.get("observed"), device_response=kw.get("device_response"),
                              error=kw.get("error"))

    def _alert(self, view: ChangeView | CmChangeRequest, kind: AlertType, severity: Severity, text: str,
               at: datetime, kpis: Mapping[str, float] | None = None) -> Alert:
        req = view if isinstance(view, CmChangeRequest) else view.request
        return Alert(alert_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"cm/{req.change_id}/{kind.value}")),
                     raised_at=at, cell_key=req.cell_key, severity=severity, type=kind,
                     related_change_id=req.change_id, text=text[:2000], kpis=dict(kpis or {}),
                     probable_cause="configurationOrCustomizationError")

    def _rolled_back_alert(self, request: CmChangeRequest, at: datetime) -> Alert:
        view = self.ledger.get(request.change_id)  # its reason: why it is being rolled back
        return self._alert(view, AlertType.CM_ROLLED_BACK, Severity.MAJOR,
                           f"change {request.change_id} ({request.attribute} {request.from_!r} -> {request.to!r} on "
                           f"{request.cell_key}) rolled back: {view.reason}", at)

    def _record(self, request: CmChangeRequest, state: State, at: datetime, actor: str,
                detail: Mapping[str, Any] | None = None, step: str | None = None, alert: Alert | None = None,
                **publish: Any) -> bool:
        """Record a step; its result (a state with a wire form) and ``alert`` go into the ledger's
        outbox in the step's transaction, and into ``results`` and ``alerts``, when it is new."""
        result = self._result(request, state, **publish) if step is None else None
        outbox = [] if result is None else [(topics.CHANGE_RESULTS, request.cell_key, result.to_json_bytes().decode())]
        if alert is not None:
            outbox.append((topics.ALERTS, alert.cell_key or alert.cluster_id or "", alert.to_json_bytes().decode()))
        new = self.ledger.append(request.change_id, state, at=at, actor=actor, detail=dict(detail or {}), step=step,
                                 outbox=outbox)
        if new and step is None:
            # one JSON line per transition, with the ids an operator greps for (twin.logs)
            log.info("cm.transition", change_id=request.change_id, cell=request.cell_key,
                     cluster=self.ledger.get(request.change_id).cluster, state=state.value, actor=actor,
                     attribute=request.attribute, to=request.to, reason=(detail or {}).get("reason"))
        if new:
            self.results += [] if result is None else [result]
            self.alerts += [] if alert is None else [alert]
        self._hook(f"after:{step or state.value}")
        return new

    # -- requests and decisions ---------------------------------------------------------------------------
    def submit(self, request: CmChangeRequest, cluster: str, now: datetime) -> ChangeView:
        """Record ``request`` and let the guard decide; an auto-approved change is pushed at once.
        A change id seen before returns the recorded change untouched (idempotent)."""
        if self.ledger.record_request(request, cluster, at=now):
            log.info("cm.transition", change_id=request.change_id, cell=request.cell_key, cluster=cluster,
                     state=State.REQUESTED.value, actor=request.requester, attribute=request.attribute, to=request.to)
            self._hook("after:REQUESTED")
            self._decide(request, cluster, now)
        return self.ledger.get(request.change_id)

    def _decide(self, request: CmChangeRequest, cluster: str, now: datetime) -> None:
        decision = self.guard.decide(request, self.context(cluster, now))
        detail: dict[str, Any] = {"reason": decision.reason}
        if decision.outcome == "rejected":
            detail["violations"] = [{"rule": v.rule, "message": v.message, "values": v.values}
                                    for v in decision.violations]
            self._record(request, State.REJECTED, now, "guard", detail, error=decision.reason)
        elif decision.outcome == "pending":
            self._record(request, State.PENDING_APPROVAL, now, "guard", detail)
        elif decision.outcome == "dry-run":
            self._dry_run(request, now, detail)
        else:
            self._record(request, State.APPROVED, now, "guard", detail)
            self._push(request, cluster, now)

    def _dry_run(self, request: CmChangeRequest, now: datetime, detail: dict[str, Any]) -> None:
        res = self.adapter.apply(request.model_copy(update={"dry_run": True}))
        info = {**detail, "deviceResponse": res.device_response}
        if res.state in (ChangeState.ACCEPTED, ChangeState.APPLIED):
            self._record(request, State.DRY_RUN, now, "guard", info, device_response=res.device_response)
        else:
            self._record(request, State.REJECTED, now, "device", {**info, "reason": f"device: {res.error}"},
                         error=res.error)

    def approve(self, change_id: str, by: str, now: datetime) -> ChangeView:
        """An operator approves a PENDING_APPROVAL change; it is pushed after the guard checks again."""
        view = self._expect(change_id, {State.PENDING_APPROVAL}, "approve")
        self._record(view.request, State.APPROVED, now, by, {"reason": f"approved by {by}"})
        self._push(view.request, view.cluster, now)
        return self.ledger.get(change_id)

    def deny(self, change_id: str, by: str, reason: str, now: datetime) -> ChangeView:
        view = self._expect(change_id, {State.PENDING_APPROVAL}, "reject")
        self._record(view.request, State.DENIED, now, by, {"reason": reason or f"rejected by {by}"},
                     error=reason or f"rejected by {by}")
        return self.ledger.get(change_id)

    def rollback(self, change_id: str, by: str, reason: str, now: datetime) -> ChangeView:
        """An operator rolls back an applied change (observing or confirmed)."""
        view = self._expect(change_id, {State.APPLIED, State.OBSERVING, State.CONFIRMED}, "roll back")
        self._record(view.request, State.ROLLING_BACK, now, by, {"reason": reason or f"rolled back by {by}"})
        self._restore(view.request, now)
        return self.ledger.get(change_id)

    def _expect(self, change_id: str, states: set[State], what: str) -> ChangeView:
        view = self.ledger.get(change_id)
        if view.state not in states:
            wanted = ", ".join(sorted(s.value for s in states))
            raise ValueError(f"cannot {what} change {change_id}: it is {view.state.value} (needs {wanted})")
        return view

    # -- push, read-after-write ---------------------------------------------------------------------------
    def _push(self, request: CmChangeRequest, cluster: str, now: datetime) -> None:
        violations = self.guard.check(request, self.context(cluster, now), at_push=True)
        if violations:
            reason = "refused at push time: " + "; ".join(str(v) for v in violations)
            self._record(request, State.REJECTED, now, "guard", {"reason": reason, "violations": [
                {"rule": v.rule, "message": v.message, "values": v.values} for v in violations]}, error=reason)
            return
        known, value = self._device_value(request)
        if not known:
            return  # stays APPROVED: the device cannot be read, the next tick tries again
        if not same_value(value, request.from_):
            reason = (f"refused at push time: the device holds {request.attribute}={value!r}, the request was made "
                      f"against {request.from_!r} (its bounds and step no longer hold)")
            self._record(request, State.REJECTED, now, "guard", {"reason": reason, "deviceValue": value}, error=reason)
            return
        scope, predicted, scope_error = [request.cell_key], None, None
        if self._scope is not None:
            try:
                scope, predicted = self._scope(request, cluster)
            except Exception as exc:  # a what-if that fails must not block the push; the scope falls back
                scope, scope_error = [request.cell_key], f"{type(exc).__name__}: {exc}"
                log.warning("cm.scope_failed", change_id=request.change_id, error=scope_error)
        self._record(request, State.APPLYING, now, "runner", {"baseline": self._baseline(cluster),
                     "scope": sorted(set(scope) | {request.cell_key}), "predictedScopePct": predicted,
                     "scopeError": scope_error})
        result = self.adapter.apply(request)
        self._hook("adapter:apply")
        self._after_apply(request, result, now)

    def _after_apply(self, request: CmChangeRequest, result: CmChangeResult, now: datetime) -> None:
        if result.state == ChangeState.APPLIED:
            applied_at = result.applied_at or now
            self._record(request, State.APPLIED, now, "device", {"appliedAt": applied_at.isoformat(),
                         "deviceResponse": result.device_response}, applied_at=applied_at,
                         observed=result.observed_value, device_response=result.device_response)
            self._verify_write(request, now)
        elif result.state == ChangeState.REJECTED:
            # the device says no to this request; an earlier one that timed out may still have landed
            # (a retried PATCH whose precondition now fails): what it holds decides, not the answer
            self._record(request, State.APPLYING, now, "device", {
                "error": f"device rejected the change: {result.error}", "deviceResponse": result.device_response},
                step="apply-rejected")
            self._settle_applying(request, now, apply_again=False)
        else:  # FAILED transport, or an unexpected dry-run answer: the device's value is unknown
            n = self._attempts(request, "apply-error")
            self._record(request, State.APPLYING, now, "device", {"error": result.error or str(result.state)},
                         step=f"apply-error:{n + 1}")
            self._settle_applying(request, now, apply_again=False)  # another apply: at the next reconcile

    def _attempts(self, request: CmChangeRequest, prefix: str) -> int:
        return sum(1 for e in self.ledger.history(request.change_id) if e.step.startswith(prefix))

    def _verify_write(self, request: CmChangeRequest, now: datetime) -> None:
        check = self.adapter.verify(request)
        self._hook("adapter:verify")
        if check.state == ChangeState.APPLIED:
            # observed from the first period that ends after the push, in event time (the device's own
            # applied time is wall time, which differs from event time when history is replayed)
            self._record(request, State.OBSERVING, now, "runner", {"observedValue": check.observed_value,
                         "effectiveAt": now.isoformat()})
            return
        value = check.observed_value
        if value is None:  # the read itself failed: stays APPLIED, reconcile verifies later
            return
        if same_value(value, request.from_):
            reason = f"read-back shows {request.attribute}={value!r}, the old value: the change did not take"
            self._record(request, State.FAILED, now, "runner", {"reason": reason, "deviceValue": value},
                         error=reason, observed=value,
                         alert=self._alert(request, AlertType.CM_FAILED, Severity.MINOR, reason, now))
            return
        reason = f"read-back shows {request.attribute}={value!r}, not {request.to!r}: restoring {request.from_!r}"
        self._record(request, State.ROLLING_BACK, now, "runner", {"reason": reason, "deviceValue": value})
        self._restore(request, now)

    # -- roll back ------------------------------------------------------------------------------------------
    def _restore(self, request: CmChangeRequest, now: datetime) -> None:
        result = self.adapter.restore(request)
        self._hook("adapter:restore")
        if result.state == ChangeState.ROLLED_BACK:
            self._record(request, State.ROLLED_BACK, now, "device", {"observedValue": result.observed_value},
                         observed=result.observed_value, device_response=result.device_response,
                         alert=self._rolled_back_alert(request, now))
        elif result.state == ChangeState.REJECTED:
            reason = f"the device refused the roll back to {request.from_!r}: {result.error}"
            self._record(request, State.FAILED, now, "device", {"reason": reason, "deviceValue": request.to},
                         error=reason,
                         alert=self._alert(request, AlertType.CM_FAILED, Severity.CRITICAL, reason, now))
        else:
            n = self._attempts(request, "restore-error")
            self._record(request, State.ROLLING_BACK, now, "device", {"error": result.error},
                         step=f"restore-error:{n + 1}")
            self._settle_rolling_back(request, now, restore_again=False)  # another restore: at the next reconcile

    # -- observation and verdict ------------------------------------------------------------------------------
    def observe(self, cluster: str, period_end: datetime, real: Mapping[str, float],
                predicted: Mapping[str, float] | None = None,
                by_cell: Mapping[str, Mapping[str, float]] | None = None,
                predicted_by_cell: Mapping[str, Mapping[str, float]] | None = None) -> list[ChangeView]:
        """One period of the cluster's KPIs: ``real`` and ``predicted`` are means over its cells,
        ``by_cell`` the real values per cell (which the control-cell verification needs). Kept as
        baseline history and recorded for each change being observed; a change observed long
        enough is judged. ``predicted_by_cell``, the twin's raw predictions per cell, lets the
        verification compare residuals (``twin.rollout.verify.control_verdict``)."""
        hist = self._history.setdefault(cluster, deque(maxlen=self.policy.baseline_periods))
        pe = _epoch(period_end)
        cells = {c: {k: float(v) for k, v in kv.items()} for c, kv in (by_cell or {}).items()}
        cells_pred = {c: {k: float(v) for k, v in kv.items()} for c, kv in (predicted_by_cell or {}).items()}
        if not hist or hist[-1][0] < pe:
            hist.append((pe, {k: float(v) for k, v in real.items()},
                         {k: float(v) for k, v in (predicted or {}).items()}, cells, cells_pred))
        judged = []
        for view in self.ledger.changes([State.OBSERVING], cluster=cluster):
            history = self.ledger.history(view.request.change_id)
            effective = datetime.fromisoformat(str(next(e for e in history if e.step == State.OBSERVING.value
                                                        ).detail["effectiveAt"]))
            if period_end <= effective:
                continue
            self._record(view.request, State.OBSERVING, period_end, "runner",
                         {"periodEnd": period_end.isoformat(), "real": dict(real), "predicted": dict(predicted or {}),
                          "byCell": cells, "byCellPredicted": cells_pred}, step=f"observe:{pe}")
            change_id = view.request.change_id  # a verdict that raises is tried again by reconcile
            if self._attempt(change_id, "judge", self._judge_if_observed, change_id, period_end) == (True, True):
                judged.append(self.ledger.get(change_id))
        return judged

    def _judge_if_observed(self, change_id: str, now: datetime) -> bool:
        """Judge the change once it has ``observe_periods`` observed periods; True when it was."""
        full = self.ledger.get(change_id)
        seen = [e for e in full.history if e.step.startswith("observe:")]
        if len(seen) < self.policy.observe_periods:
            return False
        self._judge(full, seen, now)
        return True

    def _protected(self, request: CmChangeRequest) -> tuple[dict[str, ProtectedKpi], list[str]]:
        """The KPIs to judge (``GuardPolicy.protected_for``) and the requested ones nothing can judge."""
        return self.policy.protected_for((k.name, k.max_degradation_pct) for k in request.guard.rollback_kpis)

    def _other_scopes(self, view: ChangeView, applied_at: datetime, now: datetime) -> set[str]:
        """Cells other changes of the cluster moved, pushed before ``now`` and not undone before
        ``applied_at``: not controls. Changes in force all along are excluded too: the twin models a
        changed cell worse for a while (its residual moves), and keeping them as controls took the
        demo's agreement with the truth from 6 of 8 verdicts to 5 of 8."""
        out: set[str] = set()
        for other in self.ledger.changes(cluster=view.cluster):
            if other.request.change_id == view.request.change_id:
                continue
            hist = self.ledger.history(other.request.change_id)
            pushed = next((e for e in hist if e.step == State.APPLYING.value), None)
            if pushed is None:
                continue
            ended = next((e.at for e in hist if e.state in (State.ROLLED_BACK, State.FAILED)), None)
            if pushed.at <= now and (ended is None or ended >= applied_at):
                out |= set(pushed.detail.get("scope") or [other.request.cell_key])
        return out

    @staticmethod
    def _control_verdict(kpi: str, rule: ProtectedKpi, base: Mapping[str, Any], seen: list[Any], scope: list[str],
                         predicted: float | None, exclude: frozenset[str] | set[str] = frozenset()
                         ) -> KpiVerdict | None:
        """The scope against the cluster's cells no change touched, per period, when every baseline
        and observed period has them per cell (and the twin's per-cell predictions, residuals)."""
        periods_before = [p for p in base.get("byPeriod", [])]
        periods_after = [e.detail for e in seen]
        every = periods_before + periods_after
        if not periods_before or not every:
            return None
        cells = set.intersection(*({c for c, kv in p.get("byCell", {}).items() if kpi in kv} for p in every))
        in_scope = sorted(cells & set(scope))
        # the cells no other change touched meanwhile; all the others when that leaves none
        control = sorted(cells - set(scope) - exclude) or sorted(cells - set(scope))
        if not in_scope or not control:
            return None
        residual = all(all(kpi in p.get("byCellPredicted", {}).get(c, {}) for c in in_scope + control) for p in every)

        def ratio(p: Mapping[str, Any]) -> float:
            """log of scope over control in one period (of residuals when the twin's predictions are there)."""
            real = p["byCell"]
            sr, cr = sum(real[c][kpi] for c in in_scope), sum(real[c][kpi] for c in control)
            if residual:
                pr = p["byCellPredicted"]
                sr /= max(sum(pr[c][kpi] for c in in_scope), 1e-12)
                cr /= max(sum(pr[c][kpi] for c in control), 1e-12)
            return math.log(max(sr, 1e-12) / max(cr, 1e-12))

        before = [ratio(p) for p in periods_before]
        after = [ratio(p) for p in periods_after]
        mb, ma = sum(before) / len(before), sum(after) / len(after)
        dev = [x - mb for x in before] + [x - ma for x in after]
        df = len(dev) - 2
        se = math.sqrt(sum(d * d for d in dev) / df * (1 / len(before) + 1 / len(after))) if df > 0 else None
        shift = ma - mb + (math.log1p(predicted / 100.0) if residual and predicted is not None else 0.0)

        def total(group: list[str], ps: list[Mapping[str, Any]]) -> float:
            return sum(sum(p["byCell"][c][kpi] for c in group) for p in ps) / len(ps)

        return control_verdict(kpi, total(in_scope, periods_before), total(in_scope, periods_after),
                               total(control, periods_before), total(control, periods_after),
                               rule.max_degradation_pct, rule.higher_is_better, predicted,
                               log_effect=shift, log_se=se, residuals=residual)

    def _judge(self, view: ChangeView, seen: list[Any], now: datetime) -> None:
        req = view.request
        applying = next(e for e in view.history if e.state is State.APPLYING and e.step == State.APPLYING.value)
        base = applying.detail.get("baseline", {})
        verdicts: list[KpiVerdict] = []
        scope = list(applying.detail.get("scope") or [req.cell_key])
        others = self._other_scopes(view, applying.at, now)
        rules, skipped = self._protected(req)  # unknown: only a change the guard let through before it refused them
        for kpi, rule in rules.items():
            control = self._control_verdict(kpi, rule, base, seen, scope, applying.detail.get("predictedScopePct"),
                                            others)
            if control is not None:
                verdicts.append(control)
                continue
            after = [float(e.detail["real"][kpi]) for e in seen if kpi in e.detail["real"]]
            if kpi not in base.get("real", {}) or len(after) < len(seen):
                skipped.append(kpi)
                continue
            pred_after = [float(e.detail["predicted"][kpi]) for e in seen if kpi in e.detail.get("predicted", {})]
            pb = base.get("predicted", {}).get(kpi)
            pa = sum(pred_after) / len(pred_after) if len(pred_after) == len(seen) else None
            verdicts.append(kpi_verdict(kpi, float(base["real"][kpi]), sum(after) / len(after), pb, pa,
                                        float(req.expected_kpi_impact.get(kpi, 0.0)), rule.max_degradation_pct,
                                        rule.higher_is_better))
        detail: dict[str, Any] = {"verdicts": [v.as_dict() for v in verdicts], "unverified": skipped}
        bad = [v for v in verdicts if v.degraded]
        if bad:
            detail["reason"] = "verification: " + "; ".join(str(v) for v in bad)
            self._record(req, State.ROLLING_BACK, now, "verification", detail)
            self._restore(req, now)
        else:
            detail["reason"] = "verification: " + ("; ".join(str(v) for v in verdicts) or "no protected KPI measured")
            self._record(req, State.CONFIRMED, now, "verification", detail)

    # -- reconciliation ----------------------------------------------------------------------------------------
    def _device_value(self, request: CmChangeRequest) -> tuple[bool, Any]:
        """(known, value) of the request's attribute on the device."""
        try:
            return True, self.adapter.read(request.target_dn).get(request.attribute)
        except (AdapterUnavailable, KeyError):  # KeyError: the object is not there (yet): a 404, an export lacking it
            return False, None

    def _settle_applying(self, request: CmChangeRequest, now: datetime, apply_again: bool = True) -> None:
        """Settle an APPLYING change from the device's value: ``to`` applied, a third value an
        operator's, ``from`` not applied: FAILED after a rejection or ``max_push_attempts`` transport
        failures, else applied once more when ``apply_again`` (a reconcile), else left for the next one."""
        known, value = self._device_value(request)
        if not known:
            return  # still APPLYING; the next reconcile reads again
        if same_value(value, request.to):
            self._record(request, State.APPLIED, now, "reconcile", {"appliedAt": now.isoformat(),
                         "reason": f"device holds {value!r}: the apply had taken effect"}, applied_at=now,
                         observed=value)
            self._verify_write(request, now)
        elif same_value(value, request.from_):
            last = self.ledger.history(request.change_id)[-1]
            if last.step == "apply-rejected":
                reason = str(last.detail.get("error") or "device rejected the change")
                self._record(request, State.FAILED, now, "device", {"reason": reason, "deviceValue": value},
                             error=reason, observed=value, device_response=last.detail.get("deviceResponse"),
                             alert=self._alert(request, AlertType.CM_FAILED, Severity.MINOR, reason, now))
                return
            failures = self._attempts(request, "apply-error")
            if failures >= self.policy.max_push_attempts:
                reason = (f"the device still holds {value!r} after {failures} applies that ended in transport "
                          f"failures (max_push_attempts {self.policy.max_push_attempts}): "
                          f"{self.ledger.history(request.change_id)[-1].detail.get('error')}")
                self._record(request, State.FAILED, now, "reconcile", {"reason": reason, "deviceValue": value},
                             error=reason, observed=value,
                             alert=self._alert(request, AlertType.CM_FAILED, Severity.MINOR, reason, now))
                return
            if not apply_again:
                return  # still APPLYING, the device on the old value: the next reconcile applies again
            view = self.ledger.get(request.change_id)
            violations = self.guard.check(request, self.context(view.cluster, now))
            if violations:
                reason = "not applied, and the guard now refuses it: " + "; ".join(str(v) for v in violations)
                self._record(request, State.FAILED, now, "reconcile", {"reason": reason, "deviceValue": value},
                             error=reason, observed=value)
                return
            result = self.adapter.apply(request)  # the first apply that takes effect (the device had the old value)
            self._hook("adapter:apply")
            self._after_apply(request, result, now)
        else:
            self._third_value(request, value, now, "", Severity.MAJOR)

    def _third_value(self, request: CmChangeRequest, value: Any, now: datetime, what: str,
                     severity: Severity) -> None:
        """The device holds a value nobody asked for (someone else changed it): FAILED with that value
        and an alert, never overwritten by the runner."""
        reason = (f"{what}device holds {request.attribute}={value!r}, neither the old {request.from_!r} nor the "
                  f"new {request.to!r}: left for an operator")
        self._record(request, State.FAILED, now, "reconcile", {"reason": reason, "deviceValue": value},
                     error=reason, observed=value,
                     alert=self._alert(request, AlertType.CM_FAILED, severity, reason, now))

    def _settle_rolling_back(self, request: CmChangeRequest, now: datetime, restore_again: bool = True) -> None:
        known, value = self._device_value(request)
        if not known:
            return
        if same_value(value, request.from_):
            self._record(request, State.ROLLED_BACK, now, "reconcile", {"observedValue": value,
                         "reason": f"device holds the old value {value!r}"}, observed=value,
                         alert=self._rolled_back_alert(request, now))
        elif same_value(value, request.to):
            failures = self._attempts(request, "restore-error")
            if failures >= self.policy.max_push_attempts:
                reason = (f"roll back: the device still holds the new value {value!r} after {failures} restores "
                          f"that ended in transport failures (max_push_attempts {self.policy.max_push_attempts}): "
                          "left for an operator")
                self._record(request, State.FAILED, now, "reconcile", {"reason": reason, "deviceValue": value},
                             error=reason, observed=value,
                             alert=self._alert(request, AlertType.CM_FAILED, Severity.CRITICAL, reason, now))
            elif restore_again:
                self._restore(request, now)
        else:
            self._third_value(request, value, now, "roll back: ", Severity.CRITICAL)

    def _attempt(self, change_id: str, step: str, run: Callable[..., Any], *args: Any, **kw: Any) -> tuple[bool, Any]:
        """``run(*args, **kw)``, one change's step, so that a change that cannot move on does not hold up
        the others: a step that raises is logged with the change id and the traceback, counted
        (``change_failures``), and the change sits out the next 2**n - 1 attempts (n: its failures
        running, up to ``MAX_HOLD_BACK``). (True, what it returned) when the step ran through."""
        failures, sit_out = self._failing.get(change_id, (0, 0))
        if sit_out:
            self._failing[change_id] = (failures, sit_out - 1)
            return False, None
        try:
            value = run(*args, **kw)
        except Exception as exc:
            failures += 1
            self.change_failures += 1
            self._failing[change_id] = (failures, 2 ** min(failures, MAX_HOLD_BACK) - 1)
            log.error("cm.change_failed", change_id=change_id, step=step, failures=failures,
                      sits_out=2 ** min(failures, MAX_HOLD_BACK) - 1, error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback_field(exc))
            return False, None
        self._failing.pop(change_id, None)
        return True, value

    def reconcile(self, now: datetime | None = None) -> list[ChangeView]:
        """Move every unsettled change on (after a restart, and on every tick); returns them after.
        A change whose step raises is set aside for a while (``_attempt``); the others go on."""
        at = now or datetime.now(UTC)
        touched = []
        for view in self.ledger.changes(UNSETTLED):
            req = view.request
            steps: dict[State, tuple[Callable[..., Any], tuple[Any, ...]]] = {
                State.REQUESTED: (self._decide, (req, view.cluster, at)),
                State.APPROVED: (self._push, (req, view.cluster, at)),
                State.APPLYING: (self._settle_applying, (req, at)),
                State.APPLIED: (self._verify_write, (req, at)),
                State.ROLLING_BACK: (self._settle_rolling_back, (req, at)),
            }
            step = steps.get(view.state)
            if step is None or self._attempt(req.change_id, f"reconcile {view.state.value}", step[0], *step[1])[0]:
                touched.append(self.ledger.get(req.change_id))
        for view in self.ledger.changes([State.OBSERVING]):  # observed long enough, the verdict not recorded
            change_id = view.request.change_id
            if self._attempt(change_id, "judge", self._judge_if_observed, change_id, at) == (True, True):
                touched.append(self.ledger.get(change_id))
        return touched

    def expire(self, now: datetime) -> list[ChangeView]:
        """PENDING_APPROVAL changes older than the policy's approval timeout become EXPIRED."""
        out = []
        reason = f"not approved within approval_timeout_s {self.policy.approval_timeout_s}"
        for view in self.ledger.changes([State.PENDING_APPROVAL]):
            if (now - view.at).total_seconds() >= self.policy.approval_timeout_s:
                req = view.request
                if self._attempt(req.change_id, "expire", self._record, req, State.EXPIRED, now, "guard",
                                 {"reason": reason}, error=reason)[0]:
                    out.append(self.ledger.get(req.change_id))
        return out

    def tick(self, now: datetime) -> None:
        """Periodic housekeeping: reconcile unsettled changes, expire stale approvals."""
        self.reconcile(now)
        self.expire(now)
