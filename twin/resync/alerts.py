"""Alerts of the twin's own loop (divergence, resync outcomes, missing telemetry), shaped for OSS
fault management (ITU-T X.733 / TS 32.111): one id per episode, raised once, cleared once with the
same id.

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
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from twin.cells import is_cell_key
from twin.resync.trigger import TriggerEvent
from twin.schemas import Alert, AlertType, Severity

__all__ = ["DIVERGENCE_CAUSE", "RESYNC_CAUSE", "divergence_alert", "resync_alert", "telemetry_alert"]

DIVERGENCE_CAUSE = "twinModelDivergence"
RESYNC_CAUSE = "twinModelResync"


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


def resync_alert(group: str, record: Mapping[str, Any], at: int, clear: bool = False) -> Alert:
    """The alert of a resync's outcome (``twin.prediction.resync`` record): ``verifying`` (done,
    being verified) WARNING, ``failed`` and ``rolled_back`` MAJOR, each raised once per resync;
    ``clear``: the clear of that alert (a verified resync, or the end of the divergence episode a
    failed or rolled-back resync belonged to). ``at``: the event time (epoch s) of this status."""
    status = str(record["status"])
    alert_id = uuid.uuid5(uuid.NAMESPACE_URL, f"twin:resync-alert:{group}:{record['resyncId']}")
    cells = list(record.get("cells", []))
    change = record.get("change") or {}
    values = {f"{c}.{k}": float(v) for c, per in change.items() for k, v in per.items()
              if isinstance(v, int | float)}
    for key in ("errorBefore", "errorAfter"):
        if isinstance(record.get(key), int | float):
            values[key] = float(record[key])
    texts = {
        "verifying": "the twin's model was resynced to the network (fitted calibration applied); being verified",
        "applied": "the resync held: the twin's error was lower with it",
        "failed": f"the resync could not improve the twin: {record.get('reason')}",
        "rolled_back": f"the resync made the twin worse and was rolled back: {record.get('reason')}",
    }
    return Alert(
        alert_id=str(alert_id),
        raised_at=datetime.fromtimestamp(int(record["at"]) + int(record["gp"]), UTC),
        cell_key=cells[0] if len(cells) == 1 and is_cell_key(cells[0]) else None,
        cluster_id=str(record["clusterId"]),
        severity=Severity.CLEARED if clear else (Severity.WARNING if status == "verifying" else Severity.MAJOR),
        type=AlertType.TWIN_RESYNC,
        kpis=values,
        text=texts.get(status, status) + f" (cells {', '.join(cells)})",
        probable_cause=RESYNC_CAUSE,
        cleared_at=datetime.fromtimestamp(at, UTC) if clear else None,
    )


def telemetry_alert(cluster_id: str, group: str, event: TriggerEvent) -> Alert:
    """The alert of a missing-telemetry episode (``GapTracker.watch_data``; scope ``<cell>|data_gap``
    or ``<cell>|stale_cm``): raised once, cleared with the same id when the cell reports again."""
    cell, _, kind = event.scope.partition("|")
    alert_id = uuid.uuid5(uuid.NAMESPACE_URL, f"twin:{kind}:{group}:{cluster_id}:{cell}:{event.started}")
    if kind == "data_gap":
        type_, cause = AlertType.DATA_GAP, "missingPerformanceData"
        text = (f"cell {cell} did not report PM for the twin's period(s): its KPIs are predicted without it"
                if event.kind == "raised" else f"cell {cell} reports PM again")
    else:
        type_, cause = AlertType.STALE_CM, "staleConfigurationData"
        text = (f"cell {cell}: no CM observed for longer than configured; the twin simulates its last known CM"
                if event.kind == "raised" else f"cell {cell}: CM observed again")
    return Alert(
        alert_id=str(alert_id), raised_at=datetime.fromtimestamp(event.started, UTC),
        cell_key=cell if is_cell_key(cell) else None, cluster_id=cluster_id,
        severity=Severity.MINOR if event.kind == "raised" else Severity.CLEARED, type=type_,
        kpis={k: float(v) for k, v in event.values.items()}, text=text, probable_cause=cause,
        cleared_at=datetime.fromtimestamp(event.period_end, UTC) if event.kind == "cleared" else None,
    )
