"""Interfaces the core defines and the outer layers implement.

The core never imports a transport. Where it (or a sibling layer such as ``replay``) needs one, it
asks for it by name through an entry-point group that an outer layer fills: ``twin.sinks`` for
record sinks (``streams`` installs ``kafka``), ``twin.adapters`` for CM adapters (``adapters``
installs ``emulator``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any, NamedTuple, Protocol, runtime_checkable

from twin.schemas import ChangeState, CmChangeRequest, CmChangeResult, Transport, rollback_of

__all__ = ["ADAPTER_GROUP", "SINK_GROUP", "AdapterUnavailable", "CmAdapter", "OutRecord", "RecordSink",
           "adapter_transport", "open_adapter", "open_sink", "restore_through"]

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


class AdapterUnavailable(RuntimeError):
    """The adapter could not reach the device (or the management system in front of it).

    Raised by ``CmAdapter.read`` only: the caller (the reconciler) cannot tell the device's value,
    so it keeps the change in its current step and tries again later instead of guessing.
    """


@runtime_checkable
class CmAdapter(Protocol):
    """Reads and writes CM on a network (or a management system in front of it).

    The one protocol every vendor adapter implements (NETCONF O1, ProvMnS REST, bulk CM, emulator);
    the core talks to equipment only through it and ``adapters/`` holds the implementations. The
    request names the attribute the way ``telemetry.md`` section 2 does (``NRSectorCarrier.
    configuredMaxTxPower`` in mW, ``NRCellRelation.cellIndividualOffset`` in dB, tilt through the
    adapter's vendor attribute map); an adapter translates to its protocol and back.

    - ``read(dn)``: the current (running, committed) attributes of the managed object instance
      ``dn`` as ``{attribute: value}``; ``KeyError`` when the instance does not exist,
      ``AdapterUnavailable`` when the device cannot be reached.
    - ``apply(request)``: validate the payload (schema / YANG / OpenAPI where the protocol has one)
      and write ``request.to``. Returns ``APPLIED`` (with ``applied_at`` and the read-back
      ``observed_value`` where the protocol gives it), ``REJECTED`` with a reason naming attribute
      and value (invalid payload or device refusal: nothing was changed), ``ACCEPTED`` for a valid
      ``dry_run`` (nothing changed), or ``FAILED`` when the transport broke (the device's value is
      then unknown: the caller reads it). Never raises for a device or transport problem. A
      ``changeId`` is applied at most once: a repeat returns the first result.
    - ``verify(request)``: the read-after-write check: reads the attribute back and returns
      ``APPLIED`` with ``observed_value`` when it equals ``request.to``, ``FAILED`` naming both
      values when it does not, or when the read failed.
    - ``restore(request)``: put ``request.from_`` back (the roll back of an applied ``request``),
      at most once per ``changeId``; ``ROLLED_BACK`` with the read-back value, or ``REJECTED`` /
      ``FAILED`` as for ``apply``.
    """

    transport: Transport

    def read(self, dn: str) -> dict[str, Any]: ...

    def apply(self, request: CmChangeRequest) -> CmChangeResult: ...

    def verify(self, request: CmChangeRequest) -> CmChangeResult: ...

    def restore(self, request: CmChangeRequest) -> CmChangeResult: ...


def restore_through(apply: Callable[[CmChangeRequest], CmChangeResult], request: CmChangeRequest,
                    transport: Transport) -> CmChangeResult:
    """The usual ``CmAdapter.restore``: ``apply(rollback_of(request))`` (at most once: the derived
    change id is remembered like any other), answered under the request's own id; ROLLED_BACK when
    the device took the old value back, else the apply's own answer.

    >>> from datetime import datetime, UTC
    >>> r = CmChangeRequest(change_id="0b7e7d1c-6f0a-4b8e-9a51-3f4f5d6e7a8b", requested_at=datetime(2026, 1, 1,
    ...     tzinfo=UTC), requester="cli", cell_key="nr:00101-000000102", target_dn="ME=1",
    ...     **{"class": "NRSectorCarrier"}, attribute="configuredMaxTxPower", to=15849)
    >>> restore_through(print, r, Transport.EMULATOR).error  # nothing to apply: no old value
    "change 0b7e7d1c-6f0a-4b8e-9a51-3f4f5d6e7a8b has no 'from' value: nothing to roll back to"
    """
    try:
        back = rollback_of(request)
    except ValueError as exc:
        return CmChangeResult(change_id=request.change_id, cell_key=request.cell_key, state=ChangeState.REJECTED,
                              transport=transport, error=str(exc))
    result = apply(back)
    update: dict[str, Any] = {"change_id": request.change_id}
    if result.state == ChangeState.APPLIED:
        update["state"] = ChangeState.ROLLED_BACK
    return result.model_copy(update=update)


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


def adapter_transport(kind: str) -> Transport:
    """The transport of the CM adapter named ``kind``, without opening one (what a change result
    names for a change decided before any push, an operator's rejection).

    >>> adapter_transport("provmns")
    <Transport.PROVMNS: 'PROVMNS'>
    """
    transport: Transport = _factory(ADAPTER_GROUP, "CM adapter", kind).transport
    return transport
