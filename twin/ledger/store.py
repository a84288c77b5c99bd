"""The ledger: a durable, append-only record of every CM change, on SQLite (default) or PostgreSQL.

Why append-only: the ledger is what an operator or an auditor reads to learn what the software did
to the network; rows are only ever inserted (the database refuses UPDATE and DELETE on them by
trigger), and a change's state is its newest event. Idempotent by change id: recording the same
request twice is a no-op, and each step of a change is recorded at most once (``UNIQUE(change_id,
step)``), so a step retried after a crash cannot be recorded twice.

The outbox: the messages a step owes the broker (its change result, an alert) are recorded in the
step's own transaction, and the publisher marks how far it has sent them; nothing a step decided is
lost by a crash between the step and its send.

>>> from datetime import datetime, UTC
>>> from twin.schemas import CmChangeRequest
>>> led = open_ledger(":memory:")
>>> req = CmChangeRequest(change_id="0b7e7d1c-6f0a-4b8e-9a51-3f4f5d6e7a8b",
...     requested_at=datetime(2026, 1, 1, tzinfo=UTC), requester="cli", cell_key="nr:00101-000000102",
...     target_dn="ME=1", **{"class": "NRSectorCarrier"},
...     attribute="configuredMaxTxPower", **{"from": 20000}, to=15849)
>>> at = req.requested_at
>>> led.record_request(req, cluster="c1", at=at), led.record_request(req, cluster="c1", at=at)
(True, False)
>>> led.append(req.change_id, State.REJECTED, at=req.requested_at, actor="guard", detail={"reason": "r"})
True
>>> led.append(req.change_id, State.APPROVED, at=req.requested_at, actor="guard")
Traceback (most recent call last):
...
twin.ledger.store.LedgerError: change 0b7e7d1c-6f0a-4b8e-9a51-3f4f5d6e7a8b is REJECTED (final): cannot record APPROVED
>>> led.append(req.change_id, State.REJECTED, at=at, actor="guard", outbox=[("results", "k", "{}")])  # recorded
False
>>> [(r.seq, r.topic) for r in led.outbox(after=led.published())]  # a repeated step owes nothing more
[]
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twin.ledger.states import FINAL, State
from twin.schemas import CmChangeRequest
from twin.schemas.change import STORED
from twin.sqlite_wal import connect_wal

__all__ = ["OUTBOX_CURSOR", "TABLES", "ChangeView", "Event", "Ledger", "LedgerError", "OutboxRecord", "open_ledger",
           "sqlite_file"]

_AFTER_ROLLING_BACK = frozenset({State.ROLLING_BACK, State.ROLLED_BACK, State.FAILED})

TABLES = ("cm_requests", "cm_events", "cm_controls", "cm_outbox")
"""The ledger's tables, each append-only (triggers refuse UPDATE and DELETE)."""

OUTBOX_CURSOR = "outbox.published"
"""The control that holds the ``seq`` of the last outbox record published (``Ledger.mark_published``)."""


@dataclass(frozen=True)
class OutboxRecord:
    """A message the runner owes the broker (a change result, an alert), recorded in the transaction
    of the step that caused it, so a crash between the step and the send loses nothing: whoever
    publishes sends every record after ``Ledger.published()`` and then marks them."""

    seq: int
    change_id: str
    topic: str
    key: str
    body: str  # the message's JSON
    recorded_at: datetime | None = None  # when the step that owes it was recorded (wall time)


class LedgerError(RuntimeError):
    """A record the ledger refuses: a different request under a known id, a step after a final state."""


