"""The summary of a run: what was published, what reached the mirror, what the twin predicted
and how far it was from what the network reported, per cell and period.

Real and predicted values are both read from the mirror (where they sit side by side), so the
summary checks the whole path: a PM record that never reached the mirror counts as missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from twin.gap.error import ERROR_KPIS, cell_error
from twin.gap.target import RATIO_KPIS
from twin.mirror.cell import CellMirror
from twin.mirror.cluster import ClusterMirror
from twin.prediction.service import CALIBRATED
from twin.sim.kpis import KPI_NAMES

__all__ = ["PublishedPeriod", "build_summary"]


@dataclass
class PublishedPeriod:
    """One period as the network published it: PM values per cell, events in force."""

    end: int
    pm: dict[str, dict[str, float]]
    events: list[dict[str, Any]] = field(default_factory=list)


def iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _cells(clusters: Mapping[str, ClusterMirror]) -> dict[str, CellMirror]:
    return {k: c for cl in clusters.values() for k, c in cl.cells.items()}


def _at(series: Mapping[str, Mapping[int, float]], end: int) -> dict[str, float]:
    return {k: per[end] for k, per in series.items() if end in per}




def _mean_by_period(ends: Sequence[int], per_cell: Mapping[str, Sequence[float | None]]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for i, end in enumerate(ends):
        vals = [x for v in per_cell.values() if i < len(v) and (x := v[i]) is not None]
        out.append([end, round(sum(vals) / len(vals), 5) if vals else None])
    return out


def build_summary(
    info: Mapping[str, Any],
    published: Sequence[PublishedPeriod],
    clusters: Mapping[str, ClusterMirror],
    gp: int,
    events: Sequence[Mapping[str, Any]] = (),
    kpis: Sequence[str] = KPI_NAMES,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(summary, series)``: the JSON summary and the per-cell KPI series for the report."""
    mirror = _cells(clusters)
    cells = sorted({c for p in published for c in p.pm})
    ends = [p.end for p in published]
    pm_in = 0
    missing_pm: list[list[Any]] = []
    pred_per_cell = dict.fromkeys(cells, 0)
    pred_per_period: dict[str, int] = {}
    missing_pred: list[list[Any]] = []
    error: dict[str, list[list[Any]]] = {c: [] for c in cells}
    # raw and calibrated error over the KPIs the gap learners calibrate, per cell and period
    gap_raw: dict[str, list[float | None]] = {c: [] for c in cells}
    gap_cal: dict[str, list[float | None]] = {c: [] for c in cells}
    series: dict[str, dict[str, dict[str, list[Any]]]] = {}
    for p in published:
        n_pred = 0
        for cell in cells:
            m = mirror.get(cell)
            real = _at(m.pm.get(gp, {}), p.end) if m else {}
            pred = _at(m.predicted.get(gp, {}), p.end) if m else {}
            if cell in p.pm:
                if m is not None and p.end in m.periods.get(gp, {}):
                    pm_in += 1
                else:
                    missing_pm.append([cell, iso(p.end)])
            if pred:
                pred_per_cell[cell] += 1
                n_pred += 1
            else:
                missing_pred.append([cell, iso(p.end)])
            err = cell_error(pred, real) if pred and real else None
            error[cell].append([p.end, None if err is None else round(err, 5)])
            raw = {k: pred[k] for k in RATIO_KPIS if k in pred}
            cal = {k: pred[k + CALIBRATED] for k in RATIO_KPIS if k + CALIBRATED in pred}
            r_err = cell_error(raw, real) if raw and real else None
            c_err = cell_error(cal, real) if cal and real else None
            gap_raw[cell].append(None if r_err is None else round(r_err, 5))
            gap_cal[cell].append(None if c_err is None else round(c_err, 5))
            s = series.setdefault(cell, {k: {"real": [], "pred": []} for k in kpis})
            for k in kpis:
                s[k]["real"].append(real.get(k))
                s[k]["pred"].append(pred.get(k))
        pred_per_period[iso(p.end)] = n_pred
    mean_error = []
    for i, end in enumerate(ends):
        vals = [error[c][i][1] for c in cells if error[c][i][1] is not None]
        mean_error.append([end, round(sum(vals) / len(vals), 5) if vals else None])
    pm_published = sum(len(p.pm) for p in published)
    summary = {
        **info,
        "granularityS": gp,
        "periods": len(published),
        "firstPeriodEnd": iso(ends[0]) if ends else None,
        "lastPeriodEnd": iso(ends[-1]) if ends else None,
        "cells": cells,
        "clusters": {cid: sorted(cl.cells) for cid, cl in clusters.items()},
        "pm": {"published": pm_published, "inMirror": pm_in, "missing": missing_pm[:50]},
        "predictions": {
            "expected": len(cells) * len(published),
            "inMirror": sum(pred_per_cell.values()),
            "perCell": pred_per_cell,
            "perPeriod": pred_per_period,
            "missing": missing_pred[:50],
        },
        "error": {"metric": "mean relative error over " + ", ".join(ERROR_KPIS),
                  "meanByPeriod": mean_error, "perCell": error},
        "events": [dict(e) for e in events],
        "gapError": {"metric": "mean relative error over " + ", ".join(RATIO_KPIS) + ", raw twin and "
                     "calibrated (raw plus the gap learners' residual)",
                     "rawMeanByPeriod": _mean_by_period(ends, gap_raw),
                     "calibratedMeanByPeriod": _mean_by_period(ends, gap_cal),
                     "perCell": {c: {"raw": gap_raw[c], "calibrated": gap_cal[c]} for c in cells}},
        "fidelity": _fidelity(ends, clusters),
    }
    return summary, {"ends": ends, "cells": series}


