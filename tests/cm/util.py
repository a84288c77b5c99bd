"""Helpers of the CM tests: requests against the real emulated network, a fault injector."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from adapters.emulator import EmulatorAdapter
from replay.emulator import NetworkEmulator
from tests.emulator.util import START
from twin.ports import AdapterUnavailable
from twin.schemas import ChangeState, CmChangeRequest, CmChangeResult

__all__ = ["START", "FaultyAdapter", "make_emulator", "request"]

CLS = {"digitalTilt": "SectorEquipmentFunction", "configuredMaxTxPower": "NRSectorCarrier",
       "cellIndividualOffset": "NRCellDU"}


def make_emulator(seed: int = 2) -> NetworkEmulator:
    emu = NetworkEmulator("fault-midrun", seed=seed, start=START, granularity_s=3600, mr_per_cell=0)
    emu.initial_records()
    return emu


def request(emu: NetworkEmulator, cell: str, attribute: str, to: Any, *, from_: Any = "read",
            at: datetime | None = None, **kw: Any) -> CmChangeRequest:
    """A change of ``attribute`` on ``cell`` to ``to``; ``from`` read from the network unless given."""
    cls = CLS[attribute]
    dn = emu.dn(cell, cls)
    old = emu.oss.read(dn)[attribute] if from_ == "read" else from_
    return CmChangeRequest.model_validate({
        "changeId": str(uuid.uuid4()), "requestedAt": at or emu.period_end, "requester": kw.pop("requester", "test"),
        "cellKey": cell, "targetDn": dn, "class": cls, "attribute": attribute, "from": old, "to": to, **kw})


class FaultyAdapter(EmulatorAdapter):
    """The real emulator adapter with faults injected where a real network's transport fails.

    ``fail_next``: names of the next faults, consumed in order: ``"apply-lost"`` (the request never
    reaches the device), ``"apply-lost-after"`` (the device applies it, the answer is lost),
    ``"read"`` (the device cannot be read), ``"restore-lost"``, ``"restore-lost-after"``, ``"reject"``.
    ``writes`` counts the writes that reached the device per change id.
    """

    def __init__(self, emu: NetworkEmulator) -> None:
        super().__init__(emu.oss)
        self.fail_next: list[str] = []
        self.down = False
        self.writes: dict[str, int] = {}

    def _take(self, *names: str) -> str | None:
        if self.fail_next and self.fail_next[0] in names:
            return self.fail_next.pop(0)
        return None

    def _lost(self, req: CmChangeRequest, what: str) -> CmChangeResult:
        return CmChangeResult(change_id=req.change_id, cell_key=req.cell_key, state=ChangeState.FAILED,
                              transport=self.transport, error=f"connection lost ({what})")

    def _write(self, req: CmChangeRequest) -> CmChangeResult:
        result = super().apply(req)
        if result.state == ChangeState.APPLIED and not req.dry_run:
            self.writes[req.change_id] = self.writes.get(req.change_id, 0) + 1
        return result

    def apply(self, request: CmChangeRequest) -> CmChangeResult:
        if self.down:
            return self._lost(request, "device down")
        fault = self._take("apply-lost", "apply-lost-after", "reject")
        if fault == "apply-lost":
            return self._lost(request, "before the device")
        if fault == "reject":
            return CmChangeResult(change_id=request.change_id, cell_key=request.cell_key,
                                  state=ChangeState.REJECTED, transport=self.transport, error="rpc-error: denied")
        result = self._write(request)
        return self._lost(request, "answer lost") if fault == "apply-lost-after" else result

    def read(self, dn: str) -> dict[str, Any]:
        if self.down or self._take("read"):
            raise AdapterUnavailable("device unreachable")
        return super().read(dn)

    def restore(self, request: CmChangeRequest) -> CmChangeResult:
        if self.down:
            return self._lost(request, "device down")
        fault = self._take("restore-lost", "restore-lost-after")
        if fault == "restore-lost":
            return self._lost(request, "restore before the device")
        result = super().restore(request)
        return self._lost(request, "restore answer lost") if fault == "restore-lost-after" else result
