"""DT-BSM per cluster as the prediction service runs it (``docs/fidelity.md``, spec ``dt-bsm.md`` §9).

Per predicted period ``(gp, end)`` of a cluster, :meth:`FidelityMonitor.step`:

1. **real transitions**: for every cell that reported the period and the one before, the sample
   (s_{end−gp}, a, r, s_end): states from the shared encoder (``twin.fidelity.encoder``) on the
   cell's reported PRB load and mean SINR and its CM in effect then (``simulated_cm(as_of=...)``),
   the action the class of its CM change between the two periods, the reward its normalised
   per-UE throughput of ``end``;
2. **twin transitions**, from the same real states s_{end−gp}, only when no cell of the cluster
   changed CM between the two periods (otherwise the period's model already holds a real change):
   *none* is the twin's prediction of ``end`` itself (free, every cell); the six change actions are
   what-ifs on the period's model (``Simulator.whatif``, the path of ``twin.Twin.whatif``), at most
   ``whatifs_per_period`` per period, round robin over (cell, action). The twin's values go through
   the gap learners' calibration of what they learned so far when gap learning is on (the twin the
   runtime publishes is the calibrated one), else, or with ``[fidelity] twin = "raw"``, they are the
   raw model's;
3. **UE-level samples** (``twin.fidelity.ue_level``): each cell's reported SS-SINR histogram and the
   model's for the same period (at the gap learners' mean level with the calibrated twin), one
   rank-coupled transition per cell, the UE-level values computed every period;
4. every ``recompute_periods`` periods, or when a cell's UE-level value moved by more than
   ``ue_warning_change`` since the last computation, or earlier when the TV bound of the point estimates rose by
   more than ``tv_warning_rise`` since the last computation (§9.3's early warning, checked every
   period in between: ``FidelityEstimator.tv_rose``), the cluster's DT-BSM record (``FidelityEstimator.compute``),
   kept in the mirror (``ClusterMirror.fidelity``, the latest ``kept``), published
   (``ran.twin.fidelity.v1``, ``outbox``), and, when its lower bound has been above τ for
   ``trigger_evaluations`` computations, a firing ``Signal("dtbsm", cell, ...)`` for the cells whose
   contribution is worst, which the caller offers to the cluster's trigger gate.

A resync (a new calibration) resets the twin's counts (§9.3: the model they described is gone);
the real counts are kept. The estimator's state is in the mirror (``ClusterMirror.fidelity_state``),
checkpointed with the periods it counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from twin.config import FidelitySettings
from twin.fidelity.encoder import ACTIONS, THP, StateEncoder
from twin.fidelity.stream import FidelityEstimator, TrustVerdict, trust
from twin.fidelity.ue_level import shift_db
from twin.gap.features import context
from twin.gap.target import SINR_MEAN
from twin.gap.tracker import GapTracker
from twin.mirror.cluster import ClusterMirror
from twin.prediction.model import ClusterPrediction, ClusterPredictor, PeriodModel, kpi_values, simulated_cm
from twin.resync.trigger import Signal
from twin.sim.kpis import CONN, SINR_BIN_NAMES

__all__ = ["FidelityMonitor", "FidelityStats", "summary"]

log = structlog.get_logger(__name__)


@dataclass
class FidelityStats:
    periods: int = 0
    real_samples: int = 0
    twin_samples: int = 0
    whatifs: int = 0
    whatif_seconds: float = 0.0
    step_seconds: float = 0.0  # everything per period but the computations
    computations: int = 0
    compute_seconds: float = 0.0
    restarts: int = 0  # checkpointed states that could not be read (the estimator starts afresh)
    tv_checks: int = 0  # early-warning checks between computations (the TV bound, §9.3)
    tv_seconds: float = 0.0
    early_computations: int = 0  # computations the early warning brought forward
    ue_samples: int = 0  # UE-level transitions counted (one per cell and period)
    ue_seconds: float = 0.0  # the UE-level estimator, counting and computing

    def as_dict(self) -> dict[str, object]:
        return {"fidelityPeriods": self.periods, "fidelityRealSamples": self.real_samples,
                "fidelityTwinSamples": self.twin_samples, "fidelityWhatifs": self.whatifs,
                "fidelityWhatifSeconds": round(self.whatif_seconds, 3),
                "fidelityStepSeconds": round(self.step_seconds, 3), "fidelityComputations": self.computations,
                "fidelityComputeSeconds": round(self.compute_seconds, 3), "fidelityRestarts": self.restarts,
                "fidelityTvChecks": self.tv_checks, "fidelityTvSeconds": round(self.tv_seconds, 4),
                "fidelityEarlyComputations": self.early_computations, "fidelityUeSamples": self.ue_samples,
                "fidelityUeSeconds": round(self.ue_seconds, 3)}


def summary(record: Mapping[str, Any] | None) -> dict[str, float] | None:
    """The figures of a DT-BSM record a resync keeps (``dtbsmBefore``/``dtbsmAfter``)."""
    if record is None:
        return None
    out = {k: float(record[k]) for k in ("value", "lower", "upper", "coverage", "periodEnd")}
    if record.get("comparedPairs") is not None:
        out["comparedPairs"] = float(record["comparedPairs"])
    return out


class FidelityMonitor:
    """The DT-BSM estimators of the clusters a prediction service predicts (module docstring)."""

    def __init__(self, settings: FidelitySettings, predictor: ClusterPredictor) -> None:
        self.settings = settings
        self.encoder = StateEncoder.from_settings(settings)
        self.predictor = predictor
        self.stats = FidelityStats()
        self.outbox: list[tuple[str, dict[str, Any]]] = []  # (cluster id, record) to publish
        self._cache: dict[str, tuple[bytes | None, FidelityEstimator]] = {}

    def estimator(self, mirror: ClusterMirror) -> FidelityEstimator:
        """The cluster's estimator as its mirror holds it (read once, then kept while the mirror's
        state is the one this monitor saved)."""
        cached = self._cache.get(mirror.cluster_id)
        if cached is not None and cached[0] is mirror.fidelity_state:
            return cached[1]
        blob = mirror.fidelity_state
        s, enc = self.settings, self.encoder
        est = FidelityEstimator.from_settings(s, enc.n_states, enc.n_actions)
        if blob is not None:
            try:
                est = FidelityEstimator.from_bytes(blob, s, enc.n_states, enc.n_actions)
            except (ValueError, KeyError, OSError) as exc:
                log.warning("fidelity.estimator_restarted", cluster=mirror.cluster_id, reason=str(exc))
                self.stats.restarts += 1
        self._cache[mirror.cluster_id] = (blob, est)
        return est

    def latest(self, mirror: ClusterMirror) -> dict[str, Any] | None:
        return mirror.fidelity[-1] if mirror.fidelity else None

    def trust(self, mirror: ClusterMirror) -> TrustVerdict:
        s = self.settings
        tau = s.trust_tau if s.trust_tau is not None else s.threshold()
        return trust(self.latest(mirror), tau, s.trust_coverage)

    def step(self, mirror: ClusterMirror, prediction: ClusterPrediction, real: Mapping[str, Mapping[str, float]],
             tracker: GapTracker | None = None) -> list[Signal]:
        """Count the period ``prediction`` is of (module docstring); the signals to offer."""
        t0 = time.perf_counter()
        gp, end = prediction.gp, prediction.period_end
        enc, est = self.encoder, self.estimator(mirror)
        calibration_from = mirror.calibrations[-1]["from"] if mirror.calibrations else None
        if calibration_from != est.calibration_from:
            if est.twin.samples:
                est.reset_twin()
            est.calibration_from = calibration_from
        prev = end - gp
        cm_now, cm_prev = simulated_cm(mirror, as_of=end), simulated_cm(mirror, as_of=prev)
        from_states: dict[str, int] = {}
        for cell, values in sorted(real.items()):
            if cell not in cm_now:
                continue
            x_next, r = enc.encode(values, cm_now[cell]), enc.reward(values.get(THP))
            last = est.last.get(cell)
            if last is not None and last[0] == prev:
                from_states[cell] = last[1]
                if x_next is not None and r is not None:
                    a = ACTIONS.index(enc.action(cm_prev.get(cell, cm_now[cell]), cm_now[cell]))
                    est.add_real(cell, last[1], a, r, x_next)
                    self.stats.real_samples += 1
            if x_next is not None:
                est.last[cell] = [end, x_next]
        models: list[PeriodModel | None] = []

        def period_model() -> PeriodModel | None:  # the period's model, evaluated once if needed
            if not models:
                models.append(self.predictor.period_model(mirror, gp, end))
            return models[0]

        if from_states and cm_now == cm_prev:
            self._twin_samples(mirror, prediction, from_states, cm_now, est, tracker, period_model)
        ue_moved = False
        if est.ue is not None:
            t1 = time.perf_counter()
            self._ue_samples(mirror, prediction, cm_now, cm_prev, est, tracker, period_model)
            ue_moved = est.ue_moved(self.settings.ue_warning_change)
            self.stats.ue_seconds += time.perf_counter() - t1
        self.stats.periods += 1
        signals: list[Signal] = []
        due = est.due(self.settings.recompute_periods)
        early = None
        if not due and self.settings.tv_warning_rise > 0:
            t1 = time.perf_counter()
            early = "tv" if est.tv_rose(self.settings.tv_warning_rise) else None
            self.stats.tv_checks += 1
            self.stats.tv_seconds += time.perf_counter() - t1
        if not due and early is None and ue_moved:
            early = "ue"
        if due or early:
            t1 = time.perf_counter()
            record = est.compute(end, mirror.cluster_id, early=early is not None)
            if early is not None:
                record["earlyBy"] = early
            self.stats.compute_seconds += time.perf_counter() - t1
            self.stats.computations += 1
            self.stats.early_computations += early is not None
            record["actions"] = [ACTIONS[a] for a in record["actions"]]
            record["gp"] = gp
            mirror.fidelity.append(record)
            del mirror.fidelity[:-self.settings.kept]
            mirror.fidelity_changed = True
            self.outbox.append((mirror.cluster_id, dict(record)))
            if record["firing"]:
                values = {"dtbsmLower": record["lower"], "dtbsmUpper": record["upper"], "dtbsmValue": record["value"]}
                signals = [Signal("dtbsm", cell, end, True, values) for cell in est.signals_scope(record)]
        blob = mirror.fidelity_state = est.to_bytes()
        self._cache[mirror.cluster_id] = (blob, est)
        self.stats.step_seconds += time.perf_counter() - t0
        return signals

    def _twin_values(self, prediction: ClusterPrediction, tracker: GapTracker | None,
                     values: Mapping[str, Mapping[str, float]],
                     cms: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
        """The twin's values of ``values`` (the model's): the gap learners' calibration of them, or
        the model's own with ``twin = "raw"`` or without gap learning."""
        end = prediction.period_end
        if tracker is None or self.settings.twin == "raw":
            return {c: dict(v) for c, v in values.items()}
        ctx = {c: context(end, prediction.ue_scale, cms[c]) for c in values}
        return tracker.calibrated(end, values, ctx)

    def _ue_samples(self, mirror: ClusterMirror, prediction: ClusterPrediction, cm_now: Mapping[str, Mapping[str, Any]],
                    cm_prev: Mapping[str, Mapping[str, Any]], est: FidelityEstimator, tracker: GapTracker | None,
                    period_model: Callable[[], PeriodModel | None]) -> None:
        """Count the period in the UE-level estimator (``twin.fidelity.ue_level``): each cell's reported
        SS-SINR histogram and, when no cell of the cluster changed CM (as for the cell-period
        samples), the model's for the same period; with the calibrated twin, moved to the mean SS-SINR
        and scaled to the connected UEs the gap learners calibrate the cell to."""
        assert est.ue is not None
        gp, end = prediction.gp, prediction.period_end
        twin_hists: dict[str, Any] = {}
        state = period_model() if cm_now == cm_prev else None
        if state is not None:
            keys = state.sim.cluster.cell_keys
            raw = {k: prediction.values[k] for k in keys if k in prediction.values}
            calibrated = self._twin_values(prediction, tracker, raw, cm_now)
            for i, k in enumerate(keys):
                hist = state.result.kpi.sinr_bins[i]
                model, cal = raw.get(k, {}), calibrated.get(k, {})
                if SINR_MEAN in model and SINR_MEAN in cal:
                    hist = shift_db(hist, cal[SINR_MEAN] - model[SINR_MEAN])
                if model.get(CONN, 0.0) > 0 and CONN in cal:
                    hist = hist * (cal[CONN] / model[CONN])  # the UEs the calibrated twin has the cell serve
                twin_hists[k] = hist
        for cell in sorted(cm_now):
            hist = sinr_histogram(mirror, cell, gp, end)
            if hist is None:
                continue
            action = ACTIONS.index(self.encoder.action(cm_prev.get(cell, cm_now[cell]), cm_now[cell]))
            if est.ue.add(cell, end, end - gp, hist, twin_hists.get(cell), action):
                self.stats.ue_samples += 1
        est.ue.forget(list(cm_now))

    def _twin_samples(self, mirror: ClusterMirror, prediction: ClusterPrediction, from_states: Mapping[str, int],
                      cm: Mapping[str, Mapping[str, Any]], est: FidelityEstimator, tracker: GapTracker | None,
                      period_model: Callable[[], PeriodModel | None]) -> None:
        enc = self.encoder

        def twin_values(values: Mapping[str, Mapping[str, float]],
                        cms: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
            return self._twin_values(prediction, tracker, values, cms)

        base = twin_values({c: prediction.values[c] for c in from_states if c in prediction.values}, cm)
        for cell, x in from_states.items():
            v = base.get(cell)
            if v is None:
                continue
            x_next, r = enc.encode(v, cm[cell]), enc.reward(v.get(THP))
            if x_next is not None and r is not None:
                est.add_twin(x, 0, r, x_next)
                self.stats.twin_samples += 1
        k = self.settings.whatifs_per_period
        pairs = [(c, a) for c in sorted(from_states) for a in range(1, len(ACTIONS))]
        if not k or not pairs:
            return
        t0 = time.perf_counter()
        state = period_model()  # the period's model, baseline set
        if state is None:
            return
        done = 0
        for i in range(min(k, len(pairs))):
            cell, a = pairs[(est.robin + i) % len(pairs)]
            change = enc.change(cm[cell], ACTIONS[a])
            if change is None or cell not in state.sim.cluster.cell_keys:
                continue
            result = state.sim.whatif({cell: change})
            done += 1
            values = kpi_values(result.result).get(cell)
            if values is None:
                continue
            changed_cm = {**cm[cell], **change}
            v = twin_values({cell: values}, {cell: changed_cm})[cell]
            x_next, r = enc.encode(v, changed_cm), enc.reward(v.get(THP))
            if x_next is not None and r is not None:
                est.add_twin(from_states[cell], a, r, x_next)
                self.stats.twin_samples += 1
        est.robin = (est.robin + min(k, len(pairs))) % len(pairs)
        dt = time.perf_counter() - t0
        est.whatifs += done
        est.whatif_seconds += dt
        self.stats.whatifs += done
        self.stats.whatif_seconds += dt


def sinr_histogram(mirror: ClusterMirror, cell: str, gp: int, end: int) -> list[float] | None:
    """The cell's reported ``MR.NRScSSSINR.BinX`` histogram of the period ``(gp, end)`` (128 counts),
    None when it reported none of its bins."""
    c = mirror.cells.get(cell)
    series = c.pm.get(gp) if c is not None else None
    if not series:
        return None
    counts = [float((series.get(name) or {}).get(end, 0.0)) for name in SINR_BIN_NAMES]
    return counts if any(counts) else None
