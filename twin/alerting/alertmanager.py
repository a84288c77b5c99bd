"""The twin's alerts as Alertmanager webhook notifications (payload version "4").

A receiver written for Prometheus Alertmanager's ``webhook_config`` (a ticketing bridge, an
on-call tool, an SMO's fault manager) reads the twin's alerts unchanged. One notification is one
group: alerts of one ``alertname`` (the alert type) and cluster, with the labels and annotations
common to all of them, ``status`` firing while any alert in it is.

An alert's identity is its labels, and a receiver matches a resolve to its fire by them, so the
labels are what does not change between an alert's raise and its clear: ``alertname`` (type),
``alert_id``, ``cluster``, ``cell``, ``source``. The X.733 severity changes (a resync is raised
WARNING, then MAJOR, and cleared as CLEARED), so it is an annotation, as are the text, the
probable cause, the KPI values and a related CM change. ``fingerprint`` is Alertmanager's: the
64-bit FNV-1a of the sorted label names and values, in hex.

>>> from datetime import UTC, datetime
>>> from twin.schemas import Alert
>>> a = Alert(alert_id="0b6e5f2a-7a1c-5c6e-9d2e-0f9e1b2c3d4e", raised_at=datetime(2026, 1, 1, 12, tzinfo=UTC),
...           cell_key="nr:00101-000000202", cluster_id="c1", severity="MAJOR", type="TWIN_DIVERGENCE",
...           text="the twin diverges")
>>> n = notification([a], receiver="noc", external_url="http://twin:8080")
>>> n["version"], n["status"], n["groupKey"], n["alerts"][0]["endsAt"]
('4', 'firing', '{}:{alertname="TWIN_DIVERGENCE", cluster="c1"}', '0001-01-01T00:00:00Z')
>>> n["alerts"][0]["labels"]["alertname"], n["alerts"][0]["annotations"]["severity"]
('TWIN_DIVERGENCE', 'major')
>>> notification([], receiver="noc")
Traceback (most recent call last):
...
ValueError: a notification needs at least one alert
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from twin.schemas import Alert, Severity

__all__ = ["ZERO_TIME", "alert_labels", "fingerprint", "group_key", "groups", "notification", "to_webhook_alert"]

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time: Alertmanager's endsAt of an alert still firing
GROUP_BY = ("alertname", "cluster")
SOURCE = "ran-twin"

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_SEP = 0xFF  # Prometheus' label separator byte


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's alert fingerprint: FNV-1a 64 over each sorted label's name, 0xff, value, 0xff.

    >>> fingerprint({})
    'cbf29ce484222325'
    >>> fingerprint({"b": "2", "a": "1"}) == fingerprint({"a": "1", "b": "2"})
    True
    """
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name.encode(), labels[name].encode()):
            for byte in (*part, _SEP):
                h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def alert_labels(a: Alert) -> dict[str, str]:
    """The labels of an alert: the same for its raise and its clear."""
    labels = {"alertname": str(a.type), "alert_id": str(a.alert_id), "source": SOURCE}
    if a.cluster_id:
        labels["cluster"] = a.cluster_id
    if a.cell_key:
        labels["cell"] = a.cell_key
    return labels


def to_webhook_alert(a: Alert, external_url: str = "") -> dict[str, Any]:
    """One alert of a notification: resolved when its record is a clear (severity CLEARED)."""
    resolved = Severity(a.severity) is Severity.CLEARED
    labels = alert_labels(a)
    annotations = {"severity": str(a.severity).lower(), "summary": f"{a.type} on {a.cell_key or a.cluster_id}"}
    if a.text:
        annotations["description"] = a.text
    if a.probable_cause:
        annotations["probable_cause"] = a.probable_cause
    if a.kpis:
        annotations["kpis"] = json.dumps(a.kpis, sort_keys=True)
    if a.related_change_id:
        annotations["related_change_id"] = str(a.related_change_id)
    base = external_url.rstrip("/")
    return {
        "status": "resolved" if resolved else "firing",
        "labels": labels,
        "annotations": annotations,
        "startsAt": _rfc3339(a.raised_at),
        "endsAt": _rfc3339(a.cleared_at or a.raised_at) if resolved else ZERO_TIME,
        "generatorURL": f"{base}/api/v1/alerts/{a.alert_id}" if base else "",
        "fingerprint": fingerprint(labels),
    }


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    first = maps[0]
    return {k: v for k, v in sorted(first.items()) if all(m.get(k) == v for m in maps[1:])}


