"""Pydantic v2 schemas of every topic in telemetry.md §7.

The JSON Schema files written by ``twin schema export DIR`` are generated from these classes,
so the wire contract and the validating code cannot drift apart.
"""

from twin.schemas.base import CellKey, UtcDateTime, WireModel
from twin.schemas.change import ChangeState, CmChangeRequest, CmChangeResult, GuardSpec, Transport, rollback_of
from twin.schemas.cm import CmNotification, CmNotificationType, CmSnapshot
from twin.schemas.dlq import DeadLetter
from twin.schemas.mr import CellMeas, Location, MrEvent, MrSource, Rat, UeInfo
from twin.schemas.outputs import Alert, AlertType, Fidelity, Prediction, Resync, Severity
from twin.schemas.pm import MeasObjClass, PmCellRecord, PmRelationRecord, PmSource
from twin.schemas.topology import TopologyCell

__all__ = [
    "Alert",
    "AlertType",
    "CellKey",
    "CellMeas",
    "ChangeState",
    "CmChangeRequest",
    "CmChangeResult",
    "CmNotification",
    "CmNotificationType",
    "CmSnapshot",
    "DeadLetter",
    "Fidelity",
    "GuardSpec",
    "Location",
    "MeasObjClass",
    "MrEvent",
    "MrSource",
    "PmCellRecord",
    "PmRelationRecord",
    "PmSource",
    "Prediction",
    "Rat",
    "Resync",
    "Severity",
    "TopologyCell",
    "Transport",
    "UeInfo",
    "UtcDateTime",
    "WireModel",
    "rollback_of",
]
