"""What the twin publishes: KPI predictions and alerts."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from twin.schemas.base import CellKey, UtcDateTime, Uuid, WireModel

__all__ = ["Alert", "AlertType", "Prediction", "Severity"]


class Prediction(WireModel):
    """A predicted KPI for one cell, period and horizon, under the same 3GPP name as the PM value."""

    schema_version: Literal["1"] = "1"
    cell_key: CellKey
    cluster_id: str | None = None
    period_end: UtcDateTime | None = None
    horizon_s: int = Field(ge=0)
    kpi: str = Field(min_length=1)
    predicted: float
    p10: float | None = None
    p90: float | None = None
    model_version: str = Field(min_length=1)


class Severity(StrEnum):
    """ITU-T X.733 perceived severity."""

    CRITICAL = "CRITICAL"
    MAJOR = "MAJOR"
    MINOR = "MINOR"
    WARNING = "WARNING"
    INDETERMINATE = "INDETERMINATE"
    CLEARED = "CLEARED"


class AlertType(StrEnum):
    KPI_DEGRADATION = "KPI_DEGRADATION"
    GUARD_TRIP = "GUARD_TRIP"
    DATA_GAP = "DATA_GAP"
    CM_DRIFT = "CM_DRIFT"
    TWIN_DIVERGENCE = "TWIN_DIVERGENCE"
    UNKNOWN_CELL = "UNKNOWN_CELL"  # telemetry of a cell the topology does not list (held, not simulated)


class Alert(WireModel):
    schema_version: Literal["1"] = "1"
    alert_id: Uuid
    raised_at: UtcDateTime
    cell_key: CellKey
    severity: Severity
    type: AlertType
    kpis: dict[str, float] = Field(default_factory=dict)
    related_change_id: Uuid | None = None
    text: str | None = None
