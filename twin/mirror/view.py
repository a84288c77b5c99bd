"""Read-only views of the mirror for people (a rich table) and machines (JSON)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from twin.mirror.cluster import ClusterMirror

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["mirror_view", "render_table"]


def mirror_view(clusters: dict[str, ClusterMirror], cell: str | None = None,
                now: float | None = None, unassigned: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The mirror as JSON-ready data; ``unassigned`` is ``Holding.summary()`` of the telemetry held for
    cells outside the topology (shown apart: those cells belong to no cluster)."""
    now = time.time() if now is None else now
    held = {k: v for k, v in (unassigned or {}).items() if cell is None or k == cell}
    out: dict[str, Any] = {"clusters": {}, "generatedAt": now, "unassigned": held}
    for cid, cluster in sorted(clusters.items()):
        cells = {k: c.view() for k, c in sorted(cluster.cells.items()) if cell is None or k == cell}
        if cell is not None and not cells:
            continue
        conflicts = [c for _, c in sorted(cluster.conflicts.items()) if cell is None or c["cellKey"] == cell]
        out["clusters"][cid] = {"cells": cells, "objects": cluster.objects if cell is None else {},
                                "identityConflicts": conflicts}
    out["totals"] = {
        "clusters": len(out["clusters"]),
        "cells": sum(len(c["cells"]) for c in out["clusters"].values()),
        "mrReports": sum(v["mr"]["reports"] for c in out["clusters"].values() for v in c["cells"].values()),
        "pmPeriods": sum(p["periods"] for c in out["clusters"].values() for v in c["cells"].values()
                         for p in v["pm"].values()),
        "unknownMeasurements": sorted({n for c in out["clusters"].values() for v in c["cells"].values()
                                       for n in v["unknownMeasurements"]}),
        "identityConflicts": sum(len(c["identityConflicts"]) for c in out["clusters"].values()),
        "identityConflictRecords": sum(x["records"] for c in out["clusters"].values() for x in c["identityConflicts"]),
        "unassignedCells": len(held),
        "unassignedRecords": sum(sum(h["records"].values()) for h in held.values()),
    }
    return out


def _ts(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _pm(cell: dict[str, Any], name: str) -> float | None:
    for gp in cell["pm"].values():
        row = gp["measurements"].get(name)
        if row is not None:
            value: float | None = row["window4"]
            return value
    return None


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def render_table(view: dict[str, Any], console: Console | None = None) -> None:
    from rich.console import Console  # only for people: the JSON view and the checkpoints do without rich
    from rich.table import Table

    console = console or Console(width=130)
    table = Table(title="Mirror (PM values: last 4 periods, gauges averaged, counters summed)")
    for col in ("cluster", "cell", "CM", "PM periods", "missing", "PRB % DL", "UE thp DL", "MR", "RSRP p50",
                "SINR p50"):
        table.add_column(col, no_wrap=True)
    last_pm: list[float] = []
    for cid, cluster in view["clusters"].items():
        for key, cell in cluster["cells"].items():
            mr = cell["mr"]
            if cell["freshness"]["pmLastPeriodEnd"] is not None:
                last_pm.append(cell["freshness"]["pmLastPeriodEnd"])
            table.add_row(
                cid, key, str(len(cell["cm"])),
                str(sum(p["periods"] for p in cell["pm"].values())),
                str(sum(p["missingPeriods"] for p in cell["pm"].values())),
                _fmt(_pm(cell, "RRU.PrbTotDl"), ".1f"),
                _fmt(_pm(cell, "DRB.UEThpDl"), ".0f", " kbit/s"),
                str(mr["reports"]),
                _fmt(mr["rsrpDbm"]["p50"], ".0f", " dBm"),
                _fmt(mr["sinrDb"]["p50"], ".1f", " dB"),
            )
    console.print(table)
    totals = view["totals"]
    console.print(f"{totals['clusters']} clusters, {totals['cells']} cells, {totals['pmPeriods']} PM periods, "
                  f"{totals['mrReports']} MR reports, newest PM period end {_ts(max(last_pm, default=None))} UTC; "
                  f"unknown PM names kept: {len(totals['unknownMeasurements'])}")
    conflicts = [c for cluster in view["clusters"].values() for c in cluster.get("identityConflicts", ())]
    if conflicts:
        console.print(f"{len(conflicts)} cell identity conflicts ({totals.get('identityConflictRecords', 0)} records "
                      "not merged):")
        for c in conflicts:
            console.print(f"  {c['cellKey']}: {c['reason']}")
    held = view.get("unassigned") or {}
    if held:
        from rich.table import Table

        other = Table(title="Telemetry of cells in no cluster of the topology (held, not simulated)")
        for col in ("cell", "records", "held", "evicted", "first event", "last event"):
            other.add_column(col, no_wrap=True)
        for key, h in held.items():
            other.add_row(key, ", ".join(f"{k} {n}" for k, n in h["records"].items()), str(h["held"]),
                          str(h["evicted"]), _ts(h["firstEventTime"]), _ts(h["lastEventTime"]))
        console.print(other)
        console.print(f"{len(held)} cells outside the topology: add them to a [[topology.clusters]] entry and "
                      "restart the worker to place their telemetry in that cluster")
