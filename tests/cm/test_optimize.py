"""The optimiser on a twin that mirrors the real emulated network: candidates are the guard's
allowed steps, the search respects its budget, proposals are ranked change requests carrying the
prediction, and the energy objective trades power against throughput within its budget."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from replay.bench_fidelity import _config
from replay.emulator import NetworkEmulator
from tests.cm.util import START
from twin import Twin
from twin.guard import OBJECTIVE, Guard, GuardContext, GuardPolicy
from twin.ledger import open_ledger
from twin.metrics import REGISTRY
from twin.optimize import ObjectiveSettings, Optimizer


@pytest.fixture(scope="module")
def mirrored() -> tuple[NetworkEmulator, Twin]:
    emu = NetworkEmulator("suburban-quiet", seed=1, start=START, granularity_s=3600, mr_per_cell=1)
    twin = Twin(config=_config(Path(tempfile.mkdtemp(prefix="opt-")), emu))
    twin.ingest(emu.initial_records())
    for _ in range(6):
        twin.ingest(emu.step())
    return emu, twin


def test_candidates_are_exactly_the_guard_allowed_steps(mirrored: tuple[NetworkEmulator, Twin]) -> None:
    emu, twin = mirrored
    policy = GuardPolicy()
    cands = Optimizer(twin, policy).candidates(emu.cluster_id)
    assert {c.attribute for c in cands} == {"digitalTilt", "configuredMaxTxPower", "cellIndividualOffset"}
    assert {c.cell for c in cands} == set(emu.cells)
    guard = Guard(policy, open_ledger(":memory:"))
    for c in cands:
        rule = policy.rule_for(c.cls, c.attribute)
        assert rule is not None and rule.min <= c.to <= rule.max and rule.step(c.from_, c.to) <= rule.max_step
        assert c.from_ == emu.oss.read(c.dn)[c.attribute]  # the DN and value the network really has
    narrow = GuardPolicy(attributes={"SectorEquipmentFunction.digitalTilt": {"min": 0, "max": 150, "max_step": 10,
                                                                             "integer": True}})
    only_tilt = Optimizer(twin, narrow).candidates(emu.cluster_id)
    assert {c.attribute for c in only_tilt} == {"digitalTilt"} and all(abs(c.to - c.from_) <= 10 for c in only_tilt)
    assert guard.policy is policy


def test_search_respects_the_budget_and_proposes_ranked_requests(mirrored: tuple[NetworkEmulator, Twin]) -> None:
    emu, twin = mirrored
    opt = Optimizer(twin, GuardPolicy(max_cells_per_cluster=2))
    timed = REGISTRY.get_sample_value("twin_whatif_seconds_count", {"caller": "optimizer"}) or 0.0
    result = opt.search(emu.cluster_id, budget=60, now=emu.period_end, fidelity=0.12)
    assert result.whatifs <= 60 and result.whatifs_per_s > 0
    # each what-if is timed in the latency histogram the metrics endpoint serves
    assert REGISTRY.get_sample_value("twin_whatif_seconds_count", {"caller": "optimizer"}) == timed + result.whatifs
    assert [g for _, g in result.curve] == sorted(g for _, g in result.curve)  # the best found only grows
    assert 1 <= len(result.proposals) <= 2
    assert len({p.candidate.cell for p in result.proposals}) == len(result.proposals)
    total = 0.0
    for rank, p in enumerate(result.proposals, start=1):
        r = p.request
        assert p.rank == rank and r.requester == "optimizer" and r.cell_key == p.candidate.cell
        assert r.twin_version == twin.predict_config.model_version and r.fidelity == 0.12
        assert r.expected_kpi_impact[OBJECTIVE] == pytest.approx(p.marginal_gain_pct, abs=1e-3)
        assert "DRB.UEThpDl" in r.expected_kpi_impact and p.marginal_gain_pct > 0
        total += p.marginal_gain_pct
    assert total == pytest.approx(result.gain_pct, abs=1e-6)
    # what the optimiser reports is what an independent what-if of the same changes says
    score, _ = opt.evaluate(emu.cluster_id, [p.candidate for p in result.proposals])
    assert score.gain_pct == pytest.approx(result.gain_pct, rel=1e-9)
    # and the guard lets its proposals through on its own rules (trust aside)
    guard = Guard(GuardPolicy(max_cells_per_cluster=2, min_gain_pct=0.0), open_ledger(":memory:"))
    ctx = GuardContext(now=emu.period_end, cluster=emu.cluster_id, trusted=True, calibrated_error=0.1,
                       baseline_periods=8)
    assert all(guard.check(p.request, ctx) == [] for p in result.proposals)


def test_energy_objective_saves_power_within_the_throughput_budget(mirrored: tuple[NetworkEmulator, Twin]) -> None:
    emu, twin = mirrored
    obj = ObjectiveSettings(kind="energy", energy_max_thp_loss_pct=3.0)
    opt = Optimizer(twin, GuardPolicy(max_cells_per_cluster=2), obj, attributes=("configuredMaxTxPower",))
    result = opt.search(emu.cluster_id, budget=40, now=emu.period_end)
    assert result.proposals, "lowering a carrier's power saves energy somewhere in a quiet suburb"
    final = result.proposals[-1].cumulative
    assert final.power_pct < 0 and final.gain_pct == pytest.approx(-final.power_pct)
    assert final.mean_pct >= -3.0 and all(p.candidate.to < p.candidate.from_ for p in result.proposals)
