"""The gap of one cluster: per cell and KPI a residual learner and rolling error figures, per cell a
drift detector, and the cluster's trigger gate.

Each predicted period goes through :meth:`GapTracker.observe` once, **prequentially**: the
calibrated prediction of a period is made from what was learned before it, then its real values
are learned. So the published calibrated prediction is an honest forecast, and replaying the same
periods from the same state gives the same numbers (the state is checkpointed with the mirror:
``to_bytes`` / ``from_bytes``).

Models, chosen by measurement (``docs/gap.md``):

- **residual**: per cell and KPI, a ``twin.gap.learner.ResidualLearner``: river's
  ``StandardScaler | LinearRegression`` (SGD) on the context features (``twin.gap.features``) and a
  daily profile of the residual, the one that missed less lately published; both learn the
  log-ratio residual (``twin.gap.target``). On three emulated days of each shipped scenario the
  linear model was the best or near-best feature model of a per-hour running mean, an exponentially
  weighted mean, an AMF forest and a Hoeffding adaptive tree, and 20-30x cheaper than the last two;
  the profile took the calibrated throughput accuracy from 0.944 to 0.974 from the second day;
- **rolling errors**: exponentially weighted means (river ``stats.EWMean``) of the absolute
  relative error and of the signed error, raw and calibrated: constant memory per cell and KPI;
- **drift**: per cell and KPI, river's two-sided Page-Hinkley test on the KPI's *standardised*
  calibrated residual (the learner's miss, less the cell's usual miss, over its usual spread: EW
  mean and variance, clipped at 3 spreads so that one fault does not teach it that faults are
  usual). The learners absorb the twin's usual error, daily patterns included, so a miss far from
  the usual is what the network does and the twin does not know of. Each KPI is watched on its own
  scale because the drifts differ in where they show: a gain drift of 4 dB or an interferer moves
  the cell's mean SS-RSRP and SS-SINR by 10-30 of their usual spreads while its throughput, load
  and connected UEs move by 1-3 (``docs/gap.md``). A second Page-Hinkley test watches the root mean
  square of the cell's standardised misses, for a drift that moves several KPIs by a few spreads
  each and none far enough alone (an interferer's). A new cell's detector is armed once its
  learners and its usual spread have seen a day (``drift_warmup_periods``): before that, every
  hour is new to them (moving hotspots raised most false alarms of ``twin bench fidelity``). After
  a resync's reset the learners relearn for ``drift_min_periods`` and the detector watches again
  with the spreads it knew. ADWIN and KSWIN were measured beside it (``docs/gap.md``).
"""

from __future__ import annotations

import math
import pickle
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from river import drift, stats

from twin.config import GapSettings
from twin.gap.error import kpi_error
from twin.gap.learner import ResidualLearner, residual_model
from twin.gap.target import GAP_KPIS, RATIO_KPIS, RSRP_MEAN, SINR_MEAN, calibrate, residual
from twin.resync.trigger import Signal, TriggerEvent, TriggerGate
from twin.sim.kpis import CONN, PRB, THP

__all__ = ["FORMAT", "REBASE_SETTLE_PERIODS", "CellGap", "GapStep", "GapTracker", "KpiErrors", "KpiSurprise",
           "joint_page_hinkley", "page_hinkley", "residual_model"]

FORMAT = 4  # of ``to_bytes``; another value is not read (the learners start afresh)
#: the least spread of a KPI's miss (log-ratio, or dB for the radio levels): a cell whose twin is
#: nearly exact would otherwise call every rounding a drift
_MIN_SPREAD = {THP: 0.02, PRB: 0.02, CONN: 0.02, RSRP_MEAN: 0.05, SINR_MEAN: 0.05}
_CLIP_SPREADS = 3.0
_USUAL_ALPHA = 0.05
#: periods a re-based cell's learners settle before its misses are watched again
REBASE_SETTLE_PERIODS = 4
_BOUND_KPIS = (THP, PRB)


