"""Telemetry of cells the topology does not list: kept per cell, counted, bounded, never simulated.

A cell that reports before it is configured in a cluster (a new site, a typo in the topology, a
neighbour operator's cell) must not be lost, and must not be simulated as if it belonged to a
made-up cluster. Its normalised records are held here, per cell (or per DN for managed objects
without a cell key), until the topology lists the cell; then they are replayed into its cluster.
Every mirror update is idempotent (PM upserts, MR de-duplicated by event id, CM latest by time), so
replaying a held record that already reached the cluster changes nothing.

The holding is bounded: at most ``max_keys`` cells per partition and ``max_records`` PM/MR records
per cell (CM keeps only the latest record per DN, which bounds it by itself). What does not fit is
returned to the caller (the worker dead-letters it with the reason), never dropped silently.

>>> h = Holding(max_keys=1, max_records=2)
>>> pm = lambda t: ("pm", "nr:00101-000000101", {"gp": 900, "t": t, "v": {}, "s": False})
>>> out = h.add("nr:00101-000000101", [pm(900.0), pm(1800.0), pm(2700.0)])
>>> out.new, [r[2]["t"] for r in out.overflow], out.overflow_reason
(True, [900.0], 'evicted')
>>> h.add("nr:00101-000000102", [pm(900.0)]).overflow_reason
'full'
>>> h.summary()["nr:00101-000000101"]["records"], h.summary()["nr:00101-000000101"]["evicted"]
({'pm': 3}, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from twin.records import CmBody, CmNotificationBody, NormalisedRecord

__all__ = ["Held", "HeldAdd", "Holding"]


@dataclass(slots=True)
class Held:
    """What is held for one cell (or DN): CM by DN (latest only), PM and MR records (newest last)."""

    key: str
    cm: dict[str, NormalisedRecord] = field(default_factory=dict)
    records: list[NormalisedRecord] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # kind -> records received
    evicted: int = 0
    first_t: float | None = None  # event times (epoch s)
    last_t: float | None = None
    alerted: bool = False

    def all_records(self) -> list[NormalisedRecord]:
        """CM first (so a replay configures the cell before its PM arrives), then PM and MR."""
        return [*self.cm.values(), *self.records]

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint form (a copy: records are immutable tuples, shared)."""
        return {"cm": list(self.cm.values()), "r": list(self.records), "n": dict(self.counts), "ev": self.evicted,
                "t0": self.first_t, "t1": self.last_t, "al": self.alerted}

    @classmethod
    def from_dict(cls, key: str, d: dict[str, Any]) -> Held:
        held = cls(key, records=[cast(NormalisedRecord, tuple(r)) for r in d["r"]], counts=dict(d["n"]),
                   evicted=int(d["ev"]), first_t=d["t0"], last_t=d["t1"], alerted=bool(d["al"]))
        for r in d["cm"]:
            record = cast(NormalisedRecord, tuple(r))
            held.cm[cast(CmBody, record[2])["dn"]] = record
        return held


@dataclass(frozen=True, slots=True)
class HeldAdd:
    """The outcome of :meth:`Holding.add`: whether the key is new, and the records that did not fit
    (``overflow_reason`` ``"evicted"``: the oldest of the cell's, pushed out; ``"full"``: the
    holding has no room for another cell)."""

    new: bool
    overflow: list[NormalisedRecord]
    overflow_reason: str | None


def _event_time(record: NormalisedRecord) -> float | None:
    kind, _, body = record
    if kind == "mr":
        return float(cast(tuple[Any, ...], body)[1])
    if kind == "cmdel":
        return None
    return float(cast(dict[str, Any], body)["t"])


class Holding:
    """The held telemetry of one partition: key -> :class:`Held`."""

    def __init__(self, max_keys: int = 1000, max_records: int = 500) -> None:
        self.max_keys = max_keys
        self.max_records = max_records
        self.held: dict[str, Held] = {}
        self.changed: set[str] = set()  # keys added to or removed since the last checkpoint

    def __len__(self) -> int:
        return len(self.held)

    def __iter__(self) -> Iterator[Held]:
        return iter(self.held.values())

    def add(self, key: str, records: Iterable[NormalisedRecord]) -> HeldAdd:
        held = self.held.get(key)
        records = list(records)
        if held is None:
            if len(self.held) >= self.max_keys:
                return HeldAdd(False, records, "full")
            held = self.held[key] = Held(key)
            new = True
        else:
            new = False
        self.changed.add(key)
        for record in records:
            kind = record[0]
            held.counts[kind] = held.counts.get(kind, 0) + 1
            t = _event_time(record)
            if t is not None:
                held.first_t = t if held.first_t is None else min(held.first_t, t)
                held.last_t = t if held.last_t is None else max(held.last_t, t)
            if kind in ("cm", "cmn"):
                body = cast(CmBody | CmNotificationBody, record[2])
                current = held.cm.get(body["dn"])
                if current is None or body["t"] >= cast(CmBody, current[2])["t"]:
                    held.cm[body["dn"]] = record
            elif kind != "cmdel":
                held.records.append(record)
        overflow: list[NormalisedRecord] = []
        extra = len(held.records) - self.max_records
        if extra > 0:
            overflow, held.records = held.records[:extra], held.records[extra:]
            held.evicted += extra
        return HeldAdd(new, overflow, "evicted" if overflow else None)

    def take(self, key: str, wanted: Callable[[NormalisedRecord], bool]) -> list[NormalisedRecord]:
        """Remove and return the PM/MR records held under ``key`` that ``wanted`` accepts, oldest
        first (they leave to be applied elsewhere: ``twin.mirror.identity``); what they counted
        stays counted."""
        held = self.held.get(key)
        if held is None:
            return []
        taken: list[NormalisedRecord] = []
        kept: list[NormalisedRecord] = []
        for record in held.records:
            (taken if wanted(record) else kept).append(record)
        if taken:
            held.records = kept
            self.changed.add(key)
            if not kept and not held.cm:  # nothing waits any more: the key leaves the holding
                del self.held[key]
        return taken

    def pop(self, key: str) -> Held | None:
        self.changed.add(key)
        return self.held.pop(key, None)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per key: records received by kind, records held, evicted, first and last event time."""
        return {key: {"records": dict(sorted(h.counts.items())), "held": len(h.records) + len(h.cm),
                      "evicted": h.evicted, "firstEventTime": h.first_t, "lastEventTime": h.last_t}
                for key, h in sorted(self.held.items())}

    def to_dict(self) -> dict[str, Any]:
        return {key: h.to_dict() for key, h in self.held.items()}

    def snapshot(self) -> Holding:
        """A copy that later ``add`` calls do not change (records are immutable tuples, shared)."""
        copy = Holding(self.max_keys, self.max_records)
        copy.held = {k: Held(h.key, dict(h.cm), list(h.records), dict(h.counts), h.evicted, h.first_t, h.last_t,
                             h.alerted) for k, h in self.held.items()}
        return copy

    @classmethod
    def from_dict(cls, d: dict[str, Any], max_keys: int = 1000, max_records: int = 500) -> Holding:
        holding = cls(max_keys, max_records)
        holding.held = {key: Held.from_dict(key, h) for key, h in d.items()}
        return holding
