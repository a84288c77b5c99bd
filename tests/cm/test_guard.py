"""The guard: each rule refuses with its name and the values it compared; modes; the kill switch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.cm.util import make_emulator, request
from twin.guard import Guard, GuardContext, GuardPolicy
from twin.ledger import State, open_ledger

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def ctx(**kw: object) -> GuardContext:
    base: dict[str, object] = {"now": NOW, "cluster": "c1", "trusted": True, "calibrated_error": 0.1,
                               "baseline_periods": 8}
    return GuardContext(**{**base, **kw})  # type: ignore[arg-type]


def rules(guard: Guard, req: object, c: GuardContext | None = None) -> dict[str, dict[str, object]]:
    return {v.rule: v.values for v in guard.check(req, c or ctx(), at_push=True)}  # type: ignore[arg-type]


def test_value_rules_name_the_attribute_and_the_values() -> None:
    emu = make_emulator()
    cell = emu.cells[3]
    guard = Guard(GuardPolicy(), open_ledger(":memory:"))
    tilt = emu.oss.read(emu.dn(cell, "SectorEquipmentFunction"))["digitalTilt"]
    assert rules(guard, request(emu, cell, "digitalTilt", tilt + 10)) == {}
    assert rules(guard, request(emu, cell, "digitalTilt", 400))["bounds"] == {"to": 400, "min": 0, "max": 150}
    big = rules(guard, request(emu, cell, "digitalTilt", tilt + 30, from_=tilt))
    assert big["max_step"] == {"from": tilt, "to": tilt + 30, "step": 30, "maxStep": 20}
    assert "value" in rules(guard, request(emu, cell, "digitalTilt", 45.5))
    assert "value" in rules(guard, request(emu, cell, "digitalTilt", tilt + 10, from_=None))
    assert "attribute" in rules(guard, request(emu, cell, "cellIndividualOffset", 1).model_copy(
        update={"attribute": "nRPCI"}))
    power = emu.oss.read(emu.dn(cell, "NRSectorCarrier"))["configuredMaxTxPower"]
    step = rules(guard, request(emu, cell, "configuredMaxTxPower", power // 4))["max_step"]
    assert step["step"] == pytest.approx(6.02, abs=0.01) and step["maxStep"] == 3.0  # a step in dB
    text = "; ".join(str(v) for v in guard.check(request(emu, cell, "digitalTilt", 400), ctx()))
    assert "SectorEquipmentFunction.digitalTilt=400" in text and "[0, 150]" in text


def test_state_rules_one_in_flight_interval_blast_radius_and_kill_switch() -> None:
    emu = make_emulator()
    led = open_ledger(":memory:")
    guard = Guard(GuardPolicy(max_cells_per_cluster=2, min_interval_s=3600), led)
    a, b, c = emu.cells[:3]

    def in_flight(cell: str, state: State, at: datetime = NOW) -> None:
        req = request(emu, cell, "cellIndividualOffset", 1.0)
        led.record_request(req, "c1", at=at)
        for s in (State.APPROVED, State.APPLYING, State.APPLIED, State.OBSERVING):
            led.append(req.change_id, s, at=at, actor="t")
            if s is state:
                break

    in_flight(a, State.OBSERVING, NOW - timedelta(minutes=30))
    got = rules(guard, request(emu, a, "cellIndividualOffset", 2.0))
    assert set(got) == {"one_in_flight", "min_interval"} and got["min_interval"]["sinceS"] == 1800
    in_flight(b, State.APPLYING)
    assert rules(guard, request(emu, c, "cellIndividualOffset", 2.0))["blast_radius"]["cells"] == sorted([a, b])
    assert "blast_radius" not in rules(guard, request(emu, c, "cellIndividualOffset", 2.0), ctx(cluster="c2"))
    led.set_control("kill_switch", True, "ops", NOW)
    assert "kill_switch" in rules(guard, request(emu, c, "cellIndividualOffset", 2.0), ctx(cluster="c2"))
    led.set_control("kill_switch", False, "ops", NOW)
    assert rules(guard, request(emu, c, "cellIndividualOffset", 2.0), ctx(cluster="c2")) == {}


def test_windows_trust_gate_gain_and_baseline() -> None:
    emu = make_emulator()
    cell = emu.cells[1]
    guard = Guard(GuardPolicy(windows=["22:00-05:00"], timezone="Europe/Berlin"), open_ledger(":memory:"))
    req = request(emu, cell, "cellIndividualOffset", 1.0)
    assert rules(guard, req)["change_window"] == {"localTime": "13:00", "windows": ["22:00-05:00"]}
    assert "change_window" not in rules(guard, req, ctx(now=datetime(2024, 3, 1, 23, 30, tzinfo=UTC)))
    assert "change_window" not in rules(guard, req, ctx(now=datetime(2024, 3, 1, 2, 0, tzinfo=UTC)))
    guard = Guard(GuardPolicy(), open_ledger(":memory:"))
    justified = request(emu, cell, "cellIndividualOffset", 1.0, expectedKpiImpact={"objective": 0.5})
    got = rules(guard, justified, ctx(trusted=False, trust_reasons=["coverage 0.1 < 0.5"], calibrated_error=0.4))
    assert got["trust_gate"]["reasons"] == ["coverage 0.1 < 0.5"]
    assert got["calibrated_error"] == {"calibratedError": 0.4, "max": 0.25}
    assert got["min_gain"] == {"gainPct": 0.5, "min": 1.0}
    assert rules(guard, req, ctx(trusted=False, calibrated_error=None)) == {}  # an operator's change: not twin-made
    assert rules(guard, req, ctx(baseline_periods=2))["baseline"] == {"periods": 2, "needed": 4}
    own = request(emu, cell, "cellIndividualOffset", 1.0, guard={"allowedWindow": "01:00-02:00"})
    assert "request_window" in rules(guard, own)


def test_modes_decide_pending_approved_or_dry_run() -> None:
    emu = make_emulator()
    req = request(emu, emu.cells[0], "cellIndividualOffset", 1.0)
    outcomes = {mode: Guard(GuardPolicy(mode=mode), open_ledger(":memory:")).decide(req, ctx()).outcome
                for mode in ("auto", "manual", "dry-run")}
    assert outcomes == {"auto": "approved", "manual": "pending", "dry-run": "dry-run"}
    bad = Guard(GuardPolicy(mode="auto", kill_switch=True), open_ledger(":memory:")).decide(req, ctx())
    assert bad.outcome == "rejected" and bad.reason.startswith("kill_switch: ")


def test_a_misspelt_or_invalid_policy_is_refused_with_the_field() -> None:
    with pytest.raises(ValueError, match="max_cels_per_cluster"):
        GuardPolicy.model_validate({"max_cels_per_cluster": 3})
    with pytest.raises(ValueError, match="Mars/Olympus"):
        GuardPolicy(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match=r"min 10\.0 is above max 5\.0"):
        GuardPolicy.model_validate({"attributes": {"NRCellDU.cellIndividualOffset": {"min": 10, "max": 5,
                                                                                     "max_step": 1}}})
