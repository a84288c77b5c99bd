"""ChangeRunner against the real emulated network: push, read-after-write, observe, confirm or roll
back, and every transport fault ending in a known, recorded state.

The verification's inputs (the cluster's KPI means per period) are given as numbers here, so the
decision logic is tested on exact values; the end-to-end loop on the emulator's own KPIs is in the
demo and ``twin bench optimize``.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pytest

from replay.emulator import NetworkEmulator
from tests.cm.util import FaultyAdapter, make_emulator, request
from twin.guard import GuardContext, GuardPolicy
from twin.ledger import UNSETTLED, State, open_ledger
from twin.rollout import ChangeRunner
from twin.schemas import AlertType, ChangeState, CmChangeRequest

GOOD = {"DRB.UEThpDl": 50.0}


def setup(mode: str = "auto", **policy: Any) -> tuple[NetworkEmulator, FaultyAdapter, ChangeRunner]:
    emu = make_emulator()
    adapter = FaultyAdapter(emu)
    runner = ChangeRunner(open_ledger(":memory:"), GuardPolicy(mode=mode, **policy), adapter)
    for _ in range(4):  # the baseline the verification needs
        emu.step()
        runner.observe("c1", emu.period_end, GOOD, {"DRB.UEThpDl": 40.0})
    return emu, adapter, runner


def observe(emu: NetworkEmulator, runner: ChangeRunner, n: int, real: float, predicted: float = 40.0) -> None:
    for _ in range(n):
        emu.step()
        runner.observe("c1", emu.period_end, {"DRB.UEThpDl": real}, {"DRB.UEThpDl": predicted})


def device(emu: NetworkEmulator, req: CmChangeRequest) -> Any:
    return emu.oss.read(req.target_dn)[req.attribute]


def test_auto_change_is_applied_verified_observed_and_confirmed() -> None:
    emu, adapter, runner = setup()
    cell = emu.cells[4]
    req = request(emu, cell, "digitalTilt", device(emu, request(emu, cell, "digitalTilt", 0)) + 10)
    view = runner.submit(req, "c1", emu.period_end)
    assert view.state is State.OBSERVING and device(emu, req) == req.to and adapter.writes == {req.change_id: 1}
    observe(emu, runner, 3, 49.0)
    assert runner.ledger.get(req.change_id).state is State.OBSERVING
    observe(emu, runner, 1, 49.0)
    done = runner.ledger.get(req.change_id)
    assert done.state is State.CONFIRMED and done.decided_by == "guard"
    verdict = done.detail["verdicts"][0]
    assert verdict["kpi"] == "DRB.UEThpDl" and verdict["effect_pct"] == pytest.approx(-2.0) and not verdict["degraded"]
    assert [r.state for r in runner.results] == [ChangeState.APPLIED, ChangeState.CONFIRMED]
    assert [e.step for e in done.history] == ["REQUESTED", "APPROVED", "APPLYING", "APPLIED", "OBSERVING",
                                              *[f"observe:{int((emu.period_end - timedelta(hours=k)).timestamp())}"
                                                for k in (3, 2, 1, 0)], "CONFIRMED"]


def test_a_change_the_network_contradicts_is_rolled_back_with_an_alert() -> None:
    emu, _, runner = setup(trust_gate=False)  # the trust gate is tested below
    cell = emu.cells[5]
    before = emu.oss.read(emu.dn(cell, "NRSectorCarrier"))["configuredMaxTxPower"]
    req = request(emu, cell, "configuredMaxTxPower", round(before / 1.9), expectedKpiImpact={"DRB.UEThpDl": 3.0})
    runner.submit(req, "c1", emu.period_end)
    # the twin predicted +3 %: predicted after 41.2 vs 40 before; reality fell to 44 (-10 % of 50)
    observe(emu, runner, 4, 44.0, predicted=41.2)
    view = runner.ledger.get(req.change_id)
    assert view.state is State.ROLLED_BACK and device(emu, req) == before
    assert "DRB.UEThpDl -12.0 %" in (view.reason or "") and view.decided_by == "guard"
    assert [a.type for a in runner.alerts] == [AlertType.CM_ROLLED_BACK]
    assert runner.alerts[0].related_change_id == req.change_id
    assert [r.state for r in runner.results] == [ChangeState.APPLIED, ChangeState.ROLLED_BACK]
    emu.step()
    assert emu.public_sector(cell).tx_power_dbm == pytest.approx(10 * math.log10(before), abs=0.01)


def test_manual_mode_approve_deny_expire_and_the_guard_checks_again_at_push() -> None:
    emu, adapter, runner = setup(mode="manual", approval_timeout_s=3600)
    cells = emu.cells
    now = emu.period_end
    a, b, c, d = (request(emu, cells[k], "cellIndividualOffset", 1.0) for k in range(4))
    for r in (a, b, c, d):
        assert runner.submit(r, "c1", now).state is State.PENDING_APPROVAL
    assert runner.approve(a.change_id, "alice", now).state is State.OBSERVING
    assert runner.ledger.get(a.change_id).decided_by == "alice"
    assert runner.deny(b.change_id, "bob", "not in this window", now).state is State.DENIED
    runner.ledger.set_control("kill_switch", True, "carol", now)
    refused = runner.approve(c.change_id, "alice", now)
    assert refused.state is State.REJECTED and "refused at push time: kill_switch" in (refused.reason or "")
    with pytest.raises(ValueError, match=r"cannot approve change .* it is REJECTED"):
        runner.approve(c.change_id, "alice", now)
    assert [v.request.change_id for v in runner.expire(now + timedelta(hours=2))] == [d.change_id]
    assert adapter.writes == {a.change_id: 1}


def test_transport_faults_end_in_known_states_and_nothing_is_applied_twice() -> None:
    emu, adapter, runner = setup(max_cells_per_cluster=10)
    cells = emu.cells
    now = emu.period_end
    lost = request(emu, cells[0], "cellIndividualOffset", 2.0)
    adapter.fail_next = ["apply-lost", "read"]
    assert runner.submit(lost, "c1", now).state is State.APPLYING  # unknown, and the device unreadable
    after = request(emu, cells[1], "cellIndividualOffset", 2.0)
    adapter.fail_next = ["apply-lost-after"]
    assert runner.submit(after, "c1", now).state is State.OBSERVING  # read showed the new value: applied once
    rejected = request(emu, cells[2], "cellIndividualOffset", 2.0)
    adapter.fail_next = ["reject"]
    view = runner.submit(rejected, "c1", now)
    assert view.state is State.FAILED and "device rejected the change: rpc-error: denied" in (view.reason or "")
    runner.reconcile(now)
    assert runner.ledger.get(lost.change_id).state is State.OBSERVING
    assert adapter.writes == {lost.change_id: 1, after.change_id: 1}
    # someone else moved the value while a change was unsettled: recorded FAILED with that value
    odd = request(emu, cells[3], "cellIndividualOffset", 2.0)
    adapter.fail_next = ["apply-lost", "read"]
    assert runner.submit(odd, "c1", now).state is State.APPLYING
    emu.oss.submit(request(emu, cells[3], "cellIndividualOffset", -3.0, requester="field-engineer"))
    runner.reconcile(now)
    failed = runner.ledger.get(odd.change_id)
    assert failed.state is State.FAILED and failed.detail["deviceValue"] == -3.0
    assert AlertType.CM_FAILED in {a.type for a in runner.alerts}
    # a roll back whose answer is lost is finished by reading the device
    adapter.fail_next = ["restore-lost", "read"]
    assert runner.rollback(after.change_id, "ops", "test", now).state is State.ROLLING_BACK
    runner.reconcile(now)
    assert runner.ledger.get(after.change_id).state is State.ROLLED_BACK and device(emu, after) == after.from_
    assert not runner.ledger.changes(UNSETTLED)
    # a request made against a value the device no longer holds is refused before anything is sent
    stale = request(emu, cells[4], "cellIndividualOffset", 2.0, from_=1.0)
    view = runner.submit(stale, "c1", now)
    assert view.state is State.REJECTED
    assert "the device holds cellIndividualOffset=0.0, the request was made against 1.0" in (view.reason or "")
    adapter.down = True  # a device that cannot be read: the approved change waits, nothing is sent
    waiting = request(emu, cells[5], "cellIndividualOffset", 1.0)
    assert runner.submit(waiting, "c1", now).state is State.APPROVED
    adapter.down = False
    runner.reconcile(now)
    assert runner.ledger.get(waiting.change_id).state is State.OBSERVING


def test_no_push_without_a_baseline_and_a_twin_change_needs_trust() -> None:
    emu = make_emulator()
    runner = ChangeRunner(open_ledger(":memory:"), GuardPolicy(mode="auto"), FaultyAdapter(emu),
                          context=lambda cluster, now: GuardContext(now=now, cluster=cluster, trusted=False,
                                                                    trust_reasons=["no DT-BSM estimate yet"],
                                                                    calibrated_error=0.1))
    now = emu.period_end
    view = runner.submit(request(emu, emu.cells[0], "cellIndividualOffset", 1.0), "c1", now)
    assert view.state is State.REJECTED and "baseline: cluster c1 has 0 periods" in (view.reason or "")
    twin_made = request(emu, emu.cells[1], "cellIndividualOffset", 1.0, expectedKpiImpact={"objective": 4.0})
    view = runner.submit(twin_made, "c1", now)
    assert view.state is State.REJECTED and "trust_gate: the twin of cluster c1 is not trusted: no DT-BSM" in \
        (view.reason or "")
    assert runner.submit(twin_made, "c1", now + timedelta(hours=1)).state is State.REJECTED  # idempotent by id


def test_dry_run_is_validated_by_the_device_and_never_applied() -> None:
    emu, adapter, runner = setup(mode="dry-run")
    ok = request(emu, emu.cells[0], "cellIndividualOffset", 1.0)
    assert runner.submit(ok, "c1", emu.period_end).state is State.DRY_RUN
    assert adapter.writes == {} and device(emu, ok) == ok.from_
    at: datetime = emu.period_end
    assert [r.state for r in runner.results] == [ChangeState.ACCEPTED] and at


def test_control_cells_carry_the_common_trend_the_forecast_gets_wrong() -> None:
    """The demo's false alarm, reproduced: the whole cluster falls 30 % in the evening while the raw
    twin forecast a recovery. Against the forecast the change looks -40 %; against the cells beside
    it, it did nothing wrong, and it is confirmed. A change whose own cells fall while the control
    cells hold is rolled back, with the control cells named as the method."""
    emu = make_emulator()
    adapter = FaultyAdapter(emu)
    cells = emu.cells[:6]
    scope = {cells[0]: [cells[0], cells[1]], cells[3]: [cells[3]]}
    runner = ChangeRunner(open_ledger(":memory:"), GuardPolicy(mode="auto", max_cells_per_cluster=4), adapter,
                          scope=lambda req, cluster: (scope[req.cell_key], 1.5))

    def period(level: dict[str, float], forecast: float) -> None:
        emu.step()
        by_cell = {c: {"DRB.UEThpDl": level.get(c, 1.0) * 10.0} for c in cells}
        mean = sum(v["DRB.UEThpDl"] for v in by_cell.values()) / len(by_cell)
        runner.observe("c1", emu.period_end, {"DRB.UEThpDl": mean}, {"DRB.UEThpDl": forecast}, by_cell)

    for _ in range(4):
        period({}, 40.0)
    common = request(emu, cells[0], "cellIndividualOffset", 1.0)
    own = request(emu, cells[3], "cellIndividualOffset", 1.0)
    runner.submit(common, "c1", emu.period_end)
    runner.submit(own, "c1", emu.period_end)
    for _ in range(4):
        period({c: 0.7 for c in cells} | {cells[3]: 0.55}, 48.0)  # evening for all; cell 3 worse
    kept, back = runner.ledger.get(common.change_id), runner.ledger.get(own.change_id)
    assert kept.state is State.CONFIRMED, kept.reason
    verdict = kept.detail["verdicts"][0]
    assert verdict["method"] == "control-cells" and verdict["effect_pct"] == pytest.approx(0.0, abs=1e-9)
    assert verdict["predicted_pct"] == 1.5
    assert back.state is State.ROLLED_BACK and "from the control cells' trend" in (back.reason or "")
    assert back.history[-2].detail["verdicts"][0]["effect_pct"] == pytest.approx(100 * (0.55 / 0.7 - 1))
    applying = next(e for e in kept.history if e.step == "APPLYING")
    assert applying.detail["scope"] == sorted(scope[cells[0]]) and applying.detail["predictedScopePct"] == 1.5


def _observe_both(emu: NetworkEmulator, runner: ChangeRunner, n: int, thp: float, prb: float) -> None:
    for _ in range(n):
        emu.step()
        runner.observe("c1", emu.period_end, {"DRB.UEThpDl": thp, "RRU.PrbTotDl": prb},
                       {"DRB.UEThpDl": 40.0, "RRU.PrbTotDl": 60.0})


@pytest.mark.parametrize(("prb_after", "final"), [(55.0, State.CONFIRMED), (61.0, State.ROLLED_BACK)])
def test_a_requests_rollback_kpis_tighten_the_policy_and_keep_its_direction(prb_after: float, final: State) -> None:
    """PRB utilisation is lower-is-better in the policy (10 %); the request tightens it to 0 %: a fall
    confirms the change (not read as a degradation), a 1.7 % rise rolls it back (the policy alone
    would have tolerated it), and a 0 % tolerance is judged, not a crash at every restart."""
    emu = make_emulator()
    adapter = FaultyAdapter(emu)
    policy = GuardPolicy(mode="auto", protected_kpis={
        "DRB.UEThpDl": {"max_degradation_pct": 5.0},
        "RRU.PrbTotDl": {"max_degradation_pct": 10.0, "higher_is_better": False}})
    runner = ChangeRunner(open_ledger(":memory:"), policy, adapter)
    _observe_both(emu, runner, 4, 50.0, 60.0)
    cell = emu.cells[4]
    req = request(emu, cell, "digitalTilt", device(emu, request(emu, cell, "digitalTilt", 0)) + 10,
                  guard={"rollbackKpis": [{"name": "RRU.PrbTotDl", "maxDegradationPct": 0},
                                          {"name": "DRB.UEThpDl", "maxDegradationPct": 50}]})
    assert runner.submit(req, "c1", emu.period_end).state is State.OBSERVING
    _observe_both(emu, runner, 4, 50.0, prb_after)
    done = runner.ledger.get(req.change_id)
    assert done.state is final, done.reason
    judged = next(e.detail for e in done.history if "verdicts" in e.detail)
    verdicts = {v["kpi"]: v for v in judged["verdicts"]}
    assert verdicts["RRU.PrbTotDl"]["max_degradation_pct"] == 0.0
    assert verdicts["DRB.UEThpDl"]["max_degradation_pct"] == 5.0  # a request never loosens the policy
    assert verdicts["RRU.PrbTotDl"]["degraded"] is (final is State.ROLLED_BACK)
    assert not verdicts["DRB.UEThpDl"]["degraded"]


def test_a_rollback_kpi_the_policy_does_not_protect_is_refused_by_the_guard() -> None:
    emu, adapter, runner = setup()
    cell = emu.cells[4]
    req = request(emu, cell, "digitalTilt", device(emu, request(emu, cell, "digitalTilt", 0)) + 10,
                  guard={"rollbackKpis": [{"name": "RRC.ConnEstabSucc", "maxDegradationPct": 2}]})
    view = runner.submit(req, "c1", emu.period_end)
    assert view.state is State.REJECTED and adapter.writes == {}
    assert "rollback_kpis" in (view.reason or "") and "'RRC.ConnEstabSucc'" in (view.reason or "")
    assert "DRB.UEThpDl" in (view.reason or "")  # what the policy does protect
