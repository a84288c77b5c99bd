"""CM changes: list and show for viewers; approve, reject, roll back and the kill switch for
operators, through ``twin.ledger.decisions`` (the functions ``twin cm`` calls). An approval is first
checked by the guard (``twin.guard.Guard.check``) with the cluster's trust verdict and calibrated
error from the twin; a refusal is a 409 naming each rule, and nothing is recorded. A ledger that
cannot be opened or read is a 503 naming the problem (``twin.api.state.LedgerUnavailable``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Body, Path, Query

from twin.api.deps import Operator, State, Viewer
from twin.api.errors import ApiError, err
from twin.api.models import DecisionIn, KillSwitchIn, KillSwitchOut
from twin.api.state import ApiState
from twin.guard import Guard, GuardContext
from twin.ledger import Ledger
from twin.ledger.decisions import DecisionError, GuardRefusal, decide, set_kill_switch
from twin.ledger.states import State as ChangeState
from twin.ledger.store import ChangeView
from twin.ports import adapter_transport
from twin.schemas import Transport

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["changes"], responses={422: err("a bad field or value (named)")})
log = structlog.get_logger("twin.api")

#: a change id in the path: bounded like the query's names, so that a long one is refused (422, the
#: value truncated) instead of looked up and echoed whole
ChangeId = Annotated[str, Path(max_length=200, description="the change's id (a UUID)")]

_ERRORS: dict[int | str, dict[str, Any]] = {401: err("no or unknown bearer token"),
                                            404: err("unknown change, or no ledger"),
                                            503: err("the CM ledger cannot be opened or read (the problem "
                                                     "named)")}
_DECIDE: dict[int | str, dict[str, Any]] = {
    **_ERRORS, 403: err("a viewer's token: this needs the operator role"),
    409: err("the change is in another state, or the guard refuses it (each rule named)")}


def _ledger(s: ApiState, create: bool = False) -> Ledger:
    led = s.ledger(create=create)
    if led is None:
        raise ApiError(404, f"no CM ledger at {s.ledger_url} (nothing was proposed yet)")
    return led


def _view(view: ChangeView, history: bool = False) -> dict[str, Any]:
    out = view.as_json()
    if history:
        out["request"] = view.request.model_dump(mode="json", by_alias=True)
        out["history"] = [{"step": e.step, "state": e.state.value, "at": e.at.isoformat(), "actor": e.actor,
                           "recordedAt": e.recorded_at.isoformat(), "detail": e.detail} for e in view.history]
    return out


@router.get("/changes", responses={**_ERRORS, 422: err("unknown state (named)")},
            summary="CM changes as they stand, oldest first")
def changes(s: State, _: Viewer,
            state: Annotated[list[ChangeState] | None, Query(max_length=20, description="only these states")] = None,
            cell: Annotated[str | None, Query(max_length=200)] = None,
            cluster: Annotated[str | None, Query(max_length=200)] = None) -> dict[str, Any]:
    wanted = list(state) if state else None
    with s.lock, s.ledger_errors():
        led = s.ledger()
        if led is None:
            return {"changes": []}
        return {"changes": [_view(v) for v in led.changes(wanted, cell_key=cell, cluster=cluster)]}


@router.get("/changes/{change_id}", responses=_ERRORS, summary="One change with its request and every step")
def change(change_id: ChangeId, s: State, _: Viewer) -> dict[str, Any]:
    with s.lock, s.ledger_errors():
        led = _ledger(s)
        try:
            return _view(led.get(change_id), history=True)
        except KeyError:
            raise ApiError(404, f"change {change_id!r} is not in the ledger", "change_id") from None


def _guard_check(s: ApiState, led: Ledger, view: ChangeView) -> list[Any]:
    """The guard's rules on ``view`` now, with the cluster's trust and calibrated error from the twin."""
    twin = s.twin()
    cluster = view.cluster
    now = datetime.now(UTC)
    if twin is None or cluster not in twin.clusters:
        ctx = GuardContext(now=now, cluster=cluster, trusted=False, trust_reasons=["no mirror of the cluster yet"])
    else:
        if s.settings.cm.clock == "event":  # the runner's clock ([cm] clock): its newest period end
            ends = [e for c in twin.mirror(cluster).cells.values() for per in c.periods.values() for e in per]
            if ends:
                now = datetime.fromtimestamp(max(ends), UTC)
        verdict = twin.trust(cluster)
        ctx = GuardContext(now=now, cluster=cluster, trusted=verdict.trusted, trust_reasons=verdict.reasons,
                           calibrated_error=twin.calibrated_error(cluster))
    return list(Guard(s.settings.guard, led).check(view.request, ctx))


def _transport(s: ApiState) -> Transport | None:
    """The configured adapter's transport (what a rejection's result names); None when it has none."""
    try:
        return adapter_transport(s.settings.cm.adapter)
    except (LookupError, AttributeError):
        return None


def _decide(s: ApiState, change_id: str, action: str, by: str, reason: str) -> dict[str, Any]:
    with s.lock, s.ledger_errors(), structlog.contextvars.bound_contextvars(change_id=change_id):
        led = _ledger(s)
        try:
            view = decide(led, change_id, action, by=by, at=datetime.now(UTC), reason=reason,
                          check=(lambda v: _guard_check(s, led, v)) if action == "approve" else None,
                          transport=_transport(s) if action == "reject" else None)
        except GuardRefusal as exc:
            rules = [{"rule": v.rule, "message": v.message, "values": v.values} for v in exc.violations]
            log.warning("api.change_refused", action=action, by=by, rules=[r["rule"] for r in rules])
            raise ApiError(409, str(exc), "change_id", {"rules": rules}) from None
        except DecisionError as exc:
            status = 404 if exc.kind == "not_found" else 409
            raise ApiError(status, str(exc), "change_id",
                           {"state": exc.state.value} if exc.state is not None else None) from None
        log.info("api.change_decided", action=action, by=by, state=view.state.value, cell=view.request.cell_key,
                 cluster=view.cluster)
        return _view(view, history=True)


@router.post("/changes/{change_id}/approve", responses=_DECIDE, summary="Approve a change waiting for approval")
def approve(change_id: ChangeId, s: State, who: Operator,
            body: Annotated[DecisionIn | None, Body()] = None) -> dict[str, Any]:
    return _decide(s, change_id, "approve", who.name, body.reason if body else "")


@router.post("/changes/{change_id}/reject", responses=_DECIDE, summary="Reject a change waiting for approval")
def reject(change_id: ChangeId, s: State, who: Operator,
           body: Annotated[DecisionIn | None, Body()] = None) -> dict[str, Any]:
    return _decide(s, change_id, "reject", who.name, body.reason if body else "")


@router.post("/changes/{change_id}/rollback", responses=_DECIDE, summary="Roll back an applied change")
def rollback(change_id: ChangeId, s: State, who: Operator,
             body: Annotated[DecisionIn | None, Body()] = None) -> dict[str, Any]:
    return _decide(s, change_id, "rollback", who.name, body.reason if body else "")


def _kill(led: Ledger | None) -> KillSwitchOut:
    if led is None:
        return KillSwitchOut(on=False, history=[])
    return KillSwitchOut(on=bool(led.control("kill_switch", False)),
                         history=[{"on": v, "by": a, "at": t.isoformat()} for v, a, t in
                                  led.controls_history("kill_switch")[-50:]])


@router.get("/kill-switch", responses=_ERRORS, summary="The global kill switch and who flipped it")
def kill_switch(s: State, _: Viewer) -> KillSwitchOut:
    with s.lock, s.ledger_errors():
        return _kill(s.ledger())


@router.put("/kill-switch", responses={**_ERRORS, 403: err("needs the operator role")},
            summary="Flip the kill switch (while on, the guard refuses every change)")
def put_kill_switch(body: KillSwitchIn, s: State, who: Operator) -> KillSwitchOut:
    with s.lock, s.ledger_errors():
        led = _ledger(s, create=True)
        set_kill_switch(led, body.on, by=who.name, at=datetime.now(UTC))
        log.warning("api.kill_switch", on=body.on, by=who.name)
        return _kill(led)
