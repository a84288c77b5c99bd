"""A self-contained HTML report with inline SVG plots (no plotting library, no scripts).

Plots: the twin's error over time (mean over cells, every cell faintly, the cells named by
events highlighted) with the scenario's events marked, the guarded CM loop (the cluster's mean
throughput with pushes and roll backs marked, and every change with its outcome), and real vs
twin per cell over time for the main KPIs as small multiples. Given a ``sim2real`` section, the
Sim2Real MAPE table of the four models at demo size.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from twin.sim.kpis import POWER, PRB, THP

__all__ = ["SIM2REAL_LABELS", "line_chart", "render_report"]

REAL, TWIN, EVENT = "#1f77b4", "#ff7f0e", "#d62728"
PLOTTED = ((THP, "kbit/s"), (PRB, "%"), (POWER, "W"))
SIM2REAL_LABELS = {"real_only": "real only", "twin_only": "twin only", "finetune": "naive fine-tuning",
                   "transfer": "transfer (response frozen)"}
"""The four Sim2Real models of ``twin bench sim2real`` (``twin.sim2real.train.METHODS``) in table order."""


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _hhmm(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%d %H:%M")


def _path(xs: Sequence[float], ys: Sequence[float | None], sx: Any, sy: Any) -> str:
    parts: list[str] = []
    pen = "M"
    for x, y in zip(xs, ys, strict=True):
        if y is None or not math.isfinite(y):
            pen = "M"
            continue
        parts.append(f"{pen}{sx(x):.1f},{sy(y):.1f}")
        pen = "L"
    return " ".join(parts)


def line_chart(xs: Sequence[float], lines: Sequence[tuple[Sequence[float | None], str, float, str]],
               marks: Sequence[tuple[float, str]] = (), width: int = 900, height: int = 260,
               title: str = "", unit: str = "") -> str:
    """One SVG chart: ``lines`` are (values, colour, stroke width, dash), ``marks`` vertical lines."""
    left, right, top, bottom = 56, 10, 22, 24
    vals = [v for ys, *_ in lines for v in ys if v is not None and math.isfinite(v)]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    lo = min(lo, 0.0) if lo >= 0 else lo
    if hi - lo < 1e-9:
        hi = lo + 1.0
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x1 - x0 < 1e-9:
        x1 = x0 + 1.0

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return top + (1 - (y - lo) / (hi - lo)) * (height - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10">',
           f'<text x="{left}" y="14" font-size="12" font-weight="bold">{html.escape(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
           'fill="none" stroke="#ccc"/>']
    for i in range(5):
        y = lo + (hi - lo) * i / 4
        out.append(f'<text x="{left - 4}" y="{sy(y) + 3:.1f}" text-anchor="end">{y:.3g}</text>')
    out.append(f'<text x="4" y="{top + 8}">{html.escape(unit)}</text>')
    for i in range(5):
        x = x0 + (x1 - x0) * i / 4
        out.append(f'<text x="{sx(x):.1f}" y="{height - 8}" text-anchor="middle">{_hhmm(x)}</text>')
    for x, label in marks:
        if x0 <= x <= x1:
            out.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{top}" y2="{height - bottom}" '
                       f'stroke="{EVENT}" stroke-dasharray="4 3"/>'
                       f'<text x="{sx(x) + 3:.1f}" y="{top + 10}" fill="{EVENT}">{html.escape(label)}</text>')
    for ys, colour, stroke, dash in lines:
        d = _path(xs, ys, sx, sy)
        if d:
            extra = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="{stroke}"{extra}/>')
    out.append("</svg>")
    return "".join(out)


def _event_marks(events: Sequence[Mapping[str, Any]]) -> list[tuple[float, str]]:
    marks = []
    for e in events:
        t = _epoch(e.get("start") or e.get("time") or e.get("at"))
        if t is not None:
            marks.append((t, str(e.get("label") or e.get("kind") or "event")))
    return marks


def _event_cells(events: Sequence[Mapping[str, Any]], cells: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for e in events:
        params = e.get("params") or {}
        for ref in (e.get("cell"), params.get("cell") if isinstance(params, Mapping) else None):
            if isinstance(ref, str) and ref in cells:
                out.add(ref)
            elif isinstance(ref, int) and 0 <= ref < len(cells):
                out.add(cells[ref])
    return out


def _alert_marks(summary: Mapping[str, Any]) -> list[tuple[float, str]]:
    marks: list[tuple[float, str]] = []
    for a in summary.get("alerts", []):
        short = {"TWIN_DIVERGENCE": "divergence", "TWIN_RESYNC": "resync alert"}.get(a["kind"], a["kind"])
        if (t := _epoch(a.get("raised"))) is not None:
            marks.append((t, f"{short} raised"))
        if (t := _epoch(a.get("cleared"))) is not None:
            marks.append((t, f"{short} cleared"))
    for r in summary.get("resyncs", []):
        if isinstance(r.get("at"), int | float):
            marks.append((float(r["at"]), f"resync {r.get('status')}"))
    return marks


def _gap_section(summary: Mapping[str, Any], ends: Sequence[float], cells: Sequence[str], hot: set[str],
                 marks: list[tuple[float, str]]) -> list[str]:
    """Raw and calibrated error over time with the alerts and resyncs marked; the alerts and the
    resyncs with their fitted parameters."""
    gap = summary.get("gapError")
    if not gap:
        return []
    lines: list[tuple[Sequence[float | None], str, float, str]] = []
    for c in cells:
        if c in hot:
            lines.append((gap["perCell"][c]["raw"], EVENT, 1.6, ""))
            lines.append((gap["perCell"][c]["calibrated"], "#2a2", 1.6, ""))
    lines.append(([v for _, v in gap["rawMeanByPeriod"]], "#000", 2.0, ""))
    lines.append(([v for _, v in gap["calibratedMeanByPeriod"]], "#2a2", 2.0, "4 2"))
    parts = [
        "<h2>Raw and calibrated error, divergence and resync</h2><p>Black: raw twin, mean over cells; green "
        "dashed: calibrated, mean over cells; red and green: raw and calibrated of the cells named by an event. "
        f"{html.escape(gap['metric'])}. Marked: the scenario's events, alerts raised and cleared, resyncs.</p>",
        line_chart(ends, lines, [*marks, *_alert_marks(summary)], title="raw vs calibrated error", unit="err"),
        "<h2>Alerts</h2><table><tr><td>kind</td><td>severity</td><td>cell / cluster</td><td>raised</td>"
        "<td>cleared</td><td>text</td></tr>",
        *(f"<tr><td>{html.escape(str(a['kind']))}</td><td>{html.escape(str(a['severity']))}</td>"
          f"<td>{html.escape(str(a.get('cell') or a.get('cluster')))}</td><td>{html.escape(str(a['raised']))}</td>"
          f"<td>{html.escape(str(a.get('cleared') or 'active'))}</td><td>{html.escape(str(a.get('text') or ''))}</td>"
          "</tr>" for a in summary.get("alerts", [])),
        "</table><h2>Resyncs</h2><table><tr><td>status</td><td>cells</td><td>trigger</td><td>fitted change</td>"
        "<td>calibration after</td><td>error before / after (evidence)</td><td>verification (old / new)</td></tr>",
    ]
    for r in summary.get("resyncs", []):
        v = r.get("verify") or {}
        n = v.get("periods") or 0
        verify = f"{v['errorOld'] / n:.3f} / {v['errorNew'] / n:.3f} over {n}" if n else ""
        parts.append(
            f"<tr><td>{html.escape(str(r.get('status')))}</td><td>{html.escape(', '.join(r.get('cells') or []))}</td>"
            f"<td>{html.escape(str((r.get('trigger') or {}).get('sources')))}</td>"
            f"<td>{html.escape(str(r.get('change')))}</td><td>{html.escape(str(r.get('parametersAfter')))}</td>"
            f"<td>{r.get('errorBefore')} / {r.get('errorAfter')}</td><td>{html.escape(verify)}</td></tr>")
    parts.append("</table>")
    return parts


def _fidelity_section(summary: Mapping[str, Any], ends: Sequence[float], marks: list[tuple[float, str]]) -> list[str]:
    """DT-BSM per cluster over the run with its resync threshold tau (``docs/fidelity.md``)."""
    fid = summary.get("fidelity") or {}
    if not fid:
        return []
    parts = ["<h2>DT-BSM per cluster</h2><p>Black: the point value (DTBSM_sup); green dashed: the lower end "
             "of its interval (confident drift above tau); red dashed: tau. The latest estimate at each period "
             "(recomputed every few periods, or early); it compares the state-action pairs both sides sampled at "
             "least n_min times (\"pairs compared\"; fewer right after a resync, which restarts the twin's "
             "samples). The upper end and the coverage are in the table. Below "
             "it, blue: the TV bound of the point value (the early warning between computations: a rise "
             "computes at once; a loose upper bound, so on its own scale), black: the point value again.</p>"]
    for cid, f in fid.items():
        rows = f["byPeriod"]
        tau = float(f["tau"])
        lines: list[tuple[Sequence[float | None], str, float, str]] = [
            ([r[1] for r in rows], "#000", 2.0, ""), ([r[2] for r in rows], "#2a2", 1.6, "4 2"),
            ([tau] * len(rows), EVENT, 1.2, "6 3")]
        parts.append(line_chart(ends, lines, [*marks, *_alert_marks(summary)], title=f"DT-BSM, {cid}", unit="d"))
        if any(len(r) > 5 and r[5] is not None for r in rows):
            tv_lines: list[tuple[Sequence[float | None], str, float, str]] = [
                ([r[5] if len(r) > 5 else None for r in rows], "#36c", 1.6, ""),
                ([r[1] for r in rows], "#000", 1.0, "")]
            parts.append(line_chart(ends, tv_lines, [*marks, *_alert_marks(summary)],
                                    title=f"TV bound (early warning), {cid}", unit="d"))
        parts += _ue_level_chart(summary, cid, f, ends, marks)
        last = f["records"][-1]
        left_out = last.get("restrictedPairs") or 0
        scope = ("restricted to " + ", ".join(last["actions"] or [])
                 + (f" ({left_out} state-action pairs left out)" if left_out else "")) if last["restricted"] \
            else "all actions"
        early = sum(1 for r in f["records"] if r.get("early"))
        parts.append(f"<table><tr><td>latest</td><td>value {last['value']}</td><td>lower {last['lower']}</td>"
                     f"<td>upper {last['upper']}</td><td>coverage {last['coverage']}</td>"
                     f"<td>pairs compared {'-' if last.get('comparedPairs') is None else last['comparedPairs']}</td>"
                     f"<td>{html.escape(scope)}</td><td>tau {tau:.4g}</td>"
                     f"<td>early computations {early} of {len(f['records'])}</td></tr></table>")
    return parts


_CELL_COLOURS = ("#c33", "#36c", "#2a2", "#c7a", "#a60")


def _ue_level_chart(summary: Mapping[str, Any], cid: str, f: Mapping[str, Any], ends: Sequence[float],
                    marks: list[tuple[float, str]]) -> list[str]:
    """The cluster's UE-level DT-BSM (``twin.fidelity.ue_level``): its worst cell and each cell a
    resync of the run fitted (the cells whose story the resync tells)."""
    rows = f["byPeriod"]
    if not any(len(r) > 6 and r[6] is not None for r in rows):
        return []
    by_cell = f.get("ueByCell", {})

    def peak(cell: str) -> float:
        return max((v for v in by_cell[cell] if v is not None), default=0.0)

    fitted = {c for r in summary.get("resyncs") or [] if r.get("clusterId") == cid for c in r.get("cells") or []
              if c in by_cell}
    fitted_shown = sorted(sorted(fitted, key=peak, reverse=True)[: len(_CELL_COLOURS)])  # the highest peaks
    lines: list[tuple[Sequence[float | None], str, float, str]] = [([r[6] if len(r) > 6 else None for r in rows],
                                                                     "#000", 2.0, "")]
    lines += [(by_cell[c], colour, 1.4, "") for c, colour in zip(fitted_shown, _CELL_COLOURS, strict=False)]
    legend = ", ".join(f'<span style="color:{colour}">{html.escape(c)}</span>'
                       for c, colour in zip(fitted_shown, _CELL_COLOURS, strict=False))
    which = f" (the {len(fitted_shown)} with the highest peaks)" if len(fitted) > len(fitted_shown) else ""
    return [f"<p>UE-level DT-BSM (each cell's UEs, from its SS-SINR distribution every period: sees one cell's "
            f"fault in its first period). Black: the cluster's value, its worst cell's; coloured: the cells a "
            f"resync fitted{which}{': ' + legend if legend else ': none'}.</p>",
            line_chart(ends, lines, [*marks, *_alert_marks(summary)], title=f"UE-level DT-BSM, {cid}", unit="d")]


def _cm_section(summary: Mapping[str, Any], marks: list[tuple[float, str]]) -> list[str]:
    """The guarded CM loop: the cluster's real and predicted mean throughput with the pushes and
    roll backs marked, the gain, and every change with its guard decision and outcome."""
    cm = summary.get("cm")
    if not cm:
        return []
    thp = cm["throughput"]
    rows = thp["byPeriod"]
    xs = [float(r[0]) for r in rows]
    cm_marks = list(marks)
    for c in cm["changes"]:
        if (t := _epoch(c.get("pushedAt"))) is not None:
            cm_marks.append((t, f"push {c['cell'][-3:]}"))
        if c["state"] == "ROLLED_BACK" and (t := _epoch(c.get("verifiedAt"))) is not None:
            cm_marks.append((t, f"roll back {c['cell'][-3:]}"))
    truth = thp.get("truth") or {}
    counts = cm["counts"]
    facts = {
        "optimisation rounds": ", ".join(f"{r['at'][11:16]} ({r.get('proposals', 0)} proposals, "
                                         f"{r.get('whatifs', 0)} what-ifs, twin gain {r.get('predictedGainPct')} %)"
                                         if "skipped" not in r else f"{r['at'][11:16]} skipped: {r['skipped']}"
                                         for r in cm["rounds"]) or "none",
        "changes proposed / refused by the guard / pushed": f"{counts['proposed']} / {counts['guardRejected']} / "
                                                            f"{counts['pushed']}",
        "confirmed / rolled back / still observed / failed": f"{counts['confirmed']} / {counts['rolledBack']} / "
                                                             f"{counts['observing']} / {counts['failed']}",
        f"real cluster mean {thp['kpi']} before / after the first push (kbit/s)":
            f"{thp['realBefore']} / {thp['realAfter']} ({thp['realChangePct']} %; moves with the hour of the day "
            "as much as with the changes)",
        "gain on the hidden truth, like for like, over the run (mean throughput / objective)":
            f"{truth.get('runThpGainPct')} % / {truth.get('runObjectiveGainPct')} % over {truth.get('periods')} "
            "periods",
        "gain of the final configuration on the hidden truth (mean throughput / objective)":
            f"{truth.get('finalThpGainPct')} % / {truth.get('finalObjectiveGainPct')} %",
        "guard": f"mode {cm['policy']['mode']}, trust gate {'on' if cm['policy']['trustGate'] else 'off'} "
                 f"({cm['policy']['trustGateNote']}), {cm['policy']['maxCellsPerCluster']} cells per round, "
                 f"{cm['policy']['baseline_periods']} baseline and {cm['policy']['observePeriods']} observed periods",
        "published": f"{cm['published'].get('results')} results on {cm['published'].get('resultsTopic')}, "
                     f"{cm['published'].get('alerts')} alerts on {cm['published'].get('alertsTopic')}",
    }
    parts = [
        "<h2>Guarded CM loop: optimiser, guard, pushes, verification</h2><p>The optimiser searched the twin the "
        "worker checkpointed; each proposal went through the guard and the ledger to the emulated network; the "
        "verification compared the cluster's real mean throughput after each push with the counterfactual "
        "carried by the twin's raw prediction and rolled back what the network contradicted. The truth columns "
        "read the emulator's hidden truth after the run (the runtime never does).</p><table>",
        *(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items()),
        "</table>",
        line_chart(xs, [([r[1] for r in rows], REAL, 2.0, ""), ([r[2] for r in rows], TWIN, 1.6, "4 2")], cm_marks,
                   title=f"cluster mean {thp['kpi']}: real (blue), twin raw (orange, dashed)", unit=thp["unit"]),
        "<table><tr><td>cell</td><td>attribute</td><td>from</td><td>to</td><td>predicted gain (objective %)</td>"
        f"<td>predicted {html.escape(thp['kpi'])} %</td><td>state</td><td>guard</td><td>outcome by</td>"
        "<td>effect vs counterfactual %</td><td>on the truth %</td><td>truth agrees</td><td>reason</td></tr>",
    ]
    for c in cm["changes"]:
        v = c.get("verification") or {}
        colour = {"ROLLED_BACK": EVENT, "CONFIRMED": "#2a2", "REJECTED": "#888"}.get(c["state"], "#222")
        agrees = {True: "yes", False: "no", None: ""}[c.get("truthAgrees")]
        parts.append(
            f"<tr><td>{html.escape(c['cell'])}</td><td>{html.escape(c['class'])}.{html.escape(c['attribute'])}</td>"
            f"<td>{html.escape(str(c['from']))}</td><td>{html.escape(str(c['to']))}</td>"
            f"<td>{c['predictedGainPct']}</td><td>{c['predictedThpPct']}</td>"
            f"<td style='color:{colour};font-weight:bold'>{html.escape(c['state'])}</td>"
            f"<td>{html.escape(str(c.get('guardDecision')))} by {html.escape(str(c.get('decidedBy')))}</td>"
            f"<td>{html.escape(str(c.get('outcomeBy') or ''))}</td><td>{v.get('effectPct', '')}</td>"
            f"<td>{'' if c.get('truthThpPct') is None else c['truthThpPct']}</td><td>{agrees}</td>"
            f"<td>{html.escape(str(c.get('reason') or ''))}</td></tr>")
    parts.append("</table>")
    return parts


def _fmt(value: Any, digits: int) -> str:
    """A figure of the Sim2Real table; '-' for one that is missing or not finite."""
    if isinstance(value, int | float) and math.isfinite(value):
        return f"{value:.{digits}f}"
    return "-"


def _sim2real_section(summary: Mapping[str, Any]) -> list[str]:
    """The four Sim2Real models at demo size: MAPE in band, out of band, with 10 % of the real data,
    and Kendall tau of the ranked candidates (``replay.bench_sim2real``); the error line if it failed."""
    s2r = summary.get("sim2real")
    if not s2r:
        return []
    head = "<h2>Sim2Real KPI predictor: four models at demo size</h2>"
    if "error" in s2r:
        return [head, f"<p class='s2r-error'>The Sim2Real table could not be computed: {html.escape(str(s2r['error']))}"
                "</p>"]
    z = s2r.get("sizes") or {}
    n = s2r.get("samples") or {}
    scenarios = ", ".join(map(str, s2r.get("scenarios") or []))
    parts = [
        head,
        "<p>Mean absolute percentage error (mean of DRB.UEThpDl and RRU.PrbTotDl, floored denominators) on held-out "
        "real periods of the emulated network: in band (the small CM changes the training data had), out of band "
        "(cells moved outside that band; the what-if a model is asked for) and trained with 10 % of the real data; "
        "Kendall tau: how well each model ranks a cell's tilt and power candidates against the hidden truth.</p>",
        "<table id='sim2real'><tr><td>model</td><td>MAPE in band %</td><td>MAPE out of band %</td>"
        "<td>MAPE with 10 % of the real data %</td><td>Kendall tau</td></tr>",
    ]
    for m in [*SIM2REAL_LABELS, *(k for k in s2r.get("mape", {}) if k not in SIM2REAL_LABELS)]:
        parts.append(f"<tr><td>{html.escape(SIM2REAL_LABELS.get(m, m))}</td>"
                     f"<td>{_fmt(s2r.get('mape', {}).get(m), 1)}</td>"
                     f"<td>{_fmt(s2r.get('mape_out_of_band', {}).get(m), 1)}</td>"
                     f"<td>{_fmt(s2r.get('mape_10pct', {}).get(m), 1)}</td>"
                     f"<td>{_fmt(s2r.get('kendall_tau', {}).get(m), 2)}</td></tr>")
    parts += [
        "</table>",
        f"<p>Similarity of the twin and real data: {_fmt(s2r.get('similarity'), 3)}; pretraining "
        f"{_fmt(s2r.get('pretrain_s'), 1)} s on {n.get('twin')} twin samples; {n.get('real_train')} real training "
        f"and {n.get('real_test')} held-out rows, {n.get('out_of_band')} out of band ({html.escape(scenarios)}; "
        f"{z.get('trainDays')} + {z.get('testDays')} days, {z.get('rankCells')} ranked cells, "
        f"{z.get('epochs')} epochs); {_fmt(s2r.get('seconds'), 1)} s in all.</p>",
        "<p>These are demo-size figures (a fraction of the benchmark's data and training, so noisier); "
        "<code>twin bench sim2real --json</code> (docs/benchmarks.md) gives the full comparison.</p>",
    ]
    return parts


def render_report(summary: Mapping[str, Any], series: Mapping[str, Any]) -> str:
    """The report as one HTML string."""
    ends = [float(e) for e in series["ends"]]
    cells: list[str] = list(summary["cells"])
    events = summary.get("events", [])
    marks = _event_marks(events)
    hot = _event_cells(events, cells)
    per_cell = summary["error"]["perCell"]
    err_lines: list[tuple[Sequence[float | None], str, float, str]] = [
        ([v for _, v in per_cell[c]], "#bbb", 0.8, "") for c in cells if c not in hot]
    err_lines += [([v for _, v in per_cell[c]], EVENT, 2.0, "") for c in cells if c in hot]
    err_lines.append(([v for _, v in summary["error"]["meanByPeriod"]], "#000", 2.0, ""))
    facts = {
        "scenario": summary.get("scenario"), "seed": summary.get("seed"), "periods": summary["periods"],
        "cells": len(cells), "PM published / in mirror": f'{summary["pm"]["published"]} / {summary["pm"]["inMirror"]}',
        "predictions expected / in mirror":
            f'{summary["predictions"]["expected"]} / {summary["predictions"]["inMirror"]}',
        "wall seconds": summary.get("wallSeconds"), "sim s per wall s": summary.get("simSecondsPerWallSecond"),
        "latency p50 / p99 (ms)": f'{summary.get("latencyMsP50")} / {summary.get("latencyMsP99")}',
    }
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>RAN twin demo report</title>",
        "<style>body{font-family:sans-serif;margin:20px;color:#222}td{padding:2px 10px}"
        ".grid{display:flex;flex-wrap:wrap;gap:6px}h2{margin-top:28px}</style></head><body>",
        f"<h1>RAN digital twin: {html.escape(str(summary.get('scenario', 'run')))}</h1><table>",
        *(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items()),
        "</table><h2>Events</h2><ul>",
        *(f"<li>{html.escape(str(e.get('start', '')))}: {html.escape(str(e.get('label') or e.get('kind')))}"
          f" {html.escape(str(e.get('params', '')))}</li>" for e in events),
        "</ul>" if events else "<li>none</li></ul>",
        "<h2>Twin error over time</h2><p>Black: mean over cells; red: cells named by an event; grey: the "
        f"other cells. {html.escape(summary['error']['metric'])}.</p>",
        line_chart(ends, err_lines, marks, title="twin error (relative)", unit="err"),
    ]
    parts += _cm_section(summary, marks)
    parts += _gap_section(summary, ends, cells, hot, marks)
    parts += _fidelity_section(summary, ends, marks)
    parts += _sim2real_section(summary)
    for kpi, unit in PLOTTED:
        parts.append(f"<h2>{kpi}: real (blue) vs twin (orange, dashed) per cell</h2><div class='grid'>")
        for cell in cells:
            s = series["cells"].get(cell, {}).get(kpi)
            if not s:
                continue
            lines = [(s["real"], REAL, 1.4, ""), (s["pred"], TWIN, 1.4, "4 2")]
            title = cell + (" (event)" if cell in hot else "")
            parts.append(line_chart(ends, lines, marks, width=300, height=150, title=title, unit=unit))
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)
