"""CM change requests and results: what the guard decides on and the ledger keeps."""

from __future__ import annotations

import re
import uuid
from datetime import time
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, WithJsonSchema, field_validator

from twin.schemas.base import CellKey, UtcDateTime, Uuid, WireModel

__all__ = [
    "STORED", "Approval", "ApprovalState", "ChangeState", "CmChangeRequest", "CmChangeResult", "GuardSpec",
    "RollbackKpi", "Transport", "parse_window", "rollback_of",
]

STORED: dict[str, Any] = {"stored": True}
"""Validation context of a request read back from the ledger (``model_validate_json(body,
context=STORED)``): the bounds a request meets at the edge (a real ``guard.allowedWindow``, each
``expectedKpiImpact`` above -100 %) are not applied again, so a request recorded before they
existed stays readable; the guard refuses such a window (rule ``request_window``) and the
verification rolls such a change back."""

_WINDOW = re.compile(r"^([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})$")
WINDOW_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$"
"""What a change window is, as the exported JSON Schema states it (``parse_window`` checks the same)."""


def parse_window(text: str) -> tuple[time, time]:
    """``"HH:MM-HH:MM"`` as (start, end), hours 00-23 and minutes 00-59; an end before the start
    spans midnight. The one parser of change windows: the guard policy's ``windows`` and a request's
    own ``guard.allowedWindow``.

    >>> parse_window("22:00-05:30")
    (datetime.time(22, 0), datetime.time(5, 30))
    >>> parse_window("24:00-06:00")
    Traceback (most recent call last):
    ...
    ValueError: change window '24:00-06:00' must be HH:MM-HH:MM with hours 00-23 and minutes 00-59
    """
    m = _WINDOW.match(text)
    if m is None or int(m[1]) > 23 or int(m[3]) > 23 or int(m[2]) > 59 or int(m[4]) > 59:
        raise ValueError(f"change window {text!r} must be HH:MM-HH:MM with hours 00-23 and minutes 00-59")
    return time(int(m[1]), int(m[2])), time(int(m[3]), int(m[4]))


def _stored(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and bool(info.context.get("stored"))


class RollbackKpi(WireModel):
    name: str = Field(min_length=1)
    max_degradation_pct: float = Field(ge=0, le=100)


class GuardSpec(WireModel):
    max_step_db: float | None = Field(default=None, gt=0)
    max_step: float | None = Field(default=None, gt=0)
    allowed_window: Annotated[str, WithJsonSchema({"type": "string", "pattern": WINDOW_PATTERN})] | None = Field(
        default=None, description="'HH:MM-HH:MM' in UTC, hours 00-23, minutes 00-59; an end before the start "
        "spans midnight")
    confirm_timeout_s: int = Field(default=900, gt=0)
    rollback_kpis: list[RollbackKpi] = Field(default_factory=list)

    @field_validator("allowed_window")
    @classmethod
    def _window(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not _stored(info):
            parse_window(value)  # refused here, at the edge, not by the guard of a recorded change
        return value


def _impact(value: float, info: ValidationInfo) -> float:
    if value <= -100.0 and not _stored(info):
        raise ValueError(f"expected impact {value:g} % is not a relative change: a KPI cannot fall by 100 % or "
                         "more (the verification divides by 1 + impact / 100)")
    return value


ImpactPct = Annotated[float, Field(allow_inf_nan=False), AfterValidator(_impact),
                      WithJsonSchema({"type": "number", "exclusiveMinimum": -100})]
"""An expected KPI change in percent: finite and above -100 %."""


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
    expected_kpi_impact: dict[str, ImpactPct] = Field(default_factory=dict, description="KPI -> expected "
                                                      "relative change in percent, above -100")
    # what the twin knew when it proposed the change (None for a change a person asked for)
    twin_version: str | None = Field(default=None, max_length=256)
    fidelity: float | None = Field(default=None, ge=0, description="the cluster's DT-BSM at decision time")
    uncertainty_pct: float | None = Field(default=None, ge=0, description="rolling calibrated error of the "
                                          "cluster's DL throughput prediction, percent")
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


ROLLBACK_NAMESPACE = uuid.UUID("6b1f3c2e-4a5d-5e8f-9a0b-1c2d3e4f5a6b")


def rollback_of(request: CmChangeRequest) -> CmChangeRequest:
    """The request that puts ``request``'s ``from`` value back, with a change id derived from it.

    Deterministic, so a roll back retried after a crash carries the same id and a device (or an
    adapter) that remembers ids applies it at most once.

    >>> from datetime import datetime, UTC
    >>> r = CmChangeRequest(change_id="0b7e7d1c-6f0a-4b8e-9a51-3f4f5d6e7a8b",
    ...     requested_at=datetime(2026, 1, 1, tzinfo=UTC), requester="cli", cell_key="nr:00101-000000102",
    ...     target_dn="ManagedElement=1", **{"class": "NRSectorCarrier"},
    ...     attribute="configuredMaxTxPower", **{"from": 20000}, to=15849)
    >>> back = rollback_of(r)
    >>> (back.from_, back.to, back.change_id == rollback_of(r).change_id != r.change_id)
    (15849, 20000, True)
    >>> rollback_of(r.model_copy(update={"from_": None}))
    Traceback (most recent call last):
    ...
    ValueError: change 0b7e7d1c-6f0a-4b8e-9a51-3f4f5d6e7a8b has no 'from' value: nothing to roll back to
    """
    if request.from_ is None:
        raise ValueError(f"change {request.change_id} has no 'from' value: nothing to roll back to")
    return request.model_copy(update={
        "change_id": str(uuid.uuid5(ROLLBACK_NAMESPACE, request.change_id)),
        "from_": request.to, "to": request.from_, "reason": f"roll back of {request.change_id}",
        "dry_run": False,
    })
