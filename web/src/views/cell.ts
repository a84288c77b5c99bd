// Per-cell KPI plots: real vs predicted vs calibrated, with CM changes and resyncs marked.

import type uPlot from "uplot";
import { drawChart, type Marker } from "../charts";
import { el } from "../dom";
import type { Mark, Series } from "../model";

export const COLOURS = { real: "#1f77b4", predicted: "#ff7f0e", calibrated: "#2ca02c", change: "#9467bd", resync: "#d62728" };

const charts = new Map<string, uPlot>();
const MAIN = 3;
let moreOpen = false; // kept across the redraws each event brings

function folded(boxes: HTMLElement[]): HTMLDetailsElement {
  const details = el("details", {}, el("summary", {}, `${boxes.length} more KPIs`), ...boxes);
  details.open = moreOpen;
  details.addEventListener("toggle", () => {
    moreOpen = details.open;
  });
  return details;
}

function markers(marks: Mark[]): Marker[] {
  return marks.map((m) =>
    m.kind === "change"
      ? { t: m.t, label: m.label, color: COLOURS.change, dash: [2, 3] }
      : { t: m.t, label: m.label, color: COLOURS.resync, dash: [6, 3] },
  );
}

export function renderCell(host: HTMLElement, cell: string | null, series: Series[], marks: Mark[]): void {
  for (const c of charts.values()) c.destroy();
  charts.clear();
  if (!cell) {
    host.replaceChildren(el("p", { class: "empty" }, "pick a cell in the grid"));
    return;
  }
  const withData = series.filter((s) => s.xs.length);
  if (!withData.length) {
    host.replaceChildren(el("h3", {}, cell), el("p", { class: "empty" }, "no KPI history for this cell yet"));
    return;
  }
  const key = el(
    "p",
    { class: "keyline" },
    ...(["real", "predicted", "calibrated", "change", "resync"] as const).map((k) => {
      const s = el("span", { class: "key" }, k === "change" ? "CM change" : k);
      s.style.borderColor = COLOURS[k];
      return s;
    }),
  );
  // the three main KPIs open, the others folded away (the panel stays short)
  const boxes = withData.map((s) => el("div", { class: "chart", "data-kpi": s.kpi }));
  const more = boxes.slice(MAIN);
  host.replaceChildren(
    el("h3", { id: "cell-title" }, cell),
    key,
    ...boxes.slice(0, MAIN),
    ...(more.length ? [folded(more)] : []),
  );
  withData.forEach((s, i) => {
    // what the canvas shows, readable by tests and assistive tools
    const shown = marks.filter((m) => m.t >= s.xs[0] && m.t <= s.xs[s.xs.length - 1]);
    boxes[i].dataset.changes = String(shown.filter((m) => m.kind === "change").length);
    boxes[i].dataset.resyncs = String(shown.filter((m) => m.kind === "resync").length);
    boxes[i].dataset.points = String(s.xs.length);
    boxes[i].dataset.marks = shown.map((m) => m.label).join(" | ");
    charts.set(
      s.kpi,
      drawChart(boxes[i], {
        title: s.kpi,
        unit: s.unit,
        xs: s.xs,
        lines: [
          { label: "real", color: COLOURS.real, values: s.real, width: 2 },
          { label: "predicted", color: COLOURS.predicted, values: s.predicted, dash: [5, 3] },
          { label: "calibrated", color: COLOURS.calibrated, values: s.calibrated },
        ],
        markers: markers(marks),
      }),
    );
  });
}
