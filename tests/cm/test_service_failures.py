"""``twin cm serve``'s housekeeping and side outputs without a broker (they need none: the mirror is
absent; the ledger, the time-series store and the emulated network are real): one change's step that
raises is counted by kind in the service and in ``twin_cm_failures_total`` with no backoff for the
whole service (that change alone sits out); change markers stand where their steps were recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from streams.cm_service import CmService
from tests.cm.test_runner_push_failures import _tilt_change
from tests.cm.util import FaultyAdapter, make_emulator, request
from twin.config import TwinSettings
from twin.ledger import State
from twin.metrics import REGISTRY
from twin.timeseries import LocalStore


def failures(kind: str) -> float:
    return REGISTRY.get_sample_value("twin_cm_failures_total", {"kind": kind}) or 0.0


def test_one_change_that_raises_is_counted_and_backs_nothing_off(tmp_path: Path) -> None:
    emu = make_emulator()
    adapter = FaultyAdapter(emu)
    settings = TwinSettings(state_dir=tmp_path, cm={"ledger": str(tmp_path / "ledger.sqlite"), "clock": "wall"},
                            guard={"mode": "auto"})
    service = CmService(settings, "127.0.0.1:1", tmp_path / "no-mirror", adapter=adapter)
    req = _tilt_change(emu)
    runner = service.runner
    runner.ledger.record_request(req, "c1", at=emu.period_end)
    for state in (State.APPROVED, State.APPLYING):  # a push whose answer was lost, before a restart
        runner.ledger.append(req.change_id, state, at=emu.period_end, actor="test")
    read = adapter.read

    def broken(dn: str) -> dict[str, Any]:
        if dn == req.target_dn:
            raise RuntimeError("a bug in the adapter's parser")
        return read(dn)

    adapter.read = broken  # type: ignore[method-assign]
    before = {k: failures(k) for k in ("change", "housekeeping")}
    assert service.housekeep(runner.reconcile, "reconcile")  # nothing failed at the service's level
    assert service.failures == 1 and service._backoff == 0
    assert failures("change") == before["change"] + 1 and failures("housekeeping") == before["housekeeping"]
    assert service.housekeep(runner.tick, "tick") and service.failures == 1  # the change sits this one out
    adapter.read = read  # type: ignore[method-assign]
    service.housekeep(runner.tick, "tick")
    # its next try: the device holds the old value, so the push is made again and observed
    assert runner.ledger.get(req.change_id).state is State.OBSERVING and adapter.writes == {req.change_id: 1}
    runner.ledger.close()


def test_change_markers_stand_at_their_step_to_the_microsecond_and_a_resend_adds_none(tmp_path: Path) -> None:
    """The time series' change markers of the outbox's results (a real local store): two changes of
    one cell recorded within a second are two points (at whole seconds the second overwrote the
    first), and the same results sent again after a crash are no new points (stamped "now", a
    result without an apply time gave a second one)."""
    emu = make_emulator()
    settings = TwinSettings(state_dir=tmp_path, cm={"ledger": str(tmp_path / "ledger.sqlite")},
                            guard={"mode": "auto", "max_cells_per_cluster": 5},
                            timeseries={"local_path": str(tmp_path / "ts.sqlite")})
    service = CmService(settings, "127.0.0.1:1", tmp_path / "no-mirror", adapter=FaultyAdapter(emu))
    cell = emu.cells[4]
    first = request(emu, cell, "digitalTilt", 999)  # out of bounds: REJECTED, no apply time
    second = request(emu, cell, "digitalTilt", 998)
    for req in (first, second):
        assert service.runner.submit(req, "c1", emu.period_end).state is State.REJECTED
    _, results, _ = service.pending()
    assert len(results) == 2 and results[0][1] != results[1][1]

    async def send_twice() -> None:
        await service.side.start()
        service.outputs(results, [])
        service.outputs(service.pending()[1], [])  # the same outbox again: a restart before the mark
        await service.side.close()

    asyncio.run(send_twice())
    store = LocalStore(tmp_path / "ts.sqlite", readonly=True)
    points = store.query("twin_change", 0, 2**62)
    assert sorted(str(p.fields["changeId"]) for p in points) == sorted([first.change_id, second.change_id])
    service.runner.ledger.close()
