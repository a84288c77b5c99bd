"""Prediction as the mirror stage runs it: due periods in, ``Prediction`` records out.

Transport-free: the stage calls :meth:`PredictionService.on_applied` after applying an envelope
to a cluster, publishes the records it returns (keyed by cell) and checkpoints the mirror, which
now holds the predictions beside the PM values.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from twin.config import TwinSettings
from twin.mirror.cluster import ClusterMirror
from twin.prediction.model import ClusterPrediction, ClusterPredictor, PredictConfig
from twin.prediction.schedule import due_periods, mark_predicted
from twin.schemas import Prediction

__all__ = ["PredictionService", "PredictionStats", "prediction_service", "to_records"]


@dataclass
class PredictionStats:
    periods: int = 0
    records: int = 0
    skipped: int = 0  # due periods of clusters without positioned cells
    builds: int = 0
    seconds: float = 0.0
    by_cluster: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"predictedPeriods": self.periods, "predictionRecords": self.records,
                "predictionSkipped": self.skipped, "simulatorBuilds": self.builds,
                "predictionSeconds": round(self.seconds, 3)}


def to_records(p: ClusterPrediction) -> list[Prediction]:
    """One ``Prediction`` per cell and KPI (horizon 0: the period just reported)."""
    end = datetime.fromtimestamp(p.period_end, UTC)
    return [Prediction(cell_key=cell, cluster_id=p.cluster_id, period_end=end, horizon_s=0, kpi=kpi,
                       predicted=value, model_version=p.model_version)
            for cell, kpis in p.values.items() for kpi, value in kpis.items()]


class PredictionService:
    """Predicts every due period of a cluster, stores it in the mirror, returns the records."""

    def __init__(self, config: PredictConfig, expected: Mapping[str, Collection[str]],
                 timeout_periods: int = 2, predictor: ClusterPredictor | None = None) -> None:
        self.predictor = predictor or ClusterPredictor(config)
        self.expected = expected  # cluster id -> cell keys (the topology)
        self.timeout_periods = timeout_periods
        self.stats = PredictionStats()

    def on_applied(self, mirror: ClusterMirror) -> list[ClusterPrediction]:
        out: list[ClusterPrediction] = []
        if not mirror.pending:
            # CM without PM (the initial snapshots, a change): build now, not at the next period
            if self.predictor.warm(mirror, self.expected.get(mirror.cluster_id, ())):
                self.stats.builds += 1
            return out
        for gp, end in due_periods(mirror, self.expected.get(mirror.cluster_id, ()), self.timeout_periods):
            t0 = time.perf_counter()
            prediction = self.predictor.predict(mirror, gp, end)
            self.stats.seconds += time.perf_counter() - t0
            mark_predicted(mirror, gp, end)
            if prediction is None:
                self.stats.skipped += 1
                continue
            for cell, values in prediction.values.items():
                mirror.cell(cell).set_predicted(gp, end, values)
            self.stats.periods += 1
            self.stats.builds += int(prediction.rebuilt)
            self.stats.records += sum(len(v) for v in prediction.values.values())
            out.append(prediction)
        return out


def prediction_service(settings: TwinSettings, predictor: ClusterPredictor | None = None) -> PredictionService | None:
    """The prediction step of a worker's ``[predict]`` and ``[topology]`` settings; ``None`` when
    prediction is disabled. The mirror stage and ``twin.Twin`` both build it here, so they predict
    alike."""
    p = settings.predict
    if not p.enabled:
        return None
    expected = {c.id: tuple(c.cells) for c in settings.topology.clusters}
    return PredictionService(PredictConfig.from_settings(p), expected, p.timeout_periods, predictor)
