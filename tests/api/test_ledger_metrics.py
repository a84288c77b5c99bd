"""The CM figures of ``/metrics`` (pushes, roll backs, guard decisions by rule, states, kill switch)
from a ledger the real change runner wrote while pushing to the emulated network, and an operator's
roll back through ``twin.ledger.decisions`` (what the API's endpoint calls)."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import CollectorRegistry, generate_latest

from adapters.emulator import EmulatorAdapter
from tests.cm.util import make_emulator, request
from twin.guard import GuardPolicy
from twin.ledger import State, open_ledger
from twin.ledger.decisions import decide, set_kill_switch
from twin.metrics import StateCollector, ledger_figures
from twin.rollout import ChangeRunner


def test_pushes_rollbacks_and_rules_from_the_ledger() -> None:
    emu = make_emulator()
    led = open_ledger(":memory:")
    runner = ChangeRunner(led, GuardPolicy(mode="auto"), EmulatorAdapter(emu.oss))
    for _ in range(4):  # the baseline the push needs
        emu.step()
        runner.observe("c1", emu.period_end, {"DRB.UEThpDl": 50.0}, {"DRB.UEThpDl": 40.0})
    cells = emu.cells
    pushed = runner.submit(request(emu, cells[0], "digitalTilt", 60), "c1", emu.period_end)
    assert pushed.state in (State.APPLIED, State.OBSERVING)
    refused = runner.submit(request(emu, cells[1], "digitalTilt", 150), "c1", emu.period_end)
    assert refused.state is State.REJECTED
    # an operator rolls the pushed change back; the runner restores the old value at its next tick
    decide(led, pushed.request.change_id, "rollback", by="noc-ann", at=emu.period_end, reason="test")
    runner.tick(emu.period_end + timedelta(minutes=1))
    assert led.get(pushed.request.change_id).state is State.ROLLED_BACK
    set_kill_switch(led, True, by="noc-ann", at=emu.period_end)

    figures = ledger_figures(led)
    assert figures["pushes"] == {"applied": 1}
    assert figures["rollbacks"] == {"operator": 1}
    assert figures["decisions"] == {("approved", "none"): 1, ("rejected", "max_step"): 1}
    assert figures["states"] == {"ROLLED_BACK": 1, "REJECTED": 1}

    registry = CollectorRegistry()
    registry.register(StateCollector(lambda: None, lambda: led))
    text = generate_latest(registry).decode()
    assert 'twin_cm_pushes_total{result="applied"} 1.0' in text
    assert 'twin_cm_rollbacks_total{trigger="operator"} 1.0' in text
    assert 'twin_cm_guard_decisions_total{outcome="rejected",rule="max_step"} 1.0' in text
    assert 'twin_cm_changes{state="ROLLED_BACK"} 1.0' in text
    assert "twin_cm_kill_switch 1.0" in text
