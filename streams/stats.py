"""Counters of one worker process, shared by its stages and written to its stats file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog

__all__ = ["WorkerStats", "gap_reporter", "read_stats_file", "retry_reporter"]

log = structlog.get_logger(__name__)


def read_stats_file(path: Path) -> dict[str, Any]:
    """A worker's stats file (``twin run --stats-file``) as a dict; empty while it is not written yet
    (or caught mid-write)."""
    try:
        return dict(orjson.loads(path.read_bytes()))
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}


@dataclass
class WorkerStats:  # counters, not state: they restart at zero
    consumed: int = 0
    accepted: int = 0  # input records that passed validation
    forwarded: int = 0  # record copies written to the re-keyed topic (a CM tombstone goes to every cluster)
    dead_lettered: Counter[str] = field(default_factory=Counter)
    envelopes_applied: int = 0
    records_applied: int = 0
    checkpoints: int = 0
    unassigned_records: int = 0  # records of cells outside the topology, held (twin.mirror.holding)
    unassigned_dead_lettered: int = 0  # held records pushed out, or refused for want of room
    unassigned_placed: int = 0  # held cells replayed into the cluster the topology now gives them
    cells_moved: int = 0  # cell mirrors moved into the cluster the topology now gives them (twin.mirror.cell_move)
    moved_in_parts: int = 0  # parts of cell mirrors another worker moved here, merged
    cells_left_topology: int = 0  # cell mirrors of cells the topology no longer lists, dead-lettered whole
    moved_mr_counted_twice: int = 0  # MR reports a moved aggregate and its new cluster had both counted
    alerts: int = 0
    send_retries: int = 0  # sends retried after a transient failure (the broker down or slow)
    offset_resets: int = 0  # partitions resumed from a new log's start (its checkpoint's log was replaced)
    offset_hole_retries: int = 0  # fetches cut at a missing offset and read again (streams.offset_guard)
    offset_gaps_accepted: int = 0  # offsets still missing after kafka.offset_hole_wait_s, passed over
    broker_restarts: int = 0  # the embedded broker died and the runtime started it again
    commits_skipped: int = 0  # offset commits the broker did not answer in time (a later one covers them)
    first_consumed_at: float | None = None  # wall clock, for throughput measured across processes

    def as_dict(self) -> dict[str, Any]:
        return {
            "firstConsumedAt": self.first_consumed_at,
            "consumed": self.consumed,
            "accepted": self.accepted,
            "forwarded": self.forwarded,
            "deadLettered": dict(self.dead_lettered),
            "deadLetteredTotal": sum(self.dead_lettered.values()),
            "envelopesApplied": self.envelopes_applied,
            "recordsApplied": self.records_applied,
            "checkpoints": self.checkpoints,
            "unassignedRecords": self.unassigned_records,
            "unassignedDeadLettered": self.unassigned_dead_lettered,
            "unassignedPlaced": self.unassigned_placed,
            "cellsMoved": self.cells_moved,
            "movedInParts": self.moved_in_parts,
            "cellsLeftTopology": self.cells_left_topology,
            "movedMrCountedTwice": self.moved_mr_counted_twice,
            "alerts": self.alerts,
            "sendRetries": self.send_retries,
            "commitsSkipped": self.commits_skipped,
            "brokerRestarts": self.broker_restarts,
            "offsetResets": self.offset_resets,
            "offsetHoleRetries": self.offset_hole_retries,
            "offsetGapsAccepted": self.offset_gaps_accepted,
        }


def retry_reporter(stats: WorkerStats, event: str) -> Callable[[BaseException], None]:
    """``on_retry`` for a stage's producer: count each retried send, log every hundredth as ``event``."""
    def report(exc: BaseException) -> None:
        stats.send_retries += 1
        if stats.send_retries % 100 == 1:
            log.warning(event, retries=stats.send_retries, reason=f"{type(exc).__name__}: {exc}")
    return report


def gap_reporter(stats: WorkerStats, event: str, **context: Any) -> Callable[[Any, int, int], None]:
    """``on_gap`` for a stage's ``OffsetGuard``: count the offsets passed over, log them as ``event``."""
    def report(tp: Any, first: int, last: int) -> None:
        stats.offset_gaps_accepted += last - first + 1
        log.warning(event, **context, topic=tp.topic, partition=tp.partition, missing_from=first, missing_to=last,
                    reason="the offsets were still missing after kafka.offset_hole_wait_s")
    return report
