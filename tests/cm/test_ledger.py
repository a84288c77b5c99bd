"""The ledger on SQLite and on a real PostgreSQL server: append-only, idempotent, durable, shared."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.cm.util import make_emulator, request
from twin.ledger import Ledger, LedgerError, OutboxRecord, State, open_ledger

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "ledger.sqlite")
        return
    base: str = request.getfixturevalue("postgres_url")
    db = f"l{abs(hash(request.node.name)) % 10**8}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db}")
        conn.execute(f"CREATE DATABASE {db}")
    yield base.rsplit("/", 1)[0] + "/" + db


def test_requests_and_steps_are_idempotent_and_the_state_is_the_newest_step(url: str) -> None:
    emu = make_emulator()
    led = open_ledger(url)
    req = request(emu, emu.cells[0], "cellIndividualOffset", 2.0)
    assert led.record_request(req, "c1", at=NOW) is True
    assert led.record_request(req, "c1", at=NOW) is False
    with pytest.raises(LedgerError, match="different request"):
        led.record_request(req.model_copy(update={"to": 4.0}), "c1", at=NOW)
    assert led.append(req.change_id, State.APPROVED, at=NOW, actor="ops", detail={"reason": "ok by ops"})
    assert not led.append(req.change_id, State.APPROVED, at=NOW, actor="ops")  # the same step again: no-op
    assert led.append(req.change_id, State.APPLYING, at=NOW, actor="runner")
    for k in range(3):
        assert led.append(req.change_id, State.OBSERVING, at=NOW + timedelta(hours=k), actor="runner",
                          step=f"observe:{k}")
    view = led.get(req.change_id)
    assert view.state is State.OBSERVING and view.decided_by == "ops" and view.reason == "ok by ops"
    assert [e.step for e in view.history] == ["REQUESTED", "APPROVED", "APPLYING", "observe:0", "observe:1",
                                              "observe:2"]
    obj = view.as_json()
    assert {k: obj[k] for k in ("changeId", "cellKey", "attribute", "from", "to", "state", "decidedBy", "reason")} \
        == {"changeId": req.change_id, "cellKey": req.cell_key, "attribute": "cellIndividualOffset",
            "from": req.from_, "to": 2.0, "state": "OBSERVING", "decidedBy": "ops", "reason": "ok by ops"}
    led.append(req.change_id, State.CONFIRMED, at=NOW, actor="verification")
    with pytest.raises(LedgerError, match="CONFIRMED \\(final\\): cannot record APPLIED"):
        led.append(req.change_id, State.APPLIED, at=NOW, actor="x")
    assert led.append(req.change_id, State.ROLLING_BACK, at=NOW, actor="ops")  # an operator may roll back
    # a runner that read the change before the roll back landed: its observation and verdict are not recorded
    assert not led.append(req.change_id, State.OBSERVING, at=NOW, actor="runner", step="observe:9")
    assert not led.append(req.change_id, State.CONFIRMED, at=NOW, actor="verification", step="CONFIRMED:again")
    assert led.get(req.change_id).state is State.ROLLING_BACK
    assert led.append(req.change_id, State.ROLLED_BACK, at=NOW, actor="device")
    with pytest.raises(LedgerError, match="not in the ledger"):
        led.append("00000000-0000-4000-8000-000000000000", State.APPLIED, at=NOW, actor="x")
    led.close()


def test_rows_cannot_be_updated_or_deleted(url: str) -> None:
    emu = make_emulator()
    led = open_ledger(url)
    req = request(emu, emu.cells[0], "cellIndividualOffset", 2.0)
    led.record_request(req, "c1", at=NOW)
    led.close()
    if url.startswith("postgresql://"):
        with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("UPDATE cm_events SET state = 'CONFIRMED'")
        with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("DELETE FROM cm_requests")
    else:
        lite = sqlite3.connect(url)
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            lite.execute("UPDATE cm_events SET state = 'CONFIRMED'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            lite.execute("DELETE FROM cm_requests")
        lite.close()
    assert open_ledger(url).get(req.change_id).state is State.REQUESTED


def test_two_connections_see_each_others_records_and_reopen_keeps_everything(url: str) -> None:
    emu = make_emulator()
    worker, cli = open_ledger(url), open_ledger(url)
    reqs = [request(emu, cell, "cellIndividualOffset", 1.0) for cell in emu.cells[:5]]
    for r in reqs:
        worker.record_request(r, "c1", at=NOW)
    cli.append(reqs[2].change_id, State.DENIED, at=NOW, actor="ops", detail={"reason": "not today"})
    cli.set_control("kill_switch", True, "ops", NOW)
    assert worker.get(reqs[2].change_id).state is State.DENIED and worker.control("kill_switch") is True
    assert [v.request.change_id for v in worker.changes([State.REQUESTED])] == \
        [r.change_id for r in sorted(reqs, key=lambda r: r.change_id) if r is not reqs[2]]
    worker.close()
    cli.close()
    again: Ledger = open_ledger(url)
    assert len(again.changes()) == 5 and again.controls_history("kill_switch")[0][:2] == (True, "ops")
    assert again.changes(cell_key=reqs[0].cell_key)[0].request == reqs[0]
    again.close()


def test_the_outbox_is_written_with_its_step_and_read_from_the_published_mark(url: str) -> None:
    """Two writers at once (two threads, two connections: the service's runner and the API's
    decisions) each record steps with outbox messages; every message is read once in ``seq`` order
    from the published mark, none is skipped, and a repeated step adds none."""
    emu = make_emulator()
    setup = open_ledger(url)
    reqs = [request(emu, cell, "cellIndividualOffset", 1.0) for cell in emu.cells[:8]]
    for r in reqs:
        setup.record_request(r, "c1", at=NOW)
    assert setup.published() == 0 and setup.outbox(after=0) == []

    def write(part: list[Any]) -> None:
        led = open_ledger(url)
        for r in part:
            for k in range(5):
                assert led.append(r.change_id, State.OBSERVING, at=NOW, actor="runner", step=f"observe:{k}",
                                  outbox=[("results", r.cell_key, f'{{"k": {k}}}')])
            assert not led.append(r.change_id, State.OBSERVING, at=NOW, actor="runner", step="observe:0",
                                  outbox=[("results", r.cell_key, "{}")])
        led.close()

    seen: list[OutboxRecord] = []
    with ThreadPoolExecutor(2) as pool:
        done = [pool.submit(write, reqs[i::2]) for i in range(2)]
        while not all(f.done() for f in done) or setup.outbox(after=setup.published()):
            batch = setup.outbox(after=setup.published(), limit=7)
            seen += batch
            if batch:
                setup.mark_published(batch[-1].seq, "test", NOW)
        [f.result() for f in done]
    assert len(seen) == 40 and [r.seq for r in seen] == sorted({r.seq for r in seen})
    assert sorted((r.change_id, r.body) for r in seen) == sorted((q.change_id, f'{{"k": {k}}}')
                                                                  for q in reqs for k in range(5))
    setup.mark_published(1, "test", NOW)  # a mark never goes back
    assert setup.published() == seen[-1].seq and setup.outbox(after=setup.published()) == []
    setup.close()


def test_times_without_a_zone_and_unknown_urls_are_refused() -> None:
    emu = make_emulator()
    led = open_ledger(":memory:")
    req = request(emu, emu.cells[0], "cellIndividualOffset", 1.0)
    with pytest.raises(ValueError, match="time zone"):
        led.record_request(req, "c1", at=datetime(2024, 3, 1))
    with pytest.raises(ValueError, match="ledger URL 'redis://x'"):
        open_ledger("redis://x")
