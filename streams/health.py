"""Is the broker there? A probe the worker runs beside its stages, for readiness, logs and counters.

The Kafka clients retry inside themselves without saying so: an idle worker whose broker is gone
just waits, and a busy one fails a send after its request timeout. The worker probes the bootstrap
servers itself (a Kafka ``ApiVersions`` request, the cheapest question a broker answers) and, once
none has answered for ``unreachable_after_s``, reports the broker unreachable: readiness false with
the reason, one log line per outage (``broker.unreachable``, then ``broker.reachable`` with the
downtime), and counters in the worker's stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import structlog

from streams.broker import kafka_answers

__all__ = ["BrokerHealth", "parse_servers"]

log = structlog.get_logger(__name__)


def parse_servers(bootstrap: str) -> list[tuple[str, int]]:
    """``host:port`` pairs of a bootstrap string.

    >>> parse_servers("kafka-1:9092, 10.0.0.2:19092")
    [('kafka-1', 9092), ('10.0.0.2', 19092)]
    """
    out = []
    for part in bootstrap.split(","):
        host, _, port = part.strip().rpartition(":")
        out.append((host, int(port)))
    return out


@dataclass
class BrokerHealth:
    """The broker's reachability as the worker sees it (probed every ``interval_s``)."""

    bootstrap: str
    unreachable_after_s: float = 3.0
    interval_s: float = 0.5
    probe_timeout_s: float = 1.0
    reachable: bool = True
    silent_since: float | None = None  # monotonic time of the first unanswered probe of this outage
    outages: int = 0
    outage_seconds: float = 0.0
    reason: str | None = None
    _down_at: float | None = field(default=None, repr=False)

    def answers(self) -> bool:
        return any(kafka_answers(host, port, self.probe_timeout_s) for host, port in parse_servers(self.bootstrap))

    def observe(self, answered: bool, now: float | None = None) -> None:
        """Fold one probe result in (logs the transitions)."""
        now = time.monotonic() if now is None else now
        if answered:
            if not self.reachable and self._down_at is not None:
                down = now - self._down_at
                self.outage_seconds += down
                log.warning("broker.reachable", bootstrap=self.bootstrap, unreachable_s=round(down, 1))
            self.reachable, self.silent_since, self._down_at, self.reason = True, None, None, None
            return
        if self.silent_since is None:
            self.silent_since = now
        if self.reachable and now - self.silent_since >= self.unreachable_after_s:
            self.reachable = False
            self._down_at = self.silent_since
            self.outages += 1
            self.reason = (f"the broker ({self.bootstrap}) has not answered for {now - self.silent_since:.0f} s; "
                           "sends are retried until kafka.broker_loss_timeout_s")
            log.error("broker.unreachable", bootstrap=self.bootstrap, silent_s=round(now - self.silent_since, 1))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.observe(await asyncio.to_thread(self.answers))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

    def as_dict(self) -> dict[str, object]:
        now = time.monotonic()
        current = now - self._down_at if self._down_at is not None else 0.0
        return {"brokerReachable": self.reachable, "brokerOutages": self.outages,
                "brokerUnreachableSeconds": round(self.outage_seconds + current, 1),
                "notReadyReason": self.reason}
