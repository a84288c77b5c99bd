"""Time-series points: what the twin writes to InfluxDB (or the local store), and how it is named.

A :class:`Point` is one line of InfluxDB's data model: a measurement, string tags that identify the
series, typed fields, and an event time in nanoseconds. The measurements and their tags are fixed
here so the dashboard, Grafana and the local store's queries name the same things:

=================  ==================================  ============================================
measurement        tags                                fields
=================  ==================================  ============================================
``twin_kpi``       cluster, cell, kpi, kind            value (kind: real, predicted or calibrated)
``twin_gap``       cluster, cell, kpi                  raw (real - predicted), calibrated (real -
                                                       calibrated, once the gap learners gave one)
``twin_dtbsm``     cluster                             value, lower, upper, coverage, tau, firing
``twin_resync``    cluster, status                     errorBefore, errorAfter, resyncId
``twin_alert``     type, severity, cluster?, cell?     active (1 raised / 0 cleared), alertId, text
``twin_change``    cell, state, source                 changes, changeId, reason
=================  ==================================  ============================================

The time is the event time: a KPI's period end, an alert's raise (or clear) time. Writing the same
series and time again overwrites its fields (InfluxDB's rule, kept by the local store), so the
runtime's at-least-once replays leave no duplicates.

>>> p = Point("twin_kpi", {"cluster": "c1", "cell": "nr:00101-000000101", "kpi": "DRB.UEThpDl",
...           "kind": "real"}, {"value": 51234.5}, 1_767_225_600_000_000_000)
>>> p.series_key()
'twin_kpi,cell=nr:00101-000000101,cluster=c1,kind=real,kpi=DRB.UEThpDl'
>>> Point("twin_kpi", {"kind": "guess"}, {"value": 1.0}, 0)
Traceback (most recent call last):
...
ValueError: point twin_kpi: tag kind 'guess' is not one of real, predicted, calibrated
>>> Point("twin_kpi", {}, {"value": float("nan")}, 0)
Traceback (most recent call last):
...
ValueError: point twin_kpi: field value nan is not a finite number
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "ALERT",
    "CHANGE",
    "DTBSM",
    "GAP",
    "KINDS",
    "KPI",
    "MEASUREMENTS",
    "RESYNC",
    "FieldValue",
    "Point",
    "to_ns",
]

KPI = "twin_kpi"
GAP = "twin_gap"
DTBSM = "twin_dtbsm"
RESYNC = "twin_resync"
ALERT = "twin_alert"
CHANGE = "twin_change"
MEASUREMENTS = (KPI, GAP, DTBSM, RESYNC, ALERT, CHANGE)
KINDS = ("real", "predicted", "calibrated")

FieldValue = float | int | bool | str


def to_ns(at: datetime | int | float) -> int:
    """Nanoseconds since the epoch of a timezone-aware datetime or epoch seconds.

    >>> from datetime import UTC
    >>> to_ns(datetime(2026, 1, 1, tzinfo=UTC)), to_ns(1_767_225_600)
    (1767225600000000000, 1767225600000000000)
    >>> to_ns(datetime(2026, 1, 1))
    Traceback (most recent call last):
    ...
    ValueError: time 2026-01-01 00:00:00 has no timezone
    """
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError(f"time {at} has no timezone")
        return int(at.timestamp()) * 1_000_000_000 + at.microsecond * 1000
    return round(at * 1_000_000_000) if isinstance(at, float) else int(at) * 1_000_000_000


@dataclass(frozen=True, slots=True)
class Point:
    """One point of one series; invalid names or values raise a ``ValueError`` naming them."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time_ns: int

    def __post_init__(self) -> None:
        where = f"point {self.measurement or '?'}"
        if not self.measurement:
            raise ValueError("point: measurement is empty")
        for key, value in self.tags.items():
            if not key or not isinstance(value, str) or not value:
                raise ValueError(f"{where}: tag {key!r} value {value!r} must be a non-empty string")
        kind = self.tags.get("kind")
        if self.measurement == KPI and kind is not None and kind not in KINDS:
            raise ValueError(f"{where}: tag kind {kind!r} is not one of {', '.join(KINDS)}")
        if not self.fields:
            raise ValueError(f"{where}: no fields")
        for key, v in self.fields.items():
            if not key:
                raise ValueError(f"{where}: a field has an empty name")
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{where}: field {key} {v} is not a finite number")
            if not isinstance(v, float | int | bool | str):
                raise ValueError(f"{where}: field {key} {v!r} is not a number, boolean or string")
        if not isinstance(self.time_ns, int) or isinstance(self.time_ns, bool):
            raise ValueError(f"{where}: time_ns {self.time_ns!r} is not an integer")

    def series_key(self) -> str:
        """The series' identity: measurement and sorted tags (InfluxDB's series key, unescaped)."""
        return ",".join([self.measurement, *(f"{k}={v}" for k, v in sorted(self.tags.items()))])
