"""An operator's decisions on the ledger: approve, reject, roll back, the kill switch.

``twin cm approve|reject|rollback|kill-switch`` and the REST API call these same functions, so a
decision is recorded the same way whoever makes it. A decision is only recorded; the change
runner (``twin cm serve``, the demo's loop) acts on it at its next tick, after the guard checks
the change again. An approval given ``check`` (the API passes the guard's rules) is refused, and
nothing recorded, while the guard would refuse the push.

>>> from datetime import UTC, datetime
>>> from twin.ledger import open_ledger
>>> led = open_ledger(":memory:")
>>> decide(led, "nope", "approve", by="ann", at=datetime(2026, 1, 1, tzinfo=UTC))
Traceback (most recent call last):
...
twin.ledger.decisions.DecisionError: change 'nope' is not in the ledger
>>> decide(led, "x", "promote", by="ann", at=datetime(2026, 1, 1, tzinfo=UTC))
Traceback (most recent call last):
...
ValueError: action 'promote' is not one of approve, reject, rollback
>>> set_kill_switch(led, True, by="ann", at=datetime(2026, 1, 1, tzinfo=UTC)), led.control("kill_switch")
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

from twin import topics
from twin.ledger.states import State
from twin.ledger.store import ChangeView, Ledger, LedgerError
from twin.schemas import ChangeState, CmChangeResult, Transport

__all__ = ["ACTIONS", "Action", "DecisionError", "GuardRefusal", "decide", "set_kill_switch"]

Action = Literal["approve", "reject", "rollback"]

ACTIONS: dict[str, tuple[frozenset[State], State]] = {
    "approve": (frozenset({State.PENDING_APPROVAL}), State.APPROVED),
    "reject": (frozenset({State.PENDING_APPROVAL}), State.DENIED),
    "rollback": (frozenset({State.APPLIED, State.OBSERVING, State.CONFIRMED}), State.ROLLING_BACK),
}
"""Per action: the states it needs and the state it records."""


class DecisionError(RuntimeError):
    """A decision the ledger cannot take: ``kind`` is ``not_found``, ``wrong_state`` or ``ledger``."""

    def __init__(self, message: str, kind: str, state: State | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.state = state


class GuardRefusal(DecisionError):
    """An approval the guard refuses now; ``violations`` are ``twin.guard.Violation`` objects."""

    def __init__(self, message: str, violations: Sequence[Any]) -> None:
        super().__init__(message, "guard")
        self.violations = list(violations)


def decide(ledger: Ledger, change_id: str, action: str, *, by: str, at: datetime, reason: str = "",
           check: Callable[[ChangeView], Sequence[Any]] | None = None,
           transport: Transport | None = None) -> ChangeView:
    """Record ``action`` on ``change_id`` by ``by``; the change as it stands afterwards.

    ``check(view)`` (approvals only) returns the guard's violations; any refuses the approval with
    :class:`GuardRefusal` naming the rules. A rejection ends the change, so it owes its requester a
    result: with ``transport`` (the configured adapter's, ``twin.ports.adapter_transport``) a
    REJECTED result naming who and why goes into the ledger's outbox with the step, for
    ``twin cm serve`` to send.
    """
    if action not in ACTIONS:
        raise ValueError(f"action {action!r} is not one of {', '.join(ACTIONS)}")
    needs, state = ACTIONS[action]
    try:
        view = ledger.get(change_id)
    except KeyError:
        raise DecisionError(f"change {change_id!r} is not in the ledger", "not_found") from None
    if view.state not in needs:
        wanted = ", ".join(sorted(s.value for s in needs))
        raise DecisionError(f"change {change_id} is {view.state.value}; this needs {wanted}", "wrong_state",
                            view.state)
    if action == "approve" and check is not None:
        violations = list(check(view))
        if violations:
            raise GuardRefusal(f"the guard refuses change {change_id}: "
                               + "; ".join(str(v) for v in violations), violations)
    default = {"approve": f"approved by {by}", "reject": f"rejected by {by}", "rollback": f"rolled back by {by}"}
    why = reason or default[action]
    outbox = []
    if action == "reject" and transport is not None:
        result = CmChangeResult(change_id=change_id, cell_key=view.request.cell_key, state=ChangeState.REJECTED,
                                transport=transport, error=f"rejected by {by}: {reason}" if reason else why)
        outbox.append((topics.CHANGE_RESULTS, view.request.cell_key, result.to_json_bytes().decode()))
    try:
        ledger.append(change_id, state, at=at, actor=by, detail={"reason": why}, outbox=outbox)
    except LedgerError as exc:
        raise DecisionError(str(exc), "ledger") from exc
    return ledger.get(change_id)


def set_kill_switch(ledger: Ledger, on: bool, *, by: str, at: datetime) -> bool:
    """Flip the global kill switch (while on, the guard refuses every change); returns it."""
    ledger.set_control("kill_switch", bool(on), by, at)
    return bool(ledger.control("kill_switch", False))
