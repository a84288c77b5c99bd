"""A resync of one cluster, from the episode that asks for it to the calibration it leaves.

Lifecycle of a resync record (kept in the cluster's mirror, ``ClusterMirror.resyncs``, so it is
checkpointed and a restarted worker picks up a resync it had not finished):

``pending``    an episode opened (``TriggerEvent`` raised); predictions of the cluster's later
               periods wait for it (so they are the same however long the fit takes);
``verifying``  the fit lowered the error on its evidence: its calibration applies from the period
               after the trigger, and the next ``verify_periods`` periods compare the twin's error
               with it and with the calibration before;
``applied``    the error was lower with it: kept;
``rolled_back`` the error was higher with it: the calibration before applies again;
``failed``     the fit did not lower the error on its evidence (or could not run): nothing changes.

A job (:class:`ResyncJob`) is plain data made from the mirror (the CM and the cells' reported
values), so it can run in another thread: it builds its own simulator.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from twin.config import ResyncSettings
from twin.gap.error import cell_error
from twin.gap.target import GAP_KPIS, level_means, residual
from twin.gap.tracker import GapTracker
from twin.mirror.cluster import ClusterMirror
from twin.mirror.radio_map import RadioChange
from twin.prediction.model import ClusterPredictor, PredictConfig, calibration_as_of, kpi_values, simulated_cm
from twin.resync.alerts import resync_alert
from twin.resync.calibration import Calibration
from twin.resync.fit import (
    Evidence,
    FitResult,
    RadioPlaces,
    change_error,
    fit_change,
    predict_window,
    radio_excess,
    radio_visible,
)
from twin.resync.trigger import TriggerEvent
from twin.schemas import Alert
from twin.sim.kpis import CONN
from twin.sim.mirrored import cluster_from_mirror, cluster_origin, latlon_to_xy
from twin.sim.simulator import Simulator

if TYPE_CHECKING:
    from twin.sim2real.engine import Sim2RealEngine

__all__ = ["AFFECTED_CHANGE", "ResyncCoordinator", "ResyncJob", "ResyncOutcome", "real_values", "resync_id"]

#: a cell whose predicted connected UEs the new calibration changes by more than this share has
#: its gap learners reset
AFFECTED_CHANGE = 0.1


def real_values(mirror: ClusterMirror, gp: int, end: int) -> dict[str, dict[str, float]]:
    """What the cluster's cells reported for the period ``(gp, end)``, for the KPIs the gap learners
    track (the mean SS-RSRP and SS-SINR from the ``L1M.SS-RSRP.BinX`` and ``MR.NRScSSSINR.BinX``
    histograms)."""
    out: dict[str, dict[str, float]] = {}
    for key, cell in mirror.cells.items():
        series = cell.pm.get(gp)
        if not series:
            continue
        at = {name: per[end] for name, per in series.items() if end in per}
        values = {k: at[k] for k in GAP_KPIS if k in at}
        values.update(level_means(at, at))
        if values:
            out[key] = values
    return out


def radio_places(cm: Mapping[str, Mapping[str, Any]], radio: Mapping[str, RadioChange]) -> dict[str, RadioPlaces]:
    """Per-place changes (``twin.mirror.radio_map``) in the simulator's frame of the CM view ``cm``
    (``twin.sim.mirrored.cluster_origin``), each weighted by the reports behind it."""
    if not radio:
        return {}
    lat0, lon0 = cluster_origin(cm)
    out = {}
    for cell, ch in radio.items():
        x, y = latlon_to_xy(ch.lat, ch.lon, lat0, lon0)
        out[cell] = RadioPlaces(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), ch.delta_db,
                                1.0 / (1.0 / ch.before_n + 1.0 / ch.after_n))
    return out


def resync_id(group: str, cluster_id: str, started: int, cells: tuple[str, ...]) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"twin:resync:{group}:{cluster_id}:{started}:{','.join(cells)}"))


@dataclass(frozen=True)
class ResyncOutcome:
    fit: FitResult | None
    affected: tuple[str, ...]  # cells whose raw prediction the new calibration changes materially
    error: str | None = None  # why the fit could not run
    # the other cells: per KPI the shift of their learners' residual (``GapTracker.rebase``)
    shifts: Mapping[str, Mapping[str, float]] | None = None


@dataclass(frozen=True)
class ResyncJob:
    """Inputs of one fit: ``cm`` the cluster's simulated CM at ``at``, ``evidence`` the periods
    before and since the episode began, ``start`` the calibration in force."""

    record_id: str
    cluster_id: str
    cells: tuple[str, ...]
    at: int
    cm: Mapping[str, Mapping[str, Any]]
    evidence: tuple[Evidence, ...]
    start: Calibration
    config: PredictConfig
    # per measured cell, its SS-RSRP change at each place heard before and in the period ``at``
    # (``twin.mirror.radio_map``; empty without located UE reports)
    radio: Mapping[str, RadioChange] = field(default_factory=dict)

    def places(self) -> dict[str, RadioPlaces]:
        return radio_places(self.cm, self.radio)

    def run(self) -> ResyncOutcome:
        """Fit (seconds); never raises: a failure is an outcome."""
        try:
            cluster = cluster_from_mirror(self.cm, cluster_id=self.cluster_id, scenario=self.config.scenario)
            sim = self.config.simulator(cluster)
            home = sim.evaluate().ue.serving
            cells = tuple(c for c in self.cells if c in cluster.cell_keys)
            if not cells:
                return ResyncOutcome(None, (), "none of the episode's cells is simulated (no position in CM)")
            fit = fit_change(sim, self.evidence, cells, self.start, home=home, radio=self.places())
            affected, shifts = _affected(sim, home, self.start, fit.after, self.evidence)
            return ResyncOutcome(fit, affected, shifts=shifts)
        except (ValueError, ArithmeticError) as exc:
            return ResyncOutcome(None, (), f"{type(exc).__name__}: {exc}")


def _affected(sim: Simulator, home: npt.NDArray[np.int64], before: Calibration, after: Calibration,
              evidence: tuple[Evidence, ...]) -> tuple[tuple[str, ...], dict[str, dict[str, float]]]:
    """The cells whose predicted connected UEs the new calibration changes by more than
    ``AFFECTED_CHANGE`` (their learners are reset), and for the others the shift of each KPI's
    residual (their learners are re-based), on the last period of the evidence."""
    last = [e for e in evidence if e.changed][-1:]
    old = kpi_values(predict_window(sim, before, home, last)[0])
    new = kpi_values(predict_window(sim, after, home, last)[0])
    affected, shifts = [], {}
    for key, values in old.items():
        a, b = values.get(CONN, 0.0), new.get(key, {}).get(CONN, 0.0)
        if abs(b - a) > AFFECTED_CHANGE * max(abs(a), 1.0):
            affected.append(key)
            continue
        shift = {k: round(-residual(k, values[k], new[key][k]), 6) for k in GAP_KPIS
                 if k in values and k in new.get(key, {})}
        shift = {k: v for k, v in shift.items() if v}
        if shift:
            shifts[key] = shift
    return tuple(affected), shifts


class ResyncCoordinator:
    """Plans, runs (inline, or through ``runner`` beside a worker's loop), applies and verifies the
    resyncs of the clusters a prediction service predicts. Transport-free: what it decides is in
    the mirror, and the records to publish wait in ``outbox``."""

    def __init__(self, settings: ResyncSettings, config: PredictConfig, group: str = "twin",
                 engine: Sim2RealEngine | None = None) -> None:
        self.settings = settings
        self.config = config
        self.group = group
        # predicts with the calibration before, for verification, with the service's own engine
        self.shadow = ClusterPredictor(config, engine)
        self.runner: Callable[[ResyncJob, ClusterMirror], None] | None = None
        self.running: set[str] = set()
        self.outbox: list[tuple[str, dict[str, Any]]] = []
        self.alerts: list[Alert] = []  # resync outcome alerts to publish (``twin.resync.resync_alert``)
        self.finished = 0

    # -- planning ----------------------------------------------------------------------------
    def plan(self, mirror: ClusterMirror, gp: int, at: int, events: Sequence[TriggerEvent]) -> None:
        """One pending resync for the episodes raised at the period ``at`` (their cells)."""
        raised = [e for e in events if e.kind == "raised" and e.scope in mirror.cells]
        if not raised:
            return
        cells = tuple(sorted({e.scope for e in raised}))
        record: dict[str, Any] = {
            "resyncId": resync_id(self.group, mirror.cluster_id, at, cells), "clusterId": mirror.cluster_id,
            "cells": list(cells), "status": "pending", "at": at, "gp": gp,
            "trigger": {"sources": sorted({s for e in raised for s in e.sources}), "started": at,
                        "values": {k: v for e in raised for k, v in e.values.items()}},
        }
        if any(r["resyncId"] == record["resyncId"] for r in mirror.resyncs):
            return  # planned before (a period predicted again after a restart)
        mirror.resyncs.append(record)
        mirror.resync_changed = True
        self.outbox.append((mirror.cluster_id, dict(record)))

    def holds(self, mirror: ClusterMirror, end: int) -> bool:
        """Whether the prediction of the period ``end`` waits for a pending resync."""
        return any(r["status"] == "pending" and end > r["at"] for r in mirror.resyncs)

    def job(self, mirror: ClusterMirror, record: Mapping[str, Any]) -> ResyncJob:
        gp, at = int(record["gp"]), int(record["at"])
        ends = sorted({e for c in mirror.cells.values() for e in c.periods.get(gp, {}) if e < at})
        evidence = [self._evidence(mirror, gp, e, False) for e in ends[-self.settings.before_periods:]] \
            if self.settings.before_periods else []
        evidence.append(self._evidence(mirror, gp, at, True))
        radio = mirror.radio.changes(at - gp, at) if mirror.radio is not None else {}
        return ResyncJob(record["resyncId"], mirror.cluster_id, tuple(record["cells"]), at,
                         simulated_cm(mirror, as_of=at), tuple(evidence), calibration_as_of(mirror, at), self.config,
                         radio)

    @staticmethod
    def _evidence(mirror: ClusterMirror, gp: int, end: int, changed: bool) -> Evidence:
        real = real_values(mirror, gp, end)
        return Evidence(end, real, sum(v.get(CONN, 0.0) for v in real.values()), changed)

    def launch(self, mirror: ClusterMirror, tracker: Callable[[ClusterMirror], GapTracker]) -> None:
        """Start the cluster's pending resyncs (inline without a runner: finished on return)."""
        for record in list(mirror.resyncs):
            if record["status"] != "pending" or record["resyncId"] in self.running:
                continue
            job = self.job(mirror, record)
            if self.runner is None:
                self.finish(mirror, job, job.run(), tracker)
            else:
                self.running.add(job.record_id)
                self.runner(job, mirror)

    # -- outcome -----------------------------------------------------------------------------
    def finish(self, mirror: ClusterMirror, job: ResyncJob, outcome: ResyncOutcome,
               tracker: Callable[[ClusterMirror], GapTracker]) -> None:
        """Apply a finished fit to the mirror (from the period after its trigger) or record why not."""
        self.running.discard(job.record_id)
        record = next((r for r in mirror.resyncs if r["resyncId"] == job.record_id), None)
        if record is None or record["status"] != "pending":
            return
        self.finished += 1
        fit = outcome.fit
        record["parametersBefore"] = job.start.to_dict()
        if fit is None:
            record.update(status="failed", reason=outcome.error)
        else:
            record.update(parametersAfter=fit.after.to_dict(), change={k: dict(v) for k, v in fit.change.items()},
                          errorBefore=round(fit.error_before, 6), errorAfter=round(fit.error_after, 6),
                          fitSeconds=round(fit.seconds, 3), evaluations=fit.evaluations)
            if fit.error_after <= (1.0 - self.settings.min_improvement) * fit.error_before:
                mirror.calibrations.append({"from": job.at + int(record["gp"]), "calibration": fit.after.to_dict()})
                del mirror.calibrations[:-20]
                affected = sorted({*job.cells, *outcome.affected})
                rebased = {c: dict(v) for c, v in (outcome.shifts or {}).items() if c not in affected}
                scope = {*affected, *rebased}
                record.update(status="verifying", affected=affected, rebased=rebased,
                              baseline={c: dict(v) for c, v in fit.baseline.items() if c in scope},
                              verify={"periods": 0, "errorOld": 0.0, "errorNew": 0.0})
                self._reset(mirror, affected, tracker, rebased)
            else:
                record.update(status="failed", reason=f"the fit lowered the error on its evidence from "
                              f"{fit.error_before:.4g} to {fit.error_after:.4g}, less than "
                              f"{self.settings.min_improvement:.0%}")
        mirror.resync_changed = True
        self.outbox.append((mirror.cluster_id, dict(record)))
        self.alerts.append(resync_alert(self.group, record, job.at + int(record["gp"])))

    def on_cleared(self, mirror: ClusterMirror, event: TriggerEvent) -> None:
        """A divergence episode ended: clear the alerts of its failed or rolled-back resyncs."""
        for record in mirror.resyncs:
            if (record["status"] in ("failed", "rolled_back") and not record.get("alertCleared")
                    and record["trigger"]["started"] == event.started and event.scope in record["cells"]):
                record["alertCleared"] = True
                mirror.resync_changed = True
                self.alerts.append(resync_alert(self.group, record, event.period_end, clear=True))

    @staticmethod
    def _reset(mirror: ClusterMirror, cells: Sequence[str], tracker: Callable[[ClusterMirror], GapTracker],
               shifts: Mapping[str, Mapping[str, float]] | None = None) -> None:
        """Reset the learners of ``cells`` and re-base the others' by ``shifts``."""
        t = tracker(mirror)
        t.reset(cells)
        if shifts:
            t.rebase(shifts)
        mirror.gap_state = t.to_bytes()

    @staticmethod
    def _verify_errors(record: Mapping[str, Any], new: Mapping[str, Mapping[str, float]],
                       old: Mapping[str, Mapping[str, float]],
                       real: Mapping[str, Mapping[str, float]]) -> tuple[float, float] | None:
        """(with the resync, without it) for one period: the fit's own objective, the change of the
        resynced cells' residuals from before the episode (``twin.resync.fit.change_error``); a
        record without a baseline (written by an older version) compares the twin's mean error."""
        baseline = record.get("baseline")
        if baseline:
            own = record["cells"]
            e_new, e_old = change_error(new, real, baseline, own), change_error(old, real, baseline, own)
            return None if e_new is None or e_old is None else (e_new, e_old)
        errs_new = [e for c in real if c in new and (e := cell_error(new[c], real[c])) is not None]
        errs_old = [e for c in real if c in old and (e := cell_error(old[c], real[c])) is not None]
        if not errs_new or not errs_old:
            return None
        return sum(errs_new) / len(errs_new), sum(errs_old) / len(errs_old)

    def verify(self, mirror: ClusterMirror, gp: int, end: int, values: Mapping[str, Mapping[str, float]],
               tracker: Callable[[ClusterMirror], GapTracker]) -> None:
        """Compare, for a verifying resync, the twin's error at ``end`` with and without it; once
        ``verify_periods`` periods are in, keep it (``applied``) or roll it back."""
        for record in mirror.resyncs:
            if record["status"] != "verifying" or int(record["gp"]) != gp or end <= int(record["at"]):
                continue
            real = real_values(mirror, gp, end)
            before = Calibration.from_dict(record["parametersBefore"])
            old = self.shadow.period_model(mirror, gp, end, calibration=before)
            if old is None:
                continue
            old_values = kpi_values(old.result)
            engined = self.shadow.engine_output(old, old_values, self.shadow.engine, mirror)
            if engined is not None:
                old_values = engined.values
            errors = self._verify_errors(record, values, old_values, real)
            if errors is None:
                continue
            if mirror.radio is not None:  # the per-place evidence of this period, as the fit weighed it
                at = int(record["at"])
                places = radio_places(simulated_cm(mirror, as_of=end), mirror.radio.changes(at - gp, end, end - gp))
                change = record.get("change") or {}
                cells = radio_visible(old.sim, places, before, change, record.get("cells") or ())
                new_radio = radio_excess(old.sim, places, before, change, cells)
                old_radio = radio_excess(old.sim, places, before, {}, cells)
                if new_radio is not None and old_radio is not None:
                    errors = (errors[0] + new_radio, errors[1] + old_radio)
            v = record["verify"]
            v["periods"] += 1
            v["errorNew"] += errors[0]
            v["errorOld"] += errors[1]
            if v["periods"] >= self.settings.verify_periods:
                if v["errorNew"] > v["errorOld"]:
                    mirror.calibrations.append({"from": end + gp, "calibration": record["parametersBefore"]})
                    what = ("the change of the cells' residuals from before the episode" if record.get("baseline")
                            else "the twin's mean error")
                    record.update(status="rolled_back", reason=f"{what} over {v['periods']} periods "
                                  f"was {v['errorNew'] / v['periods']:.4g} with the resync and "
                                  f"{v['errorOld'] / v['periods']:.4g} without it")
                    back = {c: {k: -v for k, v in per.items()} for c, per in (record.get("rebased") or {}).items()}
                    self._reset(mirror, record.get("affected", []), tracker, back)
                    self.alerts.append(resync_alert(self.group, record, end))
                else:
                    record["status"] = "applied"
                    self.alerts.append(resync_alert(self.group, record, end, clear=True))
                self.outbox.append((mirror.cluster_id, dict(record)))
            mirror.resync_changed = True
