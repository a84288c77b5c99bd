"""``twin bench fidelity``: does the twin notice when the network changes, and does it recover?

For each shipped scenario (its own scheduled events removed, its hidden truth kept) and each kind
of drift, one run of the emulated network with that drift injected on one cell at a known time,
after two days and a quarter of learning (the drift detectors are armed after the first day). The
twin is the runtime's own path in memory (``twin.Twin.ingest``: validation, mirror, prediction, gap
learners, divergence gate, resync).
On the same streams:

- **detection**: the periods from the drift's start to the first divergence episode on a cell the
  drift affected (0: its first period), misses (nothing within 8 periods), and false alarms: any
  episode before the drift, or after it on a cell it left alone, per 1,000 cell-periods of those
  drift-free stretches. Which cells a drift affects comes from the emulator's hidden truth: its
  noiseless KPIs in the drift's first period with and without the drift (a change above 10 % of
  throughput, PRB load or connected UEs: affected; below 2 %: left alone; between: neither);
- the same figures for three **baselines** fed the same streams and the same trigger gate:
  river ADWIN on each cell's raw ``DRB.UEThpDl``, a fixed-schedule resync every 96 periods, and a
  deviation score (the raw twin's rolling relative error above a threshold); and for the runtime's
  **DT-BSM trigger** alone (``dtbsm_trigger``: its firing records, ``twin.prediction.fidelity``;
  the runtime's own row has it among its sources);
- **accuracy** on the drift-free stretch after a day of learning: 1 - mean relative error of
  ``DRB.UEThpDl`` and ``RRU.PrbTotDl``, raw twin and calibrated, and the measurement-noise floor
  (the emulator's noiseless values against its own noisy reports);
- **resync**: per resync its status, error before and after, and the fitted change against the
  injected one.

Prints one JSON object; everything runs in one process, one run after the other.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from river import drift, stats

from replay.bench_options import chosen_scenarios
from replay.emulator import NetworkEmulator, load_scenario, period_hour
from replay.emulator.scenario import Event
from twin import Twin
from twin.config import TwinSettings
from twin.fidelity.stream import signal_cells
from twin.gap import kpi_error
from twin.gap.target import RATIO_KPIS
from twin.prediction import calibrated_name
from twin.resync.trigger import Signal, TriggerGate
from twin.sim.kpis import CONN, PRB, THP
from twin.sim.simulator import SimResult

__all__ = ["DRIFTS", "bench_fidelity_command", "run_fidelity"]

START = datetime(2026, 11, 2, tzinfo=UTC)
GP = 900
DRIFT_AT_H = 54.0  # two days and a quarter of learning first: 06:00 of day three
AFTER_PERIODS = 24
WINDOW = 8  # a detection later than this many periods is a miss
#: located UE reports per cell and period (the emulator's default; a live cell sends far more): the
#: resync's per-place radio evidence (``twin.mirror.radio_map``) needs a few per place and period
MR_PER_CELL = 10
ACCURACY_KPIS = (THP, PRB)


def _site_xy(emu: NetworkEmulator, cell: str, dx: float = 0.0) -> dict[str, float]:
    s = emu.public_sector(cell)
    return {"x_m": float(s.x_m) + dx, "y_m": float(s.y_m)}


DRIFTS: dict[str, Callable[[NetworkEmulator, str, int], dict[str, Any]]] = {
    "antenna_fault": lambda emu, cell, i: {"kind": "antenna_fault", "cell": i, "gain_drop_db": 15.0},
    "gain_drift": lambda emu, cell, i: {"kind": "antenna_fault", "cell": i, "gain_drop_db": 4.0},
    "azimuth_change": lambda emu, cell, i: {"kind": "azimuth_shift", "cell": i, "deg": 40.0},
    "traffic_surge": lambda emu, cell, i: {"kind": "traffic_surge", **_site_xy(emu, cell), "radius_m": 200.0,
                                           "factor": 3.0},
    "interferer": lambda emu, cell, i: {"kind": "interference", **_site_xy(emu, cell, 150.0), "power_dbm": 30.0,
                                        "height_m": 10.0},
}


def _injected(kind: str, cell: str, params: dict[str, Any], cells: list[str], drifted: SimResult,
              plain: SimResult) -> dict[str, dict[str, float]]:
    """The drift in the terms of the resync's calibration (``twin.resync.calibration``), per cell,
    from the emulator's noiseless first period with and without it: the gain or azimuth change of
    the drifted cell; for a surge, each cell's connected UEs with over without (its traffic scale,
    cells above 1.05); for an interferer, the mean rise (dB) of the SS interference plus noise at the
    UEs each cell serves in both (its interference margin, cells above 0.3 dB; the UEs it cuts off
    are not in it)."""
    if kind in ("antenna_fault", "gain_drift"):
        return {cell: {"gainDb": -float(params["gain_drop_db"])}}
    if kind == "azimuth_change":
        return {cell: {"azimuthDeg": float(params["deg"])}}
    out: dict[str, dict[str, float]] = {}
    for i, c in enumerate(cells):
        if kind == "traffic_surge":
            a, b = float(drifted.kpi.values[CONN][i]), float(plain.kpi.values[CONN][i])
            if b > 0 and a / b > 1.05:
                out[c] = {"trafficScale": round(a / b, 3)}
        elif kind == "interferer":
            both = (drifted.ue.serving == i) & drifted.ue.connected & (plain.ue.serving == i) & plain.ue.connected
            if both.any():
                rise = float(np.mean(plain.ue.ss_sinr_db[both] - drifted.ue.ss_sinr_db[both]))
                if rise > 0.3:
                    out[c] = {"interferenceDb": round(rise, 2)}
    return out


@dataclass
class _Run:
    cells: list[str]
    ends: list[int]
    drift_end: int  # period end of the drift's first period
    affected: set[str]
    untouched: set[str]
    injected: dict[str, dict[str, float]]  # the drift in the calibration's terms, per cell (``_injected``)
    raised: list[tuple[str, int]]  # (cell, period end) of every divergence episode raised
    raw: dict[str, dict[int, dict[str, float]]]  # cell -> end -> KPI -> raw prediction
    cal: dict[str, dict[int, dict[str, float]]]
    real: dict[str, dict[int, dict[str, float]]]
    truth: dict[str, dict[int, dict[str, float]]]  # the emulator's noiseless values
    resyncs: list[dict[str, Any]]
    fidelity: list[dict[str, Any]]  # the cluster's DT-BSM records (``twin.prediction.fidelity``)


def _config(tmp: Path, emu: NetworkEmulator) -> TwinSettings:
    m = emu.public_model()
    return TwinSettings.model_validate({
        "state_dir": tmp, "topology": emu.topology_config(),
        "predict": {k: m[k] for k in ("scenario", "n_ues", "demand_bps", "indoor_fraction", "seed")},
        "ingest": {"max_future_skew_s": 1e12},
    })


def _run(scenario_name: str, drift_kind: str, seed: int, tmp: Path, mr_per_cell: int = MR_PER_CELL) -> _Run:
    base = load_scenario(scenario_name)
    probe = NetworkEmulator(replace(base, events=()), seed=seed, start=START, granularity_s=GP, mr_per_cell=1)
    index = min(4, len(probe.cells) - 1)
    cell = probe.cells[index]
    params = DRIFTS[drift_kind](probe, cell, index)
    kind = params.pop("kind")
    event = Event(kind, DRIFT_AT_H, None, drift_kind, params)
    emu = NetworkEmulator(replace(base, events=(event,)), seed=seed, start=START, granularity_s=GP,
                          mr_per_cell=mr_per_cell)
    twin = Twin(config=_config(tmp, emu))
    twin.ingest(emu.initial_records())
    periods = round(DRIFT_AT_H * 3600 / GP) + AFTER_PERIODS
    drift_end = round(START.timestamp()) + round(DRIFT_AT_H * 3600) + GP
    raised: list[tuple[str, int]] = []
    truth: dict[str, dict[int, dict[str, float]]] = {c: {} for c in emu.cells}
    affected: set[str] = set()
    untouched: set[str] = set(emu.cells)
    injected: dict[str, dict[str, float]] = {}
    ends = []
    for _ in range(periods):
        step = emu.step_detail()
        end = round(step.period_end.timestamp())
        ends.append(end)
        assert step.state is not None
        kpi = step.state.result.kpi.values
        for i, c in enumerate(emu.cells):
            truth[c][end] = {k: float(kpi[k][i]) for k in RATIO_KPIS}
        if end == drift_end:  # the counterfactual: the same period without the drift
            public = tuple(emu.public_sector(c) for c in emu.cells)
            plain = emu.physics.evaluate(public, period_hour(step.period_end, GP), []).result
            without = plain.kpi.values
            injected = _injected(drift_kind, cell, params, emu.cells, step.state.result, plain)
            affected, untouched = set(), set()
            for i, c in enumerate(emu.cells):
                change = max(abs(float(kpi[k][i]) - float(without[k][i])) / max(abs(float(without[k][i])), 1e-9)
                             for k in RATIO_KPIS)
                if change > 0.10:
                    affected.add(c)
                elif change < 0.02:
                    untouched.add(c)
        report = twin.ingest(step.encoded())
        for p in report.predictions:
            raised += [(e.scope, e.period_end) for e in p.events if e.kind == "raised"]
    mirror = twin.mirror(emu.cluster_id)
    raw: dict[str, dict[int, dict[str, float]]] = {}
    cal: dict[str, dict[int, dict[str, float]]] = {}
    real: dict[str, dict[int, dict[str, float]]] = {}
    for c, m in mirror.cells.items():
        pred = m.predicted.get(GP, {})
        raw[c] = {e: {k: pred[k][e] for k in RATIO_KPIS if e in pred.get(k, {})} for e in ends}
        cal[c] = {e: {k: pred[calibrated_name(k)][e] for k in RATIO_KPIS
                      if e in pred.get(calibrated_name(k), {})} for e in ends}
        real[c] = {e: {k: m.pm[GP][k][e] for k in RATIO_KPIS if e in m.pm.get(GP, {}).get(k, {})}
                   for e in ends}
    return _Run(list(emu.cells), ends, drift_end, affected, untouched, injected, raised, raw, cal, real, truth,
                [dict(r) for r in mirror.resyncs], [dict(r) for r in mirror.fidelity])


# -- detection -------------------------------------------------------------------------------------
def _detection(run: _Run, raised: list[tuple[str, int]]) -> dict[str, Any]:
    hits = sorted(e for c, e in raised if c in run.affected and e >= run.drift_end)
    delay = (hits[0] - run.drift_end) // GP if hits and hits[0] - run.drift_end < WINDOW * GP else None
    false = [(c, e) for c, e in raised if e < run.drift_end or (e >= run.drift_end and c in run.untouched)]
    before = sum(1 for e in run.ends if e < run.drift_end) * len(run.cells)
    after = sum(1 for e in run.ends if e >= run.drift_end) * len(run.untouched)
    return {"delay": delay, "false": len(false), "cell_periods": before + after}


def _baseline_adwin(run: _Run) -> list[tuple[str, int]]:
    gate = TriggerGate()
    detectors = {c: drift.ADWIN(delta=0.002) for c in run.cells}
    raised = []
    for e in run.ends:
        signals = []
        for c in run.cells:
            v = run.real.get(c, {}).get(e, {}).get(THP)
            if v is None:
                continue
            detectors[c].update(v)
            signals.append(Signal("adwin", c, e, bool(detectors[c].drift_detected)))
        raised += [(ev.scope, ev.period_end) for ev in gate.offer(signals) if ev.kind == "raised"]
    return raised


def _baseline_schedule(run: _Run, every: int = 96) -> list[tuple[str, int]]:
    """A resync of the whole cluster every ``every`` periods: each is an episode on every cell."""
    return [(c, e) for i, e in enumerate(run.ends) if (i + 1) % every == 0 for c in run.cells]


def _baseline_deviation(run: _Run, threshold: float = 0.5) -> list[tuple[str, int]]:
    """The raw twin's rolling relative error (EW mean over THP, PRB, CONN, alpha 0.5) above a threshold."""
    gate = TriggerGate()
    score = {c: stats.EWMean(0.5) for c in run.cells}
    raised = []
    for i, e in enumerate(run.ends):
        signals = []
        for c in run.cells:
            raw, real = run.raw.get(c, {}).get(e, {}), run.real.get(c, {}).get(e, {})
            errs = [kpi_error(k, raw[k], real[k]) for k in raw if k in real]
            if not errs:
                continue
            score[c].update(sum(errs) / len(errs))
            signals.append(Signal("deviation", c, e, i >= 8 and score[c].get() > threshold))
        raised += [(ev.scope, ev.period_end) for ev in gate.offer(signals) if ev.kind == "raised"]
    return raised