def _fidelity(ends: Sequence[int], clusters: Mapping[str, ClusterMirror]) -> dict[str, Any]:
    """Per cluster, the DT-BSM records the mirror kept (``docs/fidelity.md``) and, per period of the
    run, the latest estimate then (``byPeriod``: [end, value, lower, upper, coverage, tvBound,
    ueValue], None before the first; ``tvBound`` the TV bound at that computation, §9.3's early
    warning; ``ueValue`` the UE-level DT-BSM of the worst cell), and ``ueByCell``: per cell, its
    UE-level value at each period (``twin.fidelity.ue_level``)."""
    out: dict[str, Any] = {}
    for cid, cl in sorted(clusters.items()):
        records = sorted(cl.fidelity, key=lambda r: int(r["periodEnd"]))
        if not records:
            continue
        by_period: list[list[Any]] = []
        by_cell: dict[str, list[float | None]] = {}
        i, latest = 0, None
        for n, end in enumerate(ends):
            while i < len(records) and int(records[i]["periodEnd"]) <= end:
                latest = records[i]
                i += 1
            ue = (latest or {}).get("ueLevel") or {}
            by_period.append([end, *((None,) * 5 if latest is None else
                                     (latest["value"], latest["lower"], latest["upper"], latest["coverage"],
                                      latest.get("tvBound"))), ue.get("value")])
            for cell, v in (ue.get("cells") or {}).items():
                by_cell.setdefault(cell, [None] * len(ends))[n] = v
        out[cid] = {"tau": records[-1]["tau"], "byPeriod": by_period, "ueByCell": dict(sorted(by_cell.items())),
                    "records": [{k: r.get(k) for k in ("periodEnd", "value", "lower", "upper", "coverage",
                                                       "restricted", "restrictedPairs", "comparedPairs",
                                                       "actions", "firing", "tvBound", "early", "earlyBy")}
                                | {"ueValue": (r.get("ueLevel") or {}).get("value"),
                                   "ueWorstCell": (r.get("ueLevel") or {}).get("worstCell")} for r in records]}
    return out
