"""``twin bench optimize``: guarded CM optimisation on the emulated network, against an oracle.

Per shipped scenario: the twin mirrors the emulated network for ``warm_h`` hourly periods; the
optimiser searches the guard-allowed steps with ``Twin.whatif`` (``budget`` what-ifs); every
proposal goes through the guard, the ledger and the emulator's adapter (``ChangeRunner``, auto
mode); the network runs ``observe`` periods while the runner verifies each change on the cluster's
real KPIs and rolls back what reality contradicts. Then, on the emulator's hidden truth (only a
benchmark may read it):

* ``real_gain_pct``: the objective of the configuration the network ends with, against the one it
  started with, over the same evaluation hours, the same true load and events (like for like);
* ``oracle_gain_pct``: the best configuration found by a much longer search directly on the truth
  over the same action space (the same candidate steps and the same number of changed cells):
  every single step scored on the truth, then greedy combination over the best ``oracle_pool``;
* ``oracle_fraction`` = real / oracle;
* ``draw_blind_oracle`` (with ``blind_draws`` > 0): the oracle's search run instead on that many
  other draws of the hidden truth (emulators of the same scenario with other seeds: same sites, CM,
  hours and events; other UE positions, shadowing, building loss, antenna errors), a configuration
  scored by its mean gain over them and infeasible when it breaks a constraint on any of them, and
  its choice then scored on this network's truth: what a twin that knows how the truth is drawn, but
  not this network's draw, could recover (``oracle_fraction``, against the same oracle); where an
  event starts or ends after the decision (fault-midrun's noon fault), ``events_as_at_decision``
  the same search with the events in force in the last period the twin saw, scored on the truth as
  it happened: what could be recovered without foreseeing the event.

``guard_violations`` counts pushed values that break the policy (bounds, step, cells at once),
checked against the emulator's own record of what it received, not against the guard's answers.
The trust gate is off here and the JSON says so: on the emulator the DT-BSM estimate has too
little coverage to certify trust (see docs/fidelity.md), which would refuse every change.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from replay.bench_fidelity import _config
from replay.bench_options import SHIPPED_SCENARIOS, chosen_scenarios
from replay.emulator import NetworkEmulator
from replay.emulator.emulator import period_hour
from twin import Twin
from twin.guard import GuardPolicy
from twin.ledger import State, open_ledger
from twin.optimize import Candidate, ObjectiveSettings, Optimizer, UeSummary, score
from twin.ports import open_adapter
from twin.rollout import ChangeRunner, whatif_scope
from twin.sim.cm import apply_cm_to_sector
from twin.sim.kpis import PRB, THP
from twin.sim.topology import Sector

__all__ = ["SCENARIOS", "bench_optimize_command", "run_optimize"]

SCENARIOS = SHIPPED_SCENARIOS
START = datetime(2024, 3, 1, tzinfo=UTC)
GP = 3600


def _policy(max_cells: int) -> GuardPolicy:
    return GuardPolicy(mode="auto", trust_gate=False, max_cells_per_cluster=max_cells, min_interval_s=0,
                       observe_periods=3, baseline_periods=3)


def truth_state(emu: NetworkEmulator, sectors: tuple[Sector, ...], hour: float, active: list[Any],
                cache: dict[Any, Any]) -> Any:
    """The hidden truth's state of ``sectors`` at ``hour`` with ``active`` events, evaluated once per
    ``cache`` (``PhysicalNetwork.evaluate`` rebuilds its simulator for every new configuration)."""
    key = (sectors, hour, tuple(id(a) for a in active))
    if key not in cache:
        cache[key] = emu.physics.evaluate(sectors, hour, active)
    return cache[key]


def truth_score(emu: NetworkEmulator, objective: ObjectiveSettings, base: tuple[Sector, ...],
                changed: tuple[Sector, ...], hours: list[tuple[float, list[Any]]],
                cache: dict[Any, Any] | None = None) -> tuple[float, float, str]:
    """Over ``hours``, on the hidden truth: (mean objective gain of ``changed`` against ``base`` with
    the constraints ignored, the same with an infeasible hour scoring -inf, why infeasible)."""
    cache = {} if cache is None else cache
    n = len(emu.cells)

    def state(sectors: tuple[Sector, ...], hour: float, active: list[Any]) -> Any:
        return truth_state(emu, sectors, hour, active, cache)

    def summary(st: Any) -> UeSummary:
        ue = st.result.ue
        return UeSummary.of(ue.throughput_bps, ue.connected, ue.rsrp_dbm, objective.coverage_rsrp_dbm,
                            weight=st.weight)

    def power(sectors: tuple[Sector, ...]) -> float:
        return float(sum(10 ** (s.tx_power_dbm / 10.0) for s in sectors))

    raw, gated, why = [], [], ""
    for hour, active in hours:
        a, b = state(base, hour, active), state(changed, hour, active)
        s = score(objective, summary(a), summary(b), a.result.kpi.values[PRB][:n], b.result.kpi.values[PRB][:n],
                  power(base), power(changed))
        gain = (objective.mean_weight * s.mean_pct + (1 - objective.mean_weight) * s.p5_pct
                if objective.kind == "throughput" else -s.power_pct)
        raw.append(gain)
        gated.append(s.gain_pct)
        why = why or s.why
    return float(np.mean(raw)), (float(np.mean(gated)) if all(np.isfinite(gated)) else float("-inf")), why


def _with(emu: NetworkEmulator, base: tuple[Sector, ...], changes: list[Candidate]) -> tuple[Sector, ...]:
    out = list(base)
    for c in changes:
        i = emu.cells.index(c.cell)
        out[i] = apply_cm_to_sector(out[i], {c.attribute: c.to}, strict=True)
    return tuple(out)


def oracle(emu: NetworkEmulator, objective: ObjectiveSettings, base: tuple[Sector, ...], cands: list[Candidate],
           hours: list[tuple[float, list[Any]]], max_cells: int, pool: int,
           draws: list[NetworkEmulator] | None = None) -> tuple[float, list[Candidate], int]:
    """Greedy search on the truth: all singles, then combinations over the best ``pool``.

    ``draws``: search on these emulators' truths instead (other draws of the same scenario), each
    configuration scored by its mean gain over them, infeasible when it breaks a constraint on any
    of them: the best a twin that knows how the truth is drawn, but not this network's draw, could
    choose. The gain returned is then the mean over ``draws``, not ``emu``'s."""
    truths = draws or [emu]
    caches: list[dict[Any, Any]] = [{} for _ in truths]

    def gain(changes: list[Candidate]) -> float:
        return float(np.mean([truth_score(t, objective, base, _with(emu, base, changes), hours, c)[1]
                              for t, c in zip(truths, caches, strict=True)]))

    singles = [(c, gain([c])) for c in cands]
    evals = len(singles)
    ranked = [c for c, g in sorted(singles, key=lambda x: -x[1]) if np.isfinite(g) and g > 0]
    if not ranked:
        return 0.0, [], evals
    chosen, best = [ranked[0]], max(g for _, g in singles)
    while len(chosen) < max_cells:
        trial = [c for c in ranked[:pool] if c.cell not in {x.cell for x in chosen}]
        scored = [(c, gain([*chosen, c])) for c in trial]
        evals += len(scored)
        top = max(scored, key=lambda x: x[1], default=None)
        if top is None or top[1] <= best:
            break
        chosen.append(top[0])
        best = top[1]
    return best, chosen, evals


