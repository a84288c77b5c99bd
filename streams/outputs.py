"""The worker's outputs beside Kafka: time series (``[timeseries]``) and the alert webhook
(``[webhook]``), fed where the mirror stage publishes predictions, DT-BSM, resyncs and alerts.

Neither ever blocks the stage: points go to a bounded buffer written by a thread, alerts to a
bounded queue POSTed by a task. A point that cannot be built (a bug, never bad telemetry: the
builders skip values that are not finite) is counted and logged, and the stage goes on.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from streams.influx import influx_sink
from streams.webhook import WebhookDelivery
from twin.config import TwinSettings
from twin.mirror.cluster import ClusterMirror
from twin.prediction.model import ClusterPrediction
from twin.prediction.resync import real_values
from twin.schemas import Alert, CmChangeResult, Fidelity, Resync
from twin.timeseries import (
    BufferedSink,
    FanoutSink,
    LocalStore,
    Point,
    TimeSeriesSink,
    alert_point,
    change_point,
    fidelity_point,
    period_points,
    resync_point,
)

__all__ = ["Outputs", "open_sink"]

log = structlog.get_logger(__name__)


def open_sink(settings: TwinSettings) -> TimeSeriesSink | None:
    """The ``[timeseries]`` backend's sink: the local SQLite file, InfluxDB (and the local file beside
    it with ``keep_local``), or none."""
    ts = settings.timeseries
    if ts.backend == "none":
        return None
    sinks: list[TimeSeriesSink] = []
    if ts.backend == "influxdb":
        sinks.append(influx_sink(ts))
    if ts.backend == "local" or ts.keep_local:
        store = LocalStore(ts.local_file(settings.state_dir), retention_s=ts.local_retention_days * 86_400)
        sinks.append(BufferedSink(store, ts.buffer_points, ts.batch_points, ts.flush_interval_s, ts.retry_initial_s,
                                  ts.retry_max_s))
    return sinks[0] if len(sinks) == 1 else FanoutSink(sinks)

class Outputs:
    """``start``, feed (``period``, ``fidelity``, ``resync``, ``change``, ``alert``), ``close``."""

    def __init__(self, settings: TwinSettings) -> None:
        self.settings = settings
        self.sink = open_sink(settings)
        url = settings.webhook.url
        self.webhook = WebhookDelivery(settings.webhook, settings.webhook.dead_letter_file(settings.state_dir)) \
            if url else None
        self.invalid_points = 0

    async def start(self) -> None:
        if self.webhook is not None:
            await self.webhook.start()

    def _write(self, build: Any, *args: Any) -> None:
        if self.sink is None:
            return
        try:
            points: list[Point] = build(*args)
        except ValueError as exc:
            self.invalid_points += 1
            log.error("timeseries.point_invalid", reason=str(exc), invalid_total=self.invalid_points)
            return
        self.sink.write(points)

    def period(self, mirror: ClusterMirror, p: ClusterPrediction) -> None:
        """A predicted period: real, predicted and calibrated KPIs and the gap."""
        if self.sink is not None:
            self._write(period_points, mirror.cluster_id, p.period_end, p.values, p.calibrated,
                        real_values(mirror, p.gp, p.period_end))

    def fidelity(self, f: Fidelity) -> None:
        self._write(lambda: [fidelity_point(f)])

    def resync(self, r: Resync) -> None:
        self._write(lambda: [resync_point(r)])

    def change(self, r: CmChangeResult, at_ns: int, source: str = "cm") -> None:
        """A CM change's result (the dashboard's and Grafana's change markers)."""
        self._write(lambda: [change_point(r, at_ns, source)])

    def alert(self, a: Alert) -> None:
        self._write(lambda: [alert_point(a)])
        if self.webhook is not None:
            self.webhook.submit(a)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.sink is not None:
            out["timeseries"] = {**self.sink.stats.as_dict(), "invalid": self.invalid_points}
        if self.webhook is not None:
            out.update(self.webhook.stats.as_dict())
        return out

    async def close(self, timeout_s: float = 10.0) -> None:
        """Flush both for up to ``timeout_s`` each; what is left is counted, logged, dead-lettered."""
        if self.webhook is not None:
            await self.webhook.close(timeout_s)
        if self.sink is not None:
            await asyncio.to_thread(self.sink.close, timeout_s)