def page_hinkley(settings: GapSettings) -> drift.PageHinkley:
    """The runtime's drift detector of one cell's KPI: two-sided, on its standardised miss."""
    return drift.PageHinkley(min_instances=1, delta=settings.drift_delta, threshold=settings.drift_threshold,
                             mode="both")


def joint_page_hinkley(settings: GapSettings) -> drift.PageHinkley:
    """The drift detector of a cell's KPIs together: upward, on the root mean square of their
    standardised misses (a drift that moves several KPIs by a few spreads each, as an interferer
    does, and none of them far enough alone)."""
    return drift.PageHinkley(min_instances=1, delta=settings.drift_joint_delta,
                             threshold=settings.drift_joint_threshold, mode="up")


@dataclass
class KpiErrors:
    """Rolling error figures of one cell and KPI, raw twin and calibrated."""

    alpha: float
    ape_raw: stats.EWMean = field(init=False)
    ape_calibrated: stats.EWMean = field(init=False)
    bias_raw: stats.EWMean = field(init=False)
    bias_calibrated: stats.EWMean = field(init=False)
    n: int = 0

    def __post_init__(self) -> None:
        self.ape_raw, self.ape_calibrated = stats.EWMean(self.alpha), stats.EWMean(self.alpha)
        self.bias_raw, self.bias_calibrated = stats.EWMean(self.alpha), stats.EWMean(self.alpha)

    def update(self, kpi: str, raw: float, calibrated: float, real: float) -> None:
        self.ape_raw.update(kpi_error(kpi, raw, real))
        self.ape_calibrated.update(kpi_error(kpi, calibrated, real))
        self.bias_raw.update(raw - real)
        self.bias_calibrated.update(calibrated - real)
        self.n += 1

    def figures(self) -> dict[str, float]:
        """``mapeRaw``, ``mapeCalibrated`` (fractions), ``biasRaw``, ``biasCalibrated`` (KPI units,
        predicted minus real), ``n`` (periods learned)."""
        return {"mapeRaw": self.ape_raw.get(), "mapeCalibrated": self.ape_calibrated.get(),
                "biasRaw": self.bias_raw.get(), "biasCalibrated": self.bias_calibrated.get(), "n": float(self.n)}


@dataclass
class KpiSurprise:
    """How unusual a cell's miss of one KPI is: its usual level and spread (EW, alpha 0.05) and the
    drift detector fed the standardised miss."""

    detector: Any
    usual: stats.EWMean = field(default_factory=lambda: stats.EWMean(_USUAL_ALPHA))
    spread: stats.EWVar = field(default_factory=lambda: stats.EWVar(_USUAL_ALPHA))
    n: int = 0

    def standardise(self, kpi: str, miss: float) -> float | None:
        """``(miss - usual) / spread``, then learn ``miss`` clipped at 3 spreads; ``None`` for the
        first value (nothing usual yet)."""
        self.n += 1
        if self.n == 1:
            self.usual.update(miss)
            self.spread.update(miss)
            return None
        mean = self.usual.get()
        std = max(math.sqrt(max(self.spread.get(), 0.0)), _MIN_SPREAD[kpi])
        clipped = min(max(miss, mean - _CLIP_SPREADS * std), mean + _CLIP_SPREADS * std)
        self.usual.update(clipped)
        self.spread.update(clipped)
        return (miss - mean) / std


@dataclass
class CellGap:
    """Learners, error figures and drift detectors of one cell."""

    models: dict[str, ResidualLearner]
    errors: dict[str, KpiErrors]
    surprise: dict[str, KpiSurprise]
    joint: Any  # drift detector of the root mean square of the cell's standardised misses
    periods: int = 0  # periods with real values learned since the learners started
    seasoned: bool = False  # its detectors were armed once (a reset re-arms them sooner)
    settle_until: int = 0  # after a re-base: its misses are not watched until ``periods`` passes this


