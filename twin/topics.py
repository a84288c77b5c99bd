"""Topic names and the schema each carries (telemetry.md §7). The major version is in the name."""

from __future__ import annotations

from twin import schemas as s

__all__ = [
    "ALERTS", "CHANGE_REQUESTS", "CHANGE_RESULTS", "CM_NOTIFICATIONS", "CM_SNAPSHOT", "DLQ", "FIDELITY",
    "INGEST_TOPICS", "MR_UE", "PM_CELL", "PM_RELATION", "PREDICTIONS", "RESYNCS", "SCHEMAS", "TOPOLOGY",
    "ingest_by_cluster",
]

PM_CELL = "ran.pm.cell.v1"
PM_RELATION = "ran.pm.relation.v1"
CM_SNAPSHOT = "ran.cm.snapshot.v1"
CM_NOTIFICATIONS = "ran.cm.notifications.v1"
MR_UE = "ran.mr.ue.v1"
TOPOLOGY = "ran.topology.cells.v1"
CHANGE_REQUESTS = "ran.cm.change.requests.v1"
CHANGE_RESULTS = "ran.cm.change.results.v1"
PREDICTIONS = "ran.twin.predictions.v1"
ALERTS = "ran.alerts.v1"
RESYNCS = "ran.twin.resyncs.v1"
FIDELITY = "ran.twin.fidelity.v1"
DLQ = "ran.dlq.v1"


def ingest_by_cluster(group_id: str) -> str:
    """Internal topic of one worker group: validated telemetry re-keyed by cluster.

    Named after the group (like a Kafka Streams repartition topic) so two deployments sharing a
    broker never feed each other's mirrors.

    >>> ingest_by_cluster("twin-worker")
    'twin.twin-worker.by-cluster.v1'
    """
    return f"twin.{group_id}.by-cluster.v1"

SCHEMAS: dict[str, type[s.WireModel]] = {
    PM_CELL: s.PmCellRecord,
    PM_RELATION: s.PmRelationRecord,
    CM_SNAPSHOT: s.CmSnapshot,
    CM_NOTIFICATIONS: s.CmNotification,
    MR_UE: s.MrEvent,
    TOPOLOGY: s.TopologyCell,
    CHANGE_REQUESTS: s.CmChangeRequest,
    CHANGE_RESULTS: s.CmChangeResult,
    PREDICTIONS: s.Prediction,
    ALERTS: s.Alert,
    RESYNCS: s.Resync,
    FIDELITY: s.Fidelity,
    DLQ: s.DeadLetter,
}

INGEST_TOPICS = (PM_CELL, PM_RELATION, CM_SNAPSHOT, CM_NOTIFICATIONS, MR_UE)
