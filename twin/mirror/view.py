"""Read-only views of the mirror for people (a rich table) and machines (JSON)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from twin.mirror.cluster import ClusterMirror


def mirror_view(clusters: dict[str, ClusterMirror], cell: str | None = None,
                now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    out: dict[str, Any] = {"clusters": {}, "generatedAt": now}
    for cid, cluster in sorted(clusters.items()):
        cells = {k: c.view() for k, c in sorted(cluster.cells.items()) if cell is None or k == cell}
        if cell is not None and not cells:
            continue
        out["clusters"][cid] = {"cells": cells, "objects": cluster.objects if cell is None else {}}
    out["totals"] = {
        "clusters": len(out["clusters"]),
        "cells": sum(len(c["cells"]) for c in out["clusters"].values()),
        "mrReports": sum(v["mr"]["reports"] for c in out["clusters"].values() for v in c["cells"].values()),
        "pmPeriods": sum(p["periods"] for c in out["clusters"].values() for v in c["cells"].values()
                         for p in v["pm"].values()),
        "unknownMeasurements": sorted({n for c in out["clusters"].values() for v in c["cells"].values()
                                       for n in v["unknownMeasurements"]}),
    }
    return out


def _ts(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def render_table(view: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title="Mirror", show_lines=False)
    for col in ("cluster", "cell", "CM attrs", "PM periods", "missing", "PM last end (UTC)",
                "MR reports", "RSRP p50", "SINR p50", "MR last (UTC)"):
        table.add_column(col)
    for cid, cluster in view["clusters"].items():
        for key, cell in cluster["cells"].items():
            periods = sum(p["periods"] for p in cell["pm"].values())
            missing = sum(p["missingPeriods"] for p in cell["pm"].values())
            mr = cell["mr"]
            table.add_row(
                cid, key, str(len(cell["cm"])), str(periods), str(missing),
                _ts(cell["freshness"]["pmLastPeriodEnd"]), str(mr["reports"]),
                "-" if mr["rsrpDbm"]["p50"] is None else f"{mr['rsrpDbm']['p50']:.0f} dBm",
                "-" if mr["sinrDb"]["p50"] is None else f"{mr['sinrDb']['p50']:.1f} dB",
                _ts(cell["freshness"]["mrLastEventTime"]),
            )
    console.print(table)
    totals = view["totals"]
    console.print(f"{totals['clusters']} clusters, {totals['cells']} cells, {totals['pmPeriods']} PM periods, "
                  f"{totals['mrReports']} MR reports; unknown PM names kept: {len(totals['unknownMeasurements'])}")
