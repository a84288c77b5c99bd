"""``twin bench gap-models``: how the gap learners and the drift detector were chosen.

For each shipped scenario the emulated network runs a few days; its CM and PM go through the
twin's ingest into a mirror and the twin predicts every period (``twin.prediction``), giving per
cell and period the raw prediction and what the network reported. On those same streams:

- **models**: candidate residual learners, prequential (calibrate, then learn), the mean relative
  error of the calibrated prediction per KPI, and separately on the faulty cell of fault-midrun
  after its antenna fault;
- **detectors**: the runtime's gap tracker (``twin.gap.GapTracker``) with river's Page-Hinkley,
  ADWIN or KSWIN on each KPI's standardised miss (the joint test beside them), armed after 10 hours
  here (fault-midrun's fault comes at noon of day one): the fault's detection delay (periods after
  its start) and the alarms per 1,000 cell-periods elsewhere.

Prints one JSON object. Everything runs in one process, one scenario after the other.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from river import drift, forest, linear_model, optim, preprocessing, stats, tree

from replay.bench_options import chosen_scenarios
from replay.emulator import NetworkEmulator, list_scenarios
from twin import topics
from twin.config import GapSettings, IngestSettings
from twin.gap import GAP_KPIS, GapTracker, calibrate, context, kpi_error, residual
from twin.gap.learner import ResidualLearner
from twin.gap.tracker import page_hinkley
from twin.ingest import IngestDecoder, Rejection
from twin.mirror.cluster import ClusterMirror
from twin.prediction import ClusterPredictor, PredictConfig, real_values, simulated_cm

__all__ = ["Period", "bench_gap_models_command", "collect", "run_gap_models"]

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday; event time well in the past
GP = 900


@dataclass(frozen=True)
class Period:
    """One period of a cluster: raw predictions and reported values per cell, and the context."""

    end: int
    raw: dict[str, dict[str, float]]
    real: dict[str, dict[str, float]]
    context: dict[str, dict[str, float]]


def collect(scenario: str, days: float, seed: int = 4) -> tuple[list[Period], list[str]]:
    """The twin's raw predictions and the network's values of ``days`` of ``scenario``."""
    emu = NetworkEmulator(scenario, seed=seed, start=START, granularity_s=GP, mr_per_cell=1)
    m = emu.public_model()
    decoder = IngestDecoder(IngestSettings(max_future_skew_s=1e12))
    mirror = ClusterMirror(m["cluster_id"])
    predictor = ClusterPredictor(PredictConfig(scenario=m["scenario"], n_ues=m["n_ues"], demand_bps=m["demand_bps"],
                                               indoor_fraction=m["indoor_fraction"], seed=m["seed"]))

    def apply(records: Any) -> None:
        for r in records:
            if r.topic in (topics.PM_CELL, topics.CM_SNAPSHOT, topics.CM_NOTIFICATIONS):
                out = decoder.decode(r.topic, r.key, r.value)
                if isinstance(out, Rejection):
                    raise RuntimeError(f"the emulator published a record the twin rejects: {out.reason}")
                mirror.apply(out)

    apply(emu.initial_records())
    periods = []
    for _ in range(round(days * 86_400 / GP)):
        apply(emu.step())
        end = round(emu.period_end.timestamp())
        p = predictor.predict(mirror, GP, end)
        if p is None:
            continue
        cm = simulated_cm(mirror, as_of=end)
        periods.append(Period(end, p.values, real_values(mirror, GP, end),
                              {c: context(end, p.ue_scale, cm.get(c, {})) for c in p.values}))
    return periods, list(emu.cells)


# -- residual models -----------------------------------------------------------------------------
class _EwMean:
    """One exponentially weighted mean of the residual (no features)."""

    def __init__(self, alpha: float = 0.2) -> None:
        self.mean = stats.EWMean(alpha)

    def predict_one(self, x: dict[str, float]) -> float:
        return float(self.mean.get())

    def learn_one(self, x: dict[str, float], y: float) -> None:
        self.mean.update(y)


class _HourMean:
    """An exponentially weighted mean of the residual per hour of day (the hour from its features)."""

    def __init__(self) -> None:
        self.by_hour: dict[int, stats.EWMean] = {}
        self.all = stats.EWMean(0.2)

    @staticmethod
    def _hour(x: dict[str, float]) -> int:
        return round(math.atan2(x["hour_sin"], x["hour_cos"]) * 24 / (2 * math.pi)) % 24

    def predict_one(self, x: dict[str, float]) -> float:
        m = self.by_hour.get(self._hour(x))
        return float(m.get() if m is not None else self.all.get())

    def learn_one(self, x: dict[str, float], y: float) -> None:
        self.by_hour.setdefault(self._hour(x), stats.EWMean(0.3)).update(y)
        self.all.update(y)


class _Runtime:
    """The runtime's learner (``twin.gap.learner.ResidualLearner``): the linear model or the daily
    profile of the residual, whichever missed less lately."""

    def __init__(self) -> None:
        self.learner = ResidualLearner(GapSettings())
        self.period_end = 0

    def predict_one(self, x: dict[str, float]) -> float:
        return self.learner.predict(x, self.period_end)

    def learn_one(self, x: dict[str, float], y: float) -> None:
        self.learner.learn(x, self.period_end, y, *self.learner.parts(x, self.period_end))


def _linear() -> Any:
    return preprocessing.StandardScaler() | linear_model.LinearRegression(optimizer=optim.SGD(0.01), intercept_lr=0.1)


MODELS: dict[str, tuple[Callable[[], Any], bool]] = {  # name -> (factory, learns the log-ratio (else absolute))
    "runtime_logratio": (_Runtime, True),
    "linear_logratio": (_linear, True),
    "linear_absolute": (_linear, False),
    "hour_mean_logratio": (_HourMean, True),
    "ew_mean_logratio": (_EwMean, True),
    "amf_absolute": (lambda: forest.AMFRegressor(n_estimators=5, seed=1), False),
    "hoeffding_absolute": (lambda: preprocessing.StandardScaler() | tree.HoeffdingAdaptiveTreeRegressor(
        grace_period=50, seed=1), False),
}


def _evaluate_model(periods: list[Period], factory: Callable[[], Any], logratio: bool, faulty: str | None,
                    fault_end: int | None) -> dict[str, Any]:
    models: dict[tuple[str, str], Any] = {}
    sums: dict[tuple[str, bool], list[float]] = {}
    t0 = time.perf_counter()
    updates = 0
    for p in periods:
        for cell, raw in p.raw.items():
            real = p.real.get(cell, {})
            for kpi in GAP_KPIS:
                value, actual = raw.get(kpi), real.get(kpi)
                if value is None or actual is None:
                    continue
                model = models.get((cell, kpi)) or models.setdefault((cell, kpi), factory())
                if isinstance(model, _Runtime):
                    model.period_end = p.end
                x = {**p.context[cell], "raw": value}
                learned = model.predict_one(x) or 0.0
                cal = calibrate(kpi, value, learned) if logratio else value + learned
                after = cell == faulty and fault_end is not None and p.end > fault_end
                s = sums.setdefault((kpi, after), [0.0, 0.0, 0.0])
                s[0] += 1
                s[1] += kpi_error(kpi, value, actual)
                s[2] += kpi_error(kpi, cal, actual)
                model.learn_one(x, residual(kpi, value, actual) if logratio else actual - value)
                updates += 1
    seconds = time.perf_counter() - t0
    out: dict[str, Any] = {"us_per_update": round(seconds / max(updates, 1) * 1e6, 1)}
    for (kpi, after), (n, raw_err, cal_err) in sorted(sums.items()):
        out[f"{kpi}{' faulty cell after the fault' if after else ''}"] = {"raw": round(raw_err / n, 4),
                                                                         "calibrated": round(cal_err / n, 4)}
    return out


# -- detectors -----------------------------------------------------------------------------------
DETECTORS: dict[str, Callable[[GapSettings], Any]] = {
    "page_hinkley": page_hinkley,
    "adwin": lambda s: drift.ADWIN(delta=0.002, grace_period=8),
    "kswin": lambda s: drift.KSWIN(alpha=0.0001, window_size=48, stat_size=16, seed=1),
}


def _evaluate_detector(periods: list[Period], name: str, faulty: str | None, fault_end: int | None,
                       error_bound: bool) -> dict[str, Any]:
    # fault-midrun's fault comes at noon of day one: the detectors are armed after 10 hours (default a day)
    settings = GapSettings(drift_warmup_periods=40) if error_bound else GapSettings(error_bound=1e9,
                                                                                      drift_warmup_periods=40)
    tracker = GapTracker(settings, DETECTORS[name])
    alarms, cell_periods, delay = 0, 0, None
    for p in periods:
        step = tracker.observe(p.end, p.raw, p.real, p.context)
        cell_periods += len(p.raw)
        for e in step.events:
            if e.kind != "raised":
                continue
            if faulty is not None and fault_end is not None and e.scope == faulty and e.period_end > fault_end:
                if delay is None:
                    delay = (e.period_end - fault_end) // GP - 1
            else:
                alarms += 1
    return {"fault_delay_periods": delay, "other_alarms_per_1000": round(1000 * alarms / max(cell_periods, 1), 2),
            "other_alarms": alarms}


def run_gap_models(days: float = 3.0, scenarios: list[str] | None = None, seed: int = 4,
                   models: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"benchmark": "gap-models", "days": days, "granularity_s": GP, "seed": seed,
                           "metric": "mean relative error (twin.gap.kpi_error), prequential", "scenarios": {}}
    for name in scenarios or list_scenarios():
        periods, cells = collect(name, days, seed)
        faulty = cells[4] if name == "fault-midrun" else None  # its scenario: cell 4 loses 15 dB at 12:00
        fault_end = round(START.timestamp()) + 12 * 3600 if faulty else None
        result: dict[str, Any] = {"cell_periods": sum(len(p.raw) for p in periods), "models": {}, "detectors": {}}
        for model in models or list(MODELS):
            factory, logratio = MODELS[model]
            result["models"][model] = _evaluate_model(periods, factory, logratio, faulty, fault_end)
        for det in DETECTORS:
            result["detectors"][det] = _evaluate_detector(periods, det, faulty, fault_end, error_bound=False)
        result["detectors"]["runtime (page_hinkley + error bound)"] = _evaluate_detector(
            periods, "page_hinkley", faulty, fault_end, error_bound=True)
        out["scenarios"][name] = result
    return out


def bench_gap_models_command(
    days: Annotated[float, typer.Option(min=0.5, help="emulated days per scenario")] = 3.0,
    scenario: Annotated[list[str] | None, typer.Option(help="shipped scenario (repeatable; default all)")] = None,
    model: Annotated[list[str] | None, typer.Option(help=f"residual model (repeatable; default all: "
                                                         f"{', '.join(MODELS)})")] = None,
    seed: Annotated[int, typer.Option(help="the emulator's hidden-truth seed")] = 4,
    json_out: Annotated[bool, typer.Option("--json/--no-json", help="print one JSON object (--no-json: indented "
                                                                   "for a person)")] = True,
) -> None:
    """The gap learners' model and drift detector, compared on the emulated network's streams."""
    names = list(chosen_scenarios(scenario)) if scenario else None  # an unknown one: exit code 2
    for m in model or []:
        if m not in MODELS:
            raise typer.BadParameter(f"--model {m!r} is not one of {', '.join(MODELS)}")
    result = run_gap_models(days, names, seed, model)
    typer.echo(json.dumps(result) if json_out else json.dumps(result, indent=2))