def _num(x: float) -> float | None:
    """JSON has no infinity: an infeasible result is None (its breach is reported beside it)."""
    return round(x, 3) if np.isfinite(x) else None


def _fraction(gain: float, best: float) -> float | None:
    """``gain`` as a share of the oracle's ``best``: 0 when infeasible, None when the oracle found none."""
    if best <= 0:
        return None
    return round(gain / best, 3) if np.isfinite(gain) else 0.0


def _observe(runner: ChangeRunner, cluster: str, step: Any, report: Any) -> None:
    """One period for the verification: the real DL throughput of every cell (the emulator's PM) and
    the raw twin's prediction of it, per cell and as cluster means."""
    real = {r.cell_key: {THP: float(r.values[THP])} for r in step.pm if THP in r.values}
    pred = [p for p in report.predictions if p.cluster_id == cluster]
    raw = {c: {THP: v[THP]} for c, v in (pred[-1].values if pred else {}).items() if THP in v}
    mean_real = float(np.mean([v[THP] for v in real.values()])) if real else float("nan")
    runner.observe(cluster, step.period_end, {THP: mean_real},
                   {THP: float(np.mean([v[THP] for v in raw.values()]))} if raw else None, real, raw)


def _blind_oracle(emu: NetworkEmulator, objective: ObjectiveSettings, initial: tuple[Sector, ...],
                  cands: list[Candidate], search_hours: list[tuple[float, list[Any]]],
                  eval_hours: list[tuple[float, list[Any]]], max_cells: int, pool: int,
                  others: list[NetworkEmulator], best: float) -> dict[str, Any]:
    """The oracle's search on ``others`` over ``search_hours``, its choice scored on ``emu``'s truth
    over ``eval_hours`` and as a fraction of the oracle's gain ``best``."""
    expected, picked, _ = oracle(emu, objective, initial, cands, search_hours, max_cells, pool, others)
    _, on_truth, why = truth_score(emu, objective, initial, _with(emu, initial, picked), eval_hours)
    return {"draws": len(others), "expected_gain_pct": _num(expected), "gain_pct_on_truth": _num(on_truth),
            "breach": why or None, "changes": [c.label() for c in picked],
            "oracle_fraction": _fraction(on_truth, best)}


