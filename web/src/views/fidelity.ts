// The DT-BSM timeline of a cluster (value and its bounds) against the trust threshold.

import type uPlot from "uplot";
import { drawChart } from "../charts";
import { el, fmtNum } from "../dom";
import type { Fidelity, Mark } from "../model";
import { COLOURS } from "./cell";

let chart: uPlot | undefined;

export function renderFidelity(host: HTMLElement, fid: Fidelity | null, marks: Mark[]): void {
  chart?.destroy();
  chart = undefined;
  if (!fid || !fid.points.length) {
    host.replaceChildren(el("p", { class: "empty" }, fid ? `no DT-BSM records for ${fid.cluster} yet` : "no cluster"));
    return;
  }
  const last = fid.points[fid.points.length - 1];
  const over = fid.threshold !== null && last.value !== null && last.value > fid.threshold;
  const head = el(
    "p",
    { class: `fid-head${over ? " over" : ""}`, id: "fid-head" },
    `${fid.cluster}: latest DT-BSM ${fmtNum(last.value)}`,
    fid.threshold === null ? "" : ` (threshold ${fmtNum(fid.threshold)}${over ? ", over: the twin is not trusted" : ""})`,
  );
  const box = el("div", { class: "chart", "data-points": String(fid.points.length) });
  if (fid.threshold !== null) box.dataset.threshold = String(fid.threshold);
  host.replaceChildren(head, box);
  chart = drawChart(box, {
    title: `DT-BSM ${fid.cluster}`,
    xs: fid.points.map((p) => p.t),
    lines: [
      { label: "DT-BSM", color: "#333", values: fid.points.map((p) => p.value), width: 2 },
      { label: "lower", color: "#999", values: fid.points.map((p) => p.lower), dash: [2, 2], width: 1 },
      { label: "upper", color: "#999", values: fid.points.map((p) => p.upper), dash: [2, 2], width: 1 },
    ],
    scaleLines: 1,
    markers: marks
      .filter((m) => m.kind === "resync")
      .map((m) => ({ t: m.t, label: m.label, color: COLOURS.resync, dash: [6, 3] })),
    threshold:
      fid.threshold === null ? undefined : { value: fid.threshold, label: `threshold ${fmtNum(fid.threshold)}`, color: "#d62728" },
  });
}
