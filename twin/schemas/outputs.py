"""What the twin publishes: KPI predictions and alerts."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from twin.schemas.base import CellKey, UtcDateTime, Uuid, WireModel

__all__ = ["Alert", "AlertType", "Fidelity", "Prediction", "Resync", "Severity"]


class Prediction(WireModel):
    """A predicted KPI for one cell, period and horizon, under the same 3GPP name as the PM value."""

    schema_version: Literal["1"] = "1"
    cell_key: CellKey
    cluster_id: str | None = None
    period_end: UtcDateTime | None = None
    horizon_s: int = Field(ge=0)
    kpi: str = Field(min_length=1)
    predicted: float
    # the raw prediction corrected by the gap learners (``twin.gap``): raw twin plus the residual
    # learned online from this cell's earlier periods; absent while gap learning is disabled
    calibrated: float | None = None
    p10: float | None = None
    p90: float | None = None
    model_version: str = Field(min_length=1)
    # the inputs of a Sim2Real prediction outside the model's training ranges (``twin.sim2real``):
    # the value is an extrapolation; absent when the simulation engine alone predicted it
    out_of_range: list[str] | None = None


class Severity(StrEnum):
    """ITU-T X.733 perceived severity."""

    CRITICAL = "CRITICAL"
    MAJOR = "MAJOR"
    MINOR = "MINOR"
    WARNING = "WARNING"
    INDETERMINATE = "INDETERMINATE"
    CLEARED = "CLEARED"


class AlertType(StrEnum):
    KPI_DEGRADATION = "KPI_DEGRADATION"
    GUARD_TRIP = "GUARD_TRIP"
    DATA_GAP = "DATA_GAP"
    CM_DRIFT = "CM_DRIFT"
    TWIN_DIVERGENCE = "TWIN_DIVERGENCE"
    TWIN_RESYNC = "TWIN_RESYNC"  # a resync applied (cleared once verified), failed or rolled back
    STALE_CM = "STALE_CM"  # a cell's CM not observed for longer than configured (event time)
    UNKNOWN_CELL = "UNKNOWN_CELL"  # telemetry of a cell the topology does not list (held, not simulated)
    CM_ROLLED_BACK = "CM_ROLLED_BACK"  # a pushed CM change was rolled back (the network contradicted the twin)
    CM_FAILED = "CM_FAILED"  # a CM change failed: device refusal, transport loss, a value nobody asked for
    # DATA_GAP also covers a replaced broker log: the mirror stage resumed from the new log's start


class Alert(WireModel):
    """An alarm of the twin (``ran.alerts.v1``, keyed by cell, else by cluster).

    Most alerts concern a cell (``cell_key``); a few concern the runtime's view of a whole cluster
    (``cluster_id`` without a cell: telemetry that may have been lost when the broker's log was
    replaced, for instance). At least one of the two is set.
    """

    schema_version: Literal["1"] = "1"
    alert_id: Uuid
    raised_at: UtcDateTime
    cell_key: CellKey | None = None
    cluster_id: str | None = Field(default=None, min_length=1, max_length=128)
    severity: Severity
    type: AlertType
    kpis: dict[str, float] = Field(default_factory=dict)
    related_change_id: Uuid | None = None
    text: str | None = None
    # ITU-T X.733 / 3GPP TS 32.111 shape: the probable cause, and for a clear (severity CLEARED,
    # same alert id as the raise) when the condition ended
    probable_cause: str | None = Field(default=None, max_length=256)
    cleared_at: UtcDateTime | None = None

    @model_validator(mode="after")
    def _about_something(self) -> Alert:
        if self.cell_key is None and self.cluster_id is None:
            raise ValueError("an alert names a cellKey or a clusterId")
        return self


class Resync(WireModel):
    """A resync of the twin's model of one cluster (``ran.twin.resyncs.v1``, keyed by cluster): one
    record per change of its status (``twin.prediction.resync``), the latest one wins."""

    schema_version: Literal["1"] = "1"
    resync_id: Uuid
    cluster_id: str = Field(min_length=1, max_length=128)
    cells: list[CellKey]
    status: Literal["pending", "verifying", "applied", "rolled_back", "failed"]
    trigger: dict[str, object]  # sources, episode start (epoch s), the values that raised it
    at: int = Field(description="period end (epoch s) of the trigger; the fitted calibration applies from the next")
    gp: int = Field(gt=0)
    parameters_before: dict[str, object] | None = None  # twin.resync.Calibration.to_dict()
    parameters_after: dict[str, object] | None = None
    # per cell: gainDb, azimuthDeg, trafficScale, interferenceDb; "cluster": pathlossDb
    change: dict[str, dict[str, float]] | None = None
    error_before: float | None = None  # the fit's weighted error on its evidence, before and after
    error_after: float | None = None
    verify: dict[str, float] | None = None  # periods, errorOld, errorNew (summed change_error; mean twin error)
    affected: list[CellKey] = Field(default_factory=list)  # cells whose gap learners were reset
    rebased: dict[str, dict[str, float]] | None = None  # per other cell and KPI: its learners' residual shift
    baseline: dict[str, dict[str, float]] | None = None  # per resynced cell and KPI: its residual before the episode
    fit_seconds: float | None = None
    evaluations: int | None = None  # model evaluations of the fit
    reason: str | None = None
    alert_cleared: bool | None = None  # the alert of a failed or rolled-back resync was cleared
    # the cluster's DT-BSM (value, lower, upper, coverage, periodEnd, comparedPairs) latest at the
    # trigger, and the first computed after the resync's calibration took effect that compares as many
    # state-action pairs, or else the first n_min periods after (``twin.prediction.service``)
    dtbsm_before: dict[str, float] | None = None
    dtbsm_after: dict[str, float] | None = None


class UeLevelFidelity(WireModel):
    """The UE-level DT-BSM of a cluster's cells (``twin.fidelity.ue_level``): per cell, how far the
    twin's distribution of its UEs' SS-SINR moves from the network's, period to period."""

    value: float | None = Field(default=None, ge=0, description="the worst cell's DTBSM_sup (null before both "
                                "sides have counted a transition)")
    cells: dict[str, float] = Field(default_factory=dict, description="per cell: its DTBSM_sup")
    worst_cell: str | None = None
    states: int = Field(ge=1, description="UE states (SS-SINR bins)")