def group_key(group_labels: Mapping[str, str], route: str = "{}") -> str:
    """Alertmanager's group key: the route's matchers, then the group's labels (sorted, quoted)."""
    inner = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(group_labels.items()))
    return f"{route}:{{{inner}}}"


def notification(alerts: Sequence[Alert], receiver: str, external_url: str = "",
                 max_alerts: int | None = None) -> dict[str, Any]:
    """The webhook payload for ``alerts`` (one group: they should share type and cluster); past
    ``max_alerts`` the rest are counted in ``truncatedAlerts``. An alert given more than once (its
    raise and its clear queued together) is sent once, as its latest record: Alertmanager never
    sends one fingerprint twice, and the group's status follows what the alerts are now.

    >>> from datetime import UTC, datetime
    >>> up = Alert(alert_id="0b6e5f2a-7a1c-5c6e-9d2e-0f9e1b2c3d4e", cluster_id="c1", severity="MAJOR",
    ...            raised_at=datetime(2026, 1, 1, 12, tzinfo=UTC), type="DATA_GAP")
    >>> down = up.model_copy(update={"severity": "CLEARED", "cleared_at": datetime(2026, 1, 1, 13, tzinfo=UTC)})
    >>> n = notification([up, down], "twin")
    >>> n["status"], [a["status"] for a in n["alerts"]]
    ('resolved', ['resolved'])
    """
    if not alerts:
        raise ValueError("a notification needs at least one alert")
    latest: dict[str, Alert] = {}
    for a in alerts:  # first appearance keeps the order, a later record replaces the earlier
        latest[str(a.alert_id)] = a
    alerts = list(latest.values())
    shown = alerts[:max_alerts] if max_alerts is not None else alerts
    items = [to_webhook_alert(a, external_url) for a in shown]
    labels = [i["labels"] for i in items]
    group = {k: v for k, v in labels[0].items() if k in GROUP_BY and all(m.get(k) == v for m in labels)}
    return {
        "version": "4",
        "groupKey": group_key(group),
        "truncatedAlerts": len(alerts) - len(shown),
        "status": "firing" if any(i["status"] == "firing" for i in items) else "resolved",
        "receiver": receiver,
        "groupLabels": group,
        "commonLabels": _common(labels),
        "commonAnnotations": _common([i["annotations"] for i in items]),
        "externalURL": external_url,
        "alerts": items,
    }


def groups(alerts: Sequence[Alert]) -> list[list[Alert]]:
    """Alerts split into notification groups by type and cluster, in order of first appearance.

    >>> from datetime import UTC, datetime
    >>> def mk(t, c): return Alert(alert_id="0b6e5f2a-7a1c-5c6e-9d2e-0f9e1b2c3d4e", cluster_id=c,
    ...     raised_at=datetime(2026, 1, 1, tzinfo=UTC), severity="MAJOR", type=t)
    >>> [[(str(a.type), a.cluster_id) for a in g] for g in groups([mk("DATA_GAP", "a"), mk("STALE_CM", "a"),
    ...                                                      mk("DATA_GAP", "a"), mk("DATA_GAP", "b")])]
    [[('DATA_GAP', 'a'), ('DATA_GAP', 'a')], [('STALE_CM', 'a')], [('DATA_GAP', 'b')]]
    """
    out: dict[tuple[str, str], list[Alert]] = {}
    for a in alerts:
        out.setdefault((str(a.type), a.cluster_id or ""), []).append(a)
    return list(out.values())
