"""The twin's time series: typed points (``points``), what each output becomes (``build``), the
bounded retrying sink (``sink``) and the embedded local store (``local``). The InfluxDB writer is
transport and lives in ``streams.influx``."""

from twin.timeseries.build import alert_point, change_point, fidelity_point, period_points, resync_point
from twin.timeseries.local import LocalStore
from twin.timeseries.points import ALERT, CHANGE, DTBSM, GAP, KINDS, KPI, MEASUREMENTS, RESYNC, Point, to_ns
from twin.timeseries.sink import Backend, BufferedSink, FanoutSink, RejectedBatch, SinkStats, TimeSeriesSink

__all__ = [
    "ALERT",
    "CHANGE",
    "DTBSM",
    "GAP",
    "KINDS",
    "KPI",
    "MEASUREMENTS",
    "RESYNC",
    "Backend",
    "BufferedSink",
    "FanoutSink",
    "LocalStore",
    "Point",
    "RejectedBatch",
    "SinkStats",
    "TimeSeriesSink",
    "alert_point",
    "change_point",
    "fidelity_point",
    "period_points",
    "resync_point",
    "to_ns",
]
