"""Normalised telemetry records: what ``twin.ingest`` produces and the mirror applies.

A record is a tagged tuple ``(kind, cell_key, body)``: the ``Literal`` tag says which body it
carries, so a reader (and mypy) knows every field without looking at the decoder. The form is
deliberately plain (tuples, dicts, lists), because records cross the re-keying topic by the hundred
thousand inside JSON envelopes: encoding and decoding them costs nothing beyond the JSON itself,
and after that round trip a tuple comes back as a list, which reads the same. Times are epoch
seconds (UTC); keys are short because they are repeated in every envelope.

========  ==================================  ============================================
kind      body                                from
========  ==================================  ============================================
``pm``    :class:`PmBody`                      ``ran.pm.cell.v1``
``pmr``   :class:`PmRelationBody`              ``ran.pm.relation.v1``
``cm``    :class:`CmBody`                      ``ran.cm.snapshot.v1`` (cell key may be None)
``cmn``   :class:`CmNotificationBody`          ``ran.cm.notifications.v1``
``cmdel`` :class:`CmDeletionBody`              a tombstone on ``ran.cm.snapshot.v1`` (no cell)
``mr``    :data:`MrBody` (positional)          ``ran.mr.ue.v1``
========  ==================================  ============================================

>>> record: NormalisedRecord = ("pm", "nr:00101-00000a01c", {"gp": 900, "t": 1.7e9, "v": {"RRU.PrbTotDl": 63.0},
...                             "s": False, "dn": "ManagedElement=1,NRCellDU=1", "oc": "NRCellDU"})
>>> kind, cell, body = record
>>> kind, body["gp"]
('pm', 900)
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "MR_FIELDS",
    "CmBody",
    "CmDeletionBody",
    "CmNotificationBody",
    "MrBody",
    "MrNeighbour",
    "NormalisedCm",
    "NormalisedCmDeletion",
    "NormalisedCmNotification",
    "NormalisedMr",
    "NormalisedPm",
    "NormalisedPmRelation",
    "NormalisedRecord",
    "PmBody",
    "PmRelationBody",
    "RecordKind",
]

RecordKind = Literal["pm", "pmr", "cm", "cmn", "cmdel", "mr"]


class PmBody(TypedDict):
    """One PM period of one measured object."""

    gp: int  # granularity period, s
    t: float  # period end, epoch s
    v: dict[str, float]  # measurement name (TS 28.552) -> value
    s: bool  # suspect flag
    dn: NotRequired[str]  # measured object's DN
    oc: NotRequired[str]  # measured object's class


class PmRelationBody(PmBody):
    """PM of a cell relation: ``tc`` is the target cell key."""

    tc: str


class CmBody(TypedDict):
    """A CM snapshot of one managed object instance."""

    dn: str
    cls: str  # object class (TS 28.541), e.g. NRCellDU
    a: dict[str, Any]  # attribute -> value
    t: float  # observedAt, epoch s
    src: NotRequired[str]  # source system


class CmNotificationBody(TypedDict):
    """A CM change notification (TS 28.532 notifyMOIAttributeValueChanges, creation, deletion)."""

    dn: str
    cls: str | None
    nt: str  # notification type
    a: dict[str, Any]  # attribute -> new value
    t: float  # eventTime, epoch s
    id: NotRequired[int | str]  # notification id


class CmDeletionBody(TypedDict):
    """A tombstone: the instance ``dn`` no longer exists."""

    dn: str


#: a neighbour measurement: (cell key or ``pci:<pci>:<arfcn>``, RSRP in dBm or None)
MrNeighbour = tuple[str, float | None]
#: field names of :data:`MrBody`, in order
MR_FIELDS = ("eventId", "t", "rsrpIdx", "rsrqIdx", "sinrIdx", "neighbours", "dlThroughputKbps", "cqi", "location")
#: one UE measurement report, positional (``MR_FIELDS``): event id, event time (epoch s), the
#: serving cell's 7-bit RSRP / RSRQ / SINR reporting indices (TS 38.133), neighbours, DL throughput
#: (kbit/s), CQI and the UE's position (lat, lon in degrees, accuracy in m or None), each None when
#: not reported. Bodies of older versions have no position (8 fields): readers take ``body[:8]``.
MrBody = tuple[str, float, int | None, int | None, int | None, list[MrNeighbour], float | None, int | None,
               tuple[float, float, float | None] | None]

NormalisedPm = tuple[Literal["pm"], str, PmBody]
NormalisedPmRelation = tuple[Literal["pmr"], str, PmRelationBody]
NormalisedCm = tuple[Literal["cm"], str | None, CmBody]
NormalisedCmNotification = tuple[Literal["cmn"], str, CmNotificationBody]
NormalisedCmDeletion = tuple[Literal["cmdel"], None, CmDeletionBody]
NormalisedMr = tuple[Literal["mr"], str, MrBody]
NormalisedRecord = (NormalisedPm | NormalisedPmRelation | NormalisedCm | NormalisedCmNotification
                    | NormalisedCmDeletion | NormalisedMr)
