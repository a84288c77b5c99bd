"""The twin's KPI predictions per cluster and granularity period, from the mirrored network.

``ClusterPredictor`` simulates a mirrored cluster (CM from the mirror, traffic from mirrored PM),
``due_periods`` says when a period is complete in event time, ``PredictionService`` ties them to
the mirror stage, ``cell_error`` measures real against predicted.
"""

from twin.gap.error import ERROR_KPIS, cell_error, kpi_error
from twin.prediction.model import (
    ClusterPrediction,
    ClusterPredictor,
    PeriodModel,
    PredictConfig,
    kpi_values,
    simulated_cm,
)
from twin.prediction.schedule import due_periods, mark_predicted
from twin.prediction.service import (
    CALIBRATED,
    PredictionService,
    PredictionStats,
    calibrated_name,
    prediction_service,
    real_values,
    to_records,
)

__all__ = [
    "CALIBRATED",
    "ERROR_KPIS",
    "ClusterPrediction",
    "ClusterPredictor",
    "PeriodModel",
    "PredictConfig",
    "PredictionService",
    "PredictionStats",
    "calibrated_name",
    "cell_error",
    "due_periods",
    "kpi_error",
    "kpi_values",
    "mark_predicted",
    "prediction_service",
    "real_values",
    "simulated_cm",
    "to_records",
]
