"""Interfaces the core defines and the outer layers implement.

The core never imports a transport. Where it (or a sibling layer such as ``replay``) needs one, it
asks for it by name through an entry-point group that an outer layer fills: ``twin.sinks`` for
record sinks (``streams`` installs ``kafka``), ``twin.adapters`` for CM adapters (``adapters``
installs ``emulator``).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any, NamedTuple, Protocol, runtime_checkable

from twin.schemas import CmChangeRequest, CmChangeResult, Transport

__all__ = ["ADAPTER_GROUP", "SINK_GROUP", "CmAdapter", "OutRecord", "RecordSink", "open_adapter", "open_sink"]

SINK_GROUP = "twin.sinks"
ADAPTER_GROUP = "twin.adapters"


class OutRecord(NamedTuple):
    """One record to publish: the topic, the partitioning key and the encoded value."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class RecordSink(Protocol):
    """Publishes records in order per key; ``flush`` returns once all are acknowledged."""

    async def start(self) -> None: ...

    async def send_many(self, records: Sequence[OutRecord]) -> None: ...

    async def flush(self) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class CmAdapter(Protocol):
    """Reads and writes CM on a network (or a management system in front of it).

    The one protocol every vendor adapter implements (NETCONF O1, ProvMnS REST, bulk CM, emulator);
    the core talks to equipment only through it and ``adapters/`` holds the implementations.
    ``apply`` executes one change request and returns its result (``APPLIED`` with the time it took
    effect, ``REJECTED`` with the device's reason, ``ACCEPTED`` for a valid dry run, ``FAILED`` when
    the transport broke); it must apply a ``changeId`` at most once. ``read`` returns the current
    attributes of the managed object instance ``dn``.
    """

    transport: Transport

    def apply(self, request: CmChangeRequest) -> CmChangeResult: ...

    def read(self, dn: str) -> dict[str, Any]: ...


def _factory(group: str, what: str, kind: str) -> Any:
    """The object the entry point ``kind`` of ``group`` names; ``LookupError`` listing those installed."""
    installed = entry_points(group=group)
    for ep in installed:
        if ep.name == kind:
            return ep.load()
    names = ", ".join(sorted({ep.name for ep in installed})) or "none"
    raise LookupError(f"no {what} named {kind!r} is installed (entry point group {group!r}; installed: {names})")


def open_sink(kind: str = "kafka", **options: Any) -> RecordSink:
    """A sink from the ``twin.sinks`` entry points, e.g. ``open_sink("kafka", bootstrap_servers=...)``."""
    sink: RecordSink = _factory(SINK_GROUP, "sink", kind)(**options)
    return sink


def open_adapter(kind: str, **options: Any) -> CmAdapter:
    """A CM adapter from the ``twin.adapters`` entry points, e.g. ``open_adapter("emulator", endpoint=emu.oss)``.

    ``options`` go to the adapter's constructor as keyword arguments.

    >>> open_adapter("no-such-adapter")
    Traceback (most recent call last):
    ...
    LookupError: no CM adapter named 'no-such-adapter' is installed (entry point group 'twin.adapters'; installed: ...)
    """
    adapter: CmAdapter = _factory(ADAPTER_GROUP, "CM adapter", kind)(**options)
    return adapter
