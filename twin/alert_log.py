"""The alert log: what ``ran.alerts.v1`` says, folded per alert id into its current state.

An alert is raised once and cleared once with the same id (X.733); a log read from the topic may
hold a record twice (at least once delivery) and a raise updated by a later one (a resync first
WARNING then MAJOR). The fold keeps, per id, the first raise time, the latest severity and text,
and the clear time once a CLEARED record came.

>>> from datetime import UTC, datetime
>>> from twin.schemas import Alert
>>> up = Alert(alert_id="0b6e5f2a-7a1c-5c6e-9d2e-0f9e1b2c3d4e", raised_at=datetime(2026, 1, 1, 12, 15, tzinfo=UTC),
...            cell_key="nr:00101-000000202", severity="MAJOR", type="TWIN_DIVERGENCE")
>>> down = up.model_copy(update={"severity": "CLEARED", "cleared_at": datetime(2026, 1, 1, 13, tzinfo=UTC)})
>>> [(a.type, a.severity, a.active) for a in fold([up, up, down])]
[('TWIN_DIVERGENCE', 'MAJOR', False)]
>>> [a.active for a in fold([up])]
[True]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from twin.schemas import Alert, AlertType, Severity

__all__ = ["AlertState", "fold"]


@dataclass
class AlertState:
    alert_id: str
    type: str
    severity: str  # the latest severity other than CLEARED
    raised_at: datetime
    cell_key: str | None
    cluster_id: str | None
    text: str | None
    probable_cause: str | None
    kpis: dict[str, float]
    cleared_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.cleared_at is None

    def to_dict(self) -> dict[str, Any]:
        return {"alertId": self.alert_id, "type": self.type, "severity": self.severity, "active": self.active,
                "raisedAt": self.raised_at.isoformat(), "clearedAt": self.cleared_at.isoformat()
                if self.cleared_at else None, "cellKey": self.cell_key, "clusterId": self.cluster_id,
                "probableCause": self.probable_cause, "text": self.text, "kpis": self.kpis}


def fold(alerts: Iterable[Alert]) -> list[AlertState]:
    """The alerts' current states, by first raise time (then id)."""
    states: dict[str, AlertState] = {}
    for a in alerts:
        severity = Severity(a.severity)
        s = states.get(str(a.alert_id))
        if s is None:
            s = states[str(a.alert_id)] = AlertState(
                str(a.alert_id), AlertType(a.type).value, severity.value, a.raised_at, a.cell_key, a.cluster_id,
                a.text, a.probable_cause, dict(a.kpis))
        if severity is Severity.CLEARED:
            s.cleared_at = a.cleared_at or a.raised_at
            continue
        s.severity, s.text, s.kpis = severity.value, a.text, dict(a.kpis)
        s.raised_at = min(s.raised_at, a.raised_at)
    return sorted(states.values(), key=lambda s: (s.raised_at, s.alert_id))
