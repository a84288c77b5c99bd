"""``twin cm serve``'s housekeeping when one change's step raises: counted by kind in the service
and in ``twin_cm_failures_total``, no backoff for the whole service (that change alone sits out).
The service's housekeeping runs here without a broker (it needs none: the mirror is absent, the
ledger and the emulated network are real)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streams.cm_service import CmService
from tests.cm.test_runner_push_failures import _tilt_change
from tests.cm.util import FaultyAdapter, make_emulator
from twin.config import TwinSettings
from twin.ledger import State
from twin.metrics import REGISTRY


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
