"""The emulated network's management interface (what a vendor OSS / O1 endpoint does).

``submit`` validates a CM change like equipment does and schedules it: a valid change is
committed with a small apply delay (it takes effect at the next granularity-period boundary, so
it shows in the following periods' KPIs); an invalid one is REJECTED with an error naming the
attribute and value; the same ``changeId`` is applied at most once (a retry returns the first
result). ``read`` returns an instance's current attributes. ``adapters.emulator`` puts the
``twin.ports.CmAdapter`` protocol in front of this.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from replay.emulator.cm import INTEGER, READ_ONLY, dn_of, owner_class
from twin.schemas import ChangeState, CmChangeRequest, CmChangeResult, Transport
from twin.sim.cm import apply_cm_to_sector
from twin.sim.topology import Sector

__all__ = ["EmulatedOss", "Network", "PendingChange"]


@dataclass(frozen=True)
class PendingChange:
    """A committed change waiting for its period boundary. ``source`` is who made it."""

    change_id: str
    cell_key: str
    cls: str
    attribute: str
    value: Any
    effective_at: datetime
    source: str


class Network(Protocol):
    """What the OSS needs from the emulator."""

    cm: dict[str, dict[str, dict[str, Any]]]
    period_end: datetime

    def public_sector(self, cell_key: str) -> Sector: ...

    def schedule(self, change: PendingChange) -> None: ...

    def pending_for(self, cell_key: str) -> dict[str, Any]: ...


class EmulatedOss:
    """CM northbound interface of the emulated network."""

    transport = Transport.EMULATOR

    def __init__(self, network: Network) -> None:
        self.network = network
        self.results: dict[str, CmChangeResult] = {}

    def _result(self, req: CmChangeRequest, state: ChangeState, **kw: Any) -> CmChangeResult:
        return CmChangeResult(change_id=req.change_id, cell_key=req.cell_key, state=state,
                              transport=Transport.EMULATOR, **kw)

    def validate(self, req: CmChangeRequest) -> str | None:
        """The reason ``req`` is invalid, or None."""
        net = self.network
        if req.cell_key not in net.cm:
            return f"unknown cell {req.cell_key!r}: not managed by this network"
        cls = owner_class(req.attribute)
        if cls is None:
            return f"attribute {req.attribute!r} (value {req.to!r}) does not exist on any managed object of the cell"
        if req.class_ != cls:
            return f"attribute {req.attribute!r} is an attribute of {cls}, not of {req.class_}"
        dn = dn_of(req.cell_key, cls)
        if req.target_dn != dn:
            return f"targetDn {req.target_dn!r} does not name the {cls} of cell {req.cell_key!r} ({dn!r})"
        if req.attribute in READ_ONLY:
            return f"{req.attribute}={req.to!r}: attribute {req.attribute!r} is read-only at run time"
        if req.attribute in INTEGER and (isinstance(req.to, bool) or not isinstance(req.to, int)):
            return f"{req.attribute}={req.to!r}: value must be an integer"
        try:
            apply_cm_to_sector(net.public_sector(req.cell_key), {req.attribute: req.to}, strict=True)
        except ValueError as exc:
            return str(exc)
        return None

    def submit(self, req: CmChangeRequest) -> CmChangeResult:
        """Validate and schedule ``req``; the result says APPLIED (with the effective time),
        REJECTED (with the reason), or ACCEPTED for a valid dry run."""
        done = self.results.get(req.change_id)
        if done is not None:
            return done
        reason = self.validate(req)
        if reason is not None:
            result = self._result(req, ChangeState.REJECTED, error=reason, device_response="rpc-error: invalid-value")
        elif req.dry_run:
            return self._result(req, ChangeState.ACCEPTED, device_response="dry run: valid, not applied")
        else:
            when = self.network.period_end
            cls = owner_class(req.attribute)
            assert cls is not None
            self.network.schedule(PendingChange(req.change_id, req.cell_key, cls, req.attribute, req.to, when,
                                                req.requester))
            result = self._result(req, ChangeState.APPLIED, applied_at=when, observed_value=req.to,
                                  device_response=f"committed; effective from {when.isoformat()}")
        self.results[req.change_id] = result
        return result

    def read(self, dn: str) -> dict[str, Any]:
        """Current (committed) attributes of the instance ``dn``: a change committed but not yet
        effective is shown with its new value, as a device's running configuration shows it."""
        for key, classes in self.network.cm.items():
            for cls, attrs in classes.items():
                if dn_of(key, cls) == dn:
                    pending = {a: v for a, v in self.network.pending_for(key).items() if owner_class(a) == cls}
                    return {**attrs, **pending}
        raise KeyError(f"no managed object with DN {dn!r}")
