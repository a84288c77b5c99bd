// uPlot charts: KPI lines with vertical markers (CM changes, resyncs) and a horizontal threshold line.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface Marker {
  t: number; // epoch seconds
  label: string;
  color: string;
  dash?: number[];
}

export interface Line {
  label: string;
  color: string;
  values: (number | null)[];
  dash?: number[];
  width?: number;
}

export interface ChartSpec {
  title: string;
  xs: number[]; // epoch seconds
  lines: Line[];
  markers?: Marker[];
  threshold?: { value: number; label: string; color: string };
  unit?: string;
  scaleLines?: number; // only the first n lines set the y range (the rest may run off it)
}

function overlays(spec: ChartSpec): uPlot.Plugin {
  return {
    hooks: {
      draw: [
        (u: uPlot) => {
          const ctx = u.ctx;
          const { left, top, width, height } = u.bbox;
          ctx.save();
          ctx.lineWidth = 1.5 * uPlot.pxRatio;
          // labels stack in rows so that close markers do not overwrite each other; a marker with no
          // free row keeps its line (its label is in the chart's data-marks attribute)
          const rowsEnd: number[] = [];
          const sorted = [...(spec.markers ?? [])].sort((a, b) => a.t - b.t);
          ctx.font = `${10 * uPlot.pxRatio}px sans-serif`;
          ctx.textAlign = "left"; // uPlot leaves the axes' alignment on the context
          ctx.textBaseline = "alphabetic";
          for (const m of sorted) {
            const x = u.valToPos(m.t, "x", true);
            if (x < left || x > left + width) continue;
            ctx.strokeStyle = m.color;
            ctx.setLineDash((m.dash ?? []).map((d) => d * uPlot.pxRatio));
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
            const w = ctx.measureText(m.label).width;
            const pad = 3 * uPlot.pxRatio;
            const lx = x + pad + w > left + width ? x - pad - w : x + pad;
            const row = [0, 1, 2, 3].find((r) => (rowsEnd[r] ?? -Infinity) < lx - pad);
            if (row === undefined) continue;
            rowsEnd[row] = lx + w;
            ctx.fillStyle = m.color;
            ctx.fillText(m.label, lx, top + (11 + 12 * row) * uPlot.pxRatio);
          }
          if (spec.threshold) {
            const y = u.valToPos(spec.threshold.value, "y", true);
            ctx.strokeStyle = spec.threshold.color;
            ctx.setLineDash([6 * uPlot.pxRatio, 4 * uPlot.pxRatio]);
            ctx.beginPath();
            ctx.moveTo(left, y);
            ctx.lineTo(left + width, y);
            ctx.stroke();
            ctx.fillStyle = spec.threshold.color;
            ctx.font = `${10 * uPlot.pxRatio}px sans-serif`;
            ctx.fillText(spec.threshold.label, left + 4 * uPlot.pxRatio, y - 4 * uPlot.pxRatio);
          }
          ctx.restore();
        },
      ],
    },
  };
}

function yRange(spec: ChartSpec): (u: uPlot, lo: number, hi: number) => uPlot.Range.MinMax {
  return (_u, lo, hi) => {
    let min = lo;
    let max = hi;
    if (spec.scaleLines !== undefined) {
      const vals = spec.lines
        .slice(0, spec.scaleLines)
        .flatMap((l) => l.values)
        .filter((v): v is number => v !== null && Number.isFinite(v));
      if (vals.length) {
        min = Math.min(...vals);
        max = Math.max(...vals);
      }
    }
    if (spec.threshold) {
      min = Math.min(min, spec.threshold.value);
      max = Math.max(max, spec.threshold.value);
    }
    if (!Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
    if (max - min < 1e-9) return [min - 1, max + 1];
    const pad = (max - min) * 0.08;
    return [min >= 0 && min - pad < 0 ? 0 : min - pad, max + pad];
  };
}

/** Draws (or redraws) a chart into `host`, sized to the host's width. */
export function drawChart(host: HTMLElement, spec: ChartSpec, previous?: uPlot): uPlot {
  previous?.destroy();
  host.replaceChildren();
  const width = Math.max(280, host.clientWidth || 600);
  const opts: uPlot.Options = {
    title: spec.title,
    width,
    height: 220,
    scales: { x: { time: true }, y: { range: yRange(spec) } },
    axes: [{}, { label: spec.unit ?? "", size: 60 }],
    series: [
      {},
      ...spec.lines.map((l) => ({
        label: l.label,
        stroke: l.color,
        width: l.width ?? 1.5,
        dash: l.dash,
        spanGaps: false,
        points: { show: false },
      })),
    ],
    plugins: [overlays(spec)],
    legend: { show: true, live: false },
  };
  const data: uPlot.AlignedData = [spec.xs, ...spec.lines.map((l) => l.values)];
  return new uPlot(opts, data, host);
}
