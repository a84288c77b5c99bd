"""The one protocol every vendor adapter implements (NETCONF O1, ProvMnS REST, bulk CM, emulator).

The core talks to equipment only through this; ``adapters/`` holds the implementations.
``apply`` executes one change request and returns its result (``APPLIED`` with the time it took
effect, ``REJECTED`` with the device's reason, ``ACCEPTED`` for a valid dry run, ``FAILED`` when
the transport broke); it must apply a ``changeId`` at most once. ``read`` returns the current
attributes of the managed object instance ``dn``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from twin.schemas import CmChangeRequest, CmChangeResult, Transport


@runtime_checkable
class CmAdapter(Protocol):
    """Reads and writes CM on a network (or a management system in front of it)."""

    transport: Transport

    def apply(self, request: CmChangeRequest) -> CmChangeResult: ...

    def read(self, dn: str) -> dict[str, Any]: ...
