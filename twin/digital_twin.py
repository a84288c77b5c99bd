"""``twin.Twin``: the mirrored network as one object, the core's entry point.

Everything that asks questions of the twin goes through this class: the runtime's own loop, the
optimiser, the API, a user's notebook. It holds the mirror of every cluster (from a worker's
checkpoints or built in memory), the worker's own prediction settings, and one simulator per
cluster, and answers three questions:

- :meth:`Twin.predict`: what the twin predicts for a cluster and period, computed exactly as the
  live worker computes what it publishes on ``ran.twin.predictions.v1``;
- :meth:`Twin.whatif`: what would change if CM changes were applied (baseline, changed value and
  delta per cell and KPI);
- :meth:`Twin.ingest`: telemetry records applied in memory through the worker's own validation,
  routing and prediction, so a twin can be built without Kafka;
- :meth:`Twin.fidelity` and :meth:`Twin.trust`: how far the twin's behaviour is from the network's
  (DT-BSM, ``docs/fidelity.md``) and whether it is trustworthy enough to act on now, and why not.

A ``Twin`` is not thread-safe: it reuses one simulator per cluster. A twin opened with
:meth:`Twin.from_state` reads the checkpoints and never writes them; :meth:`Twin.refresh` reads
them again.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson
from pydantic import BaseModel

from twin import topics
from twin.config import TwinSettings, load_settings
from twin.errors import NoDataError, UnknownCellError, UnknownClusterError
from twin.fidelity.stream import TrustVerdict, trust
from twin.ingest import IngestDecoder, Rejection
from twin.mirror.cluster import ClusterMirror
from twin.mirror.holding import Holding
from twin.mirror.identity import CONFLICT, IdentityIndex
from twin.mirror.identity_flow import deliver
from twin.mirror.store import CheckpointStore
from twin.prediction.model import (
    ENGINES,
    ClusterPrediction,
    ClusterPredictor,
    PeriodModel,
    PredictConfig,
    kpi_values,
    load_engine,
    reported_ues,
)
from twin.prediction.service import CALIBRATED, PredictionService, prediction_service
from twin.routing import HOLDING_PREFIX, ClusterRouter, holding_key
from twin.schemas import WireModel
from twin.sim.changes import normalise_changes
from twin.sim.cm import apply_cm_to_sector
from twin.sim.simulator import UeResult
from twin.sim2real.features import period_hour_of

if TYPE_CHECKING:
    from twin.sim2real.engine import Sim2RealEngine

__all__ = ["IngestReport", "RejectedRecord", "Twin", "WhatIf"]

DENSE_MODELS_KEPT = 4
"""Clusters whose denser what-if model (``ue_points``) a twin keeps: the optimiser searches one
cluster at a time, and each model holds its UE drop (about 15 MB for 21 cells at 12,000 points)."""

DENSE_SIZES_KEPT = 2
"""Distinct ``ue_points`` values whose models a twin keeps (each up to ``DENSE_MODELS_KEPT``
clusters), least recently used out first: a caller sweeping the density would otherwise keep a
model set per value it tried."""

_TOPIC_OF_MODEL: dict[type[WireModel], str] = {model: topic for topic, model in topics.SCHEMAS.items()
                                              if topic in topics.INGEST_TOPICS}


@dataclass(frozen=True)
class WhatIf:
    """A what-if on one cluster and period: per cell and KPI, the ``baseline`` (the twin's
    prediction of the period), the ``changed`` value with the CM ``changes`` applied, and the
    ``delta`` (changed - baseline). KPI names are TS 28.552 PM names, in their PM units."""

    cluster_id: str
    gp: int
    period_end: int
    model_version: str
    changes: dict[str, dict[str, Any]]
    baseline: dict[str, dict[str, float]]
    changed: dict[str, dict[str, float]]
    delta: dict[str, dict[str, float]]
    converged: bool
    ue_baseline: UeResult | None = field(default=None, repr=False)
    """Per-UE results of the baseline (serving cell, connected, RSRP, throughput; ``twin.sim.UeResult``)."""
    ue_changed: UeResult | None = field(default=None, repr=False)
    """Per-UE results with the changes applied."""
    cell_keys: tuple[str, ...] = ()
    """The simulated cells in row order (``UeResult.serving`` indexes it)."""
    out_of_range: dict[str, list[str]] = field(default_factory=dict)
    """With the Sim2Real engine: cells whose changed inputs are outside its training ranges."""

    def rows(self) -> list[dict[str, Any]]:
        """One row per cell and KPI: ``cell``, ``kpi``, ``baseline``, ``changed``, ``delta``."""
        return [{"cell": cell, "kpi": kpi, "baseline": self.baseline[cell][kpi], "changed": value,
                 "delta": self.delta[cell][kpi]}
                for cell, kpis in sorted(self.changed.items()) for kpi, value in sorted(kpis.items())
                if kpi in self.delta.get(cell, {})]


@dataclass(frozen=True)
class RejectedRecord:
    """A record :meth:`Twin.ingest` did not apply: its position in the input, topic and the reason
    (the same text a worker writes to ``ran.dlq.v1``)."""

    index: int
    topic: str | None
    reason: str
    error_class: str


@dataclass
class IngestReport:
    """What :meth:`Twin.ingest` did: records applied, records rejected with their reasons, the
    clusters touched and the periods predicted as a result."""

    applied: int = 0  # includes the held ones
    held: int = 0  # records put in the holding (cells outside the topology, DNs awaiting CM: ``Twin.unassigned``)
    rejected: list[RejectedRecord] = field(default_factory=list)
    clusters: set[str] = field(default_factory=set)
    predictions: list[ClusterPrediction] = field(default_factory=list)


class Twin:
    """The mirrored network: clusters, cells, predictions and what-ifs.

    ``mirrors`` are the clusters' mirrors (a mapping by cluster id or an iterable of
    ``ClusterMirror``); ``config`` the worker's settings (``TwinSettings``, or the path of its TOML
    file): the topology and the ``[predict]`` parameters. ``None`` takes the defaults and the
    ``TWIN_*`` environment, as the worker does.

    >>> twin = Twin()
    >>> twin.clusters
    ()
    >>> twin.predict("dublin-north")
    Traceback (most recent call last):
    ...
    twin.errors.UnknownClusterError: unknown cluster 'dublin-north'; the twin has none
    """

    def __init__(self, mirrors: Mapping[str, ClusterMirror] | Iterable[ClusterMirror] = (),
                 config: TwinSettings | Path | str | None = None) -> None:
        self.settings = _settings(config)
        self.predict_config = PredictConfig.from_settings(self.settings.predict)
        self._mirrors: dict[str, ClusterMirror] = {}
        items = mirrors.values() if isinstance(mirrors, Mapping) else mirrors
        for mirror in items:
            self._mirrors[mirror.cluster_id] = mirror
        self._topology = {c.id: tuple(c.cells) for c in self.settings.topology.clusters}
        self._router = ClusterRouter(self.settings.topology)
        self._predictor = ClusterPredictor(self.predict_config, load_engine(self.settings.predict))
        self._sim2real: Sim2RealEngine | None = self._predictor.engine
        # what-if models with another number of UE points, by that number, least recently used first
        self._dense: OrderedDict[int, ClusterPredictor] = OrderedDict()
        self._service: PredictionService | None = prediction_service(self.settings, self._predictor,
                                                                     timeout_grace_s=0.0)
        self._decoder: IngestDecoder | None = None
        self._store: CheckpointStore | None = None
        topology = self.settings.topology
        self._holding = Holding(topology.unassigned_max_cells, topology.unassigned_max_records)
        self._identity = IdentityIndex()  # what held nodes' DNs resolve to (``twin.mirror.identity``)

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def from_state(cls, state_dir: Path | str | None = None,
                   config: TwinSettings | Path | str | None = None) -> Twin:
        """Open the checkpoints a worker wrote, read-only (nothing is created, no lock is taken, a
        running worker is not disturbed).

        ``state_dir`` is the worker's checkpoint folder (``<state_dir>/<group_id>``, where ``twin
        mirror show`` reads); the worker's ``state_dir`` itself is accepted too, and ``None`` takes
        it from ``config``. ``config`` is the worker's settings (or its TOML file), so the twin
        predicts with the worker's own ``[predict]`` parameters and topology.

        >>> Twin.from_state("/nonexistent/state")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: no worker state in /nonexistent/state (a worker writes ... to <state_dir>/<group_id>)
        """
        settings = _settings(config)
        group = settings.kafka.group_id
        base = Path(state_dir) if state_dir is not None else settings.state_dir / group
        directory = base
        if not any(base.glob("partition-*.json")) and (base / group).is_dir():
            directory = base / group
        if not directory.is_dir():
            raise FileNotFoundError(f"no worker state in {base} (a worker writes its checkpoints to "
                                    f"<state_dir>/<group_id>)")
        twin = cls(config=settings)
        twin._store = CheckpointStore(directory, read_only=True)
        twin.refresh()
        return twin

    def refresh(self) -> None:
        """Read the worker's checkpoints again (a twin opened with :meth:`from_state` only)."""
        if self._store is None:
            raise RuntimeError("this twin was built in memory; only a twin opened with Twin.from_state refreshes")
        states = [self._store.load(p) for p in self._store.partitions()]
        self._mirrors = {cid: mirror for state in states for cid, mirror in state.clusters.items()}
        self._holding = Holding(max_keys=1 << 62, max_records=self.settings.topology.unassigned_max_records)
        self._identity = IdentityIndex()
        for state in states:
            self._holding.held.update(state.unassigned.held)
            self._identity.nodes.update(state.identity.nodes)

    # -- the network -----------------------------------------------------------------------
    @property
    def clusters(self) -> tuple[str, ...]:
        """Cluster ids: those of the topology and those the mirror holds data for."""
        return tuple(sorted({*self._mirrors, *self._topology}))

    def cells(self, cluster: str) -> tuple[str, ...]:
        """Cell keys of ``cluster``: those the topology lists and those the mirror holds."""
        self._check_cluster(cluster)
        mirror = self._mirrors.get(cluster)
        return tuple(sorted({*self._topology.get(cluster, ()), *(mirror.cells if mirror else ())}))

    def mirror(self, cluster: str) -> ClusterMirror:
        """The mirror of ``cluster`` (the twin's own state: read it, do not change it)."""
        self._check_cluster(cluster)
        mirror = self._mirrors.get(cluster)
        if mirror is None:
            mirror = self._mirrors[cluster] = ClusterMirror(cluster)
        return mirror

    @property
    def unassigned(self) -> dict[str, dict[str, Any]]:
        """Cells (and managed objects without a cell, as ``dn:<DN>``) that report telemetry but are
        in no cluster of the topology: records received by kind, held, evicted, first and last event
        time. Their telemetry is held, not simulated (``twin.mirror.holding``)."""
        return self._holding.summary()

    def cluster_of(self, cell: str) -> str:
        """The cluster a cell belongs to: the one whose mirror holds it, else the topology's."""
        for cid, mirror in self._mirrors.items():
            if cell in mirror.cells:
                return cid
        for cid, cells in self._topology.items():
            if cell in cells:
                return cid
        raise UnknownCellError(f"unknown cell {cell!r}: in no cluster of the twin")

    def periods(self, cluster: str, gp: int | None = None) -> list[int]:
        """Period ends (epoch s) any cell of ``cluster`` reported PM for, oldest first."""
        mirror = self.mirror(cluster)
        gps = [gp] if gp is not None else sorted({g for c in mirror.cells.values() for g in c.periods})
        return sorted({end for c in mirror.cells.values() for g in gps for end in c.periods.get(g, {})})

    # -- questions -------------------------------------------------------------------------
    def predict(self, cluster: str, period_end: int | float | datetime | None = None,
                gp: int | None = None, model: str | None = None) -> ClusterPrediction:
        """The twin's KPIs of every simulated cell of ``cluster`` for one period: the value the live
        worker publishes for it (same CM in effect at the period end, same traffic scaling to the
        reported ``RRC.ConnMean``, same model version), recomputed from the mirror.

        ``period_end`` (epoch s or an aware datetime) defaults to the newest period reported;
        ``gp`` (granularity period, s) to the one reported for that period (the shortest if
        several). A period no cell reported takes the traffic of the latest period before it.
        ``calibrated`` holds the gap learners' calibrated values of the period as the worker (or
        :meth:`ingest`) stored them in the mirror, for the cells that have them.

        ``model`` chooses the engine: ``"simulation"``, or ``"sim2real"`` (the simulated KPIs with
        the Sim2Real model's ``DRB.UEThpDl`` and ``RRU.PrbTotDl`` in their place; cells whose inputs
        are outside its training ranges are listed in ``out_of_range``); ``None`` takes
        ``[predict] engine``.
        """
        engine = self._engine(model)
        state = self._period_model(cluster, period_end, gp)
        values = kpi_values(state.result)
        out = self._predictor.engine_output(state, values, engine, self.mirror(cluster))
        if out is not None:
            values = out.values
        mirror = self.mirror(cluster)
        calibrated: dict[str, dict[str, float]] = {}
        for cell in values:
            stored = mirror.cells[cell].predicted.get(state.gp, {}) if cell in mirror.cells else {}
            cal = {name[:-len(CALIBRATED)]: per[state.period_end] for name, per in stored.items()
                   if name.endswith(CALIBRATED) and state.period_end in per}
            if cal:
                calibrated[cell] = cal
        return ClusterPrediction(cluster, state.gp, state.period_end, values, self._version(engine),
                                 state.rebuilt, state.ue_scale, calibrated,
                                 out_of_range=None if out is None else out.out_of_range)

    def whatif(self, cluster: str, changes: Any, period_end: int | float | datetime | None = None,
               gp: int | None = None, model: str | None = None, ue_points: int | None = None) -> WhatIf:
        """What would change in ``cluster`` for one period if ``changes`` were applied (nothing is
        applied): per cell and KPI the baseline (:meth:`predict`), the changed value and the delta.

        ``changes``: ``CmChangeRequest`` objects, ``{"cellKey", "attribute", "to"}`` mappings (one
        or a list), or ``{cell: {attribute: value}}``, in TS 28.541 names and units
        (``twin.sim.cm``). An unknown cell, a cell of another cluster, an attribute the model cannot
        simulate or a value out of range raises ``ValueError`` naming them. ``model`` chooses the
        engine as in :meth:`predict`; with ``"sim2real"`` the per-UE throughputs are scaled by their
        serving cell's ratio of the two engines' ``DRB.UEThpDl`` (``twin.sim2real.engine``).

        ``ue_points``: the UE points of the what-if's model (default ``[predict] n_ues``, the
        prediction's own model, whose result is then the baseline). A denser drop costs time in
        proportion but its UE-level figures (``ue_baseline``, ``ue_changed``: a 5th percentile in
        particular) depend less on where the twin happened to drop its points; the optimiser uses
        one (``twin.optimize``). The same UE draw (``[predict] seed``) for baseline and change.
        """
        engine = self._engine(model)
        predictor = self._what_if_predictor(ue_points)
        norm = normalise_changes(changes)
        mirror = self.mirror(cluster)
        for cell in norm:
            if cell not in mirror.cells and cell not in self._topology.get(cluster, ()):
                try:
                    owner = self.cluster_of(cell)
                except UnknownCellError:
                    raise UnknownCellError(f"unknown cell {cell!r}: not in cluster {cluster!r}") from None
                raise UnknownCellError(f"cell {cell!r} is in cluster {owner!r}, not {cluster!r}")
        state = self._period_model(cluster, period_end, gp, predictor)
        simulated = state.sim.cluster.cell_keys
        for cell in norm:
            if cell not in simulated:
                raise UnknownCellError(f"cell {cell!r} of cluster {cluster!r} has no position in its CM "
                                       "(lat/lon or x/y): the twin does not simulate it")
        result = state.sim.whatif(norm)
        baseline, changed = kpi_values(result.baseline), kpi_values(result.result)
        ue_baseline, ue_changed = result.baseline.ue, result.result.ue
        flags: dict[str, list[str]] = {}
        if engine is not None:
            hour = period_hour_of(state.period_end, state.gp)
            sectors = state.sim.cluster.sectors
            ues = reported_ues(mirror, state)
            base_out = engine.apply(cluster, result.baseline, baseline, hour, ues, sectors)
            moved = tuple(apply_cm_to_sector(s, norm.get(s.cell_key, {}), strict=True) for s in sectors)
            new_out = engine.apply(cluster, result.result, changed, hour, ues, moved, reference=sectors)
            baseline, changed, flags = base_out.values, new_out.values, new_out.out_of_range
            ue_baseline, ue_changed = base_out.ue, new_out.ue
        delta = {cell: {kpi: value - baseline[cell][kpi] for kpi, value in kpis.items() if kpi in baseline[cell]}
                 for cell, kpis in changed.items()}
        return WhatIf(cluster, state.gp, state.period_end, self._version(engine), norm,
                      baseline, changed, delta, bool(result.result.converged), ue_baseline, ue_changed,
                      tuple(result.result.cell_keys), flags)

    def fidelity(self, cluster: str) -> list[dict[str, Any]]:
        """The cluster's latest DT-BSM records, oldest first (the worker's, or :meth:`ingest`'s):
        ``value`` (DTBSM_sup), ``lower``/``upper``, ``coverage``, ``restricted``, ``states``,
        ``actions``, samples and seconds (``twin.schemas.Fidelity`` in snake_case on the wire)."""
        return [dict(r) for r in self.mirror(cluster).fidelity]

    def trust(self, cluster: str) -> TrustVerdict:
        """The trust gate the CM guard reads: is ``cluster``'s twin trustworthy enough to act on now?
        Trusted only when its latest DT-BSM's upper bound is at most ``[fidelity] trust_tau``
        (default tau) and its coverage at least ``trust_coverage``; ``reasons`` names each failing
        rule with its values (``twin.fidelity.stream.trust``)."""
        s = self.settings.fidelity
        records = self.mirror(cluster).fidelity
        return trust(records[-1] if records else None, s.trust_tau if s.trust_tau is not None else s.threshold(),
                     s.trust_coverage)

    def calibrated_error(self, cluster: str, kpi: str = "DRB.UEThpDl") -> float | None:
        """The cluster's rolling calibrated error of ``kpi``: the mean over its cells of the gap
        learners' ``mapeCalibrated`` (a fraction); None before any cell has learned a period. The
        CM guard reads it (``max_calibrated_error``) and the optimiser reports it as uncertainty."""
        from twin.gap.tracker import GapTracker

        state = self.mirror(cluster).gap_state
        if state is None:
            return None
        figures = GapTracker.from_bytes(state, self.settings.gap).figures()
        values = [f[kpi]["mapeCalibrated"] for f in figures.values() if kpi in f and f[kpi].get("n", 0) > 0]
        return sum(values) / len(values) if values else None

    # -- feeding ---------------------------------------------------------------------------
    def ingest(self, records: Iterable[Any], topic: str | None = None) -> IngestReport:
        """Apply telemetry records to the in-memory mirror through the worker's validation, cluster
        routing and prediction; invalid records are reported with the worker's reason, not applied.

        A record is a schema object (``PmCellRecord``, ``CmSnapshot``, ``CmNotification``,
        ``MrEvent``, ``PmRelationRecord``), a dict in wire form (camelCase; its topic is recognised
        from its fields unless ``topic`` is given), bytes or str of JSON with ``topic``, or a
        published record (anything with ``topic``, ``key`` and ``value``, such as the emulator's;
        a ``None`` value on the CM snapshot topic is a tombstone). Nothing is written anywhere.

        Cell identity follows the worker's steps (``twin.mirror.identity_flow.deliver``): PM whose
        key the file reader derived from its DN waits in the holding by node until CM names the
        cell, then is applied under the real key (in this call or a later one); records refused for
        an identity conflict are in ``rejected`` (``identity_conflict``), at the index of the input
        record whose ingest refused them.
        """
        if self._decoder is None:
            self._decoder = IngestDecoder(self.settings.ingest)
        decoder = self._decoder
        report = IngestReport()
        for index, record in enumerate(records):
            try:
                rec_topic, key, value = _wire(record, topic)
            except ValueError as exc:
                report.rejected.append(RejectedRecord(index, topic, str(exc), "input"))
                continue
            out = decoder.decode(rec_topic, key, value)
            if isinstance(out, Rejection):
                report.rejected.append(RejectedRecord(index, rec_topic, out.reason, out.error_class))
                continue
            report.applied += 1
            if out[0] == "cmdel":  # a tombstone names only a DN, which may be in any cluster
                for mirror in self._mirrors.values():
                    mirror.apply(out)
                continue
            owner = self._router(out[1])
            # outside the topology: held per cell, never simulated; a record that waits for its
            # identity (derived key, key-less CM) is held by node and resolved through CM
            dest = owner if owner is not None else HOLDING_PREFIX + holding_key(
                out[1], cast(dict[str, Any], out[2]).get("dn") if out[0] != "mr" else None)
            done = deliver({dest: [out]}, index=self._identity, holding=self._holding, route=self._router,
                           cluster=self.mirror_or_new)
            report.held += done.held
            report.clusters |= done.clusters
            report.rejected += [RejectedRecord(index, rec_topic, f"cell {held_key!r} is in no cluster of the "
                                               "topology and its holding is full", "unassigned_overflow")
                                for held_key, overflow, _ in done.overflow for _ in overflow]
            report.rejected += [RejectedRecord(index, rec_topic, f"cell identity conflict: {reason}", CONFLICT)
                                for _, reason in done.refused]
        if self._service is not None:
            for cluster in sorted(report.clusters):
                report.predictions += self._predict_due(self._mirrors[cluster])
        return report

    def mirror_or_new(self, cluster: str) -> ClusterMirror:
        """The mirror of ``cluster``, created empty when the twin has none yet."""
        mirror = self._mirrors.get(cluster)
        if mirror is None:
            mirror = self._mirrors[cluster] = ClusterMirror(cluster)
        return mirror

    # -- internals -------------------------------------------------------------------------
    def _engine(self, model: str | None) -> Sim2RealEngine | None:
        """The engine ``model`` (or ``[predict] engine``) names; the Sim2Real model loads once."""
        choice = self.settings.predict.engine if model is None else model
        if choice not in ENGINES:
            raise ValueError(f"model={model!r} is not one of {', '.join(map(repr, ENGINES))}")
        if choice == "simulation":
            return None
        if self._sim2real is None:
            self._sim2real = self._predictor.engine or load_engine(self.settings.predict, force=True)
        if self._sim2real is None:
            raise ValueError("model='sim2real' needs a Sim2Real model: set [predict] sim2real_model "
                             "(TWIN_PREDICT__SIM2REAL_MODEL) to its directory")
        return self._sim2real

    def _version(self, engine: Sim2RealEngine | None) -> str:
        return self.predict_config.model_version + (f"+{engine.version}" if engine is not None else "")

    def _predict_due(self, mirror: ClusterMirror) -> list[ClusterPrediction]:
        assert self._service is not None
        return self._service.on_applied(mirror)

    def _check_cluster(self, cluster: str) -> None:
        if cluster not in self._mirrors and cluster not in self._topology:
            known = ", ".join(repr(c) for c in self.clusters[:20]) or "none"
            raise UnknownClusterError(f"unknown cluster {cluster!r}; the twin has {known}")

    def _what_if_predictor(self, ue_points: int | None) -> ClusterPredictor:
        """The prediction's model, or one like it with ``ue_points`` UE points (built once, cached for
        the ``DENSE_MODELS_KEPT`` clusters and the ``DENSE_SIZES_KEPT`` values used last)."""
        if ue_points is None:
            return self._predictor
        if isinstance(ue_points, bool) or not isinstance(ue_points, int) or ue_points < 1:
            raise ValueError(f"ue_points={ue_points!r} must be an integer >= 1 (UE points of the what-if's model)")
        if ue_points == self.predict_config.n_ues:
            return self._predictor
        dense = self._dense.get(ue_points)
        if dense is None:
            dense = self._dense[ue_points] = ClusterPredictor(replace(self.predict_config, n_ues=ue_points),
                                                              self._predictor.engine, max_models=DENSE_MODELS_KEPT)
            while len(self._dense) > DENSE_SIZES_KEPT:
                self._dense.popitem(last=False)
        else:
            self._dense.move_to_end(ue_points)
        return dense

    def _period_model(self, cluster: str, period_end: int | float | datetime | None,
                      gp: int | None, predictor: ClusterPredictor | None = None) -> PeriodModel:
        mirror = self.mirror(cluster)
        end, gp = self._period(mirror, period_end, gp)
        state = (predictor or self._predictor).period_model(mirror, gp, end)
        if state is None:
            raise NoDataError(f"cluster {cluster!r} has no cell with a position in its CM (lat/lon or x/y): "
                              "nothing to simulate yet")
        return state

    @staticmethod
    def _period(mirror: ClusterMirror, period_end: int | float | datetime | None,
                gp: int | None) -> tuple[int, int]:
        if gp is not None and (isinstance(gp, bool) or not isinstance(gp, int) or gp <= 0):
            raise ValueError(f"gp={gp!r} is not a granularity period in seconds (a positive integer)")
        reported: dict[int, set[int]] = {}
        for cell in mirror.cells.values():
            for g, ends in cell.periods.items():
                if gp is None or g == gp:
                    reported.setdefault(g, set()).update(ends)
        if period_end is None:
            if not reported:
                which = f" with gp={gp}" if gp is not None else ""
                raise NoDataError(f"cluster {mirror.cluster_id!r} has no PM period{which} yet; give period_end")
            newest = max(max(ends) for ends in reported.values())
            return newest, min(g for g, ends in reported.items() if newest in ends)
        end = _epoch(period_end)
        if gp is None:
            having = sorted(g for g, ends in reported.items() if end in ends)
            if having:
                gp = having[0]
            elif reported:
                gp = min(reported)
            else:
                raise NoDataError(f"cluster {mirror.cluster_id!r} has no PM yet; give gp (the granularity period)")
        of_gp = reported.get(gp)
        if not of_gp or end < min(of_gp):  # nothing observed yet: the period would be simulated without a UE
            first = (f"the first is {min(of_gp)}" if of_gp else f"PM reported with gp={', '.join(map(str, reported))}"
                     if reported else "no PM reported yet")
            raise NoDataError(f"cluster {mirror.cluster_id!r} has no PM period with gp={gp} at or before "
                              f"period_end={end}; {first}")
        return end, gp


