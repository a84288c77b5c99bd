"""The mirror of one cluster: its cells plus managed objects that carry no cell key.

One worker owns a whole cluster (the twin needs whole neighbourhoods), so this is the unit that
is updated, checkpointed and handed over between workers. Its cells note what changed
(``CellMirror.changes``), it notes the managed objects that changed, so a checkpoint writes only
those (``take_changes``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import structlog

from twin.mirror.cell import MR, CellMirror, Entry
from twin.mirror.identity import CLAIM_CLASSES, cell_dn, is_derived, local_dn, node_key, notice
from twin.mirror.mr_stats import SealBudget, rsrp_dbm_of_index, sinr_db_of_index
from twin.mirror.radio_map import MAX_ACCURACY_M, RadioMap, interference_key, is_radiation_attribute
from twin.records import CmBody, CmNotificationBody, MrBody, NormalisedRecord, PmBody

__all__ = ["BOOK", "CALIBRATION", "FIDELITY", "FIDELITY_STATE", "GAP", "IDENTITY", "OBJECT", "RADIO", "RESYNCS",
           "RESYNCS_KEPT", "ClusterMirror"]

log = structlog.get_logger(__name__)

# Checkpoint entries of a cluster (beside those of its cells, ``twin.mirror.cell``):
BOOK = "b"  # ("b",): the prediction bookkeeping {"pending": ..., "predThrough": ...}
OBJECT = "o"  # ("o", dn): a managed object without a cell key
GAP = "g"  # ("g",): the gap learners' state (``twin.gap.GapTracker.to_bytes``; bytes, not JSON)
CALIBRATION = "k"  # ("k",): the model calibrations and when each took effect (``twin.resync``)
RESYNCS = "y"  # ("y",): the latest resyncs' records (``twin.resync``)
FIDELITY_STATE = "e"  # ("e",): the DT-BSM estimator's state (``twin.fidelity.FidelityEstimator.to_bytes``; bytes)
IDENTITY = "i"  # ("i",): cell identity claims and conflicts ({"claims": ..., "conflicts": ...}, twin.mirror.identity)
FIDELITY = "f"  # ("f",): the latest DT-BSM records (``twin.prediction.fidelity``), oldest first
RADIO = "r"  # ("r", ...): the geolocated SS-RSRP map of located UE reports (``RadioMap.take_entries``; bytes)
#: resync records a cluster keeps (older ones are on ``ran.twin.resyncs.v1``)
RESYNCS_KEPT = 50
#: periods of a derived key's claim remembered so that they can be moved out if CM later gives the key
#: to another node's cell; a claim with more periods stands (a network whose topology lists derived
#: keys and that sends no CM keeps them for good), and a CM that contradicts it then is reported
CLAIM_UNDO_PERIODS = 16


@dataclass(slots=True)
class ClusterMirror:
    cluster_id: str
    cells: dict[str, CellMirror] = field(default_factory=dict)
    # CM of managed objects without a cell key (ManagedElement, GNBDUFunction ...): dn -> state
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    applied: int = 0
    duplicates: int = 0
    # twin prediction bookkeeping (``twin.prediction``): gp -> period ends with PM not yet
    # predicted, and gp -> newest predicted period end; checkpointed with the mirror
    pending: dict[int, set[int]] = field(default_factory=dict)
    predicted_through: dict[int, int] = field(default_factory=dict)
    # the gap learners of the cluster's cells (``twin.gap``), as saved after the last period they
    # learned: opaque here, checkpointed with the periods it marks predicted
    gap_state: bytes | None = None
    # the model's calibrations (``twin.resync.Calibration.to_dict``), each with the first period
    # end it applies to (``{"from": end, "calibration": {...}}``), oldest first; and the records of
    # the latest resyncs, oldest first
    calibrations: list[dict[str, Any]] = field(default_factory=list)
    resyncs: list[dict[str, Any]] = field(default_factory=list)
    # the DT-BSM estimator (``twin.prediction.fidelity``): its state as saved after the last period
    # it counted (opaque here) and its latest records, oldest first
    fidelity_state: bytes | None = None
    fidelity: list[dict[str, Any]] = field(default_factory=list)
    # where each cell was heard and how strongly, from located UE reports (``twin.mirror.radio_map``;
    # None until the first located report): the resync's per-place evidence
    radio: RadioMap | None = None
    # cell identity (``twin.mirror.identity``): cell key -> node (``dn:ManagedElement=..``) whose
    # records with a derived key the cell took, and the conflicts refused ("<key>|<dn>" -> details)
    claims: dict[str, str] = field(default_factory=dict)
    conflicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the periods applied under a claim, while CM has named no owner of the key: key -> {"p": [[kind,
    # gp, end, relation target or None, dn], ...]}, "p" None once more than ``CLAIM_UNDO_PERIODS``
    claimed: dict[str, dict[str, Any]] = field(default_factory=dict)
    # whoever applies records and can deliver what identity produces (the worker's mirror stage)
    # sets ``announcing``: then the notices for the nodes' holdings and the refused records are
    # collected in ``identity_out`` and ``refused`` for it to take (not state)
    announcing: bool = field(default=False, compare=False, repr=False)
    identity_out: list[NormalisedRecord] = field(default_factory=list, compare=False, repr=False)
    refused: list[tuple[NormalisedRecord, str]] = field(default_factory=list, compare=False, repr=False)
    announced: set[tuple[str, str]] = field(default_factory=set, compare=False, repr=False)
    conflict_dns: set[str] = field(default_factory=set, compare=False, repr=False)
    identity_changed: bool = field(default=False, compare=False, repr=False)
    redirected: int = field(default=0, compare=False, repr=False)  # derived PM sent to its node's holding
    claiming: bool = field(default=False, compare=False, repr=False)  # the last _pm_conflict: under a claim
    # (gp, end) -> when (processing time) an incomplete pending period became due by timeout:
    # the start of its grace (``twin.prediction.schedule``); not state, not checkpointed
    overdue_since: dict[tuple[int, int], float] = field(default_factory=dict, compare=False, repr=False)
    # checkpoint bookkeeping (not state): objects changed, the bookkeeping as last written, and
    # whether a cell was asked for since the last checkpoint (every update goes through ``cell``:
    # the cells of a cluster that was not are not looked at)
    changed_objects: set[str] = field(default_factory=set, compare=False, repr=False)
    book_saved: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    gap_saved: bytes | None = field(default=None, compare=False, repr=False)
    resync_changed: bool = field(default=False, compare=False, repr=False)
    fidelity_saved: bytes | None = field(default=None, compare=False, repr=False)
    fidelity_changed: bool = field(default=False, compare=False, repr=False)
    radio_changed: bool = field(default=False, compare=False, repr=False)
    touched: bool = field(default=False, compare=False, repr=False)

    def cell(self, key: str) -> CellMirror:
        self.touched = True
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = CellMirror(key)
        return cell

    def apply_many(self, records: Iterable[NormalisedRecord]) -> None:
        """``apply`` each record in order. MR events, by far the most numerous, are folded in here,
        without ``apply``'s and ``cell``'s calls per record (the same updates: the cell created if
        need be, its MR statistics, its changes, the counters)."""
        cells = self.cells
        applied = duplicates = 0
        try:
            for r in records:
                if r[0] == "mr":
                    cell = cells.get(cast(str, r[1]))
                    if cell is None:
                        cell = self.cell(cast(str, r[1]))
                    body = cast(MrBody, r[2])
                    if cell.mr.apply(body):
                        cell.changes.add(MR)
                        applied += 1
                        if len(body) > 8 and body[8] is not None:
                            self._map_radio(cast(str, r[1]), body)
                    else:
                        duplicates += 1
                else:
                    self.apply(r)
        finally:
            if applied or duplicates:
                self.touched = True
                self.applied += applied
                self.duplicates += duplicates

    def apply(self, record: NormalisedRecord) -> None:
        """Apply one normalised record ``(kind, cell_key, body)`` (``twin.records``; after the
        re-keying topic's JSON round trip it arrives as a list, which reads the same)."""
        kind, cell_key, body = record
        if kind == "mr":
            cell = self.cell(cast(str, cell_key))
            mr = cast(MrBody, body)
            if not cell.mr.apply(mr):
                self.duplicates += 1
                return
            cell.changes.add(MR)
            if len(mr) > 8 and mr[8] is not None:
                self._map_radio(cast(str, cell_key), mr)
        elif kind == "pm" or kind == "pmr":
            pm = cast(PmBody, body)
            dn = pm.get("dn")
            claimed = False
            if dn is not None and (self.conflict_dns or is_derived(cast(str, cell_key), dn)):
                self.claiming = False
                conflict = self._pm_conflict(cast(str, cell_key), dn)
                claimed = self.claiming
                if conflict is not None:
                    if conflict[0] is None and self.announcing:
                        # a derived key that CM gives another node's cell: the record is not that
                        # cell's; its node's holding resolves it (``twin.mirror.identity``)
                        self.identity_out.append(record)
                        self.redirected += 1
                        return
                    self._refuse(record, cast(str, cell_key), dn, conflict[1], conflict[2])
                    return
            self.cell(cast(str, cell_key)).apply_pm(kind, pm)
            if claimed:
                self._track_claim(cast(str, cell_key), kind, pm, cast(str, dn))
            if kind == "pm":
                self._mark_pending(pm["gp"], round(pm["t"]))
        elif kind == "cm" or kind == "cmn":
            self._apply_cm(cell_key, cast(CmBody | CmNotificationBody, body))
        elif kind == "cmdel":
            dn = cast(dict[str, str], body)["dn"]
            if self.objects.pop(dn, None) is not None:
                self.changed_objects.add(dn)
            for cell in self.cells.values():
                cell.delete_dn(dn)
        else:
            raise ValueError(f"unknown normalised record kind {kind!r}")
        self.applied += 1

    def _map_radio(self, cell_key: str, body: MrBody) -> None:
        """A located report's serving and neighbour SS-RSRP and the interference it heard into the
        radio map (when located to ``MAX_ACCURACY_M`` or better; neighbours known only by PCI are
        left out)."""
        lat, lon, accuracy = cast(tuple[float, float, float | None], body[8])
        if accuracy is None or accuracy > MAX_ACCURACY_M:
            return
        radio = self.radio
        if radio is None:
            radio = self.radio = RadioMap()
        t = body[1]
        if body[2] is not None:
            serving = rsrp_dbm_of_index(body[2])
            radio.add(t, cell_key, lat, lon, serving)
            # SS-RSRP minus SS-SINR: the interference plus noise the UE hears (indices at the ends of
            # their ranges are clipped values, not levels)
            if body[4] is not None and 0 < body[2] < 127 and 0 < body[4] < 127:
                radio.add(t, interference_key(cell_key), lat, lon, serving - sinr_db_of_index(body[4]))
        for ident, rsrp in body[5]:
            if rsrp is not None and not ident.startswith("pci:"):
                radio.add(t, ident, lat, lon, rsrp)
        self.radio_changed = True

    def _mark_pending(self, gp: int, end: int) -> None:
        if end > self.predicted_through.get(gp, -1):
            self.pending.setdefault(gp, set()).add(end)

    def _apply_cm(self, cell_key: str | None, r: CmBody | CmNotificationBody) -> None:
        deletion = r.get("nt") == "notifyMOIDeletion"
        if cell_key is None:
            self.changed_objects.add(r["dn"])
            if deletion:
                self.objects.pop(r["dn"], None)
                return
            obj = self.objects.setdefault(r["dn"], {"class": r["cls"], "attributes": {}, "observedAt": 0.0})
            if r["t"] >= obj["observedAt"]:
                obj["attributes"].update(r["a"])
                obj["observedAt"] = r["t"]
            return
        if not deletion and r["cls"] in CLAIM_CLASSES:
            owner = self._cm_owner(cell_key, r["cls"], r["dn"])
            if owner is not None:
                reason = (f"CM gives {r['cls']} {owner!r} and {r['dn']!r} the same key {cell_key}; the first keeps "
                          f"it, the records of {r['dn']!r} are not merged into it")
                refused = cast(NormalisedRecord, ("cmn" if "nt" in r else "cm", cell_key, r))
                self._refuse(refused, cell_key, r["dn"], owner, reason)
                return
        cell = self.cell(cell_key)
        if deletion:
            cell.delete_dn(r["dn"])
            return
        prefix = f"{r['cls']}." if r["cls"] else ""
        radiating = [prefix + a for a in r["a"] if is_radiation_attribute(a)] if self.radio is not None else []
        was = [cell.cm.get(name) for name in radiating]
        cell.apply_cm(r["cls"], r["dn"], r["a"], r["t"])
        if any(w is not None and w[0] != cell.cm[name][0] for name, w in zip(radiating, was, strict=True)):
            # what the cell radiates changed (a periodic snapshot repeating the values does not count):
            # its levels before the change no longer describe it
            cast(RadioMap, self.radio).forget(cell_key, r["t"])
            self.radio_changed = True
        if r["cls"] in CLAIM_CLASSES:
            claimant = self.claims.get(cell_key)
            node = node_key(r["dn"])
            if claimant is not None and claimant != node:
                # derived records of another node reached the key before CM named its owner: moved out
                # to that node's holding (which resolves them to its own cell) where they can be, else
                # reported; from now on that node's derived records go to its holding or are refused
                if not self._withdraw_claim(cell_key):
                    self._conflict(cell_key, r["dn"], claimant, f"records of {claimant} with a key derived from "
                                   f"its name were applied to {cell_key} before CM named {r['dn']!r} its "
                                   f"{r['cls']}", refuse_dn=False)
                self.claims[cell_key] = node
                self.conflict_dns.discard(local_dn(r["dn"]))  # refused as the collision's second, now the owner
                self.identity_changed = True
            elif claimant == node and self.claimed.pop(cell_key, None) is not None:
                self.identity_changed = True  # CM confirms the claim: nothing will be moved out
        if self.announcing and (r["dn"], cell_key) not in self.announced:
            self.announced.add((r["dn"], cell_key))
            self.identity_out.append(notice(r["dn"], cell_key))

    # -- cell identity (``twin.mirror.identity``) -------------------------------------------
    def _cm_owner(self, cell_key: str, cls: str, dn: str) -> str | None:
        """Another DN of class ``cls`` whose CM the cell already holds (a conflict), else None."""
        cell = self.cells.get(cell_key)
        if cell is None:
            return None
        prefix = cls + "."
        mine = local_dn(dn)
        for name, entry in cell.cm.items():
            if name.startswith(prefix) and entry[2] != dn and local_dn(entry[2]) != mine:
                return cast(str, entry[2])
        return None

    def _pm_conflict(self, cell_key: str, dn: str) -> tuple[str | None, str, str] | None:
        """Why PM of ``dn`` must not go into ``cell_key``, as (action, owner, reason): ``"refuse"``
        when its DN was refused before or its derived key is claimed by another node's derived
        records; None when CM gives the key to another node's cell (the record belongs elsewhere:
        redirected to its node's holding where the mirror can, else refused). None when it may go in
        (and a derived key is then claimed for the DN's node)."""
        if self.conflict_dns:
            mine = {local_dn(dn), cell_dn(dn) or ""}
            if mine & self.conflict_dns:
                entry = next((c for c in self.conflicts.values() if c["dn"] in mine and c["cellKey"] == cell_key),
                             None)
                if entry is not None:
                    return "refuse", entry["owner"], entry["reason"]
        if not is_derived(cell_key, dn):
            return None
        node = node_key(dn)
        cell = self.cells.get(cell_key)
        owners = {node_key(e[2]) for name, e in cell.cm.items()
                  if name.split(".", 1)[0] in CLAIM_CLASSES} if cell is not None else set()
        if owners:
            if node in owners:
                return None
            owner = min(owners)
            return None, owner, (f"the key {cell_key} derived from {dn!r} is, by CM, the key of {owner}'s cell "
                                 f"(a collision of the PM reader's derived ids); the records of {dn!r} are not "
                                 "merged into it")
        claimant = self.claims.get(cell_key)
        if claimant is None:
            self.claims[cell_key] = node
            self.identity_changed = True
            self.claiming = True
            return None
        if claimant == node:
            self.claiming = True
            return None
        return "refuse", claimant, (f"the key {cell_key} derived from {dn!r} is also {claimant}'s (a collision of "
                                    f"the PM reader's derived ids); {claimant} keeps it, the records of {dn!r} are "
                                    "not merged into it")

    def _track_claim(self, cell_key: str, kind: str, pm: PmBody, dn: str) -> None:
        """Remember the period a derived key's claim applied (``CLAIM_UNDO_PERIODS`` at most)."""
        entry = self.claimed.setdefault(cell_key, {"p": []})
        periods = entry["p"]
        if periods is None:
            return
        tag = [kind, pm["gp"], round(pm["t"]), cast(dict[str, Any], pm).get("tc") if kind == "pmr" else None, dn]
        if tag in periods:
            return
        if len(periods) < CLAIM_UNDO_PERIODS:
            periods.append(tag)
        else:
            entry["p"] = None
        self.identity_changed = True

    def _withdraw_claim(self, cell_key: str) -> bool:
        """Move the periods the key's claimant applied out of the cell, to the claimant's holding
        (``identity_out``): True when all of them could be (tracked, and a deliverer announcing)."""
        entry = self.claimed.pop(cell_key, None)
        self.identity_changed = True
        if entry is None or entry["p"] is None or not self.announcing:
            return False
        cell = self.cell(cell_key)
        for kind, gp, end, target, dn in entry["p"]:
            values, suspect = cell.withdraw_pm(gp, end, target)
            if not values:  # pruned meanwhile
                continue
            body: dict[str, Any] = {"gp": gp, "t": float(end), "v": values, "s": bool(suspect), "dn": dn}
            if target is not None:
                body["tc"] = target
            self.identity_out.append(cast(NormalisedRecord, (kind, cell_key, body)))
            self.redirected += 1
        return True

    def _conflict(self, cell_key: str, dn: str, owner: str, reason: str, refuse_dn: bool = True) -> dict[str, Any]:
        """The conflict entry of (``cell_key``, ``dn``), made on first sight; ``refuse_dn``: the DN's
        later records are refused too (``conflict_dns``)."""
        local = local_dn(dn) if refuse_dn else dn
        entry = self.conflicts.get(f"{cell_key}|{local}")
        if entry is None:
            entry = self.conflicts[f"{cell_key}|{local}"] = {
                "cellKey": cell_key, "dn": local, "owner": owner, "reason": reason, "records": 0}
            if refuse_dn:
                self.conflict_dns.add(local)
        self.identity_changed = True
        return entry

    def _refuse(self, record: NormalisedRecord, cell_key: str, dn: str, owner: str, reason: str) -> None:
        """Count, keep and report a record not merged into ``cell_key`` for a conflict of identity."""
        entry = self._conflict(cell_key, dn, owner, reason)
        entry["records"] += 1
        if self.announcing:
            self.refused.append((record, entry["reason"]))
            if record[0] in ("cm", "cmn") and (dn, "") not in self.announced:
                self.announced.add((dn, ""))  # the node's holding refuses the DN's waiting records too
                self.identity_out.append(notice(dn, cell_key, entry["reason"]))

    def take_identity(self) -> tuple[list[NormalisedRecord], list[tuple[NormalisedRecord, str]]]:
        """What applying records produced for the nodes' holdings (notices, and derived PM that
        belongs to another cell than its key's) and the refused records, since the last call."""
        out, refused = self.identity_out, self.refused
        self.identity_out, self.refused = [], []
        return out, refused

    def prune(self, pm_retention_s: int, mr_retention_s: int, seal: SealBudget | None = None) -> None:
        """Retention (``CellMirror.prune``) of the cells that changed since the last checkpoint: the
        limits are relative to a cell's newest data, so the others have nothing to forget."""
        if not self.touched:
            return
        for cell in self.cells.values():
            if cell.changes:
                cell.prune(pm_retention_s, mr_retention_s, seal, quick=True)

    # -- checkpoint entries ------------------------------------------------------------------
    def book(self) -> dict[str, Any]:
        return {"pending": {str(gp): sorted(ends) for gp, ends in self.pending.items() if ends},
                "predThrough": {str(gp): end for gp, end in self.predicted_through.items()}}

    def take_changes(self, out: list[Entry], cells: dict[str, tuple[list[Entry], list[tuple[str, ...]]]],
                     full: bool = False) -> None:
        """Append the cluster's changed entries to ``out`` and each changed cell's to ``cells``
        (``(entries, prefixes to delete)`` by cell key), encoded; ``full``: every entry."""
        if not (full or self.touched or self.changed_objects or self.resync_changed or self.fidelity_changed
                or self.identity_changed or self.radio_changed):
            return
        self.touched = False
        book = self.book()
        if full or book != self.book_saved:
            out.append(((BOOK,), orjson.dumps(book)))
            self.book_saved = book
        if self.gap_state is not None and (full or self.gap_state is not self.gap_saved):
            out.append(((GAP,), self.gap_state))
            self.gap_saved = self.gap_state
        if full or self.resync_changed:
            if self.calibrations:
                out.append(((CALIBRATION,), orjson.dumps(self.calibrations)))
            if self.resyncs:
                out.append(((RESYNCS,), orjson.dumps(self.resyncs[-RESYNCS_KEPT:])))
            self.resync_changed = False
        if self.fidelity_state is not None and (full or self.fidelity_state is not self.fidelity_saved):
            out.append(((FIDELITY_STATE,), self.fidelity_state))
            self.fidelity_saved = self.fidelity_state
        if (full or self.identity_changed) and (self.claims or self.conflicts):
            out.append(((IDENTITY,), orjson.dumps({"claims": self.claims, "conflicts": self.conflicts,
                                                   "claimed": self.claimed})))
        self.identity_changed = False
        if self.fidelity and (full or self.fidelity_changed):
            out.append(((FIDELITY,), orjson.dumps(self.fidelity)))
        self.fidelity_changed = False
        if self.radio is not None and (full or self.radio_changed):
            out += [((RADIO, *sub), value) for sub, value in self.radio.take_entries(full)]
        self.radio_changed = False
        dns = set(self.objects) if full else self.changed_objects
        self.changed_objects = set()
        for dn in dns:
            obj = self.objects.get(dn)
            out.append(((OBJECT, dn), None if obj is None else orjson.dumps(obj)))
        for key, cell in self.cells.items():
            if full or cell.changes or cell.mr.sealed_changed or cell.mr.dropped:
                entries: list[Entry] = []
                ranges: list[tuple[str, ...]] = []
                if full:
                    cell.all_entries(entries)
                else:
                    cell.take_changes(entries, ranges)
                cells[key] = (entries, ranges)

    def load_entry(self, sub: list[str], value: Any) -> None:
        """Read back one cluster entry written by ``take_changes``."""
        if sub[0] == BOOK:
            self.pending = {int(gp): set(ends) for gp, ends in value["pending"].items()}
            self.predicted_through = {int(gp): int(end) for gp, end in value["predThrough"].items()}
            self.book_saved = value
        elif sub[0] == OBJECT:
            self.objects[sub[1]] = value
        elif sub[0] == GAP:
            self.gap_state = self.gap_saved = bytes(value)
        elif sub[0] == CALIBRATION:
            self.calibrations = list(value)
        elif sub[0] == RESYNCS:
            self.resyncs = list(value)
        elif sub[0] == FIDELITY_STATE:
            self.fidelity_state = self.fidelity_saved = bytes(value)
        elif sub[0] == FIDELITY:
            self.fidelity = list(value)
        elif sub[0] == RADIO:
            if self.radio is None:
                self.radio = RadioMap()
            try:
                self.radio.load_entry(sub[1:], bytes(value))
            except ValueError as exc:  # evidence, not state the mirror's figures rest on: leave it out
                log.warning("mirror.radio_entry_unreadable", cluster=self.cluster_id, entry=sub, reason=str(exc))
        elif sub[0] == IDENTITY:
            self.claims = dict(value["claims"])
            self.conflicts = dict(value["conflicts"])
            self.claimed = dict(value.get("claimed", {}))
            self.conflict_dns = _refused_dns(self.conflicts, self.claims)
        else:
            raise ValueError(f"unknown checkpoint entry {sub!r} of cluster {self.cluster_id}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster_id,
            "cells": {k: c.to_dict() for k, c in sorted(self.cells.items())},
            "objects": self.objects,
            "pending": {str(gp): sorted(ends) for gp, ends in self.pending.items() if ends},
            "predThrough": {str(gp): end for gp, end in self.predicted_through.items()},
            "identity": {"claims": self.claims, "conflicts": self.conflicts, "claimed": self.claimed},
        }

    def snapshot(self) -> ClusterMirror:
        """A copy that later updates of this mirror do not change (every mutable container copied)."""
        return ClusterMirror(
            cluster_id=self.cluster_id,
            cells={k: c.snapshot() for k, c in self.cells.items()},
            objects={dn: {**o, "attributes": dict(o["attributes"])} for dn, o in self.objects.items()},
            applied=self.applied,
            duplicates=self.duplicates,
            pending={gp: set(ends) for gp, ends in self.pending.items()},
            predicted_through=dict(self.predicted_through),
            gap_state=self.gap_state,
            calibrations=[dict(c) for c in self.calibrations],
            resyncs=[dict(r) for r in self.resyncs],
            fidelity_state=self.fidelity_state,
            fidelity=[dict(r) for r in self.fidelity],
            radio=None if self.radio is None else self.radio.copy(),
            claims=dict(self.claims),
            conflicts={k: dict(c) for k, c in self.conflicts.items()},
            claimed={k: {"p": None if c["p"] is None else [list(t) for t in c["p"]]} for k, c in self.claimed.items()},
            conflict_dns=set(self.conflict_dns),
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClusterMirror:
        identity = d.get("identity", {})
        return cls(
            cluster_id=d["cluster"],
            cells={k: CellMirror.from_dict(k, c) for k, c in d["cells"].items()},
            objects=d["objects"],
            pending={int(gp): set(ends) for gp, ends in d.get("pending", {}).items()},
            predicted_through={int(gp): int(end) for gp, end in d.get("predThrough", {}).items()},
            claims=dict(identity.get("claims", {})),
            conflicts=dict(identity.get("conflicts", {})),
            claimed=dict(identity.get("claimed", {})),
            conflict_dns=_refused_dns(identity.get("conflicts", {}), identity.get("claims", {})),
        )


def _refused_dns(conflicts: dict[str, dict[str, Any]], claims: dict[str, str]) -> set[str]:
    """The DNs whose records stay refused: those of the conflicts, but not a DN that became its key's
    owner later (its node now claims the key) nor a node (``dn:...``: its derived records are refused
    through ``claims``)."""
    return {c["dn"] for c in conflicts.values()
            if not c["dn"].startswith("dn:") and claims.get(c["cellKey"]) != node_key(c["dn"])}
