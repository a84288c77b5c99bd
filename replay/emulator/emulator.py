"""``NetworkEmulator``: the emulated live network, stepped one granularity period at a time.

>>> from datetime import datetime, UTC
>>> emu = NetworkEmulator("suburban-quiet", seed=1, start=datetime(2024, 3, 1, tzinfo=UTC), mr_per_cell=2)
>>> len(emu.cells), list(emu.clusters)
(21, ['emu-suburban-quiet'])
>>> first = emu.initial_records()
>>> {r.topic for r in first}
{'ran.cm.snapshot.v1'}
>>> recs = emu.step()
>>> sorted({r.topic for r in recs}), emu.period_end.isoformat()
(['ran.mr.ue.v1', 'ran.pm.cell.v1'], '2024-03-01T00:15:00+00:00')
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from replay.emulator.cm import CLASSES, dn_of, initial_attributes, mirror_view
from replay.emulator.oss import EmulatedOss, PendingChange
from replay.emulator.physics import PhysicalNetwork, PhysicalState
from replay.emulator.records import mr_events, pm_records
from replay.emulator.scenario import Event, Scenario, load_scenario
from twin import topics
from twin.ports import OutRecord
from twin.schemas import CmChangeRequest, CmChangeResult, CmNotification, CmSnapshot, MrEvent
from twin.schemas import PmCellRecord as PmRecord
from twin.schemas.cm import CmNotificationType
from twin.sim import SimConfig
from twin.sim.cm import apply_cm_to_sector, nr_arfcn_to_ghz
from twin.sim.mirrored import cluster_from_mirror
from twin.sim.topology import Sector, hex_cluster

SOURCE_SYSTEM = "ran-twin-emulator"


def default_start(now: datetime | None = None) -> datetime:
    """Midnight UTC two days before ``now``: a simulated day run at any speed stays in the past."""
    now = now or datetime.now(UTC)
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=2)


def period_hour(period_end: datetime, granularity_s: int) -> float:
    """UTC hour of day (0..24) at the middle of the period ending at ``period_end``: the hour the
    emulator (and a twin wanting to match it) evaluates the time-of-day load at."""
    mid = period_end.astimezone(UTC) - timedelta(seconds=granularity_s / 2.0)
    return mid.hour + mid.minute / 60.0 + (mid.second + mid.microsecond / 1e6) / 3600.0


@dataclass(frozen=True)
class EventMark:
    """A scheduled event in absolute event time (``end`` None = until the end of the run)."""

    kind: str
    label: str
    start: datetime
    end: datetime | None
    params: dict[str, Any]


@dataclass
class StepOutput:
    """The records of one period as schema objects (``step`` returns them encoded)."""

    period_start: datetime
    period_end: datetime
    cm: list[CmSnapshot | CmNotification] = field(default_factory=list)
    pm: list[PmRecord] = field(default_factory=list)
    mr: list[MrEvent] = field(default_factory=list)
    events: list[EventMark] = field(default_factory=list)
    state: PhysicalState | None = None

    def encoded(self) -> list[OutRecord]:
        """The records as published: CM changes that took effect, PM per cell, MR events."""
        out: list[OutRecord] = []
        for rec in self.cm:
            if isinstance(rec, CmSnapshot):
                out.append(OutRecord(topics.CM_SNAPSHOT, rec.dn.encode(), rec.to_json_bytes()))
            else:
                out.append(OutRecord(topics.CM_NOTIFICATIONS, rec.cell_key.encode(), rec.to_json_bytes()))
        out += [OutRecord(topics.PM_CELL, r.cell_key.encode(), r.to_json_bytes()) for r in self.pm]
        out += [OutRecord(topics.MR_UE, e.cell_key.encode(), e.to_json_bytes()) for e in self.mr]
        return out


class NetworkEmulator:
    """An emulated RAN with hidden ground truth (see ``replay.emulator`` and ``docs/emulator.md``).

    Input
    -----
    scenario: a ``Scenario``, a shipped scenario name or a TOML path
    seed: the hidden truth, MR sampling and noise derive from it (the twin's model seed is the
        scenario's ``[model] seed``)
    start: event time of the first period's start (default: midnight UTC two days ago)
    granularity_s: PM granularity period (s)
    mr_per_cell: MR events per cell per period
    """

    def __init__(
        self,
        scenario: Scenario | str | Path,
        seed: int = 0,
        start: datetime | None = None,
        granularity_s: int = 900,
        mr_per_cell: int = 10,
        config: SimConfig | None = None,
    ) -> None:
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        if granularity_s <= 0 or granularity_s > 86400:
            raise ValueError(f"granularity_s must be in 1..86400, got {granularity_s}")
        self.seed = int(seed)
        self.start = (start or default_start()).astimezone(UTC)
        self.granularity_s = int(granularity_s)
        self.mr_per_cell = int(mr_per_cell)
        topo, model = self.scenario.topology, self.scenario.model
        fc = nr_arfcn_to_ghz(topo.arfcn_dl)
        layout = hex_cluster(
            rings=topo.rings, isd_m=topo.isd_m, scenario=model.scenario, height_m=topo.height_m,
            tx_power_dbm=topo.tx_power_dbm, fc_ghz=fc, bandwidth_mhz=topo.bandwidth_mhz,
            elec_tilt_deg=topo.elec_tilt_deg, plmn=topo.plmn,
        )
        self.cluster_id = f"emu-{self.scenario.name}"[:128]
        self.cm: dict[str, dict[str, dict[str, Any]]] = {
            s.cell_key: initial_attributes(s, i, topo.arfcn_dl, topo.lat0, topo.lon0)
            for i, s in enumerate(layout.sectors)
        }
        self.cells: list[str] = sorted(self.cm)
        self.public_cluster = cluster_from_mirror(mirror_view(self.cm), self.cluster_id, model.scenario)
        self._public: dict[str, Sector] = {s.cell_key: s for s in self.public_cluster.sectors}
        self.physics = PhysicalNetwork(self.public_cluster, self.scenario, self.seed, config)
        self.oss = EmulatedOss(self)
        self.period_end = self.start
        self.period_index = 0
        self._pending: list[PendingChange] = []
        self._external_done: set[int] = set()
        self.last_step: StepOutput | None = None

    # -- public description -------------------------------------------------------------------
    @property
    def clusters(self) -> dict[str, list[str]]:
        """Cluster id -> cell keys (one cluster per scenario)."""
        return {self.cluster_id: list(self.cells)}

    def topology_config(self) -> dict[str, Any]:
        """For ``TwinSettings.model_validate({"topology": ...})``."""
        return {"clusters": [{"id": cid, "cells": cells} for cid, cells in self.clusters.items()]}

    def public_model(self) -> dict[str, Any]:
        """The public simulation-model parameters a twin is configured with to simulate this
        network: ``Simulator(cluster_from_mirror(cm sorted by cell key, cluster_id, scenario),
        TrafficMap(n_ues, demand_bps, indoor_fraction), seed)`` evaluated at
        ``hour=period_hour(period_end, granularity_s)``. With a zero truth the emulator's PM
        equals that model's KPIs."""
        m = self.scenario.model
        return {"scenario": m.scenario, "n_ues": m.n_ues, "demand_bps": m.demand_bps,
                "indoor_fraction": m.indoor_fraction, "seed": m.seed, "cluster_id": self.cluster_id,
                "granularity_s": self.granularity_s}

    def dn(self, cell_key: str, cls: str = "NRCellDU") -> str:
        return dn_of(cell_key, cls)

    def public_sector(self, cell_key: str) -> Sector:
        """The cell as its published CM describes it."""
        return self._public[cell_key]

    # -- events -----------------------------------------------------------------------------
    def _mark(self, ev: Event) -> EventMark:
        start = self.start + timedelta(hours=ev.at_h)
        end = None if ev.duration_h is None else start + timedelta(hours=ev.duration_h)
        return EventMark(ev.kind, ev.label, start, end, dict(ev.params))

    def timeline(self) -> list[EventMark]:
        """Every scheduled event in absolute event time."""
        return [self._mark(ev) for ev in self.scenario.events]

    def events_in(self, period: tuple[datetime, datetime] | None = None) -> list[EventMark]:
        """Events in force at some time of ``period`` (start, end); default the last stepped period."""
        if period is None:
            period = (self.period_end - timedelta(seconds=self.granularity_s), self.period_end)
        lo, hi = period
        return [m for m in self.timeline() if m.start < hi and (m.end is None or m.end > lo)]

    # -- CM -----------------------------------------------------------------------------------
    def schedule(self, change: PendingChange) -> None:
        self._pending.append(change)

    def pending_for(self, cell_key: str) -> dict[str, Any]:
        return {p.attribute: p.value for p in self._pending if p.cell_key == cell_key}

    def apply_change(self, request: CmChangeRequest) -> CmChangeResult:
        """Submit a CM change to the network's management interface (``self.oss``); see
        ``adapters.emulator.EmulatorAdapter`` for the ``CmAdapter`` in front of it."""
        return self.oss.submit(request)

    def _commit(self, change: PendingChange, when: datetime) -> list[CmSnapshot | CmNotification]:
        """Make ``change`` effective: public CM and sector updated, notification + snapshot out."""
        attrs = self.cm[change.cell_key][change.cls]
        old = attrs.get(change.attribute)
        self._public[change.cell_key] = apply_cm_to_sector(self._public[change.cell_key],
                                                           {change.attribute: change.value}, strict=True)
        attrs[change.attribute] = change.value
        dn = dn_of(change.cell_key, change.cls)
        note = CmNotification(
            notification_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"emulator:{change.change_id}")),
            notification_type=CmNotificationType.notifyMOIAttributeValueChanges, event_time=when,
            system_dn="SubNetwork=Emulator", dn=dn, class_=change.cls, cell_key=change.cell_key,
            attribute_list_value_changes={change.attribute: change.value}, old_values={change.attribute: old},
        )
        return [note, self._snapshot(change.cell_key, change.cls, when)]

    def _snapshot(self, key: str, cls: str, when: datetime) -> CmSnapshot:
        return CmSnapshot.model_validate({
            "dn": dn_of(key, cls), "class": cls, "cellKey": key, "attributes": dict(self.cm[key][cls]),
            "observedAt": when, "sourceSystem": SOURCE_SYSTEM,
        })

    def initial_records(self) -> list[OutRecord]:
        """CM snapshots of every managed object (the public configuration) at the start."""
        snaps = [self._snapshot(k, cls, self.start) for k in self.cells for cls in CLASSES]
        return [OutRecord(topics.CM_SNAPSHOT, s.dn.encode(), s.to_json_bytes()) for s in snaps]

    # -- stepping -------------------------------------------------------------------------------
    def _external_changes(self, start: datetime, hours_mid: float) -> list[CmSnapshot | CmNotification]:
        out: list[CmSnapshot | CmNotification] = []
        for i, ev in enumerate(self.scenario.events):
            if ev.kind != "cm_change" or i in self._external_done or hours_mid < ev.at_h:
                continue
            self._external_done.add(i)
            p = ev.params
            cell = p["cell"] if isinstance(p["cell"], str) else self.cells[int(p["cell"])]
            cls = next(c for c, names in CLASSES.items() if p["attribute"] in names)
            when = max(start, self.start + timedelta(hours=ev.at_h))
            change_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"emulator:{self.scenario.name}:{self.seed}:event{i}"))
            out += self._commit(PendingChange(change_id, cell, cls, p["attribute"], p["value"], when, "oss"), when)
        return out

    def step_detail(self) -> StepOutput:
        """Advance one granularity period; the period's records as schema objects."""
        start = self.period_end
        end = start + timedelta(seconds=self.granularity_s)
        hours_mid = ((start - self.start).total_seconds() + self.granularity_s / 2.0) / 3600.0
        cm: list[CmSnapshot | CmNotification] = []
        pending, self._pending = self._pending, []
        for change in pending:
            if change.cell_key in self.cm:
                cm += self._commit(change, start)
        cm += self._external_changes(start, hours_mid)
        active = [ev for ev in self.scenario.events if ev.active(hours_mid)]
        public = tuple(self._public[k] for k in self.cells)
        state = self.physics.evaluate(public, period_hour(end, self.granularity_s), active)
        rng = np.random.default_rng([self.seed, 0xE3, self.period_index])
        dns = {k: dn_of(k, "NRCellDU") for k in self.cells}
        pm = pm_records(state, self.cells, dns, end, self.granularity_s, self.scenario, rng)
        pcis = {k: int(self.cm[k]["NRCellDU"]["nRPCI"]) for k in self.cells}
        arfcn = {k: int(self.cm[k]["NRSectorCarrier"]["arfcnDL"]) for k in self.cells}
        mr = mr_events(self.physics, state, self.cells, pcis, arfcn, start, self.granularity_s, self.mr_per_cell,
                       self.scenario, self.seed, self.period_index, rng)
        self.period_end = end
        self.period_index += 1
        out = StepOutput(start, end, cm, pm, mr, self.events_in((start, end)), state)
        self.last_step = out
        return out

    def step(self) -> list[OutRecord]:
        """Advance one period: CM changes that took effect, PM per cell, MR events (encoded)."""
        return self.step_detail().encoded()


__all__ = ["EventMark", "NetworkEmulator", "StepOutput", "default_start", "period_hour"]