@dataclass(frozen=True)
class Event:
    """One recorded step of a change. ``at`` is event time (network time), ``recorded_at`` wall time."""

    seq: int
    change_id: str
    step: str
    state: State
    at: datetime
    recorded_at: datetime
    actor: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class ChangeView:
    """A change as it stands: its request, cluster and newest event, plus who decided and why."""

    request: CmChangeRequest
    cluster: str
    state: State
    at: datetime
    actor: str
    detail: dict[str, Any]
    decided_by: str | None = None
    reason: str | None = None
    history: tuple[Event, ...] = field(default=(), repr=False)

    def as_json(self) -> dict[str, Any]:
        """The ``twin cm list --json`` object of this change."""
        r = self.request
        return {"changeId": r.change_id, "cellKey": r.cell_key, "cluster": self.cluster, "class": r.class_,
                "attribute": r.attribute, "from": r.from_, "to": r.to, "state": self.state.value,
                "decidedBy": self.decided_by, "reason": self.reason, "requester": r.requester,
                "requestedAt": r.requested_at.isoformat(), "updatedAt": self.at.isoformat(),
                "expectedKpiImpact": r.expected_kpi_impact}


_DECISIONS = {State.REJECTED, State.PENDING_APPROVAL, State.APPROVED, State.DENIED, State.EXPIRED, State.DRY_RUN}

_TABLES = """
CREATE TABLE IF NOT EXISTS cm_requests (
    change_id TEXT PRIMARY KEY, cell_key TEXT NOT NULL, cluster TEXT NOT NULL, attribute TEXT NOT NULL,
    requested_at TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cm_events (
    seq {serial} PRIMARY KEY, change_id TEXT NOT NULL REFERENCES cm_requests(change_id), step TEXT NOT NULL,
    state TEXT NOT NULL, at TEXT NOT NULL, recorded_at TEXT NOT NULL, actor TEXT NOT NULL, detail TEXT NOT NULL,
    UNIQUE (change_id, step));
CREATE INDEX IF NOT EXISTS cm_events_change ON cm_events (change_id, seq);
CREATE TABLE IF NOT EXISTS cm_controls (
    seq {serial} PRIMARY KEY, name TEXT NOT NULL, value TEXT NOT NULL, actor TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS cm_controls_name ON cm_controls (name, seq);
CREATE TABLE IF NOT EXISTS cm_outbox (
    seq {serial} PRIMARY KEY, change_id TEXT NOT NULL, topic TEXT NOT NULL, msg_key TEXT NOT NULL,
    body TEXT NOT NULL, recorded_at TEXT NOT NULL);
"""

_SQLITE_GUARDS = """
CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, 'the CM ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, 'the CM ledger is append-only'); END;
"""

_PG_GUARDS = """
CREATE OR REPLACE FUNCTION cm_ledger_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'the CM ledger is append-only'; END; $$ LANGUAGE plpgsql;
"""
_PG_TRIGGER = """
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '{table}_append_only') THEN
    CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
      FOR EACH ROW EXECUTE FUNCTION cm_ledger_append_only();
  END IF;
END $$;
"""

_LATEST = """
SELECT r.body, r.cluster, e.seq, e.change_id, e.step, e.state, e.at, e.recorded_at, e.actor, e.detail
FROM cm_requests r JOIN cm_events e ON e.change_id = r.change_id
WHERE e.seq = (SELECT MAX(seq) FROM cm_events x WHERE x.change_id = r.change_id)
"""


