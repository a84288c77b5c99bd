"""The resync trigger: signals from any source, one episode per divergence.

A **signal** is one source's verdict about one scope (a cell key or a cluster id) for one period:
firing or quiet, with the values behind it. Sources so far: the gap learners' drift detector
(``"drift"``) and their rolling error bound (``"error_bound"``); the DT-BSM estimator joins as one
more source through the same :meth:`TriggerGate.offer`, nothing else to change.

The gate turns signals into **episodes**: the first firing signal of a quiet scope opens one
(``"raised"``: start one resync, raise one alert); further firing signals, from any source, belong
to it; it ends (``"cleared"``) after ``clear_periods`` periods without a firing signal
(hysteresis). A scope cannot open a new episode within ``min_interval_s`` of its last one's start:
such signals are counted (``suppressed``), not acted on. State is plain data (``to_dict`` and
``load``), checkpointed with the mirror.

>>> gate = TriggerGate(clear_periods=2, min_interval_s=3600)
>>> [e.kind for e in gate.offer([Signal("drift", "nr:a", 900, True, {"surprise": 1.4})])]
['raised']
>>> gate.offer([Signal("error_bound", "nr:a", 1800, True)])  # the same episode
[]
>>> gate.offer([Signal("drift", "nr:a", 2700, False)])
[]
>>> [e.kind for e in gate.offer([Signal("drift", "nr:a", 3600, False)])]
['cleared']
>>> gate.offer([Signal("drift", "nr:a", 4000, True)]), gate.suppressed  # within an hour of the last start
([], 1)
>>> [(e.kind, e.sources) for e in gate.offer([Signal("dt_bsm", "nr:a", 4500, True)])]
[('raised', ('dt_bsm',))]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Episode", "Signal", "TriggerEvent", "TriggerGate"]


@dataclass(frozen=True)
class Signal:
    """One source's verdict on one scope for the period ending at ``period_end`` (epoch s)."""

    source: str
    scope: str
    period_end: int
    firing: bool
    values: Mapping[str, float] = field(default_factory=dict)


@dataclass
class Episode:
    """An open divergence episode of one scope."""

    started: int  # period end of the signal that opened it
    sources: list[str]
    values: dict[str, float]
    quiet: int = 0  # consecutive periods without a firing signal


@dataclass(frozen=True)
class TriggerEvent:
    """An episode opened (``raised``: resync and alert) or ended (``cleared``)."""

    kind: Literal["raised", "cleared"]
    scope: str
    period_end: int
    started: int
    sources: tuple[str, ...]
    values: Mapping[str, float]


class TriggerGate:
    """Episodes with hysteresis and a minimum interval, per scope (see the module docstring)."""

    def __init__(self, clear_periods: int = 4, min_interval_s: int = 6 * 3600) -> None:
        if clear_periods < 1:
            raise ValueError(f"clear_periods={clear_periods} must be >= 1")
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s={min_interval_s} must be >= 0")
        self.clear_periods = clear_periods
        self.min_interval_s = min_interval_s
        self.open: dict[str, Episode] = {}
        self.last_start: dict[str, int] = {}
        self.suppressed = 0

    def offer(self, signals: Iterable[Signal]) -> list[TriggerEvent]:
        """Take one period's signals (any sources, any scopes); the episodes raised and cleared.

        A scope with an open episode and no signal in this batch is not counted quiet: only a
        period its sources looked at and found quiet is."""
        by_scope: dict[str, list[Signal]] = {}
        for s in signals:
            by_scope.setdefault(s.scope, []).append(s)
        events: list[TriggerEvent] = []
        for scope, batch in sorted(by_scope.items()):
            end = max(s.period_end for s in batch)
            firing = [s for s in batch if s.firing]
            episode = self.open.get(scope)
            if episode is not None:
                if firing:
                    episode.quiet = 0
                    for s in firing:
                        if s.source not in episode.sources:
                            episode.sources.append(s.source)
                        episode.values.update(s.values)
                    continue
                episode.quiet += 1
                if episode.quiet >= self.clear_periods:
                    del self.open[scope]
                    events.append(TriggerEvent("cleared", scope, end, episode.started, tuple(episode.sources),
                                               dict(episode.values)))
                continue
            if not firing:
                continue
            last = self.last_start.get(scope)
            if last is not None and end - last < self.min_interval_s:
                self.suppressed += 1
                continue
            values: dict[str, float] = {}
            for s in firing:
                values.update(s.values)
            sources = sorted({s.source for s in firing})
            self.open[scope] = Episode(end, sources, values)
            self.last_start[scope] = end
            events.append(TriggerEvent("raised", scope, end, end, tuple(sources), values))
        return events

    # -- state -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"open": {k: {"started": e.started, "sources": e.sources, "values": e.values, "quiet": e.quiet}
                         for k, e in self.open.items()},
                "lastStart": self.last_start, "suppressed": self.suppressed}

    def load(self, d: Mapping[str, Any]) -> None:
        self.open = {k: Episode(int(e["started"]), list(e["sources"]), dict(e["values"]), int(e["quiet"]))
                     for k, e in d.get("open", {}).items()}
        self.last_start = {k: int(v) for k, v in d.get("lastStart", {}).items()}
        self.suppressed = int(d.get("suppressed", 0))
