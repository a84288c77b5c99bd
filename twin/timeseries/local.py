"""The embedded default's time-series store: one SQLite file (stdlib), so the dashboard has history
with nothing else running.

SQLite rather than Parquet or DuckDB: points arrive a batch at a time from a running worker while
the API reads ranges from another process. SQLite's WAL gives one writer and concurrent readers on
one file with transactions, and its B-tree answers "this series from t0 to t1" through the primary
key; Parquet would need many small files and a compaction, DuckDB a second engine dependency and
one process holding the file. The runtime already checkpoints to SQLite (``twin.mirror.store``).

Series are stored once (``series``: measurement and canonical JSON tags), points by
``(series, time)``; writing the same series and time again merges the fields (InfluxDB's rule), so
replays do not duplicate.

Retention (``retention_s``, every ``PRUNE_EVERY_S`` as writes go on) is kept per series, by event
time: each series keeps the points within ``retention_s`` of its own newest point, or of the wall
clock if that point is in the future. Not behind the newest point of the whole store: the worker
stamps some alerts with the wall clock while KPIs carry their period's time, so one such alert
among the KPIs of a backfill or replay older than the retention would otherwise delete all of
their history; one point stamped far ahead by a wrong clock deletes no more of its series than
the wall clock would. Not behind the wall clock alone either: that would delete a backfill as it is written. A
series no longer written (a cell removed) keeps its last ``retention_s`` of points; ``prune``
deletes everything before a time.

>>> import tempfile, pathlib
>>> from twin.timeseries.points import Point
>>> store = LocalStore(pathlib.Path(tempfile.mkdtemp()) / "ts.sqlite")
>>> store.write_batch([Point("twin_kpi", {"cell": "a", "kind": "real"}, {"value": float(t)}, t) for t in (1, 2, 3)])
>>> [(p.time_ns, p.fields["value"]) for p in store.query("twin_kpi", 2, 10, {"cell": "a"})]
[(2, 2.0), (3, 3.0)]
>>> store.query("twin_kpi", 5, 1)
Traceback (most recent call last):
...
ValueError: query twin_kpi: end 1 is before start 5
>>> store.close()
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from twin.sqlite_wal import connect_wal
from twin.timeseries.points import Point, to_ns

__all__ = ["LocalStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    measurement TEXT NOT NULL,
    tags TEXT NOT NULL,
    UNIQUE (measurement, tags)
);
CREATE TABLE IF NOT EXISTS points (
    series INTEGER NOT NULL REFERENCES series (id),
    t INTEGER NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (series, t)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS points_t ON points (t);
"""

_UPSERT = ("INSERT INTO points (series, t, fields) VALUES (?, ?, ?) "
           "ON CONFLICT (series, t) DO UPDATE SET fields = json_patch(points.fields, excluded.fields)")

PRUNE_EVERY_S = 600.0


def _canonical(tags: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(tags.items())), separators=(",", ":"), ensure_ascii=False)


