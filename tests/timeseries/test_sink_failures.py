"""Failures of the time-series outputs found by an audit, each against real components:

- the retry backoff holds while points keep coming: the real InfluxDB writer (``influxdb-client``)
  against a real HTTP server on a loopback port that answers ``/api/v2/write`` with 503
  (``tests.timeseries.influx_like``, which keeps each request and its time);
- the local store's retention does not let one point stamped with the wall clock delete a backfill's
  history: the real SQLite store;
- tag keys, tag values and field keys with backslashes, commas, equals signs and spaces are stored
  exactly: the real writer against Debian's VictoriaMetrics on a loopback port, read back through
  its export API.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import twin.timeseries.local as local_module
from streams.influx import InfluxBackend, line
from tests.helpers import wait_for
from tests.timeseries.influx_like import influx_like
from tests.timeseries.victoria import Victoria
from twin.schemas import Alert
from twin.timeseries import ALERT, KPI, BufferedSink, LocalStore, Point, alert_point

DAY_NS = 86_400 * 1_000_000_000


def _p(i: int) -> Point:
    return Point(KPI, {"cluster": "c1", "cell": "a", "kpi": "RRU.PrbTotDl", "kind": "real"}, {"value": float(i)}, i)


def test_new_points_do_not_cut_the_retry_backoff_short() -> None:
    status = [503]
    initial, most = 0.4, 1.0
    with influx_like(status) as (url, seen):
        sink = BufferedSink(InfluxBackend(url, "o", "b", None, timeout_s=2), buffer_points=10_000, batch_points=5,
                            flush_interval_s=0.02, retry_initial_s=initial, retry_max_s=most)
        sink.write([_p(i) for i in range(10)])
        t0 = time.monotonic()
        i = 10
        while time.monotonic() - t0 < 3.0:  # a period's points every 10 ms: always a full batch waiting
            sink.write([_p(i)])
            i += 1
            time.sleep(0.01)
        attempts = [r.at for r in seen]
        # backoff with jitter (x0.75..1): >= 0.3, 0.6, 0.75, 0.75 s apart: at most 5 requests in 3 s
        # (the old sink sent one per write: ~300)
        assert 3 <= len(attempts) <= 6, f"{len(attempts)} requests in 3 s"
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        for n, gap in enumerate(gaps):
            want = min(most, initial * 2**n)
            assert 0.75 * want - 0.02 <= gap <= want + 0.5, f"gap {n}: {gap:.3f} s, backoff {want} s"
        status[0] = 204
        assert sink.flush(5), "the points went out once the server answered"
        sink.close()
    assert (sink.stats.written, sink.stats.dropped, sink.stats.rejected) == (i, 0, 0)
    assert sink.stats.failures >= len(attempts)


def test_close_still_ends_a_long_backoff_for_a_last_try() -> None:
    status = [503]
    with influx_like(status) as (url, seen):
        sink = BufferedSink(InfluxBackend(url, "o", "b", None, timeout_s=2), buffer_points=100, batch_points=5,
                            flush_interval_s=0.02, retry_initial_s=30, retry_max_s=60)
        sink.write([_p(i) for i in range(5)])
        wait_for(lambda: sink.stats.failures >= 1, 5, "the first write failing")
        for i in range(5, 50):
            sink.write([_p(i)])
        time.sleep(0.3)
        assert len(seen) == 1, "the 30 s backoff holds"
        status[0] = 204
        t0 = time.monotonic()
        sink.close(timeout_s=5)
        assert time.monotonic() - t0 < 3
    assert (sink.stats.written, sink.stats.dropped) == (50, 0)


@pytest.fixture
def prune_at_every_write(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_module, "PRUNE_EVERY_S", 0.0)


def _kpi(cell: str, t_ns: int) -> Point:
    return Point(KPI, {"cluster": "c1", "cell": cell, "kpi": "RRU.PrbTotDl", "kind": "real"}, {"value": 1.0}, t_ns)


@pytest.mark.usefixtures("prune_at_every_write")
def test_one_wall_clock_alert_does_not_delete_a_backfill(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ts.sqlite", retention_s=30 * 86_400)
    now = time.time_ns()
    old = now - 40 * DAY_NS  # telemetry of 40..38 days ago, processed now
    backfill = [_kpi(cell, old + k * 900 * 10**9) for cell in ("a", "b") for k in range(2 * 96)]
    store.write_batch(backfill)
    assert len(store.query(KPI, 0, 2**62)) == 384
    alert = Alert(alert_id="0b6e5f2a-7a1c-5c6e-9d2e-0f9e1b2c3d4e", raised_at=datetime.now(UTC),
                  cell_key="nr:00101-000000999", severity="WARNING", type="UNKNOWN_CELL")
    store.write_batch([alert_point(alert)])  # stamped with the wall clock
    assert len(store.query(KPI, 0, 2**62)) == 384, "the backfill's history is kept"
    assert len(store.query(ALERT, 0, 2**62)) == 1
    # a point stamped far in the future (a wrong clock) deletes nothing of its series' recent points
    recent = [_kpi("c", now - k * DAY_NS) for k in range(10)]
    store.write_batch([*recent, _kpi("c", now + 3650 * DAY_NS)])
    assert len(store.query(KPI, 0, 2**62, {"cell": "c"})) == 11
    # the retention still holds per series: live points of cell b push b's backfill out, not a's
    store.write_batch([_kpi("b", now)])
    assert [p.time_ns for p in store.query(KPI, 0, 2**62, {"cell": "b"})] == [now]
    assert len(store.query(KPI, 0, 2**62, {"cell": "a"})) == 192
    store.close()


ODD = ["plain", "sp ace", "com,ma", "eq=ual", "back\\slash", "a\\ b", "trail\\", "a\\,b", "\\", "\\\\", "x\\=y",
       " lead", "trail ", "=", ",", 'a"b', "tab\there", "ünï ©", "#hash", "\\ \\,\\=" * 18 + "z\\"]


def test_odd_tags_and_field_keys_are_stored_exactly(victoria: Victoria) -> None:
    assert all(1 <= len(c) <= 128 for c in ODD)
    backend = InfluxBackend(victoria.url, "o", "b", None, 5)
    t_ns = (int(time.time()) - 600) * 1_000_000_000
    points = [Point("esc", {"cluster": c, "n": str(i)}, {"value": float(i)}, t_ns) for i, c in enumerate(ODD)]
    points.append(Point("esc", {"odd key,=\\": "v\\", "n": "k"}, {"f ie,l=d\\": 1.0}, t_ns))
    backend.write_batch(points)
    backend.close()
    stored = {row["metric"]["n"]: row["metric"] for row in victoria.export('{__name__=~"esc_.*"}')}
    for i, cluster in enumerate(ODD):
        assert stored.get(str(i)) == {"__name__": "esc_value", "cluster": cluster, "n": str(i)}, line(points[i])
    assert stored.get("k") == {"__name__": "esc_f ie,l=d\\", "odd key,=\\": "v\\", "n": "k"}, line(points[-1])
    assert len(stored) == len(points)
