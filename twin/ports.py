"""Interfaces the core defines and the outer layers implement.

The core never imports a transport. Where it (or a sibling layer such as ``replay``) needs one, it
asks for it by name through the ``twin.sinks`` entry-point group, which ``streams`` fills.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any, NamedTuple, Protocol


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


def open_sink(kind: str = "kafka", **options: Any) -> RecordSink:
    """A sink from the ``twin.sinks`` entry points, e.g. ``open_sink("kafka", bootstrap_servers=...)``."""
    for ep in entry_points(group="twin.sinks"):
        if ep.name == kind:
            factory = ep.load()
            sink: RecordSink = factory(**options)
            return sink
    raise LookupError(f"no sink named {kind!r} is installed (entry point group 'twin.sinks')")
