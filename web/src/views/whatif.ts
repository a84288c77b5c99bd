// The what-if panel: one CM change on the selected cell in, the twin's predicted KPI deltas out
// (POST /api/v1/whatif; nothing is applied, so viewers may run it too).

import { el, fmtNum } from "../dom";

export interface WhatIfRow {
  cell: string;
  kpi: string;
  baseline: number;
  changed: number;
  delta: number;
}

export interface WhatIfAnswer {
  cluster: string;
  periodEnd: number;
  modelVersion: string;
  converged: boolean;
  rows: WhatIfRow[];
}

/** The attributes offered, with their NRM units (twin/sim/cm.py validates the ranges). */
export const ATTRIBUTES: [string, string][] = [
  ["digitalTilt", "0.1°, + = down"],
  ["configuredMaxTxPower", "mW"],
  ["cellIndividualOffset", "dB"],
  ["mechanicalTilt", "0.1°"],
  ["azimuth", "degrees"],
];

const SHOWN = 15;

export function renderWhatIf(host: HTMLElement, answer: WhatIfAnswer, changedCell: string): void {
  // largest relative moves first; the changed cell's rows always on top
  const rel = (r: WhatIfRow) => Math.abs(r.delta) / Math.max(Math.abs(r.baseline), 1e-9);
  const rows = [...answer.rows].sort(
    (a, b) => Number(b.cell === changedCell) - Number(a.cell === changedCell) || rel(b) - rel(a),
  );
  const when = new Date(answer.periodEnd * 1000).toISOString().slice(0, 16).replace("T", " ");
  host.replaceChildren(
    el(
      "p",
      { class: "keyline" },
      `${answer.cluster}, period ending ${when}Z, model ${answer.modelVersion}`,
      answer.converged ? "" : " (the load fixed point did not converge)",
    ),
    el(
      "table",
      {},
      el(
        "thead",
        {},
        el("tr", {}, ...["cell", "KPI", "now (twin)", "with the change", "delta", "%"].map((h) => el("th", {}, h))),
      ),
      el(
        "tbody",
        {},
        ...rows.slice(0, SHOWN).map((r) =>
          el(
            "tr",
            { class: `whatif-row${r.delta < 0 ? " down" : ""}`, "data-cell": r.cell, "data-kpi": r.kpi, "data-delta": String(r.delta) },
            el("td", {}, r.cell),
            el("td", {}, r.kpi),
            el("td", {}, fmtNum(r.baseline, 4)),
            el("td", {}, fmtNum(r.changed, 4)),
            el("td", {}, `${r.delta >= 0 ? "+" : ""}${fmtNum(r.delta, 4)}`),
            el("td", {}, `${r.delta >= 0 ? "+" : ""}${fmtNum((100 * r.delta) / Math.max(Math.abs(r.baseline), 1e-9), 3)}`),
          ),
        ),
      ),
    ),
    rows.length > SHOWN ? el("p", { class: "empty" }, `${rows.length - SHOWN} smaller moves not shown`) : "",
  );
}
