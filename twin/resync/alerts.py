"""Alerts of the twin's repair loop, shaped for OSS fault management (ITU-T X.733 / TS 32.111):
one id per episode, raised once, cleared once with the same id.

>>> from twin.resync.trigger import TriggerEvent
>>> up = TriggerEvent("raised", "nr:00101-000000104", 1_700_000_100, 1_700_000_100, ("drift",), {"surprise": 1.01})
>>> a = divergence_alert("emu-fault-midrun", "twin-worker", up)
>>> a.severity.value, a.type.value, a.cell_key, a.probable_cause, a.cleared_at is None
('MAJOR', 'TWIN_DIVERGENCE', 'nr:00101-000000104', 'twinModelDivergence', True)
>>> down = TriggerEvent("cleared", up.scope, 1_700_003_700, up.started, ("drift",), {"surprise": 0.02})
>>> b = divergence_alert("emu-fault-midrun", "twin-worker", down)
>>> b.alert_id == a.alert_id, b.severity.value, b.cleared_at.isoformat()
(True, 'CLEARED', '2023-11-14T23:15:00+00:00')
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from twin.cells import is_cell_key
from twin.resync.trigger import TriggerEvent
from twin.schemas import Alert, AlertType, Severity

__all__ = ["DIVERGENCE_CAUSE", "divergence_alert"]

DIVERGENCE_CAUSE = "twinModelDivergence"


def divergence_alert(cluster_id: str, group: str, event: TriggerEvent) -> Alert:
    """The alert of a divergence episode's start or end. Its id derives from the worker group, the
    cluster, the scope and the episode's start, so a redelivered or re-predicted period raises the
    same alert, and the clear names the alert it clears. Times are event times (period ends)."""
    alert_id = uuid.uuid5(uuid.NAMESPACE_URL, f"twin:divergence:{group}:{cluster_id}:{event.scope}:{event.started}")
    cell = event.scope if is_cell_key(event.scope) else None
    sources = ", ".join(event.sources)
    if event.kind == "raised":
        text = (f"the twin diverges from the network at {event.scope} (signalled by {sources}); "
                "a resync of its cluster is due")
    else:
        text = f"the twin follows the network again at {event.scope}: no divergence signal for the last periods"
    return Alert(
        alert_id=str(alert_id),
        raised_at=datetime.fromtimestamp(event.started, UTC),
        cell_key=cell,
        cluster_id=cluster_id,
        severity=Severity.MAJOR if event.kind == "raised" else Severity.CLEARED,
        type=AlertType.TWIN_DIVERGENCE,
        kpis={k: float(v) for k, v in event.values.items()},
        text=text,
        probable_cause=DIVERGENCE_CAUSE,
        cleared_at=datetime.fromtimestamp(event.period_end, UTC) if event.kind == "cleared" else None,
    )