class Fidelity(WireModel):
    """The DT-BSM of one cluster's twin (``ran.twin.fidelity.v1``, keyed by cluster): how far the twin's
    behaviour (MDP over encoded cell states and CM change actions) is from the real network's, with
    its confidence interval and data coverage (``docs/fidelity.md``)."""

    schema_version: Literal["1"] = "1"
    cluster_id: str = Field(min_length=1, max_length=128)
    period_end: int = Field(description="period end (epoch s) of the newest period counted")
    gp: int = Field(gt=0)
    value: float = Field(ge=0, description="DTBSM_sup of the point estimate (reward units / (1 - gamma))")
    lower: float = Field(ge=0, description="lower end of the interval: above tau is confident drift")
    upper: float = Field(ge=0, description="upper end of the interval: the twin may be this far")
    coverage: float = Field(ge=0, le=1, description="share of (visited state, action) pairs with n_min real samples")
    coverage_used: float = Field(ge=0, le=1, description="the same over the actions used")
    restricted: bool = Field(description="(state, action) pairs without n_min real samples were left out of the "
                             "max over actions (spec 9.2: computed over A_cov(x))")
    restricted_pairs: int = Field(default=0, ge=0, description="(visited state, used action) pairs left out of the "
                                  "max (a state with no covered action keeps every used one)")
    compared_pairs: int | None = Field(default=None, ge=0, description="(visited state, action) pairs in the max "
                                       "with n_min samples on both sides: the point value compares only these, "
                                       "a pair below n_min on a side takes the other side's estimate")
    n_min: float = Field(gt=0)
    gamma: float = Field(gt=0, lt=1)
    tau: float = Field(gt=0)
    firing: bool = Field(description="lower > tau for the configured number of consecutive computations")
    consecutive_above: int = Field(ge=0)
    states: list[int] = Field(description="encoder states the computation used (visited by either side)")
    actions: list[str] = Field(description="action classes the computation used")
    cells: dict[str, float] = Field(default_factory=dict, description="per cell: largest lower-end diagonal over "
                                    "its recent real states (its contribution)")
    cells_value: dict[str, float] = Field(default_factory=dict, description="per cell: the point estimate's "
                                          "diagonal at its latest real state (where its own behaviour stands now)")
    early: bool = Field(default=False, description="computed before its period: the TV bound rose by more than "
                        "tv_warning_rise since the previous computation (spec 9.3's early warning)")
    tv_bound: float | None = Field(default=None, ge=0, description="the recursive TV bound (spec 4) of the point "
                                   "estimate's DTBSM_sup at this computation (>= value)")
    tv_closed_form: float | None = Field(default=None, ge=0, description="its closed form (>= tv_bound)")
    real_samples: int = Field(ge=0)
    twin_samples: int = Field(ge=0)
    whatifs: int = Field(ge=0, description="twin what-ifs since the previous computation")
    whatif_seconds: float = Field(ge=0)
    compute_seconds: float = Field(ge=0)
    iterations: int | None = None
    early_by: Literal["tv", "ue"] | None = Field(default=None, description="what brought an early computation "
                                                 "forward: the TV bound's rise or the UE-level value's change")
    ue_level: UeLevelFidelity | None = Field(default=None, description="the UE-level DT-BSM at this computation")
