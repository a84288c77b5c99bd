"""The emulated live network: a "physical" RAN built on ``twin.sim`` with hidden ground truth.

It stands in for a live network in the demo and the end-to-end tests. The twin sees only what
the emulator publishes through the real OSS topics (CM snapshots and notifications, PM per cell,
MR events) and changes CM only through ``adapters.emulator``; the hidden truth (antenna errors,
its own shadowing, building loss, the true load and scheduled events) stays in here.

Interface (stable; additions only):

* ``load_scenario(name_or_path) -> Scenario``, ``list_scenarios() -> list[str]``
* ``NetworkEmulator(scenario, seed=0, start=..., granularity_s=900, mr_per_cell=10)`` with
  ``.cells``, ``.clusters``, ``.topology_config()``, ``.public_model()``, ``.initial_records()``,
  ``.step()``, ``.step_detail()``, ``.period_end``, ``.events_in(period)``, ``.timeline()``,
  ``.apply_change(request)`` and ``.oss`` (the management interface the adapter talks to)
* ``period_hour(period_end, granularity_s)``: the hour of day the load is evaluated at
"""

from replay.emulator.emulator import EventMark, NetworkEmulator, StepOutput, default_start, period_hour
from replay.emulator.scenario import Event, Scenario, list_scenarios, load_scenario

__all__ = [
    "Event",
    "EventMark",
    "NetworkEmulator",
    "Scenario",
    "StepOutput",
    "default_start",
    "list_scenarios",
    "load_scenario",
    "period_hour",
]