def _baseline_dtbsm(run: _Run) -> list[tuple[str, int]]:
    """The runtime's DT-BSM trigger alone: a record that fires (its lower bound above its τ for the
    configured number of computations) signals the cells whose contribution is above τ, else the
    worst one (``twin.fidelity.stream.signal_cells``), through the same gate as the others."""
    gate = TriggerGate()
    raised = []
    for record in run.fidelity:
        over = set(signal_cells(record, float(record["tau"])))
        end = int(record["periodEnd"])
        signals = [Signal("dtbsm", c, end, bool(record.get("firing")) and c in over) for c in run.cells]
        raised += [(ev.scope, ev.period_end) for ev in gate.offer(signals) if ev.kind == "raised"]
    return raised


def _summarise(detections: list[dict[str, Any]]) -> dict[str, Any]:
    delays = [d["delay"] for d in detections if d["delay"] is not None]
    cell_periods = sum(d["cell_periods"] for d in detections)
    return {
        "delay_median": float(np.median(delays)) if delays else None,
        "delay_p90": float(np.percentile(delays, 90)) if delays else None,
        "false_alarms_per_1000": round(1000 * sum(d["false"] for d in detections) / max(cell_periods, 1), 3),
        "missed": sum(d["delay"] is None for d in detections),
    }


