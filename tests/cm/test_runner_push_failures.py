"""A device that keeps failing, or answers "rejected" to a change an earlier attempt already made:
every change still ends in a known, recorded state, one adapter call per attempt (an audit found
the runner re-applying from inside its own failure handling until Python's recursion limit, which
crashed `twin cm serve` and, on restart, its reconcile)."""

from __future__ import annotations

from typing import Any

from tests.cm.test_runner import device, observe, setup
from tests.cm.util import request
from twin.ledger import State
from twin.schemas import AlertType, ChangeState, CmChangeResult, Severity


def _tilt_change(emu: Any) -> Any:
    cell = emu.cells[4]
    return request(emu, cell, "digitalTilt", device(emu, request(emu, cell, "digitalTilt", 0)) + 10)


def test_applies_that_never_reach_the_device_end_failed_after_max_push_attempts() -> None:
    emu, adapter, runner = setup(max_push_attempts=3)
    adapter.fail_next = ["apply-lost"] * 10  # the device is readable, every apply is lost before it
    req = _tilt_change(emu)
    assert runner.submit(req, "c1", emu.period_end).state is State.APPLYING  # one apply, no retry inside
    assert adapter.fail_next == ["apply-lost"] * 9
    runner.reconcile(emu.period_end)
    assert runner.ledger.get(req.change_id).state is State.APPLYING  # one more apply per reconcile
    runner.reconcile(emu.period_end)
    view = runner.ledger.get(req.change_id)
    assert view.state is State.FAILED and "max_push_attempts 3" in (view.reason or ""), view.reason
    assert sum(e.step.startswith("apply-error") for e in view.history) == 3
    assert adapter.writes == {} and device(emu, req) == req.from_
    assert [a.type for a in runner.alerts] == [AlertType.CM_FAILED]
    runner.reconcile(emu.period_end)  # settled: nothing more is tried
    assert adapter.fail_next == ["apply-lost"] * 7


def test_a_rejection_of_a_change_the_device_already_holds_is_applied_not_failed() -> None:
    """As a ProvMnS adapter retrying a PATCH that timed out but landed: the retry's precondition
    fails (REJECTED) while the device holds the new value."""
    emu, adapter, runner = setup()
    req = _tilt_change(emu)

    def landed_then_rejected(request: Any) -> CmChangeResult:
        adapter._write(request)  # the first attempt, whose answer never came back
        return CmChangeResult(change_id=request.change_id, cell_key=request.cell_key, state=ChangeState.REJECTED,
                              transport=adapter.transport, error="412 precondition failed (the retry's test op)")

    adapter.apply = landed_then_rejected  # type: ignore[method-assign]
    view = runner.submit(req, "c1", emu.period_end)
    assert view.state is State.OBSERVING, view.reason
    assert any(e.step == "apply-rejected" for e in view.history) and device(emu, req) == req.to


def test_a_rejection_with_the_device_on_the_old_value_fails_with_the_devices_reason() -> None:
    emu, adapter, runner = setup()
    req = _tilt_change(emu)
    adapter.fail_next = ["reject"]
    view = runner.submit(req, "c1", emu.period_end)
    assert view.state is State.FAILED and "rpc-error: denied" in (view.reason or "")
    assert view.detail["deviceValue"] == req.from_ and adapter.writes == {}


def test_a_rejection_with_the_device_unreadable_stays_applying_until_a_read_settles_it() -> None:
    emu, adapter, runner = setup()
    req = _tilt_change(emu)
    adapter.fail_next = ["reject", "read"]
    assert runner.submit(req, "c1", emu.period_end).state is State.APPLYING
    runner.reconcile(emu.period_end)
    view = runner.ledger.get(req.change_id)
    assert view.state is State.FAILED and "rpc-error: denied" in (view.reason or "") and adapter.writes == {}


