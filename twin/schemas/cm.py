"""CM snapshots (``ran.cm.snapshot.v1``, compacted, keyed by DN) and change notifications."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from twin.schemas.base import CellKey, UtcDateTime, WireModel

__all__ = ["CmNotification", "CmNotificationType", "CmSnapshot"]


class CmSnapshot(WireModel):
    """The attributes of one managed object instance as observed at ``observed_at``."""

    schema_version: Literal["1"] = "1"
    dn: str = Field(min_length=1, max_length=1024)
    class_: str = Field(alias="class", min_length=1, max_length=128)
    cell_key: CellKey | None = None
    attributes: dict[str, Any]
    observed_at: UtcDateTime
    source_system: str = Field(default="unknown", max_length=256)


class CmNotificationType(StrEnum):
    notifyMOICreation = "notifyMOICreation"
    notifyMOIDeletion = "notifyMOIDeletion"
    notifyMOIAttributeValueChanges = "notifyMOIAttributeValueChanges"
    notifyMOIChanges = "notifyMOIChanges"


class CmNotification(WireModel):
    """A TS 28.532 provisioning notification passed through with the cell key added."""

    schema_version: Literal["1"] = "1"
    notification_id: str = Field(min_length=1, max_length=256)
    notification_type: CmNotificationType
    event_time: UtcDateTime
    system_dn: str | None = None
    href: str | None = None
    dn: str = Field(min_length=1, max_length=1024)
    class_: str | None = Field(default=None, alias="class")
    cell_key: CellKey
    attribute_list_value_changes: dict[str, Any] = Field(
        default_factory=dict,
        description="attribute -> new value (the 'new' side of attributeListValueChanges)",
    )
    old_values: dict[str, Any] = Field(default_factory=dict)