# -- accuracy ----------------------------------------------------------------------------------------
def _accuracy(runs: list[_Run]) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """1 - mean relative error on the drift-free stretch after a day of learning, per KPI."""
    sums: dict[str, list[float]] = {k: [0.0, 0.0, 0.0, 0.0] for k in ACCURACY_KPIS}
    for run in runs:
        stretch = [e for e in run.ends if run.ends[0] + 86_400 <= e < run.drift_end]
        for c in run.cells:
            for e in stretch:
                real, raw, cal, truth = (run.real[c].get(e, {}), run.raw[c].get(e, {}), run.cal[c].get(e, {}),
                                         run.truth[c].get(e, {}))
                for k in ACCURACY_KPIS:
                    if k in real and k in raw and k in cal and k in truth:
                        s = sums[k]
                        s[0] += 1
                        s[1] += kpi_error(k, raw[k], real[k])
                        s[2] += kpi_error(k, cal[k], real[k])
                        s[3] += kpi_error(k, truth[k], real[k])
    def acc(i: int) -> dict[str, float]:
        return {k: round(1.0 - s[i] / s[0], 4) for k, s in sums.items() if s[0]}
    return acc(1), acc(2), acc(3)


def run_fidelity(seed: int = 4, scenarios: list[str] | None = None, drifts: list[str] | None = None,
                 mr_per_cell: int = MR_PER_CELL) -> dict[str, Any]:
    import tempfile

    from replay.emulator import list_scenarios

    t0 = time.perf_counter()
    runs: list[_Run] = []
    detail: list[dict[str, Any]] = []
    own: list[dict[str, Any]] = []
    base: dict[str, list[dict[str, Any]]] = {"adwin_raw_kpi": [], "fixed_schedule": [], "deviation_score": [],
                                             "dtbsm_trigger": []}
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in scenarios or list_scenarios():
            for kind in drifts or list(DRIFTS):
                run = _run(scenario, kind, seed, Path(tmp) / f"{scenario}-{kind}", mr_per_cell)
                runs.append(run)
                d = _detection(run, run.raised)
                own.append(d)
                base["adwin_raw_kpi"].append(_detection(run, _baseline_adwin(run)))
                base["fixed_schedule"].append(_detection(run, _baseline_schedule(run)))
                base["deviation_score"].append(_detection(run, _baseline_deviation(run)))
                base["dtbsm_trigger"].append(_detection(run, _baseline_dtbsm(run)))
                detail.append({"scenario": scenario, "drift": kind, "affected": sorted(run.affected),
                               "injected": run.injected,
                               "delay": d["delay"], "false_alarms": d["false"],
                               "resyncs": [{k: r.get(k) for k in ("status", "cells", "change", "errorBefore",
                                                                  "errorAfter", "fitSeconds", "reason")}
                                           for r in run.resyncs]})
    raw, cal, floor = _accuracy(runs)
    return {"benchmark": "fidelity", "seed": seed, "granularity_s": GP, "drift_at_h": DRIFT_AT_H,
            "mr_per_cell": mr_per_cell,
            "after_periods": AFTER_PERIODS, **_summarise(own), "accuracy_raw": raw, "accuracy_calibrated": cal,
            "noise_floor_accuracy": floor, "baselines": {k: _summarise(v) for k, v in base.items()},
            "runs": detail, "seconds": round(time.perf_counter() - t0, 1)}


