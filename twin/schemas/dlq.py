"""Dead-letter records (``ran.dlq.v1``): the rejected bytes, where they came from, and why."""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import Field

from twin.schemas.base import UtcDateTime, WireModel

__all__ = ["DeadLetter"]


class DeadLetter(WireModel):
    schema_version: Literal["1"] = "1"
    reason: str = Field(min_length=1, description="what was wrong, naming the field and value")
    error_class: str = Field(description="short machine-readable category, e.g. 'json', 'schema'")
    topic: str
    partition: int | None = None
    offset: int | None = None
    key_b64: str | None = None
    value_b64: str = Field(description="the original record bytes, base64")
    rejected_at: UtcDateTime
    rejected_by: str = "twin.ingest"

    @property
    def original_value(self) -> bytes:
        return base64.b64decode(self.value_b64)
