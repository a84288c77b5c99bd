"""Prediction as the mirror stage runs it: due periods in, ``Prediction`` records out.

Transport-free: the stage calls :meth:`PredictionService.on_applied` after applying an envelope
to a cluster, publishes the records it returns (keyed by cell) and checkpoints the mirror, which
now holds the predictions beside the PM values.

With gap learning on (``[gap] enabled``, the default) every predicted period also goes through the
cluster's gap learners (``twin.gap.GapTracker``): the calibrated values are published beside the
raw ones (``Prediction.calibrated``) and stored in the mirror under ``<KPI>@calibrated``; the
learners' state is stored in the mirror (``ClusterMirror.gap_state``), so it is checkpointed in
the same transaction as the periods it marks predicted, and a restarted worker continues exactly
where the checkpoint ends.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import structlog

from twin.config import FidelitySettings, GapSettings, ResyncSettings, TwinSettings
from twin.gap.features import context
from twin.gap.tracker import GapTracker
from twin.logs import traceback_field
from twin.mirror.cluster import ClusterMirror
from twin.prediction.fidelity import FidelityMonitor, summary
from twin.prediction.model import ClusterPrediction, ClusterPredictor, PredictConfig, load_engine, simulated_cm
from twin.prediction.resync import ResyncCoordinator, real_values
from twin.prediction.schedule import due_periods, mark_predicted
from twin.resync.alerts import telemetry_alert
from twin.resync.trigger import Signal
from twin.schemas import Alert, Prediction
from twin.sim2real.features import TARGETS as SIM2REAL_TARGETS

__all__ = ["CALIBRATED", "PredictionService", "PredictionStats", "calibrated_name", "prediction_service",
           "real_values", "to_records"]

log = structlog.get_logger(__name__)

CALIBRATED = "@calibrated"  # suffix of the calibrated values' names in the mirror's predicted series


def calibrated_name(kpi: str) -> str:
    """The name under which the mirror keeps the calibrated prediction of ``kpi``.

    >>> calibrated_name("DRB.UEThpDl")
    'DRB.UEThpDl@calibrated'
    """
    return kpi + CALIBRATED


@dataclass
class PredictionStats:
    periods: int = 0
    records: int = 0
    skipped: int = 0  # due periods of clusters without positioned cells
    builds: int = 0
    seconds: float = 0.0
    gap_seconds: float = 0.0  # learning, calibrating and saving the gap learners
    episodes_raised: int = 0
    episodes_cleared: int = 0
    gap_restarts: int = 0  # checkpointed gap states that could not be read (the learners start afresh)
    failures: int = 0  # steps of a period that raised (logged; the period went on or was skipped)
    by_cluster: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"predictedPeriods": self.periods, "predictionRecords": self.records,
                "predictionSkipped": self.skipped, "simulatorBuilds": self.builds,
                "predictionSeconds": round(self.seconds, 3), "gapSeconds": round(self.gap_seconds, 3),
                "divergenceRaised": self.episodes_raised, "divergenceCleared": self.episodes_cleared,
                "gapRestarts": self.gap_restarts, "predictionFailures": self.failures}


def to_records(p: ClusterPrediction) -> list[Prediction]:
    """One ``Prediction`` per cell and KPI (horizon 0: the period just reported), with the
    calibrated value where the gap learners gave one."""
    end = datetime.fromtimestamp(p.period_end, UTC)
    return [Prediction(cell_key=cell, cluster_id=p.cluster_id, period_end=end, horizon_s=0, kpi=kpi,
                       predicted=value, calibrated=p.calibrated.get(cell, {}).get(kpi),
                       model_version=p.model_version,
                       out_of_range=p.out_of_range.get(cell, []) if p.out_of_range is not None
                       and kpi in SIM2REAL_TARGETS else None)
            for cell, kpis in p.values.items() for kpi, value in kpis.items()]


class PredictionService:
    """Predicts every due period of a cluster, stores it in the mirror, returns the records; with
    ``gap`` settings, learns and applies the twin's gap too."""

    def __init__(self, config: PredictConfig, expected: Mapping[str, Collection[str]],
                 timeout_periods: int = 2, predictor: ClusterPredictor | None = None,
                 gap: GapSettings | None = None, timeout_grace_s: float = 0.0,
                 resync: ResyncSettings | None = None, group: str = "twin",
                 fidelity: FidelitySettings | None = None, future_skew_s: float = 600.0) -> None:
        self.predictor = predictor or ClusterPredictor(config)
        self.future_skew_s = future_skew_s  # how far ahead the ingest accepts PM (``twin.prediction.schedule``)
        self.expected = expected  # cluster id -> cell keys (the topology)
        self.timeout_periods = timeout_periods
        self.timeout_grace_s = timeout_grace_s
        self.gap = gap if gap is not None and gap.enabled else None
        # resyncs need the gap learners' episodes
        self.resyncs = ResyncCoordinator(resync, self.predictor.config, group, self.predictor.engine) \
            if resync is not None and resync.enabled and self.gap is not None else None
        # the DT-BSM estimators (``twin.prediction.fidelity``); their trigger needs the gap learners' gate
        self.fidelity = FidelityMonitor(fidelity, self.predictor) \
            if fidelity is not None and fidelity.enabled else None
        self.stats = PredictionStats()
        self.group = group
        self.alerts: list[Alert] = []  # missing-telemetry alerts to publish (``twin.resync.telemetry_alert``)
        # cluster id -> (the state bytes it was read from or saved as, the tracker)
        self._trackers: dict[str, tuple[bytes | None, GapTracker]] = {}

    def tracker(self, mirror: ClusterMirror) -> GapTracker:
        """The cluster's gap learners as its mirror holds them (read once, then kept while the
        mirror's state is the one this service saved)."""
        cached = self._trackers.get(mirror.cluster_id)
        if cached is not None and cached[0] is mirror.gap_state:
            return cached[1]
        blob = mirror.gap_state
        tracker = GapTracker(self.gap) if blob is None else GapTracker.from_bytes(blob, self.gap)
        if tracker.restart_reason is not None:
            log.warning("gap.learners_restarted", cluster=mirror.cluster_id, reason=tracker.restart_reason)
            self.stats.gap_restarts += 1
        self._trackers[mirror.cluster_id] = (blob, tracker)
        return tracker

    def take_alerts(self) -> list[Alert]:
        """The alerts to publish since the last call (missing telemetry, resync outcomes)."""
        out, self.alerts = self.alerts, []
        if self.resyncs is not None:
            out, self.resyncs.alerts = out + self.resyncs.alerts, []
        return out

    def take_resyncs(self) -> list[tuple[str, dict[str, Any]]]:
        """The resync records (``(cluster id, record)``) to publish since the last call."""
        if self.resyncs is None:
            return []
        out, self.resyncs.outbox = self.resyncs.outbox, []
        return out

    def take_fidelity(self) -> list[tuple[str, dict[str, Any]]]:
        """The DT-BSM records (``(cluster id, record)``) to publish since the last call."""
        if self.fidelity is None:
            return []
        out, self.fidelity.outbox = self.fidelity.outbox, []
        return out

    def on_applied(self, mirror: ClusterMirror) -> list[ClusterPrediction]:
        """Predict the cluster's due periods and start its pending resyncs (also one a worker left in
        its checkpoint); run inline (no runner: ``twin.Twin``), they finish here and the periods they
        held are predicted too."""
        out: list[ClusterPrediction] = []
        while True:
            out += self._on_applied(mirror)
            if self.resyncs is None or not any(r["status"] == "pending" for r in mirror.resyncs):
                return out
            self.resyncs.launch(mirror, self.tracker)  # with a runner: started beside, finished later
            if self.resyncs.runner is not None:
                return out

    def _on_applied(self, mirror: ClusterMirror) -> list[ClusterPrediction]:
        out: list[ClusterPrediction] = []
        if not mirror.pending:
            # CM without PM (the initial snapshots, a change): build now, not at the next period
            if self.predictor.warm(mirror, self.expected.get(mirror.cluster_id, ())):
                self.stats.builds += 1
            return out
        for gp, end in due_periods(mirror, self.expected.get(mirror.cluster_id, ()), self.timeout_periods,
                                   self.timeout_grace_s, future_skew_s=self.future_skew_s):
            if self.resyncs is not None and self.resyncs.holds(mirror, end):
                break  # the model of this period waits for the resync's calibration
            t0 = time.perf_counter()
            try:
                prediction = self.predictor.predict(mirror, gp, end)
            except Exception as exc:  # this period is skipped: left due, it would raise at every record
                prediction = None
                self._failed(mirror, end, "predict", exc)
            self.stats.seconds += time.perf_counter() - t0
            mark_predicted(mirror, gp, end)
            if prediction is None:
                self.stats.skipped += 1
                continue
            for cell, values in prediction.values.items():
                mirror.cell(cell).set_predicted(gp, end, values)
            signals: list[Signal] = []
            if self.fidelity is not None:
                try:
                    signals = self.fidelity.step(mirror, prediction, real_values(mirror, gp, end),
                                                 self.tracker(mirror) if self.gap is not None else None)
                    if self.resyncs is not None and mirror.fidelity and mirror.fidelity[-1]["periodEnd"] == end:
                        self._dtbsm_after(mirror, mirror.fidelity[-1])
                except Exception as exc:  # the period goes on without its DT-BSM record
                    signals = []
                    self._failed(mirror, end, "fidelity", exc)
            if self.gap is not None:
                t0 = time.perf_counter()
                try:
                    prediction = self._learn(mirror, prediction, signals)
                except Exception as exc:  # published raw; the learners reload their last saved state
                    self._trackers.pop(mirror.cluster_id, None)
                    self._failed(mirror, end, "gap", exc)
                self.stats.gap_seconds += time.perf_counter() - t0
            self.stats.periods += 1
            self.stats.builds += int(prediction.rebuilt)
            self.stats.records += sum(len(v) for v in prediction.values.values())
            out.append(prediction)
        return out

    def _failed(self, mirror: ClusterMirror, end: int, step: str, exc: Exception) -> None:
        """A step of one period that raised: logged with the cluster, the period and the traceback,
        counted (``predictionFailures``), and the worker goes on. Uncaught, it left the period due
        and the checkpoint unwritten, so the same period raised again at every record and after
        every restart: the partition's mirror stopped for good."""
        self.stats.failures += 1
        log.error("prediction.step_failed", cluster=mirror.cluster_id, period_end=end, step=step,
                  error=f"{type(exc).__name__}: {exc}",
                  traceback=traceback_field(exc))

    def _dtbsm_after(self, mirror: ClusterMirror, record: dict[str, Any]) -> None:
        """A resync's ``dtbsmAfter``: the first DT-BSM computed after its calibration took effect that
        compares as many state-action pairs as its ``dtbsmBefore`` did, or, failing that, the first
        ``n_min`` periods after (the resync restarts the twin's counts, and until they are back a
        value rests on the pairs the twin has sampled again: lower than the twin deserves)."""
        n_min = self.fidelity.settings.n_min if self.fidelity is not None else 0.0
        for r in mirror.resyncs:
            if ("dtbsmBefore" in r and "dtbsmAfter" not in r and r["status"] in ("verifying", "applied", "rolled_back")
                    and record["periodEnd"] > int(r["at"]) + int(r["gp"])
                    and (record.get("comparedPairs") is None
                         or record["comparedPairs"] >= (r["dtbsmBefore"] or {}).get("comparedPairs", 0)
                         or record["periodEnd"] >= int(r["at"]) + int(r["gp"]) * (1 + math.ceil(n_min)))):
                r["dtbsmAfter"] = summary(record)
                mirror.resync_changed = True
                if self.resyncs is not None:
                    self.resyncs.outbox.append((mirror.cluster_id, dict(r)))

    def _learn(self, mirror: ClusterMirror, prediction: ClusterPrediction,
               extra: list[Signal] | None = None) -> ClusterPrediction:
        """The period through the cluster's gap learners (with ``extra`` signals of other sources
        offered to their gate); calibrated values stored beside the raw."""
        gp, end = prediction.gp, prediction.period_end
        tracker = self.tracker(mirror)
        cm = simulated_cm(mirror, as_of=end)
        ctx = {cell: context(end, prediction.ue_scale, cm.get(cell, {})) for cell in prediction.values}
        step = tracker.observe(end, prediction.values, real_values(mirror, gp, end), ctx, extra or ())
        expected = self.expected.get(mirror.cluster_id) or sorted(mirror.cells)
        cells = mirror.cells
        reported = {c: c in cells and end in cells[c].periods.get(gp, {}) for c in expected}
        cm_seen = {c: max((float(v[1]) for v in cells[c].cm.values()), default=None) if c in cells else None
                   for c in expected}
        for event in tracker.watch_data(end, reported, cm_seen):
            self.alerts.append(telemetry_alert(mirror.cluster_id, self.group, event))
        blob = mirror.gap_state = tracker.to_bytes()
        self._trackers[mirror.cluster_id] = (blob, tracker)
        for cell, values in step.calibrated.items():
            mirror.cell(cell).set_predicted(gp, end, {calibrated_name(k): v for k, v in values.items()})
        self.stats.episodes_raised += sum(e.kind == "raised" for e in step.events)
        self.stats.episodes_cleared += sum(e.kind == "cleared" for e in step.events)
        if self.resyncs is not None:
            self.resyncs.verify(mirror, gp, end, prediction.values, self.tracker)
            self.resyncs.plan(mirror, gp, end, step.events)
            if self.fidelity is not None:
                latest = summary(mirror.fidelity[-1]) if mirror.fidelity else None
                for r in mirror.resyncs:
                    if r["status"] == "pending" and "dtbsmBefore" not in r and int(r["at"]) == end:
                        r["dtbsmBefore"] = latest
                        mirror.resync_changed = True
                        for _, out in self.resyncs.outbox:
                            if out.get("resyncId") == r["resyncId"]:
                                out["dtbsmBefore"] = latest
            for event in step.events:
                if event.kind == "cleared":
                    self.resyncs.on_cleared(mirror, event)
        return replace(prediction, calibrated=step.calibrated, events=tuple(step.events))


def prediction_service(settings: TwinSettings, predictor: ClusterPredictor | None = None,
                       timeout_grace_s: float | None = None) -> PredictionService | None:
    """The prediction step of a worker's ``[predict]``, ``[gap]`` and ``[topology]`` settings; ``None``
    when prediction is disabled. The mirror stage and ``twin.Twin`` both build it here, so they
    predict alike (``twin.Twin`` without the timeout grace: records it is given in memory arrive in
    order, there is no lagging reader to wait for)."""
    p = settings.predict
    if not p.enabled:
        return None
    expected = {c.id: tuple(c.cells) for c in settings.topology.clusters}
    grace = p.timeout_grace_s if timeout_grace_s is None else timeout_grace_s
    if predictor is None:
        predictor = ClusterPredictor(PredictConfig.from_settings(p), load_engine(p))
    return PredictionService(PredictConfig.from_settings(p), expected, p.timeout_periods, predictor, settings.gap,
                             grace, settings.resync, settings.kafka.group_id, settings.fidelity,
                             settings.ingest.max_future_skew_s)
