"""``EmulatorAdapter``: the ``CmAdapter`` in front of the emulated network's management endpoint."""

from __future__ import annotations

from typing import Any, Protocol

from twin.ports import AdapterUnavailable, restore_through
from twin.schemas import ChangeState, CmChangeRequest, CmChangeResult, Transport

__all__ = ["EmulatorAdapter", "ManagementEndpoint"]


class ManagementEndpoint(Protocol):
    """What the emulated network exposes northbound (``replay.emulator.oss.EmulatedOss``)."""

    def submit(self, request: CmChangeRequest) -> CmChangeResult: ...

    def read(self, dn: str) -> dict[str, Any]: ...


class EmulatorAdapter:
    """``twin.ports.CmAdapter`` for the emulator.

    >>> from twin.ports import CmAdapter
    >>> isinstance(EmulatorAdapter(None), CmAdapter)  # type: ignore[arg-type]
    True
    """

    transport = Transport.EMULATOR

    def __init__(self, endpoint: ManagementEndpoint) -> None:
        self.endpoint = endpoint

    def _failed(self, request: CmChangeRequest, error: str) -> CmChangeResult:
        return CmChangeResult(change_id=request.change_id, cell_key=request.cell_key, state=ChangeState.FAILED,
                              transport=Transport.EMULATOR, error=error)

    def apply(self, request: CmChangeRequest) -> CmChangeResult:
        """Submit ``request``; a failure of the endpoint itself becomes a FAILED result."""
        try:
            return self.endpoint.submit(request)
        except Exception as exc:  # the transport broke: report, never raise into the loop
            return self._failed(request, f"{type(exc).__name__}: {exc}")

    def read(self, dn: str) -> dict[str, Any]:
        """Current attributes of the instance ``dn`` (``KeyError`` when it does not exist,
        ``AdapterUnavailable`` when the endpoint fails)."""
        try:
            return self.endpoint.read(dn)
        except KeyError:
            raise
        except Exception as exc:
            raise AdapterUnavailable(f"emulator endpoint: {type(exc).__name__}: {exc}") from exc

    def verify(self, request: CmChangeRequest) -> CmChangeResult:
        """Read ``request.attribute`` back: APPLIED when it is ``request.to``, FAILED naming both values."""
        try:
            value = self.read(request.target_dn).get(request.attribute)
        except (KeyError, AdapterUnavailable) as exc:
            return self._failed(request, f"read-back of {request.attribute} failed: {exc}")
        if value != request.to:
            return CmChangeResult(change_id=request.change_id, cell_key=request.cell_key, state=ChangeState.FAILED,
                                  transport=Transport.EMULATOR, observed_value=value,
                                  error=f"read-back {request.attribute}={value!r}, expected {request.to!r}")
        return CmChangeResult(change_id=request.change_id, cell_key=request.cell_key, state=ChangeState.APPLIED,
                              transport=Transport.EMULATOR, observed_value=value)

    def restore(self, request: CmChangeRequest) -> CmChangeResult:
        """Put ``request.from_`` back through the same endpoint (at most once: the id is derived)."""
        return restore_through(self.apply, request, self.transport)
