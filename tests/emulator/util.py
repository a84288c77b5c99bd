"""Helpers of the emulator tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from replay.emulator import NetworkEmulator
from twin.schemas import CmChangeRequest

START = datetime(2024, 3, 1, tzinfo=UTC)


def change(emu: NetworkEmulator, cell: str, attribute: str, to: Any, cls: str = "SectorEquipmentFunction",
           **kw: Any) -> CmChangeRequest:
    """A change request as the twin's guard would send it."""
    return CmChangeRequest.model_validate({
        "changeId": str(uuid.uuid4()), "requestedAt": emu.period_end, "requester": "test",
        "cellKey": cell, "targetDn": emu.dn(cell, cls), "class": cls, "attribute": attribute, "to": to, **kw,
    })
