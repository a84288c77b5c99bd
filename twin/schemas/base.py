"""Shared pieces of the wire schemas: camelCase JSON, UTC times, validated cell keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from twin.cells import CELL_KEY_PATTERN

__all__ = ["UTC_NORMALISER", "UUID_PATTERN", "CellKey", "OpenWireModel", "UtcDateTime", "Uuid", "WireModel"]


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UTC_NORMALISER = AfterValidator(_as_utc)
UtcDateTime = Annotated[AwareDatetime, UTC_NORMALISER]
"""A timezone-aware time, normalised to UTC; naive times are rejected rather than guessed."""

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
Uuid = Annotated[str, Field(pattern=UUID_PATTERN, json_schema_extra={"format": "uuid"})]
"""A UUID in its canonical 8-4-4-4-12 text form (kept as text: it is an identifier, not a number)."""

CellKey = Annotated[str, Field(pattern=CELL_KEY_PATTERN, examples=["nr:00101-00000a01c"])]


class WireModel(BaseModel):
    """Base of every topic schema: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
        ser_json_timedelta="float",
    )

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


class OpenWireModel(WireModel):
    """For nested objects whose producers legitimately add vendor fields."""

    model_config = ConfigDict(extra="allow")
