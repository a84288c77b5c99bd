"""Counters of one worker process, shared by its stages and written to its stats file."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["WorkerStats"]


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
            "alerts": self.alerts,
            "sendRetries": self.send_retries,
            "commitsSkipped": self.commits_skipped,
            "brokerRestarts": self.broker_restarts,
            "offsetResets": self.offset_resets,
            "offsetHoleRetries": self.offset_hole_retries,
            "offsetGapsAccepted": self.offset_gaps_accepted,
        }
