"""``Guard``: the one gate every CM change passes, whatever its origin (optimiser, CLI, API).

It checks a request against the policy (``twin.guard.policy``) and the ledger's view of what is
already happening on the network, and answers with a ``Decision``. A rejection names each rule that
refused and the values it compared, so an operator can see why without reading code. The checks
run twice: when a change is requested and again just before it is pushed (an approval can come
hours later, when another change is in flight or the window has closed).

Rules (``Violation.rule``): ``kill_switch``, ``attribute``, ``value``, ``bounds``, ``max_step``,
``one_in_flight``, ``min_interval``, ``blast_radius``, ``change_window``, ``approval_timeout``,
``trust_gate``, ``calibrated_error``, ``min_gain``, ``baseline``; a request's own ``guard`` spec can only tighten them
(``request_max_step``, ``request_window``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from twin.guard.policy import AttributeRule, GuardPolicy, parse_window
from twin.ledger import IN_FLIGHT, Ledger, State
from twin.schemas import CmChangeRequest

__all__ = ["OBJECTIVE", "Decision", "Guard", "GuardContext", "Violation", "twin_justified"]

OBJECTIVE = "objective"
"""Key of ``expected_kpi_impact`` that carries the predicted objective gain in percent."""

Outcome = Literal["approved", "pending", "dry-run", "rejected"]


@dataclass(frozen=True)
class Violation:
    """One refusing rule, with the values it compared."""

    rule: str
    message: str
    values: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    violations: tuple[Violation, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        """The rules that refused, or what was decided and why (one line for the ledger)."""
        if self.violations:
            return "; ".join(str(v) for v in self.violations)
        return "; ".join(self.notes) or self.outcome


@dataclass(frozen=True)
class GuardContext:
    """What the guard needs beyond the request and the ledger, at the decision's event time.

    ``trusted`` / ``trust_reasons``: the DT-BSM trust verdict of the cell's cluster
    (``Twin.trust``); ``calibrated_error``: the cluster's rolling calibrated error (mean relative);
    ``baseline_periods``: periods of KPI history the verification has for the cluster. ``now`` must
    carry a time zone: a naive time is refused, not guessed (the window rules would read it in the
    host's zone, ``min_interval`` could not compare it with the ledger's times).
    """

    now: datetime
    cluster: str
    trusted: bool | None = None
    trust_reasons: Sequence[str] = ()
    calibrated_error: float | None = None
    baseline_periods: int | None = None

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError(f"GuardContext.now must carry a time zone (got {self.now!r}): a naive time is "
                             "refused, not guessed")


def twin_justified(request: CmChangeRequest) -> bool:
    """A change the twin proposes or predicts: the trust gate and the minimum gain apply to it."""
    return bool(request.expected_kpi_impact) or request.requester.startswith("optimizer")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _in_window(local: time, start: time, end: time) -> bool:
    return start <= local < end if start <= end else (local >= start or local < end)


class Guard:
    """Checks requests against ``policy`` and the ``ledger`` (kill switch, changes in flight)."""

    def __init__(self, policy: GuardPolicy, ledger: Ledger) -> None:
        self.policy = policy
        self.ledger = ledger

    def kill_switch_on(self) -> bool:
        return self.policy.kill_switch or bool(self.ledger.control("kill_switch", False))

    def check(self, request: CmChangeRequest, ctx: GuardContext, *, at_push: bool = False) -> list[Violation]:
        """Every rule ``request`` breaks now (empty: it may go). ``at_push`` adds the baseline rule."""
        p, out = self.policy, []
        if self.kill_switch_on():
            out.append(Violation("kill_switch", "the kill switch is on: no change is pushed", {"killSwitch": True}))
        rule = p.rule_for(request.class_, request.attribute)
        if rule is None:
            out.append(Violation("attribute", f"{request.class_}.{request.attribute}={request.to!r}: attribute is not "
                                 f"in the policy's allowed attributes ({', '.join(sorted(p.attributes))})",
                                 {"attribute": f"{request.class_}.{request.attribute}", "to": request.to}))
        else:
            out += self._value_rules(request, rule)
        _rules, unknown = p.protected_for((k.name, k.max_degradation_pct) for k in request.guard.rollback_kpis)
        if unknown:
            names = ", ".join(map(repr, unknown))
            out.append(Violation("rollback_kpis", f"guard.rollbackKpis names {names}: not among "
                                 f"the policy's protected KPIs ({', '.join(sorted(p.protected_kpis)) or 'none'}), so "
                                 "nothing says whether higher or lower is better and the verification cannot judge "
                                 "it; add it to [guard.protected_kpis]", {"rollbackKpis": unknown}))
        out += self._state_rules(request, ctx)
        out += self._window_rules(request, ctx.now)
        out += self._approval_rules(request, ctx.now)
        if p.trust_gate and twin_justified(request):
            out += self._trust_rules(request, ctx)
        if at_push and (ctx.baseline_periods or 0) < p.baseline_periods:
            out.append(Violation("baseline", f"cluster {ctx.cluster} has {ctx.baseline_periods or 0} periods of KPI "
                                 f"history, the verification needs {p.baseline_periods} before a change",
                                 {"periods": ctx.baseline_periods or 0, "needed": p.baseline_periods}))
        return out

    def _value_rules(self, request: CmChangeRequest, rule: AttributeRule) -> list[Violation]:
        name = f"{request.class_}.{request.attribute}"
        to, old = _number(request.to), _number(request.from_)
        if to is None:
            return [Violation("value", f"{name}={request.to!r}: the new value must be a number", {"to": request.to})]
        if old is None:
            return [Violation("value", f"{name}: 'from' {request.from_!r} must be the current value as a number (a "
                              "change without it cannot be rolled back)", {"from": request.from_})]
        out = []
        if rule.integer and not float(to).is_integer():
            out.append(Violation("value", f"{name}={request.to!r}: must be an integer", {"to": request.to}))
        if not rule.min <= to <= rule.max:
            out.append(Violation("bounds", f"{name}={request.to!r} is outside [{rule.min:g}, {rule.max:g}]",
                                 {"to": request.to, "min": rule.min, "max": rule.max}))
            return out
        if rule.step_scale == "db" and old <= 0:
            return [*out, Violation("value", f"{name}: 'from' {request.from_!r} must be positive for a step in dB",
                                    {"from": request.from_})]
        step = rule.step(old, to)
        unit = " dB" if rule.step_scale == "db" else ""
        if step > rule.max_step:
            out.append(Violation("max_step", f"{name} {request.from_!r} -> {request.to!r} is a step of {step:g}{unit}, "
                                 f"above max_step {rule.max_step:g}{unit}",
                                 {"from": request.from_, "to": request.to, "step": step, "maxStep": rule.max_step}))
        spec = request.guard
        if spec.max_step_db is not None and rule.step_scale == "db" and step > spec.max_step_db:
            out.append(Violation("request_max_step", f"{name} step {step:g} dB is above the request's own "
                                 f"maxStepDb {spec.max_step_db:g}", {"step": step, "maxStepDb": spec.max_step_db}))
        if spec.max_step is not None and rule.step_scale == "linear" and step > spec.max_step:
            out.append(Violation("request_max_step", f"{name} step {step:g} is above the request's own maxStep "
                                 f"{spec.max_step:g}", {"step": step, "maxStep": spec.max_step}))
        return out

    def _state_rules(self, request: CmChangeRequest, ctx: GuardContext) -> list[Violation]:
        p, out = self.policy, []
        others = [v for v in self.ledger.changes(IN_FLIGHT, cluster=ctx.cluster) if v.request.change_id !=
                  request.change_id]
        on_cell = [v.request.change_id for v in others if v.request.cell_key == request.cell_key]
        if on_cell:
            out.append(Violation("one_in_flight", f"cell {request.cell_key} already has change {on_cell[0]} in flight",
                                 {"cellKey": request.cell_key, "inFlight": on_cell}))
        cells = sorted({v.request.cell_key for v in others} - {request.cell_key})
        if len(cells) >= p.max_cells_per_cluster:
            out.append(Violation("blast_radius", f"cluster {ctx.cluster} already has {len(cells)} cells with a change "
                                 f"in flight (max_cells_per_cluster {p.max_cells_per_cluster})",
                                 {"cluster": ctx.cluster, "cells": cells, "max": p.max_cells_per_cluster}))
        last = self.ledger.last_applied_at(request.cell_key)
        if last is not None and ctx.now - last < timedelta(seconds=p.min_interval_s):
            since = int((ctx.now - last).total_seconds())
            when = (f"{since} s ago at {last.isoformat()}" if since >= 0 else  # clocks disagree: a later change
                    f"at {last.isoformat()}, {-since} s after the guard's time {ctx.now.isoformat()}")
            out.append(Violation("min_interval", f"cell {request.cell_key} was changed {when}; min_interval_s is "
                                 f"{p.min_interval_s}",
                                 {"lastAppliedAt": last.isoformat(), "sinceS": since,
                                  "minIntervalS": p.min_interval_s}))
        return out

    def _window_rules(self, request: CmChangeRequest, now: datetime) -> list[Violation]:
        p, out = self.policy, []
        local = now.astimezone(ZoneInfo(p.timezone)).time()
        if p.windows and not any(_in_window(local, *parse_window(w)) for w in p.windows):
            out.append(Violation("change_window", f"{local.strftime('%H:%M')} {p.timezone} is outside the change "
                                 f"windows {p.windows}", {"localTime": local.strftime("%H:%M"), "windows": p.windows}))
        own = request.guard.allowed_window
        if own is not None:
            utc = now.astimezone(ZoneInfo("UTC")).time()
            try:
                start, end = parse_window(own)
            except ValueError as exc:  # a request recorded before the schema checked windows: refused, not raised
                out.append(Violation("request_window", f"guard.allowedWindow {own!r} is not a change window: {exc}",
                                     {"window": own}))
                return out
            if start == end:  # the schema accepts it; read as "start <= t < start" it holds no time at all
                out.append(Violation("request_window", f"guard.allowedWindow {own!r} is empty: its start equals its "
                                     "end, so no time is inside it", {"window": own}))
            elif not _in_window(utc, start, end):
                out.append(Violation("request_window", f"{utc.strftime('%H:%M')} UTC is outside the request's own "
                                     f"allowedWindow {own}", {"utcTime": utc.strftime("%H:%M"), "window": own}))
        return out

    def _approval_rules(self, request: CmChangeRequest, now: datetime) -> list[Violation]:
        """A change that waited ``approval_timeout_s`` or longer for its approval is refused, as the
        runner's expiry (``>=``) would have ended it had it run first: waited from its newest
        PENDING_APPROVAL step to its APPROVED step after it, or to ``now`` when that is earlier (the
        runner's clock, which the expiry reads, e.g. event time against a CLI's wall-clock approval)
        or there is no approval yet (an approval being checked)."""
        history = self.ledger.history(request.change_id)
        pending = [i for i, e in enumerate(history) if e.state is State.PENDING_APPROVAL]
        if not pending:
            return []
        since = history[pending[-1]].at
        approved = next((e.at for e in history[pending[-1] + 1:] if e.state is State.APPROVED), None)
        end = now if approved is None else min(approved, now)
        limit = self.policy.approval_timeout_s
        if end - since < timedelta(seconds=limit):
            return []
        waited = int((end - since).total_seconds())
        what = "no approval yet" if approved is None else f"approved at {approved.isoformat()}"
        return [Violation("approval_timeout", f"waited {waited} s for its approval since {since.isoformat()} "
                          f"({what}, guard's time {now.isoformat()}); approval_timeout_s is {limit}",
                          {"pendingSince": since.isoformat(), "approvedAt": approved and approved.isoformat(),
                           "now": now.isoformat(), "waitedS": waited, "approvalTimeoutS": limit})]

    def _trust_rules(self, request: CmChangeRequest, ctx: GuardContext) -> list[Violation]:
        p, out = self.policy, []
        if not ctx.trusted:
            why = "; ".join(ctx.trust_reasons) or "no trust verdict for the cluster"
            out.append(Violation("trust_gate", f"the twin of cluster {ctx.cluster} is not trusted: {why}",
                                 {"trusted": ctx.trusted, "reasons": list(ctx.trust_reasons)}))
        if ctx.calibrated_error is None or ctx.calibrated_error > p.max_calibrated_error:
            shown = "unknown" if ctx.calibrated_error is None else f"{ctx.calibrated_error:.4g}"
            out.append(Violation("calibrated_error", f"calibrated error of cluster {ctx.cluster} is {shown}; "
                                 f"max_calibrated_error is {p.max_calibrated_error:g}",
                                 {"calibratedError": ctx.calibrated_error, "max": p.max_calibrated_error}))
        gain = request.expected_kpi_impact.get(OBJECTIVE)
        if gain is None or gain < p.min_gain_pct:
            out.append(Violation("min_gain", f"predicted objective gain {gain!r} % is below min_gain_pct "
                                 f"{p.min_gain_pct:g} (or not given)", {"gainPct": gain, "min": p.min_gain_pct}))
        return out

    def decide(self, request: CmChangeRequest, ctx: GuardContext) -> Decision:
        """Rejected (with every violation), else by mode: dry-run, approved (auto) or pending."""
        violations = self.check(request, ctx)
        if violations:
            return Decision("rejected", tuple(violations))
        notes = [] if twin_justified(request) else ["not twin-justified: trust gate and minimum gain not applied"]
        if request.dry_run or self.policy.mode == "dry-run":
            return Decision("dry-run", notes=(*notes, "dry run: validated by the device, not applied"))
        if self.policy.mode == "auto":
            return Decision("approved", notes=(*notes, "auto mode: every rule passed"))
        return Decision("pending", notes=(*notes, "manual mode: waits for an operator's approval"))
