// The cells of every cluster as tiles coloured by the twin's error (green: close, red: far off).

import { el, fmtNum } from "../dom";
import type { Cluster } from "../model";

/** Tile colour for a relative error (0.0 = exact): green below 5 %, through amber, red from 30 % up. */
export function errorColour(error: number | null): string {
  if (error === null || !Number.isFinite(error)) return "#c9ced6";
  const e = Math.min(Math.max(Math.abs(error), 0), 0.3) / 0.3;
  const hue = 130 - 130 * e;
  return `hsl(${hue.toFixed(0)}, 65%, 48%)`;
}

export function renderGrid(
  host: HTMLElement,
  clusters: Cluster[],
  selected: string | null,
  onSelect: (cell: string, cluster: string) => void,
): void {
  const blocks = clusters.map((c) => {
    const tiles = c.cells.map((cell) => {
      const pct = cell.error === null ? "no data" : `${fmtNum(cell.error * 100, 2)} %`;
      const tile = el(
        "button",
        {
          class: `tile${cell.key === selected ? " selected" : ""}`,
          title: `${cell.key}\ntwin error ${pct}${cell.state ? `\n${cell.state}` : ""}`,
          "data-cell": cell.key,
          "data-error": cell.error === null ? "" : String(cell.error),
          type: "button",
        },
        el("span", { class: "tile-name" }, cell.label),
        el("span", { class: "tile-err" }, pct),
      );
      tile.style.background = errorColour(cell.error);
      tile.addEventListener("click", () => onSelect(cell.key, c.id));
      return tile;
    });
    const fid = c.dtbsm === null ? "" : ` · DT-BSM ${fmtNum(c.dtbsm)}${c.firing ? " (over threshold)" : ""}`;
    return el(
      "div",
      { class: "cluster", "data-cluster": c.id },
      el("h3", {}, `${c.id} (${c.cells.length} cells)${fid}`),
      el("div", { class: "tiles" }, ...tiles),
    );
  });
  const legend = el(
    "div",
    { class: "legend" },
    "twin error: ",
    ...[0, 0.05, 0.1, 0.2, 0.3].map((e) => {
      const sw = el("span", { class: "swatch" }, `${e * 100} %`);
      sw.style.background = errorColour(e);
      return sw;
    }),
  );
  host.replaceChildren(legend, ...(blocks.length ? blocks : [el("p", { class: "empty" }, "no cells mirrored yet")]));
}