@dataclass
class GapStep:
    """What one period changed: calibrated values, the signals offered and the episodes they made."""

    period_end: int
    calibrated: dict[str, dict[str, float]]
    surprise: dict[str, float]
    signals: list[Signal]
    events: list[TriggerEvent]


class GapTracker:
    """The gap of one cluster (see the module docstring)."""

    def __init__(self, settings: GapSettings | None = None,
                 detector: Callable[[GapSettings], Any] | None = None) -> None:
        """``detector``: builds the drift detector of one cell and KPI (a river ``drift`` detector:
        ``update`` and ``drift_detected``); default Page-Hinkley on the settings' drift parameters."""
        self.settings = settings or GapSettings()
        self.make_detector = detector or page_hinkley
        self.cells: dict[str, CellGap] = {}
        self.gate = TriggerGate(self.settings.clear_periods, self.settings.min_interval_s)
        # episodes of missing telemetry (scopes "<cell>|data_gap", "<cell>|stale_cm"): cleared at the
        # first period the cell reports again, rate-limited per cell
        self.data_gate = TriggerGate(1, self.settings.data_alert_interval_s)
        self.missed: dict[str, int] = {}  # cell -> consecutive predicted periods without its PM
        self.last_period = -1
        self.restart_reason: str | None = None  # set by ``from_bytes`` when it could not restore

    def _cell(self, key: str) -> CellGap:
        cell = self.cells.get(key)
        if cell is None:
            models, errors = self._new_learners()
            cell = self.cells[key] = CellGap(
                models=models, errors=errors,
                surprise={k: KpiSurprise(self.make_detector(self.settings)) for k in GAP_KPIS},
                joint=joint_page_hinkley(self.settings),
            )
        return cell

    def _new_learners(self) -> tuple[dict[str, ResidualLearner], dict[str, KpiErrors]]:
        """Fresh residual learners and rolling error figures of one cell."""
        s = self.settings
        alpha = 2.0 / (s.error_periods + 1.0)
        return {k: ResidualLearner(s) for k in GAP_KPIS}, {k: KpiErrors(alpha) for k in GAP_KPIS}

    def _renew_detectors(self, cell: CellGap) -> None:
        """Fresh drift detectors of one cell (its usual levels and spreads are kept)."""
        for watch in cell.surprise.values():
            watch.detector = self.make_detector(self.settings)
        cell.joint = joint_page_hinkley(self.settings)

    def calibrated(self, period_end: int, raw: Mapping[str, Mapping[str, float]],
                   context: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
        """Calibrated values of ``raw`` (``{cell: {kpi: value}}``) for the period ending at
        ``period_end`` from what is learned now, learning nothing (a what-if, or a period already
        observed)."""
        out: dict[str, dict[str, float]] = {}
        for key, values in raw.items():
            cell = self.cells.get(key)
            out[key] = {k: (calibrate(k, v, cell.models[k].predict({**context.get(key, {}), "raw": v}, period_end))
                            if cell is not None and cell.errors[k].n else v)
                        for k, v in values.items() if k in GAP_KPIS}
        return out

    def observe(self, period_end: int, raw: Mapping[str, Mapping[str, float]],
                real: Mapping[str, Mapping[str, float]], context: Mapping[str, Mapping[str, float]],
                extra: Iterable[Signal] = ()) -> GapStep:
        """One period, prequentially: calibrate ``raw`` with what was learned so far, then learn the
        ``real`` values (``{cell: {kpi: value}}``; a cell or KPI without one is only calibrated).
        ``context``: the features of each cell (``twin.gap.features.context``; the raw value is added).
        ``extra``: other sources' signals of the period (the DT-BSM estimator's), offered to the
        gate in the same batch as the learners' own.
        A period at or before the last observed one is calibrated but not learned again."""
        s = self.settings
        fresh = period_end > self.last_period
        calibrated: dict[str, dict[str, float]] = {}
        surprise: dict[str, float] = {}
        signals: list[Signal] = []
        for key in sorted(raw):
            cell = self._cell(key)
            ctx = context.get(key, {})
            truth = real.get(key, {})
            out = calibrated[key] = {}
            misses: dict[str, float] = {}
            for kpi in GAP_KPIS:
                value = raw[key].get(kpi)
                if value is None or not math.isfinite(value):
                    continue
                x = {**ctx, "raw": value}
                learner = cell.models[kpi]
                parts = learner.parts(x, period_end)
                learned = learner.pick(*parts) if cell.errors[kpi].n else 0.0
                out[kpi] = calibrate(kpi, value, learned)
                actual = truth.get(kpi)
                if not fresh or actual is None or not math.isfinite(actual):
                    continue
                y = residual(kpi, value, actual)
                misses[kpi] = y - learned
                cell.errors[kpi].update(kpi, value, out[kpi], actual)
                learner.learn(x, period_end, y, *parts)
            if not misses:
                continue
            cell.periods += 1
            ratio = [abs(m) for k, m in misses.items() if k in RATIO_KPIS]
            if ratio:
                surprise[key] = sum(ratio) / len(ratio)
            signals.append(self._drift(key, cell, misses, period_end))
            bound = [cell.errors[k].ape_calibrated.get() for k in _BOUND_KPIS if cell.errors[k].n]
            if bound and cell.periods >= max(s.drift_min_periods, s.error_periods // 2):
                err = sum(bound) / len(bound)
                signals.append(Signal("error_bound", key, period_end, err > s.error_bound,
                                      {"calibratedError": round(err, 6)}))
        if fresh:
            self.last_period = period_end
        signals += extra
        events = self.gate.offer(signals) if signals else []
        return GapStep(period_end, calibrated, surprise, signals, events)

    def _drift(self, key: str, cell: CellGap, misses: Mapping[str, float], period_end: int) -> Signal:
        """The drift signal of a cell for one period: its learners settle for ``drift_min_periods``
        (after a start or a reset), then each KPI's miss is standardised; the detectors look once
        the cell has learned ``drift_warmup_periods`` (only ``drift_min_periods`` after a reset)."""
        s = self.settings
        if cell.periods <= s.drift_min_periods or cell.periods <= cell.settle_until:
            return Signal("drift", key, period_end, False, {})
        armed = cell.seasoned or cell.periods >= s.drift_warmup_periods
        z: dict[str, float] = {}
        detected: list[str] = []
        for kpi, miss in misses.items():
            watch = cell.surprise[kpi]
            score = watch.standardise(kpi, miss)
            if score is None:
                continue
            z[kpi] = score
            if armed:
                watch.detector.update(score)
                if watch.detector.drift_detected:
                    detected.append(kpi)
        if armed and z:
            cell.seasoned = True
            cell.joint.update(math.sqrt(sum(v * v for v in z.values()) / len(z)))
            if cell.joint.drift_detected:
                detected.append("joint")
        values = {f"z:{k}": round(v, 3) for k, v in z.items()}
        if z:
            values["surpriseZ"] = round(max(abs(v) for v in z.values()), 3)
        return Signal("drift", key, period_end, bool(detected), values)

    def watch_data(self, period_end: int, reported: Mapping[str, bool],
                   cm_observed: Mapping[str, float | None]) -> list[TriggerEvent]:
        """Missing telemetry of the period ending at ``period_end``: ``reported`` says per expected
        cell whether its PM for the period is in; ``cm_observed`` its newest CM observation (epoch s,
        None: never). Episodes on scopes ``<cell>|data_gap`` and ``<cell>|stale_cm``."""
        s = self.settings
        signals = []
        for cell, ok in sorted(reported.items()):
            self.missed[cell] = 0 if ok else self.missed.get(cell, 0) + 1
            signals.append(Signal("data_gap", f"{cell}|data_gap", period_end, self.missed[cell] >= s.data_gap_periods,
                                  {"missedPeriods": float(self.missed[cell])}))
        for cell, seen in sorted(cm_observed.items()):
            age = None if seen is None else period_end - seen
            signals.append(Signal("stale_cm", f"{cell}|stale_cm", period_end, age is None or age > s.stale_cm_s,
                                  {} if age is None else {"cmAgeS": float(age)}))
        return self.data_gate.offer(signals)

    def reset(self, cells: Collection[str]) -> None:
        """Forget what the learners of ``cells`` learned (after a resync changed their raw
        predictions): they start afresh; the usual spreads of their misses are kept, so their
        detectors watch again after ``drift_min_periods``; the divergence gate keeps its episodes."""
        for key in cells:
            cell = self.cells.get(key)
            if cell is None:
                continue
            cell.models, cell.errors = self._new_learners()
            self._renew_detectors(cell)
            cell.periods = 0

    def rebase(self, shifts: Mapping[str, Mapping[str, float]]) -> None:
        """Carry learners over a small change of their cells' raw predictions (a resync that moved
        them a little): ``shifts[cell][kpi]`` is the change of the residual a period now has
        (``twin.gap.target.residual(kpi, new_raw, old_raw)``, negated), taken off both parts of the
        learner (``ResidualLearner.shift``) so that its calibrated prediction stays where it was, and
        its detector is not surprised by the twin's own change. The shift is the trigger period's;
        the learners settle on the new raw predictions for ``REBASE_SETTLE_PERIODS`` before the
        cell's misses are watched again, with fresh detectors."""
        for key, per in shifts.items():
            cell = self.cells.get(key)
            if cell is None:
                continue
            cell.settle_until = cell.periods + REBASE_SETTLE_PERIODS
            self._renew_detectors(cell)
            for kpi, shift in per.items():
                learner = cell.models.get(kpi)
                if learner is not None and cell.errors[kpi].n and math.isfinite(shift):
                    learner.shift(shift)

    def figures(self) -> dict[str, dict[str, dict[str, float]]]:
        """Rolling error figures ``{cell: {kpi: {...}}}`` (``KpiErrors.figures``)."""
        return {key: {k: e.figures() for k, e in cell.errors.items() if e.n}
                for key, cell in sorted(self.cells.items())}

    # -- state -------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The learners' state, for the mirror's checkpoint (pickled river objects, compressed:
        the checkpoint store is the worker's own, never read from elsewhere)."""
        state = {"format": FORMAT, "cells": self.cells, "gate": self.gate.to_dict(), "last": self.last_period,
                 "dataGate": self.data_gate.to_dict(), "missed": self.missed}
        return zlib.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), 3)

    @classmethod
    def from_bytes(cls, data: bytes, settings: GapSettings | None = None,
                   detector: Callable[[GapSettings], Any] | None = None) -> GapTracker:
        """The tracker saved by ``to_bytes``; a fresh one, saying why in ``restart_reason``, when the
        data is of another format or unreadable (a worker must not fail on it at every start)."""
        tracker = cls(settings, detector)
        try:
            state = pickle.loads(zlib.decompress(data))  # the worker's own checkpoint, never outside data
            if not isinstance(state, dict) or state.get("format") != FORMAT:
                tracker.restart_reason = f"state of another format ({type(state).__name__})"
                return tracker
            cells, gate, last = state["cells"], state["gate"], int(state["last"])
        except (zlib.error, pickle.UnpicklingError, EOFError, AttributeError, ImportError, KeyError, TypeError,
                ValueError, IndexError) as exc:
            tracker.restart_reason = f"unreadable state ({type(exc).__name__}: {exc})"
            return tracker
        tracker.cells = cells
        tracker.gate.load(gate)
        tracker.data_gate.load(state.get("dataGate", {}))
        tracker.missed = dict(state.get("missed", {}))
        tracker.last_period = last
        return tracker