def run_scenario(name: str, seed: int, budget: int, max_cells: int, warm_h: int, oracle_pool: int,
                 objective: ObjectiveSettings, tmp: Path, blind_draws: int = 0) -> dict[str, Any]:
    emu = NetworkEmulator(name, seed=seed, start=START, granularity_s=GP, mr_per_cell=1)
    twin = Twin(config=_config(tmp, emu))
    twin.ingest(emu.initial_records())
    adapter = open_adapter("emulator", endpoint=emu.oss)  # replay/ reaches adapters by entry point only
    received: list[Any] = []
    submit = emu.oss.submit

    def recording(req: Any) -> Any:
        result = submit(req)
        if result.state.value == "APPLIED":
            received.append((req, emu.oss.read(req.target_dn)))
        return result

    emu.oss.submit = recording  # type: ignore[method-assign]
    policy = _policy(max_cells)
    runner = ChangeRunner(open_ledger(":memory:"), policy, adapter, scope=whatif_scope(twin))
    cluster = emu.cluster_id
    for _ in range(warm_h):
        step = emu.step_detail()
        report = twin.ingest(step.encoded())
        if step.period_end > START + timedelta(hours=warm_h - policy.baseline_periods):
            _observe(runner, cluster, step, report)
    initial = tuple(emu.public_sector(c) for c in emu.cells)
    opt = Optimizer(twin, policy, objective)
    cands = opt.candidates(cluster)
    result = opt.search(cluster, budget=budget, now=emu.period_end, max_changes=max_cells)
    for p in result.proposals:
        runner.submit(p.request, cluster, emu.period_end)
    hours: list[tuple[float, list[Any]]] = []
    for _ in range(policy.observe_periods):
        step = emu.step_detail()
        mid = (step.period_start - emu.start).total_seconds() / 3600.0 + GP / 7200.0
        hours.append((period_hour(step.period_end, GP), [ev for ev in emu.scenario.events if ev.active(mid)]))
        _observe(runner, cluster, step, twin.ingest(step.encoded()))
    emu.step()  # roll backs decided at the last observed period take effect at the next boundary
    final = tuple(emu.public_sector(c) for c in emu.cells)
    eval_hours = hours[:2]
    real_raw, real, real_why = truth_score(emu, objective, initial, final, eval_hours)
    _, proposed, proposed_why = truth_score(emu, objective, initial,
                                            _with(emu, initial, [p.candidate for p in result.proposals]), eval_hours)
    t0 = time.perf_counter()
    best, chosen, oracle_evals = oracle(emu, objective, initial, cands, eval_hours, max_cells, oracle_pool)
    oracle_s = time.perf_counter() - t0
    blind: dict[str, Any] | None = None
    if blind_draws:
        # the oracle's search on other draws of the hidden truth (same scenario, sites, CM, hours and
        # events; other UE positions, shadowing, building loss, gain and azimuth errors), its
        # configuration then scored on this network's truth
        others = [NetworkEmulator(name, seed=seed + 1 + i, start=START, granularity_s=GP, mr_per_cell=0)
                  for i in range(blind_draws)]
        blind = _blind_oracle(emu, objective, initial, cands, eval_hours, eval_hours, max_cells, oracle_pool,
                              others, best)
        seen = [ev for ev in emu.scenario.events if ev.active(warm_h - GP / 7200.0)]
        if any({id(e) for e in active} != {id(e) for e in seen} for _, active in eval_hours):
            # an event starts (or ends) after the decision: the same search with the events in force
            # in the last period the twin saw, scored on the truth as it happened
            blind["events_as_at_decision"] = _blind_oracle(
                emu, objective, initial, cands, [(h, seen) for h, _ in eval_hours], eval_hours, max_cells,
                oracle_pool, others, best)
    violations = 0
    flying: set[str] = set()
    for req, _after in received:
        if req.change_id not in {p.request.change_id for p in result.proposals}:
            continue  # a roll back restores the value the network had
        rule = policy.rule_for(req.class_, req.attribute)
        if rule is None or not rule.min <= req.to <= rule.max or rule.step(req.from_, req.to) > rule.max_step:
            violations += 1
        flying.add(req.cell_key)
    violations += max(0, len(flying) - policy.max_cells_per_cluster)
    views = runner.ledger.changes()
    states = [v.state.value for v in views]
    return {
        "scenario": name, "cells": len(emu.cells), "candidates": len(cands), "whatifs": result.whatifs,
        "search_s": round(result.seconds, 3), "whatifs_per_s": round(result.whatifs_per_s, 1),
        "predicted_gain_pct": round(result.gain_pct, 3),
        "proposed_gain_pct_on_truth": _num(proposed), "proposed_breach": proposed_why or None,
        "real_gain_pct": _num(real), "real_gain_pct_unconstrained": _num(real_raw),
        "real_constraint_breach": real_why or None, "oracle_gain_pct": _num(best),
        "oracle_fraction": _fraction(real, best),
        "oracle_changes": [c.label() for c in chosen], "oracle_evaluations": oracle_evals,
        "oracle_s": round(oracle_s, 1), "draw_blind_oracle": blind,
        "changes": [{"change": p.candidate.label(), "predicted_pct": round(p.marginal_gain_pct, 3),
                     "state": runner.ledger.get(p.request.change_id).state.value,
                     "reason": runner.ledger.get(p.request.change_id).reason} for p in result.proposals],
        "rollbacks": states.count(State.ROLLED_BACK.value), "confirmed": states.count(State.CONFIRMED.value),
        "guard_rejections": states.count(State.REJECTED.value), "guard_violations": violations,
        "gain_curve": [[n, round(g, 3)] for n, g in result.curve[:: max(1, len(result.curve) // 12)]],
        "eval_hours": [round(h, 2) for h, _ in eval_hours],
    }


def run_optimize(scenarios: tuple[str, ...] = SCENARIOS, seed: int = 1, budget: int = 400, max_cells: int = 3,
                 warm_h: int = 12, oracle_pool: int = 30, objective: ObjectiveSettings | None = None,
                 blind_draws: int = 0) -> dict[str, Any]:
    obj = objective or ObjectiveSettings()
    started = time.perf_counter()
    per = []
    with tempfile.TemporaryDirectory(prefix="bench-optimize-") as tmp:
        for i, name in enumerate(scenarios):
            d = Path(tmp) / str(i)
            d.mkdir()
            per.append(run_scenario(name, seed, budget, max_cells, warm_h, oracle_pool, obj, d, blind_draws))
    fractions = [s["oracle_fraction"] for s in per if s["oracle_fraction"] is not None]
    wi = sum(s["whatifs"] for s in per)
    ws = sum(s["search_s"] for s in per)
    return {
        "benchmark": "optimize", "objective": obj.model_dump(), "seed": seed, "budget_whatifs": budget,
        "max_cells": max_cells, "trust_gate": False,
        "trust_gate_note": "off: the emulator's DT-BSM estimate lacks the coverage to certify trust",
        "oracle_fraction_min": min(fractions) if fractions else None,
        "guard_violations": sum(s["guard_violations"] for s in per),
        "rollbacks": sum(s["rollbacks"] for s in per),
        "whatifs_per_s": round(wi / ws, 1) if ws > 0 else None,
        "target": {"oracle_fraction_min": 0.8, "guard_violations": 0},
        "seconds": round(time.perf_counter() - started, 1),
        "scenarios": per,
    }


def bench_optimize_command(
    scenario: Annotated[list[str] | None, typer.Option(help="shipped scenario (repeat); default: all three")] = None,
    seed: Annotated[int, typer.Option(help="hidden truth of the emulated network")] = 1,
    budget: Annotated[int, typer.Option(min=10, help="what-ifs the optimiser may run per scenario")] = 400,
    max_cells: Annotated[int, typer.Option(min=1, help="cells changed at once (the guard's blast radius)")] = 3,
    warm_h: Annotated[int, typer.Option(min=4, help="hourly periods the twin mirrors before it optimises")] = 12,
    oracle_pool: Annotated[int, typer.Option(min=1, help="best single steps the oracle combines")] = 30,
    objective: Annotated[str, typer.Option(help="throughput or energy")] = "throughput",
    blind_draws: Annotated[int, typer.Option(min=0, help="also run the oracle on this many other draws of the "
                                             "hidden truth and score its choice on this network's (0: not)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Optimise CM on the emulated network through guard, ledger and adapter; compare with an oracle."""
    names = chosen_scenarios(scenario)
    if objective not in ("throughput", "energy"):
        typer.echo(f"error: --objective {objective!r} must be 'throughput' or 'energy'", err=True)
        raise typer.Exit(2)
    doc = run_optimize(names, seed, budget, max_cells, warm_h, oracle_pool, ObjectiveSettings(kind=objective),
                       blind_draws)
    if as_json:
        typer.echo(json.dumps(doc))
        return
    for key in ("oracle_fraction_min", "guard_violations", "rollbacks", "whatifs_per_s", "seconds"):
        typer.echo(f"{key}: {doc[key]}")
    for s in doc["scenarios"]:
        typer.echo(f"{s['scenario']}: real {s['real_gain_pct']} % (unconstrained {s['real_gain_pct_unconstrained']} %)"
                   f", oracle {s['oracle_gain_pct']} %, fraction {s['oracle_fraction']}")