def _iso(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError(f"ledger times must carry a time zone (got {when!r})")
    return when.astimezone(UTC).isoformat()


class Ledger:
    """The ledger over one DB-API connection; ``open_ledger`` picks SQLite or PostgreSQL by URL."""

    def __init__(self, conn: Any, placeholder: str, kind: str) -> None:
        self._conn = conn
        self._ph = placeholder
        self.kind = kind
        self._lock = threading.RLock()

    # -- plumbing ---------------------------------------------------------------------------------
    def _sql(self, text: str) -> str:
        return text.replace("?", self._ph) if self._ph != "?" else text

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                if self.kind == "sqlite":
                    cur.execute("BEGIN IMMEDIATE")
                yield cur
                self._conn.commit()
            except BaseException:
                self._conn.rollback()
                raise
            finally:
                cur.close()

    def _query(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute(self._sql(text), tuple(params))
                rows = list(cur.fetchall())
            finally:
                cur.close()
            if self.kind == "postgres":
                self._conn.commit()  # end the read transaction: see other writers' rows next time
            return rows

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- writing ----------------------------------------------------------------------------------
    def record_request(self, request: CmChangeRequest, cluster: str, at: datetime, actor: str | None = None) -> bool:
        """Record ``request`` and its REQUESTED step; False when this id is already recorded with the
        same request, ``LedgerError`` when it is recorded with a different one."""
        body = request.model_dump_json(by_alias=True)
        with self._tx() as cur:
            cur.execute(self._sql("SELECT body FROM cm_requests WHERE change_id = ?"), (request.change_id,))
            row = cur.fetchone()
            if row is not None:
                if CmChangeRequest.model_validate_json(row[0], context=STORED) != request:
                    raise LedgerError(f"change id {request.change_id} is already recorded with a different request")
                return False
            cur.execute(self._sql("INSERT INTO cm_requests (change_id, cell_key, cluster, attribute, requested_at, "
                                  "body) VALUES (?, ?, ?, ?, ?, ?)"),
                        (request.change_id, request.cell_key, cluster, request.attribute,
                         _iso(request.requested_at), body))
            self._insert_event(cur, request.change_id, State.REQUESTED.value, State.REQUESTED, at,
                               actor or request.requester, {})
        return True

    def _insert_event(self, cur: Any, change_id: str, step: str, state: State, at: datetime, actor: str,
                      detail: dict[str, Any]) -> bool:
        cur.execute(self._sql("SELECT 1 FROM cm_events WHERE change_id = ? AND step = ?"), (change_id, step))
        if cur.fetchone() is not None:
            return False
        cur.execute(self._sql("INSERT INTO cm_events (change_id, step, state, at, recorded_at, actor, detail) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?)"),
                    (change_id, step, state.value, _iso(at), _iso(datetime.now(UTC)), actor,
                     json.dumps(detail, sort_keys=True, default=str)))
        return True

    def append(self, change_id: str, state: State, *, at: datetime, actor: str, detail: dict[str, Any] | None = None,
               step: str | None = None, outbox: Sequence[tuple[str, str, str]] = ()) -> bool:
        """Record that ``change_id`` reached ``state``; False when this step was recorded already.

        ``outbox``: the messages the step causes, ``(topic, key, JSON body)``, recorded in the same
        transaction when the step is (``OutboxRecord``).

        ``step`` names the step when a state repeats (each observed period is ``observe:<epoch>``).
        A step after a final state is refused, except an operator's roll back of a CONFIRMED change.
        Once a change is ROLLING_BACK only its roll back's own steps follow (ROLLING_BACK, ROLLED_BACK,
        FAILED): an observation or a verdict recorded by a runner that read the change before an
        operator's roll back landed is not recorded (False), so the roll back is never overwritten.
        """
        key = step or state.value
        with self._tx() as cur:
            cur.execute(self._sql("SELECT state, step FROM cm_events WHERE change_id = ? ORDER BY seq DESC LIMIT 1"),
                        (change_id,))
            row = cur.fetchone()
            if row is None:
                raise LedgerError(f"change {change_id} is not in the ledger")
            current = State(row[0])
            cur.execute(self._sql("SELECT 1 FROM cm_events WHERE change_id = ? AND step = ?"), (change_id, key))
            if cur.fetchone() is not None:
                return False
            if current in FINAL and not (current is State.CONFIRMED and state is State.ROLLING_BACK):
                raise LedgerError(f"change {change_id} is {current.value} (final): cannot record {state.value}")
            if current is State.ROLLING_BACK and state not in _AFTER_ROLLING_BACK:
                return False  # a step decided on an older reading of the change (observe raced a roll back)
            new = self._insert_event(cur, change_id, key, state, at, actor, dict(detail or {}))
            if new and outbox:
                if self.kind == "postgres":
                    # outbox writers one at a time, so their sequence numbers commit in order: a
                    # publisher that marked seq n never meets a record below n committed later
                    cur.execute("LOCK TABLE cm_outbox IN SHARE ROW EXCLUSIVE MODE")
                recorded = _iso(datetime.now(UTC))
                for topic, msg_key, body in outbox:
                    cur.execute(self._sql("INSERT INTO cm_outbox (change_id, topic, msg_key, body, recorded_at) "
                                          "VALUES (?, ?, ?, ?, ?)"), (change_id, topic, msg_key, body, recorded))
            return new

    def outbox(self, after: int, limit: int = 1000) -> list[OutboxRecord]:
        """The outbox records after ``seq`` ``after``, oldest first, at most ``limit``."""
        rows = self._query("SELECT seq, change_id, topic, msg_key, body, recorded_at FROM cm_outbox WHERE seq > ? "
                           "ORDER BY seq LIMIT ?", (after, limit))
        return [OutboxRecord(int(seq), cid, topic, key, body, datetime.fromisoformat(at))
                for seq, cid, topic, key, body, at in rows]

    def published(self) -> int:
        """The ``seq`` of the last outbox record marked published (0: none)."""
        return int(self.control(OUTBOX_CURSOR, 0))

    def mark_published(self, seq: int, actor: str, at: datetime) -> None:
        """The outbox records up to ``seq`` are on the broker (after the send was acknowledged)."""
        if seq > self.published():
            self.set_control(OUTBOX_CURSOR, seq, actor, at)

    def set_control(self, name: str, value: Any, actor: str, at: datetime) -> None:
        """Record a run-time control (the kill switch: ``set_control("kill_switch", True, ...)``)."""
        with self._tx() as cur:
            cur.execute(self._sql("INSERT INTO cm_controls (name, value, actor, at) VALUES (?, ?, ?, ?)"),
                        (name, json.dumps(value), actor, _iso(at)))

    # -- reading ----------------------------------------------------------------------------------
    def control(self, name: str, default: Any = None) -> Any:
        rows = self._query("SELECT value FROM cm_controls WHERE name = ? ORDER BY seq DESC LIMIT 1", (name,))
        return json.loads(rows[0][0]) if rows else default

    def controls_history(self, name: str) -> list[tuple[Any, str, datetime]]:
        rows = self._query("SELECT value, actor, at FROM cm_controls WHERE name = ? ORDER BY seq", (name,))
        return [(json.loads(v), a, datetime.fromisoformat(t)) for v, a, t in rows]

    def history(self, change_id: str) -> list[Event]:
        rows = self._query("SELECT seq, change_id, step, state, at, recorded_at, actor, detail FROM cm_events "
                           "WHERE change_id = ? ORDER BY seq", (change_id,))
        return [_event(row) for row in rows]

    def request(self, change_id: str) -> CmChangeRequest:
        rows = self._query("SELECT body FROM cm_requests WHERE change_id = ?", (change_id,))
        if not rows:
            raise KeyError(f"change {change_id} is not in the ledger")
        return CmChangeRequest.model_validate_json(rows[0][0], context=STORED)

    def get(self, change_id: str) -> ChangeView:
        """The change as it stands, with its whole history (``KeyError`` when unknown)."""
        rows = self._query(_LATEST + " AND r.change_id = ?", (change_id,))
        if not rows:
            raise KeyError(f"change {change_id} is not in the ledger")
        return self._view(rows[0], with_history=True)

    def changes(self, states: Iterable[State] | None = None, cell_key: str | None = None,
                cluster: str | None = None) -> list[ChangeView]:
        """Changes as they stand, oldest request first, filtered by state, cell or cluster."""
        sql, params = _LATEST, list[Any]()
        if cell_key is not None:
            sql += " AND r.cell_key = ?"
            params.append(cell_key)
        if cluster is not None:
            sql += " AND r.cluster = ?"
            params.append(cluster)
        if states is not None:  # filtered in SQL: the guard asks for the few changes in flight, not all
            wanted = sorted({State(s).value for s in states})
            if not wanted:
                return []
            sql += f" AND e.state IN ({', '.join('?' for _ in wanted)})"
            params += wanted
        return [self._view(row, with_history=False)
                for row in self._query(sql + " ORDER BY r.requested_at, r.change_id", params)]

    def last_applied_at(self, cell_key: str) -> datetime | None:
        """Event time of the newest APPLIED step on ``cell_key`` (the minimum-interval rule reads it)."""
        rows = self._query("SELECT MAX(e.at) FROM cm_events e JOIN cm_requests r ON r.change_id = e.change_id "
                           "WHERE r.cell_key = ? AND e.state = ?", (cell_key, State.APPLIED.value))
        return datetime.fromisoformat(rows[0][0]) if rows and rows[0][0] else None

    def _view(self, row: tuple[Any, ...], with_history: bool) -> ChangeView:
        body, cluster, *event_row = row
        last = _event(tuple(event_row))
        history = self.history(last.change_id)
        decision = next((e for e in reversed(history) if e.state in _DECISIONS), None)
        reason = next((str(e.detail["reason"]) for e in reversed(history) if e.detail.get("reason")), None)
        return ChangeView(request=CmChangeRequest.model_validate_json(body, context=STORED), cluster=cluster,
                          state=last.state, at=last.at, actor=last.actor, detail=last.detail,
                          decided_by=decision.actor if decision else None, reason=reason,
                          history=tuple(history) if with_history else ())


def _event(row: tuple[Any, ...]) -> Event:
    seq, change_id, step, state, at, recorded_at, actor, detail = row
    return Event(seq=int(seq), change_id=change_id, step=step, state=State(state), at=datetime.fromisoformat(at),
                 recorded_at=datetime.fromisoformat(recorded_at), actor=actor, detail=json.loads(detail))


def _sqlite(path: str) -> Ledger:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    def setup(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(_TABLES.format(serial="INTEGER"))
        for table in TABLES:
            conn.executescript(_SQLITE_GUARDS.format(table=table))

    # synchronous=FULL: a recorded step survives a power cut, not only a crash; the service, the API
    # and the CLI may open a new ledger at once (twin.sqlite_wal)
    conn = connect_wal(path, synchronous="FULL", timeout_s=30.0, setup=setup)
    return Ledger(conn, "?", "sqlite")


def _postgres(url: str) -> Ledger:
    import psycopg  # only when a PostgreSQL ledger is configured

    conn = psycopg.connect(url, autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(727274)")  # two workers creating the schema at once
        for stmt in _TABLES.format(serial="BIGSERIAL").split(";"):
            if stmt.strip():
                cur.execute(stmt)
        cur.execute(_PG_GUARDS)
        for table in TABLES:
            cur.execute(_PG_TRIGGER.format(table=table))
    conn.commit()
    return Ledger(conn, "%s", "postgres")


def sqlite_file(url: str | Path) -> Path | None:
    """The SQLite file a ledger URL names (a path or ``sqlite:///path``); None for ``:memory:`` and
    PostgreSQL. Who must not create a ledger by opening it checks this file exists first.

    >>> sqlite_file("sqlite:////var/lib/twin/cm-ledger.sqlite"), sqlite_file("cm.sqlite")
    (PosixPath('/var/lib/twin/cm-ledger.sqlite'), PosixPath('cm.sqlite'))
    >>> sqlite_file(":memory:"), sqlite_file("sqlite:///"), sqlite_file("postgresql://db/twin")
    (None, None, None)
    """
    text = str(url)
    if text.startswith("sqlite:///"):
        text = text.removeprefix("sqlite:///") or ":memory:"
    return None if "://" in text or text == ":memory:" else Path(text)


def open_ledger(url: str | Path) -> Ledger:
    """A ledger at ``url``: ``postgresql://...`` for PostgreSQL, else a SQLite file (or ``:memory:``).

    >>> open_ledger("mysql://x")
    Traceback (most recent call last):
    ...
    ValueError: ledger URL 'mysql://x': use postgresql://..., sqlite:///path, a file path or :memory:
    """
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return _postgres(text)
    if text.startswith("sqlite:///"):
        return _sqlite(text.removeprefix("sqlite:///") or ":memory:")
    if "://" in text:
        raise ValueError(f"ledger URL {text!r}: use postgresql://..., sqlite:///path, a file path or :memory:")
    return _sqlite(text)