class LocalStore:
    """A time-series file: ``write_batch`` (the sink's backend), ``query`` (the API's reads)."""

    name = "local"

    def __init__(self, path: Path, retention_s: float | None = None, readonly: bool = False) -> None:
        self.path = path
        self.retention_ns = None if retention_s is None else int(retention_s * 1e9)
        if readonly:
            if not path.is_file():
                raise FileNotFoundError(f"time-series store {path} does not exist")
            self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = connect_wal(path, synchronous="NORMAL", timeout_s=5.0, isolation_level="DEFERRED",
                                     setup=lambda c: c.executescript(_SCHEMA))
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, str], int] = {}
        self._pruned_at = time.monotonic()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _series_id(self, measurement: str, tags: str) -> int:
        key = (measurement, tags)
        found = self._ids.get(key)
        if found is None:
            self._conn.execute("INSERT OR IGNORE INTO series (measurement, tags) VALUES (?, ?)", key)
            found = int(self._conn.execute("SELECT id FROM series WHERE measurement = ? AND tags = ?",
                                           key).fetchone()[0])
            self._ids[key] = found
        return found

    def write_batch(self, points: Sequence[Point]) -> None:
        """Upsert the points in one transaction (fields merged per series and time)."""
        with self._lock, self._conn:
            rows = [(self._series_id(p.measurement, _canonical(p.tags)), p.time_ns,
                     json.dumps(p.fields, separators=(",", ":"), ensure_ascii=False)) for p in points]
            self._conn.executemany(_UPSERT, rows)
            if self.retention_ns is not None and time.monotonic() - self._pruned_at >= PRUNE_EVERY_S:
                self._prune_retention_locked(self.retention_ns)

    def prune(self, before_ns: int) -> int:
        """Delete points older than ``before_ns``; the number deleted."""
        with self._lock, self._conn:
            self._pruned_at = time.monotonic()
            return int(self._conn.execute("DELETE FROM points WHERE t < ?", (before_ns,)).rowcount)

    def prune_retention(self, retention_s: float | None = None, now_ns: int | None = None) -> int:
        """Apply the retention (``retention_s``, else the store's): delete each series' points older
        than ``retention_s`` before the earlier of its newest point and ``now_ns`` (the wall
        clock); the number deleted."""
        keep_ns = self.retention_ns if retention_s is None else int(retention_s * 1e9)
        if keep_ns is None:
            raise ValueError(f"time-series store {self.path} has no retention")
        with self._lock, self._conn:
            return self._prune_retention_locked(keep_ns, now_ns)

    def _prune_retention_locked(self, keep_ns: int, now_ns: int | None = None) -> int:
        self._pruned_at = time.monotonic()
        now = time.time_ns() if now_ns is None else now_ns
        ids = [int(r[0]) for r in self._conn.execute("SELECT id FROM series")]
        cuts = []
        for sid in ids:  # the newest point of a series: one look-up in the (series, t) key
            newest = self._conn.execute("SELECT MAX(t) FROM points WHERE series = ?", (sid,)).fetchone()[0]
            if newest is not None:
                cuts.append((sid, min(int(newest), now) - keep_ns))
        before = self._conn.total_changes
        self._conn.executemany("DELETE FROM points WHERE series = ? AND t < ?", cuts)
        return int(self._conn.total_changes - before)

    def query(self, measurement: str, start: datetime | int, end: datetime | int,
              tags: Mapping[str, str] | None = None, limit: int | None = None) -> list[Point]:
        """Points of ``measurement`` with ``start <= time < end`` (datetimes, or epoch ns) whose tags
        include ``tags``, by time (then series)."""
        t0 = start if isinstance(start, int) else to_ns(start)
        t1 = end if isinstance(end, int) else to_ns(end)
        if t1 < t0:
            raise ValueError(f"query {measurement}: end {end} is before start {start}")
        if limit is not None and limit < 1:
            raise ValueError(f"query {measurement}: limit {limit} must be >= 1")
        sql = ["SELECT s.tags, p.t, p.fields FROM series s JOIN points p ON p.series = s.id "
               "WHERE s.measurement = ? AND p.t >= ? AND p.t < ?"]
        params: list[Any] = [measurement, t0, t1]
        for key, value in sorted((tags or {}).items()):
            sql.append("AND json_extract(s.tags, ?) = ?")
            params += ['$."' + key.replace('"', '""') + '"', value]
        sql.append("ORDER BY p.t, s.id")
        if limit is not None:
            sql.append("LIMIT ?")
            params.append(limit)
        with self._lock:
            rows = self._conn.execute(" ".join(sql), params).fetchall()
        return [Point(measurement, json.loads(t), json.loads(f), int(ns)) for t, ns, f in rows]

    def series(self, measurement: str) -> list[dict[str, str]]:
        """The tag sets of ``measurement``'s series (which cells, KPIs, kinds have history)."""
        with self._lock:
            rows = self._conn.execute("SELECT tags FROM series WHERE measurement = ? ORDER BY id",
                                      (measurement,)).fetchall()
        return [json.loads(r[0]) for r in rows]
