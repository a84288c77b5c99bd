"""The twin's outputs as time-series points (``twin.timeseries.points`` names them).

One function per output: a predicted period with the real values it was compared with, a DT-BSM
computation, a resync record, an alert, a CM change result. They only translate; the sinks write.

>>> from datetime import UTC, datetime
>>> from twin.schemas import Alert
>>> a = Alert(alert_id="0b6e5f2a-7a1c-5c6e-9d2e-0f9e1b2c3d4e", raised_at=datetime(2026, 1, 1, 12, tzinfo=UTC),
...           cell_key="nr:00101-000000202", cluster_id="c1", severity="MAJOR", type="TWIN_DIVERGENCE")
>>> p = alert_point(a)
>>> p.measurement, p.tags["type"], p.fields["active"], p.time_ns
('twin_alert', 'TWIN_DIVERGENCE', 1.0, 1767268800000000000)
"""

from __future__ import annotations

from collections.abc import Mapping

from twin.schemas import Alert, CmChangeResult, Fidelity, Resync, Severity
from twin.timeseries.points import ALERT, CHANGE, DTBSM, GAP, KPI, RESYNC, FieldValue, Point, to_ns

__all__ = ["alert_point", "change_point", "fidelity_point", "period_points", "resync_point"]


def _tags(**tags: str | None) -> dict[str, str]:
    return {k: v for k, v in tags.items() if v}


def period_points(cluster: str, period_end: int, predicted: Mapping[str, Mapping[str, float]],
                  calibrated: Mapping[str, Mapping[str, float]],
                  real: Mapping[str, Mapping[str, float]]) -> list[Point]:
    """A predicted period (epoch s): per cell and KPI the real, predicted and calibrated values
    (``twin_kpi``), and where the cell reported it, the gap (``twin_gap``: real minus raw and minus
    calibrated). Values that are not finite are left out (a KPI a cell could not compute).

    >>> pts = period_points("c1", 900, {"nr:00101-000000101": {"RRU.PrbTotDl": 40.0}},
    ...                     {"nr:00101-000000101": {"RRU.PrbTotDl": 44.0}},
    ...                     {"nr:00101-000000101": {"RRU.PrbTotDl": 45.0}})
    >>> [(p.measurement, p.tags.get("kind"), p.fields) for p in pts]  # doctest: +NORMALIZE_WHITESPACE
    [('twin_kpi', 'predicted', {'value': 40.0}), ('twin_kpi', 'calibrated', {'value': 44.0}),
     ('twin_kpi', 'real', {'value': 45.0}), ('twin_gap', None, {'raw': 5.0, 'calibrated': 1.0})]
    """
    t = period_end * 1_000_000_000
    out: list[Point] = []
    for cell in sorted(set(predicted) | set(real)):
        pred, cal, seen = predicted.get(cell, {}), calibrated.get(cell, {}), real.get(cell, {})
        for kpi in sorted(set(pred) | set(seen)):
            base = {"cluster": cluster, "cell": cell, "kpi": kpi}
            values = {"predicted": pred.get(kpi), "calibrated": cal.get(kpi), "real": seen.get(kpi)}
            for kind, value in values.items():
                if value is not None and _finite(value):
                    out.append(Point(KPI, {**base, "kind": kind}, {"value": float(value)}, t))
            r = values["real"]
            if r is None or not _finite(r):
                continue
            gap: dict[str, FieldValue] = {}
            for name, v in (("raw", values["predicted"]), ("calibrated", values["calibrated"])):
                if v is not None and _finite(v):
                    gap[name] = float(r) - float(v)
            if gap:
                out.append(Point(GAP, base, gap, t))
    return out


def _finite(v: float) -> bool:
    return v == v and v not in (float("inf"), float("-inf"))


def fidelity_point(f: Fidelity) -> Point:
    """A DT-BSM computation of a cluster at its newest period's end."""
    return Point(DTBSM, {"cluster": f.cluster_id},
                 {"value": f.value, "lower": f.lower, "upper": f.upper, "coverage": f.coverage, "tau": f.tau,
                  "firing": 1.0 if f.firing else 0.0}, f.period_end * 1_000_000_000)


def resync_point(r: Resync) -> Point:
    """A resync's status change, at the period end that triggered it (one series per status)."""
    fields: dict[str, FieldValue] = {"resyncId": str(r.resync_id), "cells": float(len(r.cells))}
    if r.error_before is not None:
        fields["errorBefore"] = float(r.error_before)
    if r.error_after is not None:
        fields["errorAfter"] = float(r.error_after)
    return Point(RESYNC, {"cluster": r.cluster_id, "status": r.status}, fields, r.at * 1_000_000_000)


def alert_point(a: Alert) -> Point:
    """An alert raised (``active`` 1, at its raise time) or cleared (0, at its clear time). A clear
    keeps the type and names its severity CLEARED, so raises and clears are separate series."""
    cleared = Severity(a.severity) is Severity.CLEARED
    at = (a.cleared_at or a.raised_at) if cleared else a.raised_at
    fields: dict[str, FieldValue] = {"active": 0.0 if cleared else 1.0, "alertId": str(a.alert_id)}
    if a.text:
        fields["text"] = a.text
    return Point(ALERT, _tags(type=str(a.type), severity=str(a.severity), cluster=a.cluster_id, cell=a.cell_key),
                 fields, to_ns(at))


def change_point(r: CmChangeResult, at_ns: int, source: str = "cm") -> Point:
    """A CM change's result (applied, confirmed, rolled back, failed) on its cell, at ``at_ns``."""
    fields: dict[str, FieldValue] = {"changes": 1.0, "changeId": str(r.change_id)}
    if r.error:
        fields["reason"] = r.error
    return Point(CHANGE, {"cell": r.cell_key, "state": str(r.state), "source": source}, fields, at_ns)
