"""Request and response bodies of the REST API (camelCase on the wire, unknown fields refused)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = ["CmChangeIn", "DecisionIn", "ErrorOut", "Health", "KillSwitchIn", "KillSwitchOut", "Me", "ReadyOut",
           "WhatIfIn", "WhatIfOut", "WhatIfRow"]


def _json_integer(value: Any) -> Any:
    """JSON Schema's ``integer`` is any number without a fraction (``900.0`` too): such a float becomes
    an ``int``; anything else goes on to the strict ``int`` check as it came (a string, a boolean)."""
    return int(value) if type(value) is float and value.is_integer() else value


#: after an ``int``'s constraints in ``Annotated`` (so that the JSON Schema keeps them as minimum / maximum)
JSON_INTEGER = BeforeValidator(_json_integer)


class _In(BaseModel):
    """A request body: unknown fields refused, and JSON types as the OpenAPI document states them (strict:
    ``"to": "90"``, ``"to": true`` or ``"on": "yes"`` is refused naming the field, not coerced)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


class CmChangeIn(_In):
    """One CM change of a what-if, in TS 28.541 names and units (``twin/sim/cm.py``)."""

    cell_key: str = Field(alias="cellKey", min_length=1, max_length=200, examples=["nr:00101-000000101"])
    attribute: str = Field(min_length=1, max_length=100, examples=["digitalTilt"])
    to: float = Field(examples=[90], allow_inf_nan=False, description="the new value (digitalTilt in 0.1 degree, "
                      "configuredMaxTxPower in mW)")


class WhatIfIn(_In):
    """CM changes in, predicted KPI deltas out (``Twin.whatif``); nothing is applied."""

    cluster: str = Field(min_length=1, max_length=200)
    changes: list[CmChangeIn] = Field(min_length=1, max_length=64)
    period_end: Annotated[int, Field(ge=0, le=2**40), JSON_INTEGER] | None = Field(
        default=None, alias="periodEnd", description="epoch s of the period to simulate (default: the newest)")
    gp: Annotated[int, Field(gt=0, le=86400), JSON_INTEGER] | None = Field(default=None,
                                                                           description="granularity period (s)")
    model: Literal["simulation", "sim2real"] | None = Field(
        default=None, description="the engine: the simulation model, or with the Sim2Real model's DRB.UEThpDl and "
        "RRU.PrbTotDl (docs/sim2real.md); default: the worker's [predict] engine")


class WhatIfRow(BaseModel):
    cell: str
    kpi: str
    baseline: float
    changed: float
    delta: float


class WhatIfOut(BaseModel):
    cluster: str
    gp: int
    periodEnd: int
    modelVersion: str
    converged: bool
    changes: dict[str, dict[str, Any]]
    rows: list[WhatIfRow]
    outOfRange: dict[str, list[str]] = Field(default_factory=dict, description="with the Sim2Real engine: "
                                             "per cell, the inputs outside the model's training ranges")


class DecisionIn(_In):
    reason: str = Field(default="", max_length=2000, description="why (recorded in the ledger)")


class KillSwitchIn(_In):
    on: bool


class KillSwitchOut(BaseModel):
    on: bool
    history: list[dict[str, Any]]


class ErrorOut(BaseModel):
    """Every 4xx: ``error`` says what is wrong and names the field; ``field`` when one is at fault."""

    error: str
    field: str | None = None
    detail: Any = None


class Health(BaseModel):
    status: str
    version: str


class ReadyOut(BaseModel):
    ready: bool
    reasons: list[str]
    workers: list[dict[str, Any]]


class Me(BaseModel):
    name: str
    role: str
