"""Time series to InfluxDB v2 (or any server of its write API: VictoriaMetrics, InfluxDB 3) with
``influxdb-client``.

The client's own batching ``WriteApi`` retries with backoff but buffers without a bound while the
database is down (its batches wait in an unbounded reactive pipeline), and what it finally gives up
on is only logged. So the client is used synchronously (one request per batch, its own retries off)
behind ``twin.timeseries.BufferedSink``: a bounded buffer, exponential backoff, drops counted and
logged. A 400/413/422 answer is a refusal of the data (not retried, counted as rejected); every
other failure (connection refused, timeout, 5xx, 401/403 until the token is fixed) is retried.

Points are encoded to line protocol here (a few times faster than the client's ``Point``):

>>> from twin.timeseries import Point
>>> line(Point("twin_kpi", {"cell": "nr:1 a,b=c", "kind": "real"}, {"value": 1.5, "n": 2, "ok": True,
...            "text": 'say "hi"'}, 1_767_225_600_000_000_000))
'twin_kpi,cell=nr:1\\\\ a\\\\,b\\\\=c,kind=real value=1.5,n=2i,ok=true,text="say \\\\"hi\\\\"" 1767225600000000000'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from twin.config import TimeSeriesSettings
from twin.timeseries import BufferedSink, Point, RejectedBatch

__all__ = ["InfluxBackend", "influx_sink", "line"]

# tag keys, tag values and field keys: a backslash is escaped too, so one before an escaped
# character or at the end of a value (which would escape the comma or space after it) is kept
_KEY = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n"})
_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\n"})
REFUSED = frozenset({400, 413, 422})


def _field(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def line(p: Point) -> str:
    """One point as a line of InfluxDB line protocol (tags sorted, nanosecond time)."""
    head = p.measurement.translate(_MEASUREMENT)
    tags = "".join(f",{k.translate(_KEY)}={v.translate(_KEY)}" for k, v in sorted(p.tags.items()))
    fields = ",".join(f"{k.translate(_KEY)}={_field(v)}" for k, v in p.fields.items())
    return f"{head}{tags} {fields} {p.time_ns}"


class InfluxBackend:
    """One synchronous write request per batch to ``/api/v2/write`` of ``url``."""

    name = "influxdb"

    def __init__(self, url: str, org: str, bucket: str, token: str | None, timeout_s: float = 10.0) -> None:
        self.url, self.org, self.bucket = url, org, bucket
        # retries=False: the client does not retry by itself; BufferedSink does, bounded
        self.client = InfluxDBClient(url=url, token=token or "", org=org, timeout=int(timeout_s * 1000),
                                     retries=False)
        self.api = self.client.write_api(write_options=SYNCHRONOUS)

    def write_batch(self, points: Sequence[Point]) -> None:
        body = "\n".join(line(p) for p in points)
        try:
            self.api.write(bucket=self.bucket, org=self.org, record=body,
                           write_precision=cast(WritePrecision, WritePrecision.NS))
        except ApiException as exc:
            if exc.status in REFUSED:
                raise RejectedBatch(f"{self.url} answered {exc.status}: {str(exc.body)[:300]}") from exc
            raise

    def close(self) -> None:
        self.api.close()
        self.client.close()


def influx_sink(settings: TimeSeriesSettings) -> BufferedSink:
    """The bounded, retrying InfluxDB sink of a ``[timeseries]`` section."""
    token = settings.token.get_secret_value() if settings.token is not None else None
    backend = InfluxBackend(settings.url, settings.org, settings.bucket, token, settings.timeout_s)
    return BufferedSink(backend, settings.buffer_points, settings.batch_points, settings.flush_interval_s,
                        settings.retry_initial_s, settings.retry_max_s)
