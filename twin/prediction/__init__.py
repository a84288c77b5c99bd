"""The twin's KPI predictions per cluster and granularity period, from the mirrored network.

``ClusterPredictor`` simulates a mirrored cluster (CM from the mirror, traffic from mirrored PM),
``due_periods`` says when a period is complete in event time, ``PredictionService`` ties them to
the mirror stage, ``cell_error`` measures real against predicted.
"""

from twin.prediction.error import ERROR_KPIS, cell_error, kpi_error
from twin.prediction.model import ClusterPrediction, ClusterPredictor, PredictConfig, simulated_cm
from twin.prediction.schedule import due_periods, mark_predicted
from twin.prediction.service import PredictionService, PredictionStats, to_records

__all__ = [
    "ERROR_KPIS",
    "ClusterPrediction",
    "ClusterPredictor",
    "PredictConfig",
    "PredictionService",
    "PredictionStats",
    "cell_error",
    "due_periods",
    "kpi_error",
    "mark_predicted",
    "simulated_cm",
    "to_records",
]