def _settings(config: TwinSettings | Path | str | None) -> TwinSettings:
    if config is None:
        return TwinSettings()
    if isinstance(config, TwinSettings):
        return config
    if isinstance(config, str | Path):
        return load_settings(Path(config))
    raise TypeError(f"config must be TwinSettings, the path of a TOML file or None, not {type(config).__name__}")


def _epoch(value: int | float | datetime) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"period_end={value.isoformat()} has no time zone; give an aware datetime (UTC)")
        return round(value.timestamp())
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"period_end={value!r} is not an epoch time in seconds or a datetime")
    return round(value)


_TOPIC_SIGNATURES: tuple[tuple[str, frozenset[str]], ...] = (
    (topics.PM_RELATION, frozenset({"granularityPeriodS", "targetCellKey"})),
    (topics.PM_CELL, frozenset({"granularityPeriodS", "values"})),
    (topics.CM_NOTIFICATIONS, frozenset({"notificationType"})),
    (topics.CM_SNAPSHOT, frozenset({"dn", "attributes", "observedAt"})),
    (topics.MR_UE, frozenset({"eventId", "serving"})),
)


def _wire(record: Any, topic: str | None) -> tuple[str, bytes | None, bytes | None]:
    """(topic, key, value bytes) of one record given to ``Twin.ingest``."""
    if isinstance(record, WireModel):
        model_topic = _TOPIC_OF_MODEL.get(type(record))
        if model_topic is None:
            raise ValueError(f"a {type(record).__name__} is not telemetry (ingest takes "
                             f"{', '.join(sorted(m.__name__ for m in _TOPIC_OF_MODEL))})")
        return topic or model_topic, None, record.to_json_bytes()
    if isinstance(record, BaseModel):
        raise ValueError(f"a {type(record).__name__} is not a telemetry schema object")
    if isinstance(record, Mapping):
        if topic is None:
            keys = set(record)
            topic = next((t for t, needed in _TOPIC_SIGNATURES if needed <= keys), None)
            if topic is None:
                raise ValueError(f"cannot tell the topic of a record with fields {sorted(keys)[:12]}; give topic=")
        try:
            return topic, None, orjson.dumps(record)
        except TypeError as exc:
            raise ValueError(f"record is not JSON-serialisable: {exc}") from None
    if isinstance(record, bytes | bytearray | str):
        if topic is None:
            raise ValueError("a raw JSON record needs topic=")
        return topic, None, record.encode() if isinstance(record, str) else bytes(record)
    if hasattr(record, "topic") and hasattr(record, "value"):
        key = getattr(record, "key", None)
        return str(record.topic), key, record.value
    raise ValueError(f"a {type(record).__name__} is not a telemetry record")
