"""The embedded local time-series store: round trips, range queries, upserts, retention, and the
bounded sink writing to it from its thread while a reader (another connection, as the API) reads."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from twin.schemas import Alert, Fidelity
from twin.timeseries import (
    ALERT,
    DTBSM,
    GAP,
    KPI,
    BufferedSink,
    LocalStore,
    Point,
    alert_point,
    fidelity_point,
    period_points,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CELL_A, CELL_B = "nr:00101-000000101", "nr:00101-000000102"


def _ns(minutes: int) -> int:
    return int((T0 + timedelta(minutes=minutes)).timestamp()) * 1_000_000_000


def _kpi(cell: str, kind: str, minutes: int, value: float) -> Point:
    return Point(KPI, {"cluster": "c1", "cell": cell, "kpi": "RRU.PrbTotDl", "kind": kind}, {"value": value},
                 _ns(minutes))


def test_round_trip_and_range_queries(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ts.sqlite")
    points = [_kpi(c, k, m, m + (0.5 if k == "real" else 0.0)) for m in range(0, 60, 15)
              for c in (CELL_A, CELL_B) for k in ("real", "predicted")]
    store.write_batch(points)
    everything = store.query(KPI, T0, T0 + timedelta(hours=1))
    assert sorted(everything, key=lambda p: (p.time_ns, p.series_key())) == \
        sorted(points, key=lambda p: (p.time_ns, p.series_key()))
    # start inclusive, end exclusive; tags narrow the series
    got = store.query(KPI, T0 + timedelta(minutes=15), T0 + timedelta(minutes=45), {"cell": CELL_A, "kind": "real"})
    assert [(p.time_ns, p.fields["value"]) for p in got] == [(_ns(15), 15.5), (_ns(30), 30.5)]
    assert store.query(KPI, _ns(0), _ns(60), {"cell": "nr:00101-000000999"}) == []
    assert store.query(GAP, _ns(0), _ns(60)) == []
    assert len(store.query(KPI, _ns(0), _ns(60), limit=3)) == 3
    assert {s["cell"] for s in store.series(KPI)} == {CELL_A, CELL_B}
    with pytest.raises(ValueError, match="limit 0"):
        store.query(KPI, _ns(0), _ns(60), limit=0)
    store.close()
    # the file is the history: a reader opened later (the API, read only) sees the same
    reader = LocalStore(tmp_path / "ts.sqlite", readonly=True)
    assert len(reader.query(KPI, _ns(0), _ns(60))) == len(points)
    reader.close()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LocalStore(tmp_path / "missing.sqlite", readonly=True)


def test_same_series_and_time_merges_fields_no_duplicates(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ts.sqlite")
    tags = {"cluster": "c1", "cell": CELL_A, "kpi": "RRU.PrbTotDl"}
    store.write_batch([Point(GAP, tags, {"raw": 3.0}, _ns(0))])
    store.write_batch([Point(GAP, tags, {"raw": 4.0, "calibrated": 1.0}, _ns(0))])  # a replay, completed
    (only,) = store.query(GAP, _ns(0), _ns(1))
    assert only.fields == {"raw": 4.0, "calibrated": 1.0}
    store.close()


def test_retention_prunes_by_event_time(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ts.sqlite", retention_s=3600)
    store.write_batch([_kpi(CELL_A, "real", m, 1.0) for m in range(0, 181, 15)])
    assert store.prune(_ns(120)) == 8
    assert [p.time_ns for p in store.query(KPI, _ns(0), _ns(200))] == [_ns(m) for m in range(120, 181, 15)]
    store.close()


def test_builders_write_and_read_back(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ts.sqlite")
    end = int(T0.timestamp())
    store.write_batch(period_points("c1", end, {CELL_A: {"RRU.PrbTotDl": 40.0, "DRB.UEThpDl": 9e3}},
                                    {CELL_A: {"RRU.PrbTotDl": 42.0}},
                                    {CELL_A: {"RRU.PrbTotDl": 41.0}, CELL_B: {"RRU.PrbTotDl": float("nan")}}))
    kinds = {(p.tags["kpi"], p.tags["kind"]): p.fields["value"] for p in store.query(KPI, T0, T0 + timedelta(1))}
    assert kinds == {("RRU.PrbTotDl", "predicted"): 40.0, ("RRU.PrbTotDl", "calibrated"): 42.0,
                     ("RRU.PrbTotDl", "real"): 41.0, ("DRB.UEThpDl", "predicted"): 9e3}
    (gap,) = store.query(GAP, T0, T0 + timedelta(1))
    assert gap.fields == {"raw": 1.0, "calibrated": -1.0}
    raised = Alert(alert_id="0b6e5f2a-7a1c-5c6e-9d2e-0f9e1b2c3d4e", raised_at=T0, cell_key=CELL_A, cluster_id="c1",
                   severity="MAJOR", type="TWIN_DIVERGENCE", text="twin diverges")
    cleared = raised.model_copy(update={"severity": "CLEARED", "cleared_at": T0 + timedelta(hours=2)})
    fid = Fidelity(cluster_id="c1", period_end=end, gp=900, value=0.4, lower=0.2, upper=0.6, coverage=0.7,
                   coverage_used=0.7, restricted=False, n_min=5, gamma=0.8, tau=0.1, firing=True,
                   consecutive_above=2, states=[1], actions=["none"], real_samples=10, twin_samples=10, whatifs=4,
                   whatif_seconds=0.1, compute_seconds=0.2)
    store.write_batch([alert_point(raised), alert_point(cleared), fidelity_point(fid)])
    alerts = store.query(ALERT, T0, T0 + timedelta(1), {"cell": CELL_A})
    assert [(p.tags["severity"], p.fields["active"], p.time_ns) for p in alerts] == \
        [("MAJOR", 1.0, _ns(0)), ("CLEARED", 0.0, _ns(120))]
    (d,) = store.query(DTBSM, T0, T0 + timedelta(1), {"cluster": "c1"})
    assert (d.fields["lower"], d.fields["firing"]) == (0.2, 1.0)
    store.close()


def test_sink_thread_writes_while_another_connection_reads(tmp_path: Path) -> None:
    path = tmp_path / "ts.sqlite"
    sink = BufferedSink(LocalStore(path), buffer_points=50_000, batch_points=500, flush_interval_s=0.05)
    reader = LocalStore(path, readonly=True)
    seen: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(len(reader.query(KPI, _ns(0), _ns(10_000))))

    t = threading.Thread(target=read)
    t.start()
    for m in range(0, 2000, 100):
        sink.write([_kpi(CELL_A, "real", i, float(i)) for i in range(m, m + 100)])
    assert sink.flush(20)
    stop.set()
    t.join()
    sink.close()
    assert sink.stats.written == 2000 and sink.stats.dropped == 0
    assert seen == sorted(seen), "a reader sees whole committed batches, never fewer later"
    assert [p.fields["value"] for p in reader.query(KPI, _ns(0), _ns(10_000))] == [float(i) for i in range(2000)]
    reader.close()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"measurement": ""}, "measurement is empty"),
    ({"tags": {"cell": ""}}, "tag 'cell' value ''"),
    ({"fields": {}}, "no fields"),
    ({"fields": {"value": float("inf")}}, "field value inf is not a finite number"),
    ({"fields": {"value": [1]}}, r"field value \[1\] is not a number"),
    ({"time_ns": 1.5}, "time_ns 1.5 is not an integer"),
])
def test_bad_points_name_the_field(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"measurement": KPI, "tags": {"cell": CELL_A}, "fields": {"value": 1.0}, "time_ns": 0}
    with pytest.raises(ValueError, match=message):
        Point(**{**base, **kwargs})  # type: ignore[arg-type]
