"""CM change requests and results: what the guard decides on and the ledger keeps."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from twin.schemas.base import CellKey, UtcDateTime, Uuid, WireModel

__all__ = [
    "Approval", "ApprovalState", "ChangeState", "CmChangeRequest", "CmChangeResult", "GuardSpec", "RollbackKpi",
    "Transport",
]


class RollbackKpi(WireModel):
    name: str = Field(min_length=1)
    max_degradation_pct: float = Field(ge=0, le=100)


class GuardSpec(WireModel):
    max_step_db: float | None = Field(default=None, gt=0)
    max_step: float | None = Field(default=None, gt=0)
    allowed_window: str | None = Field(default=None, pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$")
    confirm_timeout_s: int = Field(default=900, gt=0)
    rollback_kpis: list[RollbackKpi] = Field(default_factory=list)


class ApprovalState(StrEnum):
    AUTO = "AUTO"
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    DENIED = "DENIED"


class Approval(WireModel):
    state: ApprovalState = ApprovalState.PENDING
    by: str | None = None


class CmChangeRequest(WireModel):
    """One attribute change on one MOI; ``change_id`` makes it apply at most once."""

    schema_version: Literal["1"] = "1"
    change_id: Uuid
    requested_at: UtcDateTime
    requester: str = Field(min_length=1, max_length=256)
    cell_key: CellKey
    target_dn: str = Field(min_length=1, max_length=1024)
    class_: str = Field(alias="class", min_length=1)
    attribute: str = Field(min_length=1)
    from_: Any = Field(default=None, alias="from")
    to: Any
    unit: str | None = None
    reason: str | None = None
    expected_kpi_impact: dict[str, float] = Field(default_factory=dict)
    guard: GuardSpec = Field(default_factory=GuardSpec)
    dry_run: bool = False
    approval: Approval = Field(default_factory=Approval)


class ChangeState(StrEnum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    APPLIED = "APPLIED"
    CONFIRMED = "CONFIRMED"
    ROLLED_BACK = "ROLLED_BACK"
    FAILED = "FAILED"


class Transport(StrEnum):
    PROVMNS = "PROVMNS"
    NETCONF = "NETCONF"
    NCMP = "NCMP"
    BULKCM = "BULKCM"
    EMULATOR = "EMULATOR"


class CmChangeResult(WireModel):
    schema_version: Literal["1"] = "1"
    change_id: Uuid
    cell_key: CellKey
    state: ChangeState
    transport: Transport
    device_response: str | None = None
    applied_at: UtcDateTime | None = None
    observed_value: Any = None
    error: str | None = None