def test_restores_that_never_take_end_failed_with_a_critical_alert() -> None:
    emu, adapter, runner = setup(trust_gate=False, max_push_attempts=2)
    req = _tilt_change(emu)
    runner.submit(req, "c1", emu.period_end)
    adapter.fail_next = ["restore-lost"] * 10
    observe(emu, runner, 4, 40.0)  # -20 %: rolled back, and the restore is lost
    assert runner.ledger.get(req.change_id).state is State.ROLLING_BACK
    runner.reconcile(emu.period_end)
    view = runner.ledger.get(req.change_id)
    assert view.state is State.FAILED and "after 2 restores" in (view.reason or ""), view.reason
    assert device(emu, req) == req.to  # left for an operator, said so
    assert runner.alerts[-1].type is AlertType.CM_FAILED and runner.alerts[-1].severity is Severity.CRITICAL


def test_a_missing_object_on_read_is_unknown_not_a_value() -> None:
    emu, adapter, runner = setup()
    req = _tilt_change(emu)
    adapter.fail_next = ["apply-lost-after"]  # applied, the answer lost: settled by reading the device

    real_read = adapter.read
    calls = {"n": 0}

    def flaky_read(dn: str) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 2:  # the read after the lost answer (the first: before the push)
            raise KeyError(dn)  # a transient 404 / an export lacking the object
        return real_read(dn)

    adapter.read = flaky_read  # type: ignore[method-assign]
    assert runner.submit(req, "c1", emu.period_end).state is State.APPLYING  # unknown, not "holds None"
    runner.reconcile(emu.period_end)
    assert runner.ledger.get(req.change_id).state is State.OBSERVING
    assert adapter.writes == {req.change_id: 1}


def test_a_change_whose_step_keeps_raising_sits_out_and_the_others_go_on() -> None:
    """A bug in one change's path (here the adapter's read raising for its DN) used to raise out of
    ``reconcile`` at every poll, before the changes behind it were looked at, and backed the whole
    service off. Now that change sits out a doubling number of reconciles and the others settle."""
    emu, adapter, runner = setup(max_cells_per_cluster=5)
    first = request(emu, emu.cells[4], "digitalTilt", device(emu, request(emu, emu.cells[4], "digitalTilt", 0)) + 10)
    second = request(emu, emu.cells[5], "digitalTilt", device(emu, request(emu, emu.cells[5], "digitalTilt", 0)) + 10)
    stuck = first.model_copy(update={"change_id": "00000000-0000-4000-8000-000000000001"})  # reconciled first
    other = second.model_copy(update={"change_id": "ffffffff-ffff-4fff-bfff-ffffffffffff"})
    adapter.fail_next = ["apply-lost", "apply-lost"]
    read = adapter.read
    broken: set[str] = set()

    def read_or_raise(dn: str) -> dict[str, Any]:
        if dn in broken:
            raise RuntimeError("a bug in the adapter's parser")
        return read(dn)

    adapter.read = read_or_raise  # type: ignore[method-assign]
    for req in (stuck, other):
        runner.submit(req, "c1", emu.period_end)  # the apply is lost: APPLYING, settled by one read
    assert runner.ledger.get(other.change_id).state is State.APPLYING
    broken.add(stuck.target_dn)
    failures = runner.change_failures
    runner.reconcile(emu.period_end)
    assert runner.ledger.get(other.change_id).state is State.OBSERVING  # not held up by the broken one
    assert runner.ledger.get(stuck.change_id).state is State.APPLYING
    tried = [runner.change_failures - failures]
    for _ in range(5):
        runner.reconcile(emu.period_end)
        tried.append(runner.change_failures - failures)
    assert tried == [1, 1, 2, 2, 2, 2]  # tried, sat out 1, tried, sat out 3, ...
    broken.clear()  # the bug fixed: the change settles at its next try (the device kept the old value)
    runner.reconcile(emu.period_end)
    assert runner.ledger.get(stuck.change_id).state is State.OBSERVING and device(emu, stuck) == stuck.to
