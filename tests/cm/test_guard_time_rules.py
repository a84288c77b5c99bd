"""The guard's time rules at their edges: empty windows, naive clocks, a last change after the
guard's clock, and an approval that came at or after ``approval_timeout_s``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from tests.cm.util import FaultyAdapter, make_emulator, request
from twin.guard import Guard, GuardContext, GuardPolicy
from twin.ledger import State, open_ledger
from twin.ledger.decisions import decide
from twin.rollout import ChangeRunner
from twin.schemas import CmChangeRequest

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("window", ["00:00-00:00", "22:00-22:00"])
def test_a_policy_window_whose_start_equals_its_end_is_refused_at_load(window: str) -> None:
    # it used to load and then refuse every change at every time ("outside the change windows")
    with pytest.raises(ValidationError, match=rf"change window '{window}' is empty: its start equals its end"):
        GuardPolicy(windows=["22:00-05:00", window])


def test_a_request_window_whose_start_equals_its_end_is_refused_as_empty() -> None:
    emu = make_emulator()
    own = request(emu, emu.cells[0], "cellIndividualOffset", 1.0, guard={"allowedWindow": "09:30-09:30"})
    got = [v for v in Guard(GuardPolicy(), open_ledger(":memory:")).check(own, GuardContext(now=NOW, cluster="c1"))
           if v.rule == "request_window"]
    assert [(v.message, v.values) for v in got] == [
        ("guard.allowedWindow '09:30-09:30' is empty: its start equals its end, so no time is inside it",
         {"window": "09:30-09:30"})]


def test_a_naive_clock_is_refused_not_guessed() -> None:
    # it was judged in the host's zone by the window rules and raised TypeError in min_interval
    with pytest.raises(ValueError, match=r"GuardContext\.now must carry a time zone"):
        GuardContext(now=datetime(2024, 3, 1, 12, 0), cluster="c1")


def test_min_interval_names_a_last_change_after_the_guards_clock() -> None:
    emu = make_emulator()
    led = open_ledger(":memory:")
    done = request(emu, emu.cells[0], "cellIndividualOffset", 1.0)
    led.record_request(done, "c1", at=NOW)
    for s in (State.APPROVED, State.APPLYING, State.APPLIED):
        led.append(done.change_id, s, at=NOW, actor="t")
    guard = Guard(GuardPolicy(min_interval_s=3600), led)
    late = GuardContext(now=NOW - timedelta(minutes=20), cluster="c1")  # e.g. an event-time clock a period behind
    got = [v for v in guard.check(request(emu, emu.cells[0], "cellIndividualOffset", 2.0), late)
           if v.rule == "min_interval"]
    assert len(got) == 1 and got[0].values["sinceS"] == -1200
    assert got[0].message == (f"cell {done.cell_key} was changed at 2024-03-01T12:00:00+00:00, 1200 s after the "
                              "guard's time 2024-03-01T11:40:00+00:00; min_interval_s is 3600")
    at_edge = guard.check(request(emu, emu.cells[0], "cellIndividualOffset", 2.0),
                          GuardContext(now=NOW + timedelta(seconds=3600), cluster="c1"))
    assert "min_interval" not in {v.rule for v in at_edge}  # == min_interval_s is allowed, as the docs say


def _runner(timeout_s: int) -> tuple[ChangeRunner, list[CmChangeRequest]]:
    emu = make_emulator()
    runner = ChangeRunner(open_ledger(":memory:"), GuardPolicy(mode="manual", approval_timeout_s=timeout_s),
                          FaultyAdapter(emu))
    for _ in range(4):  # the baseline the verification needs
        emu.step()
        runner.observe("c1", emu.period_end, {"DRB.UEThpDl": 50.0}, {"DRB.UEThpDl": 40.0})
    return runner, [request(emu, emu.cells[k], "cellIndividualOffset", 1.0) for k in range(2)]


def test_an_approval_at_or_after_approval_timeout_s_is_refused_at_push() -> None:
    runner, (late, in_time) = _runner(3600)
    for r in (late, in_time):
        assert runner.submit(r, "c1", NOW).state is State.PENDING_APPROVAL
    # the expiry (tick) has not run yet: an approval at exactly approval_timeout_s used to be pushed
    view = runner.approve(late.change_id, "alice", NOW + timedelta(seconds=3600))
    assert view.state is State.REJECTED
    assert view.reason == ("refused at push time: approval_timeout: waited 3600 s for its approval since "
                           "2024-03-01T12:00:00+00:00 (approved at 2024-03-01T13:00:00+00:00, guard's time "
                           "2024-03-01T13:00:00+00:00); approval_timeout_s is 3600")
    assert runner.approve(in_time.change_id, "bob",
                          NOW + timedelta(seconds=3599)).state is State.OBSERVING


def test_an_approval_recorded_in_the_ledger_is_judged_when_it_was_given() -> None:
    # the CLI / API path: the approval is a ledger step, the runner pushes it at its next tick
    runner, (late, in_time) = _runner(3600)
    for r in (late, in_time):
        runner.submit(r, "c1", NOW)
    decide(runner.ledger, in_time.change_id, "approve", by="bob", at=NOW + timedelta(minutes=59))
    decide(runner.ledger, late.change_id, "approve", by="alice", at=NOW + timedelta(minutes=70))
    runner.tick(NOW + timedelta(minutes=75))  # reconcile pushes before the expiry runs
    assert runner.ledger.get(in_time.change_id).state is State.OBSERVING
    view = runner.ledger.get(late.change_id)
    assert view.state is State.REJECTED and "approval_timeout: waited 4200 s" in (view.reason or "")


def test_the_approval_timeout_rule_names_its_values_before_the_approval() -> None:
    runner, (req, _) = _runner(3600)
    runner.submit(req, "c1", NOW)
    got = [v for v in runner.guard.check(req, GuardContext(now=NOW + timedelta(hours=2), cluster="c1"))
           if v.rule == "approval_timeout"]
    assert [v.values for v in got] == [{"pendingSince": "2024-03-01T12:00:00+00:00", "approvedAt": None,
                                        "now": "2024-03-01T14:00:00+00:00", "waitedS": 7200,
                                        "approvalTimeoutS": 3600}]
    assert runner.guard.check(req, GuardContext(now=NOW + timedelta(seconds=3599), cluster="c1")) == []
