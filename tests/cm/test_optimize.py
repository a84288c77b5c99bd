"""The optimiser on a twin that mirrors the real emulated network: candidates are the guard's
allowed steps, the search respects its budget, proposals are ranked change requests carrying the
prediction, and the energy objective trades power against throughput within its budget."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from replay.bench_fidelity import _config
from replay.emulator import NetworkEmulator
from tests.cm.util import START
from twin import Twin
from twin.gap.target import RSRP_MEAN
from twin.guard import OBJECTIVE, Guard, GuardContext, GuardPolicy
from twin.ledger import open_ledger
from twin.metrics import REGISTRY
from twin.optimize import ObjectiveSettings, Optimizer
from twin.sim.kpis import PRB


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


class _SeenAs:
    """The twin, except that its calibrated prediction says the real cells differ from the model:
    ``prb_factor`` times the PRB utilisation on the cells of ``busy``, and SS-RSRP ``rsrp_db``
    higher on every cell (what gap learners trained on such a network would say)."""

    def __init__(self, twin: Twin, busy: tuple[str, ...] = (), prb_factor: float = 1.0, rsrp_db: float = 0.0) -> None:
        self._twin, self.busy, self.prb_factor, self.rsrp_db = twin, busy, prb_factor, rsrp_db

    def __getattr__(self, name: str) -> object:
        return getattr(self._twin, name)

    def predict(self, cluster: str, *args: object, **kwargs: object) -> object:
        pred = self._twin.predict(cluster, *args, **kwargs)
        calibrated = {}
        for cell, kpis in pred.values.items():
            seen = dict(kpis)
            if cell in self.busy:
                seen[PRB] = kpis[PRB] * self.prb_factor
            if RSRP_MEAN in kpis:
                seen[RSRP_MEAN] = kpis[RSRP_MEAN] + self.rsrp_db
            calibrated[cell] = seen
        return replace(pred, calibrated=calibrated)


def test_the_search_scores_a_denser_drop_judged_at_the_real_cells_levels(
        mirrored: tuple[NetworkEmulator, Twin]) -> None:
    emu, twin = mirrored
    cluster = emu.cluster_id
    opt = Optimizer(twin, GuardPolicy())
    cands = opt.candidates(cluster)
    power_cut = next(c for c in cands if c.attribute == "configuredMaxTxPower" and c.to < c.from_)
    s, w = opt.evaluate(cluster, [power_cut])
    assert w.ue_baseline is not None and len(w.ue_baseline.throughput_bps) == ObjectiveSettings().ue_points
    assert len(twin.whatif(cluster, {power_cut.cell: {power_cut.attribute: power_cut.to}}).ue_baseline.rsrp_dbm) \
        == twin.predict_config.n_ues  # the prediction's own model is left as it is
    # the PRB ceiling is judged on the calibrated utilisation: a change that raises a cell's PRB in
    # the model is refused where the real cell is busier than the model and so above the ceiling,
    # and only there
    def rise(c: object) -> tuple[float, str | None, float]:
        w = opt.evaluate(cluster, [c])[1]  # type: ignore[list-item]
        up = [k for k in w.baseline if w.changed[k][PRB] > w.baseline[k][PRB] + 1e-6]
        top = max(up, key=lambda k: w.changed[k][PRB], default=None)
        return (0.0 if top is None else w.changed[top][PRB]), top, max(v[PRB] for v in w.changed.values())

    raising, (level, cell, highest) = next((c, r) for c in cands if (r := rise(c))[1] is not None)
    assert cell is not None and 10.0 * level > 1.5 * highest  # the set-up: the busy cell can be pushed over
    objective = ObjectiveSettings(prb_ceiling_pct=1.5 * highest)  # above every cell of the model
    busy = Optimizer(_SeenAs(twin, (cell,), prb_factor=10.0), GuardPolicy(), objective)  # type: ignore[arg-type]
    refused, _ = busy.evaluate(cluster, [raising])
    assert not refused.feasible and "above the PRB ceiling" in refused.why
    raw_view = Optimizer(_SeenAs(twin, (cell,), prb_factor=10.0), GuardPolicy(),  # type: ignore[arg-type]
                         objective.model_copy(update={"calibrated": False}))
    assert "PRB ceiling" not in raw_view.evaluate(cluster, [raising])[0].why
    # the coverage floor on the calibrated RSRP: where the real cells are 20 dB stronger than the
    # model, the power cut that costs the model's UEs coverage costs the real ones none
    assert s.coverage_delta < -0.002 and "coverage" in s.why  # the set-up: refused on the model's levels
    strong, _ = Optimizer(_SeenAs(twin, rsrp_db=20.0), GuardPolicy()).evaluate(  # type: ignore[arg-type]
        cluster, [power_cut])
    assert strong.coverage_delta > -0.002 and "coverage" not in strong.why
