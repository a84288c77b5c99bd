"""The time-warp replayer: merge sources by event time, pace them, publish in batches, account for all.

- **Order.** Streams are merged by event time (a k-way merge); within one stream the reader's order
  is kept, so per-cell order is event-time order whenever each file is (the Raca and PM readers sort
  their file). Records with one key go to one partition and ``RecordSink.send_many`` keeps order.
- **Pacing.** With ``speed`` X > 0 the record with event time t is published at
  ``start + (t - t0) / X`` on the wall clock (``speed=60``: an hour of history in a minute); gaps
  longer than ``max_gap_s`` of event time are shortened to it (sessions days apart need not wait).
  ``speed=0`` publishes as fast as the sink takes it.
- **Nothing lost.** Every input unit is either published or rejected; rejections are reported with
  their reason and, unless it is a dry run, published to ``ran.dlq.v1`` as ``DeadLetter`` records
  carrying the original bytes.
- **What the ingest would refuse is refused here.** Each record for an ingest topic is decoded
  as the worker's edge will decode it (``twin.ingest.IngestDecoder``, with the same settings): a
  record the readers accept but the ingest refuses (a cumulative counter below zero, a time before
  ``earliest_event_time_s`` or too far ahead, a payload over ``max_payload_bytes``) is rejected
  with the ingest's reason, naming its file and place, so a dry run counts what a live run will
  mirror and the dead letter says where the record came from.
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from replay.model import Item, Outcome, Outcomes, Rejection
from twin import topics
from twin.config import IngestSettings
from twin.ingest import IngestDecoder
from twin.ingest import Rejection as IngestRejection
from twin.ports import OutRecord, RecordSink
from twin.schemas import DeadLetter

__all__ = ["REJECTED_BY", "Publisher", "ReplayReport", "merge"]

REJECTED_BY = "twin.replay"
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|\b\d+(?:\.\d+)?\b")


def reason_kind(reason: str) -> str:
    """A reason with its quoted values and numbers blanked: rejections of one kind share it.

    >>> reason_kind("measObjLdn='X=1': object class 'VlanPort' is not one the twin models")
    "measObjLdn='…': object class '…' is not one the twin models"
    >>> reason_kind("row has 1 fields, the header has 26")
    'row has # fields, the header has #'
    """
    return _QUOTED.sub(lambda m: "#" if m.group()[0].isdigit() else m.group()[0] + "…" + m.group()[0], reason)
_DEAD_LETTERS = "\0dead-letters"  # batch counter of our own dead letters, apart from replayed DLQ records


def merge(streams: Sequence[Outcomes]) -> Iterator[Outcome]:
    """K-way merge by event time; rejections, notices and timeless records keep their place in their stream.

    >>> from twin.schemas import TopologyCell
    >>> cell = TopologyCell(cell_key="nr:00101-000000001")
    >>> def items(*secs):
    ...     for s in secs:
    ...         yield Item("t", "k", datetime.fromtimestamp(s, UTC), cell)
    >>> [int(o.event_time.timestamp()) for o in merge([items(1, 4, 5), items(2, 3, 6)])]
    [1, 2, 3, 4, 5, 6]
    """

    def keyed(index: int, stream: Outcomes) -> Iterator[tuple[float, int, int, Outcome]]:
        last = float("-inf")
        for seq, outcome in enumerate(stream):
            if isinstance(outcome, Item) and outcome.event_time is not None:
                last = outcome.event_time.timestamp()
            yield last, index, seq, outcome

    for *_, outcome in heapq.merge(*(keyed(i, s) for i, s in enumerate(streams))):
        yield outcome


@dataclass
class ReplayReport:
    """What a replay did; ``rows_read == rows_published + rows_rejected`` always holds."""

    dry_run: bool
    speed: float
    rows_read: int = 0
    rows_published: int = 0
    rows_rejected: int = 0
    published: Counter[str] = field(default_factory=Counter)
    dead_lettered: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    first_event_time: datetime | None = None
    last_event_time: datetime | None = None
    wall_s: float = 0.0

    def reasons(self) -> list[dict[str, Any]]:
        """Rejections grouped by (field, error class, kind of reason), most frequent first, with one example
        each: two different reasons on one field are two entries (see :func:`reason_kind`)."""
        counts: Counter[tuple[str | None, str, str]] = Counter()
        example: dict[tuple[str | None, str, str], str] = {}
        for r in self.rejected:
            key = (r.field, r.error_class, reason_kind(r.reason))
            counts[key] += r.units
            example.setdefault(key, r.reason)
        return [
            {"field": f, "errorClass": c, "rows": n, "example": example[(f, c, k)]}
            for (f, c, k), n in counts.most_common()
        ]

    def to_dict(self, include_rejected: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dryRun": self.dry_run,
            "speed": self.speed,
            "rowsRead": self.rows_read,
            "rowsPublished": self.rows_published,
            "rowsRejected": self.rows_rejected,
            "published": dict(sorted(self.published.items())),
            "recordsPublished": sum(self.published.values()),
            "deadLettered": self.dead_lettered,
            "rejectedByReason": self.reasons(),
            "warnings": self.warnings,
            "firstEventTime": self.first_event_time.isoformat() if self.first_event_time else None,
            "lastEventTime": self.last_event_time.isoformat() if self.last_event_time else None,
            "wallSeconds": round(self.wall_s, 3),
        }
        if include_rejected:
            out["rejected"] = [
                {
                    "source": r.source,
                    "where": r.where,
                    "field": r.field,
                    "errorClass": r.error_class,
                    "reason": r.reason,
                    "rows": r.units,
                }
                for r in self.rejected
            ]
        return out


def dead_letter(rejection: Rejection, topic: str, now: datetime) -> DeadLetter:
    return DeadLetter(
        reason=rejection.describe(),
        error_class=rejection.error_class,
        topic=topic,
        value_b64=base64.b64encode(rejection.raw).decode(),
        rejected_at=now,
        rejected_by=REJECTED_BY,
    )


class _Progress:
    """A rich progress line on a terminal; nothing otherwise."""

    def __init__(self, enabled: bool) -> None:
        self._bar: Any = None
        if enabled:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
            self._bar.start()
            self._task = self._bar.add_task("replay")

    def update(self, report: ReplayReport) -> None:
        if self._bar is not None:
            at = report.last_event_time.isoformat() if report.last_event_time else "-"
            text = (
                f"published {sum(report.published.values()):,}  rejected {report.rows_rejected:,}  "
                f"event time {at}"
            )
            self._bar.update(self._task, description=text)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class Publisher:
    """Replays outcome streams into a ``RecordSink`` (or, with ``sink=None``, only counts: a dry run)."""

    def __init__(
        self,
        sink: RecordSink | None,
        *,
        speed: float = 0.0,
        batch_size: int = 1000,
        topic_prefix: str = "",
        max_gap_s: float | None = None,
        progress: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        ingest: IngestSettings | None = None,
    ) -> None:
        """``ingest``: the settings of the worker's ingest the records are checked against (None: its
        defaults)."""
        if speed < 0:
            raise ValueError(f"speed={speed} must be >= 0 (0 = as fast as possible)")
        if max_gap_s is not None and max_gap_s < 0:
            raise ValueError(f"max_gap_s={max_gap_s} must be >= 0")
        self.sink = sink
        self.speed = speed
        self.batch_size = max(1, batch_size)
        self.prefix = topic_prefix
        self.max_gap_s = max_gap_s
        self.progress = progress
        self.clock = clock
        self.sleep = sleep
        self.report = ReplayReport(dry_run=sink is None, speed=speed)
        self._batch: list[OutRecord] = []
        self._batch_topics: Counter[str] = Counter()
        self._t0_wall: float | None = None
        self._t0_event = 0.0
        self._prev_event = 0.0
        self._virtual = 0.0
        self._ingest = IngestDecoder(ingest or IngestSettings())

    async def run(self, streams: Sequence[Outcomes]) -> ReplayReport:
        started = time.monotonic()
        bar = _Progress(self.progress)
        if self.sink is not None:
            await self.sink.start()
        try:
            for outcome in merge(streams):
                if isinstance(outcome, Item):
                    await self._item(outcome)
                elif isinstance(outcome, Rejection):
                    await self._rejection(outcome)
                else:
                    self.report.warnings.append(f"{outcome.source}: {outcome.message}")
                if len(self._batch) >= self.batch_size:
                    await self._send()
                    bar.update(self.report)
            await self._send()
            if self.sink is not None:
                await self.sink.flush()
        finally:
            if self.sink is not None:
                await self.sink.stop()
            bar.update(self.report)
            bar.stop()
            self.report.wall_s = time.monotonic() - started
        return self.report

    async def _item(self, item: Item) -> None:
        report = self.report
        key = item.key.encode() if item.key is not None else None
        value = item.record.to_json_bytes()
        if item.topic in topics.INGEST_TOPICS:
            verdict = self._ingest.decode(item.topic, key, value)
            if isinstance(verdict, IngestRejection):
                await self._rejection(Rejection(item.source or "(no source)", item.where or f"{item.key}",
                                                f"the ingest would refuse it: {verdict.reason}",
                                                verdict.error_class, value, item.topic, units=item.units))
                return
        if item.event_time is not None:
            if report.first_event_time is None or item.event_time < report.first_event_time:
                report.first_event_time = item.event_time
            if report.last_event_time is None or item.event_time > report.last_event_time:
                report.last_event_time = item.event_time
            if self.speed > 0:
                await self._pace(item.event_time.timestamp())
        report.rows_read += item.units
        report.rows_published += item.units
        self._batch.append(OutRecord(self.prefix + item.topic, key, value))
        self._batch_topics[item.topic] += 1

    async def _pace(self, event_s: float) -> None:
        if self._t0_wall is None:
            self._t0_wall, self._t0_event, self._prev_event = self.clock(), event_s, event_s
            return
        gap = event_s - self._prev_event
        if gap > 0:
            self._virtual += gap if self.max_gap_s is None else min(gap, self.max_gap_s)
            self._prev_event = event_s
        due = self._t0_wall + self._virtual / self.speed
        if due - self.clock() > 0.001:
            await self._send()  # what is due now goes out before we wait
            delay = due - self.clock()
            if delay > 0:
                await self.sleep(delay)

    async def _rejection(self, rejection: Rejection) -> None:
        report = self.report
        report.rows_read += rejection.units
        report.rows_rejected += rejection.units
        report.rejected.append(rejection)
        if self.sink is not None:
            letter = dead_letter(rejection, self.prefix + rejection.topic, datetime.now(UTC))
            self._batch.append(OutRecord(self.prefix + topics.DLQ, None, letter.to_json_bytes()))
            self._batch_topics[_DEAD_LETTERS] += 1

    async def _send(self) -> None:
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        counts, self._batch_topics = self._batch_topics, Counter()
        if self.sink is not None:
            await self.sink.send_many(batch)
        self.report.dead_lettered += counts.pop(_DEAD_LETTERS, 0)
        self.report.published.update(counts)
