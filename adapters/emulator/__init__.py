"""CM adapter of the emulated network (``replay.emulator``): ``EmulatorAdapter(emulator.oss)``.

It implements ``twin.ports.CmAdapter`` over the emulator's management interface the way a
vendor adapter wraps an O1 / ProvMnS endpoint: it passes the request through, returns the
device's verdict (REJECTED with the reason naming attribute and value, APPLIED effective from
the next granularity-period boundary, ACCEPTED for a dry run) and turns a transport failure into
a FAILED result instead of an exception. This layer imports ``twin`` only; the endpoint is typed
structurally.
"""

from adapters.emulator.adapter import EmulatorAdapter, ManagementEndpoint

__all__ = ["EmulatorAdapter", "ManagementEndpoint"]
