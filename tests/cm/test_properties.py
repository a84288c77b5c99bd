"""Property-based: no sequence of requests, approvals, adapter faults, restarts and observations
pushes a value outside its bounds or a step above the maximum, puts two changes in flight on one
cell or more cells in flight than the blast radius allows, applies a change twice, or leaves a
change unsettled once the device is reachable and the runner has reconciled.

The device is the real emulated network behind its real adapter; ``FaultyAdapter`` injects the
transport faults a real network has (lost requests, lost answers, unreachable device)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.cm.util import FaultyAdapter, make_emulator, request
from twin import topics
from twin.guard import GuardPolicy
from twin.ledger import IN_FLIGHT, UNSETTLED, State, open_ledger
from twin.rollout import ChangeRunner
from twin.rollout.runner import _WIRE
from twin.schemas import CmChangeRequest

POLICY = GuardPolicy(mode="auto", max_cells_per_cluster=2, min_interval_s=0, observe_periods=2,
                     baseline_periods=2)
ATTRS = ["digitalTilt", "configuredMaxTxPower", "cellIndividualOffset"]
FAULTS = ["apply-lost", "apply-lost-after", "read", "restore-lost", "restore-lost-after", "reject"]


class Device(FaultyAdapter):
    """Records every value written to the device with the value it replaced."""

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.log: list[tuple[CmChangeRequest, Any]] = []

    def _write(self, req: CmChangeRequest) -> Any:
        before = self.endpoint.read(req.target_dn).get(req.attribute)
        result = super()._write(req)
        if result.state.value == "APPLIED" and not req.dry_run:
            self.log.append((req, before))
        return result


class ChangeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="cm-prop-"))
        self.url = str(self.dir / "ledger.sqlite")
        self.emu = make_emulator()
        self.device = Device(self.emu)
        self.policy = POLICY
        self.ids: list[str] = []
        self.forward: set[str] = set()

    @initialize(mode=st.sampled_from(["auto", "manual"]))
    def start(self, mode: str) -> None:
        self.policy = POLICY.model_copy(update={"mode": mode})
        self.runner = self._runner()
        for _ in range(2):
            self._period(50.0)

    def _runner(self) -> ChangeRunner:
        return ChangeRunner(open_ledger(self.url), self.policy, self.device)

    def _period(self, real: float) -> None:
        self.emu.step()
        self.runner.observe("c1", self.emu.period_end, {"DRB.UEThpDl": real}, {"DRB.UEThpDl": 40.0})

    @rule(cell=st.integers(0, 3), attr=st.sampled_from(ATTRS), factor=st.floats(-3.0, 3.0),
          stale=st.sampled_from([False, False, False, True]))
    def submit(self, cell: int, attr: str, factor: float, stale: bool) -> None:
        key = self.emu.cells[cell]
        cls = {"digitalTilt": "SectorEquipmentFunction", "configuredMaxTxPower": "NRSectorCarrier",
               "cellIndividualOffset": "NRCellDU"}[attr]
        current = self.emu.oss.read(self.emu.dn(key, cls))[attr]
        if attr == "configuredMaxTxPower":
            to: Any = max(1, round(current * 10 ** (factor * 2 / 10)))  # up to +-6 dB
        elif attr == "digitalTilt":
            to = round(current + factor * 15)  # up to +-4.5 degrees
        else:
            to = round(current + factor * 2, 1)
        req = request(self.emu, key, attr, to, from_=(current + 1 if stale else current))
        self.ids.append(req.change_id)
        self.forward.add(req.change_id)
        self.runner.submit(req, "c1", self.emu.period_end)

    @precondition(lambda self: self.ids)
    @rule(k=st.integers(0, 50), approve=st.booleans())
    def decide(self, k: int, approve: bool) -> None:
        cid = self.ids[k % len(self.ids)]
        if self.runner.ledger.get(cid).state is not State.PENDING_APPROVAL:
            return
        if approve:
            self.runner.approve(cid, "ops", self.emu.period_end)
        else:
            self.runner.deny(cid, "ops", "no", self.emu.period_end)

    @precondition(lambda self: self.ids)
    @rule(k=st.integers(0, 50))
    def operator_rollback(self, k: int) -> None:
        cid = self.ids[k % len(self.ids)]
        if self.runner.ledger.get(cid).state in (State.OBSERVING, State.CONFIRMED):
            self.runner.rollback(cid, "ops", "test", self.emu.period_end)

    @rule(cell=st.integers(0, 3), cio=st.sampled_from([-5.0, 5.0]))
    def field_change(self, cell: int, cio: float) -> None:
        """Someone outside the twin changes a cell (an engineer on site, another tool)."""
        key = self.emu.cells[cell]
        self.emu.oss.submit(request(self.emu, key, "cellIndividualOffset", cio, requester="field-engineer"))

    @rule(faults=st.lists(st.sampled_from(FAULTS), max_size=3))
    def inject(self, faults: list[str]) -> None:
        self.device.fail_next = list(faults)

    @rule(down=st.booleans())
    def reachability(self, down: bool) -> None:
        self.device.down = down

    @rule(real=st.sampled_from([30.0, 49.0, 55.0]))
    def period(self, real: float) -> None:
        self._period(real)

    @rule()
    def restart(self) -> None:
        """The worker dies and a new one starts on the same ledger (its KPI history is gone)."""
        self.runner.ledger.close()
        self.runner = self._runner()
        self.runner.reconcile(self.emu.period_end)

    @rule(on=st.booleans())
    def kill_switch(self, on: bool) -> None:
        self.runner.ledger.set_control("kill_switch", on, "ops", self.emu.period_end)

    @rule()
    def tick(self) -> None:
        self.runner.tick(self.emu.period_end)

    @invariant()
    def pushed_values_respect_bounds_and_steps(self) -> None:
        for req, before in self.device.log:
            if req.change_id not in self.forward:
                continue  # a roll back puts the old value back
            rule_ = self.policy.rule_for(req.class_, req.attribute)
            assert rule_ is not None
            assert rule_.min <= req.to <= rule_.max, (req.attribute, req.to)
            assert rule_.step(before, req.to) <= rule_.max_step + 1e-9, (req.attribute, before, req.to)

    @invariant()
    def at_most_one_in_flight_per_cell_and_blast_radius(self) -> None:
        flying = [v.request.cell_key for v in self.runner.ledger.changes(IN_FLIGHT)]
        assert max(Counter(flying).values(), default=0) <= 1
        assert len(set(flying)) <= POLICY.max_cells_per_cluster

    @invariant()
    def never_applied_twice(self) -> None:
        assert all(n == 1 for n in self.device.writes.values()), self.device.writes

    def teardown(self) -> None:
        try:
            self._settle_and_check()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)  # the ledger's directory: one per example

    def _settle_and_check(self) -> None:
        # the device comes back; a final reconcile (and the periods an observation needs) settle everything
        self.device.down = False
        self.device.fail_next = []
        self.runner.reconcile(self.emu.period_end)
        for _ in range(POLICY.observe_periods):
            self._period(49.0)
        self.runner.reconcile(self.emu.period_end + timedelta(seconds=1))
        assert not self.runner.ledger.changes(UNSETTLED)
        for view in self.runner.ledger.changes():
            if view.state is State.ROLLED_BACK:
                assert self.emu.oss.read(view.request.target_dn)[view.request.attribute] == view.request.from_ or \
                    any(v.request.cell_key == view.request.cell_key and v.at > view.at for v in
                        self.runner.ledger.changes())
        # what each change owes the broker is in the outbox: its final state's result last, no result
        # twice, and a roll back's alert exactly once
        owed: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for r in self.runner.ledger.outbox(after=0, limit=10**6):
            owed.setdefault(r.change_id, []).append((r.topic, json.loads(r.body)))
        for view in self.runner.ledger.changes():
            mine = owed.get(view.request.change_id, [])
            states = [body["state"] for topic, body in mine if topic == topics.CHANGE_RESULTS]
            assert len(states) == len(set(states)), (view.state, states)
            if view.state in _WIRE:
                assert states and states[-1] == _WIRE[view.state].value, (view.state, states)
            rolled = [body for topic, body in mine if topic == topics.ALERTS and body["type"] == "CM_ROLLED_BACK"]
            assert len(rolled) == (view.state is State.ROLLED_BACK), (view.state, rolled)
        self.runner.ledger.close()


ChangeMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None,
                                           suppress_health_check=[HealthCheck.too_slow])
TestChangeSequences = ChangeMachine.TestCase
