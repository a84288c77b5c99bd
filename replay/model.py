"""What readers yield: records ready to publish, rejected input units, and notices.

Every reader turns each *input unit* (a CSV row, a PM ``measValue``, a JSONL line, a Parquet row)
into exactly one outcome, so a replay can prove that nothing was lost: ``units`` says how many input
units an outcome stands for (a PM record merges the ``measValue`` blocks of one object and period).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from twin import topics
from twin.schemas import WireModel

__all__ = ["Item", "Notice", "Outcome", "Outcomes", "Rejection", "event_time_of", "key_of"]


@dataclass(frozen=True, slots=True)
class Item:
    """One validated record for ``topic``, keyed by ``key`` (the cell key, or DN for CM snapshots)."""

    topic: str
    key: str | None
    event_time: datetime | None
    record: WireModel
    units: int = 1
    source: str = ""  # the input it came from, and where in it: what a rejection of it names
    where: str = ""


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input unit that did not become a record; ``raw`` keeps its original bytes."""

    source: str
    where: str
    reason: str
    error_class: str
    raw: bytes
    topic: str
    field: str | None = None
    units: int = 1

    def describe(self) -> str:
        return f"{self.source} {self.where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Notice:
    """Something a reader tolerated but the operator should know about (e.g. a vendor quirk)."""

    source: str
    message: str


Outcome = Item | Rejection | Notice
Outcomes = Iterator[Outcome]


def event_time_of(record: WireModel) -> datetime | None:
    """The time that drives pacing and ordering: when the reported thing happened.

    >>> from twin.schemas import TopologyCell
    >>> event_time_of(TopologyCell(cell_key="nr:00101-00000a01c")) is None
    True
    """
    for attr in ("event_time", "period_end", "observed_at", "raised_at", "requested_at", "applied_at"):
        value = getattr(record, attr, None)
        if isinstance(value, datetime):
            return value
    rejected_at = getattr(record, "rejected_at", None)
    return rejected_at if isinstance(rejected_at, datetime) else None


def key_of(topic: str, record: WireModel) -> str | None:
    """The Kafka key telemetry.md §7 prescribes: the cell key, the DN for CM snapshots.

    >>> from twin.schemas import TopologyCell
    >>> key_of(topics.TOPOLOGY, TopologyCell(cell_key="nr:00101-00000a01c"))
    'nr:00101-00000a01c'
    """
    if topic == topics.CM_SNAPSHOT:
        return str(getattr(record, "dn"))  # noqa: B009 - typed as WireModel
    cell = getattr(record, "cell_key", None)
    return str(cell) if cell is not None else None
