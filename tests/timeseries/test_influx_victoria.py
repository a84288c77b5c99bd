"""The InfluxDB writer against a real server of the InfluxDB v2 write API: Debian's VictoriaMetrics,
started on a loopback port, stopped mid-run and started again on the same port and data directory.

VictoriaMetrics names a line-protocol field ``f`` of measurement ``m`` as the metric ``m_f`` and
keeps milliseconds, so the points here are on whole milliseconds and compared exactly.
"""

from __future__ import annotations

import time
from pathlib import Path

from structlog.testing import capture_logs

from streams.influx import InfluxBackend
from tests.helpers import wait_for
from tests.timeseries.victoria import Victoria
from twin.timeseries import BufferedSink, Point

CELLS = ["nr:00101-000000101", "nr:00101-000000102", "odd cell, with=signs"]
KINDS = ["real", "predicted", "calibrated"]


def _points(first: int, n: int, base_ms: int) -> list[Point]:
    return [Point("twin_kpi", {"cluster": "c1", "cell": CELLS[i % 3], "kpi": "DRB.UEThpDl", "kind": KINDS[i % 3]},
                  {"value": i + 0.25}, (base_ms + i) * 1_000_000) for i in range(first, first + n)]


def _key(cell: str, kind: str, ms: int, value: float) -> tuple[str, str, int, float]:
    return cell, kind, ms, value


def _expected(points: list[Point]) -> set[tuple[str, str, int, float]]:
    return {_key(p.tags["cell"], p.tags["kind"], p.time_ns // 1_000_000, float(p.fields["value"])) for p in points}


def _stored(vm: Victoria) -> list[tuple[str, str, int, float]]:
    out = []
    for row in vm.export('{__name__="twin_kpi_value"}'):
        labels = row["metric"]
        assert labels["cluster"] == "c1" and labels["kpi"] == "DRB.UEThpDl"
        samples = zip(row["timestamps"], row["values"], strict=True)
        out += [_key(labels["cell"], labels["kind"], t, v) for t, v in samples]
    return out


def _sink(vm: Victoria, buffer_points: int, batch_points: int) -> BufferedSink:
    backend = InfluxBackend(vm.url, "ran-twin", "ran-twin", token=None, timeout_s=2.0)
    return BufferedSink(backend, buffer_points=buffer_points, batch_points=batch_points, flush_interval_s=0.05,
                        retry_initial_s=0.05, retry_max_s=0.3)


def test_nothing_lost_while_the_server_restarts(victoria: Victoria) -> None:
    base_ms = (int(time.time()) - 3600) * 1000
    sink = _sink(victoria, buffer_points=10_000, batch_points=250)
    before, during, after = _points(0, 1500, base_ms), _points(1500, 3000, base_ms), _points(4500, 500, base_ms)
    with capture_logs() as logs:
        sink.write(before)
        assert sink.flush(20), "the running server took the first points"
        assert sink.stats.written == 1500
        victoria.stop()
        sink.write(during)
        wait_for(lambda: sink.stats.failures >= 2, 10, "failed writes while the server is down")
        assert not sink.flush(0.3), "nothing can be flushed while the server is down"
        assert sink.stats.written == 1500 and sink.stats.buffered == 3000 and sink.stats.dropped == 0
        victoria.start()
        sink.write(after)
        assert sink.flush(30), "the buffered points went out once the server was back"
        sink.close()
    stats = sink.stats
    assert (stats.accepted, stats.written, stats.dropped, stats.rejected) == (5000, 5000, 0, 0)
    stored = _stored(victoria)
    assert len(stored) == 5000, "every point once, none twice"
    assert set(stored) == _expected(before + during + after)
    events = [e["event"] for e in logs]
    assert "timeseries.write_failed" in events and "timeseries.write_recovered" in events


def test_overflow_drops_the_oldest_counted_and_logged(victoria: Victoria) -> None:
    base_ms = (int(time.time()) - 7200) * 1000
    victoria.stop()
    sink = _sink(victoria, buffer_points=500, batch_points=100)
    first, more = _points(0, 500, base_ms), _points(500, 700, base_ms)
    with capture_logs() as logs:
        sink.write(first)
        wait_for(lambda: sink.stats.failures >= 1, 10, "the first batch in flight and failing")
        sink.write(more)  # 1200 points for a buffer of 500: the 700 oldest queued ones go
        assert sink.stats.dropped == 700 and sink.stats.buffered == 500
        victoria.start()
        assert sink.flush(30)
        sink.close()
    drops = [e for e in logs if e["event"] == "timeseries.points_dropped"]
    assert [(d["dropped"], d["dropped_total"], d["reason"], d["log_level"]) for d in drops] == \
        [(700, 700, "buffer full", "warning")]
    assert sink.stats.written == 500
    # what survived: the batch in flight when the buffer overflowed (0-99) and the newest 400
    assert set(_stored(victoria)) == _expected(first[:100] + more[300:])
    assert len(_stored(victoria)) == 500


def test_influx_backend_keeps_the_local_store_beside(victoria: Victoria, tmp_path: Path) -> None:
    from streams.outputs import open_sink
    from twin.config import TwinSettings
    from twin.timeseries import KPI, LocalStore

    base = {"state_dir": tmp_path / "state"}
    assert open_sink(TwinSettings.model_validate({**base, "timeseries": {"backend": "none"}})) is None
    settings = TwinSettings.model_validate({**base, "timeseries": {"backend": "influxdb", "url": victoria.url,
                                                                   "flush_interval_s": 0.05}})
    sink = open_sink(settings)
    assert sink is not None
    points = _points(0, 300, (int(time.time()) - 600) * 1000)
    sink.write(points)
    assert sink.flush(20)
    sink.close()
    assert (sink.stats.backend, sink.stats.written, sink.stats.dropped) == ("influxdb+local", 600, 0)
    assert set(_stored(victoria)) == _expected(points)
    local = LocalStore(settings.timeseries.local_file(settings.state_dir), readonly=True)
    assert sorted(p.time_ns for p in local.query(KPI, 0, 2**62)) == sorted(p.time_ns for p in points)
    local.close()
