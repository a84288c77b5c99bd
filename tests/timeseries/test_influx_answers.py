"""How the InfluxDB writer treats the server's answers, against a real HTTP server the test starts
that answers ``/api/v2/write`` with scripted statuses (VictoriaMetrics accepts everything well
formed, so refusals and auth failures need a server that gives them): a 400 is a refusal (counted,
logged, not retried), 401 and 503 are retried until the server takes the batch, and the token is
sent but never logged."""

from __future__ import annotations

from structlog.testing import capture_logs

from streams.influx import InfluxBackend
from tests.timeseries.influx_like import influx_like
from twin.timeseries import BufferedSink, Point

TOKEN = "tok-abc-123-secret"


def _sink(url: str) -> BufferedSink:
    return BufferedSink(InfluxBackend(url, "ran-twin", "kpis", TOKEN, timeout_s=2), buffer_points=100,
                        batch_points=10, flush_interval_s=0.02, retry_initial_s=0.02, retry_max_s=0.05)


def _points(n: int) -> list[Point]:
    return [Point("twin_kpi", {"cell": "c", "kind": "real"}, {"value": float(i)}, i) for i in range(n)]


def test_refusal_is_counted_and_logged_not_retried() -> None:
    with influx_like([400, 204]) as (url, seen), capture_logs() as logs:
        sink = _sink(url)
        sink.write(_points(10))
        assert sink.flush(10)
        sink.write(_points(5))
        assert sink.flush(10)
        sink.close()
    assert [s for s, *_ in seen] == [400, 204]
    assert seen[0][1].startswith("/api/v2/write?") and "bucket=kpis" in seen[0][1] and "precision=ns" in seen[0][1]
    assert (sink.stats.rejected, sink.stats.written, sink.stats.failures) == (10, 5, 0)
    (line,) = [e for e in logs if e["event"] == "timeseries.batch_rejected"]
    assert line["points"] == 10 and "answered 400" in line["reason"] and line["log_level"] == "error"


def test_auth_and_server_errors_are_retried_and_the_token_never_logged() -> None:
    with influx_like([401, 503, 204]) as (url, seen), capture_logs() as logs:
        sink = _sink(url)
        sink.write(_points(10))
        assert sink.flush(10)
        sink.close()
    assert [s for s, *_ in seen] == [401, 503, 204]
    assert all(r.authorization == f"Token {TOKEN}" for r in seen)
    assert seen[0][3] == seen[2][3], "the same batch is sent again"
    assert seen[2][3].decode().splitlines()[0] == "twin_kpi,cell=c,kind=real value=0.0 0"
    assert (sink.stats.written, sink.stats.failures, sink.stats.rejected, sink.stats.dropped) == (10, 2, 0, 0)
    assert [e["attempt"] for e in logs if e["event"] == "timeseries.write_failed"][:1] == [1]
    assert TOKEN not in repr(logs)