def bench_fidelity_command(
    seed: Annotated[int, typer.Option(help="the emulator's hidden-truth seed")] = 4,
    scenario: Annotated[list[str] | None, typer.Option(help="shipped scenario (repeatable; default all)")] = None,
    drift_kind: Annotated[list[str] | None, typer.Option("--drift", help=f"drift (repeatable; default all: "
                                                                          f"{', '.join(DRIFTS)})")] = None,
    mr_per_cell: Annotated[int, typer.Option(min=0, help="located UE reports per cell and period (0: none, the "
                                                         "resync fits on PM and MR aggregates alone)")] = MR_PER_CELL,
    json_out: Annotated[bool, typer.Option("--json/--no-json", help="print one JSON object (--no-json: indented "
                                                                   "for a person)")] = True,
) -> None:
    """Drift detection, calibrated accuracy and resyncs on the emulated network, against baselines."""
    names = list(chosen_scenarios(scenario)) if scenario else None  # an unknown one: exit code 2
    for d in drift_kind or []:
        if d not in DRIFTS:
            raise typer.BadParameter(f"--drift {d!r} is not one of {', '.join(DRIFTS)}")
    result = run_fidelity(seed, names, drift_kind, mr_per_cell)
    typer.echo(json.dumps(result) if json_out else json.dumps(result, indent=2))


