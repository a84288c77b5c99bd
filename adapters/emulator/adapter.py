"""``EmulatorAdapter``: the ``CmAdapter`` in front of the emulated network's management endpoint."""

from __future__ import annotations

from typing import Any, Protocol

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

    def apply(self, request: CmChangeRequest) -> CmChangeResult:
        """Submit ``request``; a failure of the endpoint itself becomes a FAILED result."""
        try:
            return self.endpoint.submit(request)
        except Exception as exc:  # the transport broke: report, never raise into the loop
            return CmChangeResult(change_id=request.change_id, cell_key=request.cell_key, state=ChangeState.FAILED,
                                  transport=Transport.EMULATOR, error=f"{type(exc).__name__}: {exc}")

    def read(self, dn: str) -> dict[str, Any]:
        """Current attributes of the instance ``dn`` (``KeyError`` when it does not exist)."""
        return self.endpoint.read(dn)
