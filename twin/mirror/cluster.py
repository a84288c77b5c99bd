"""The mirror of one cluster: its cells plus managed objects that carry no cell key.

One worker owns a whole cluster (the twin needs whole neighbourhoods), so this is the unit that
is updated, checkpointed and handed over between workers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from twin.mirror.cell import CellMirror
from twin.records import CmBody, CmNotificationBody, MrBody, NormalisedRecord, PmBody

__all__ = ["ClusterMirror"]


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

    def cell(self, key: str) -> CellMirror:
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = CellMirror(key)
        return cell

    def apply_many(self, records: Iterable[NormalisedRecord]) -> None:
        for r in records:
            self.apply(r)

    def apply(self, record: NormalisedRecord) -> None:
        """Apply one normalised record ``(kind, cell_key, body)`` (``twin.records``; after the
        re-keying topic's JSON round trip it arrives as a list, which reads the same)."""
        kind, cell_key, body = record
        if kind == "mr":
            if not self.cell(cast(str, cell_key)).mr.apply(cast(MrBody, body)):
                self.duplicates += 1
                return
        elif kind == "pm" or kind == "pmr":
            pm = cast(PmBody, body)
            self.cell(cast(str, cell_key)).apply_pm(kind, pm)
            if kind == "pm":
                self._mark_pending(pm["gp"], round(pm["t"]))
        elif kind == "cm" or kind == "cmn":
            self._apply_cm(cell_key, cast(CmBody | CmNotificationBody, body))
        elif kind == "cmdel":
            dn = cast(dict[str, str], body)["dn"]
            self.objects.pop(dn, None)
            for cell in self.cells.values():
                cell.delete_dn(dn)
        else:
            raise ValueError(f"unknown normalised record kind {kind!r}")
        self.applied += 1

    def _mark_pending(self, gp: int, end: int) -> None:
        if end > self.predicted_through.get(gp, -1):
            self.pending.setdefault(gp, set()).add(end)

    def _apply_cm(self, cell_key: str | None, r: CmBody | CmNotificationBody) -> None:
        deletion = r.get("nt") == "notifyMOIDeletion"
        if cell_key is None:
            if deletion:
                self.objects.pop(r["dn"], None)
                return
            obj = self.objects.setdefault(r["dn"], {"class": r["cls"], "attributes": {}, "observedAt": 0.0})
            if r["t"] >= obj["observedAt"]:
                obj["attributes"].update(r["a"])
                obj["observedAt"] = r["t"]
            return
        cell = self.cell(cell_key)
        if deletion:
            cell.delete_dn(r["dn"])
        else:
            cell.apply_cm(r["cls"], r["dn"], r["a"], r["t"])

    def prune(self, pm_retention_s: int, mr_retention_s: int) -> None:
        for cell in self.cells.values():
            cell.prune(pm_retention_s, mr_retention_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster_id,
            "cells": {k: c.to_dict() for k, c in sorted(self.cells.items())},
            "objects": self.objects,
            "pending": {str(gp): sorted(ends) for gp, ends in self.pending.items() if ends},
            "predThrough": {str(gp): end for gp, end in self.predicted_through.items()},
        }

    def checkpoint_view(self, cells: bool = True) -> dict[str, Any]:
        """``to_dict`` over the live containers (see ``CellMirror.checkpoint_view``); without
        ``cells`` the rest, for encoding the cells one by one."""
        view = {
            "cluster": self.cluster_id,
            "objects": self.objects,
            "pending": {gp: ends for gp, ends in self.pending.items() if ends},
            "predThrough": self.predicted_through,
        }
        if cells:
            view["cells"] = {k: c.checkpoint_view() for k, c in self.cells.items()}
        return view

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
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClusterMirror:
        return cls(
            cluster_id=d["cluster"],
            cells={k: CellMirror.from_dict(k, c) for k, c in d["cells"].items()},
            objects=d["objects"],
            pending={int(gp): set(ends) for gp, ends in d.get("pending", {}).items()},
            predicted_through={int(gp): int(end) for gp, end in d.get("predThrough", {}).items()},
        )
