// The alert list, newest first; active alerts stand out.

import { el, fmtTime } from "../dom";
import type { Alert } from "../model";

export function renderAlerts(host: HTMLElement, alerts: Alert[]): void {
  if (!alerts.length) {
    host.replaceChildren(el("p", { class: "empty" }, "no alerts"));
    return;
  }
  const rows = alerts.map((a) =>
    el(
      "tr",
      { class: `alert ${a.active ? "active" : "cleared"} sev-${a.severity.toLowerCase()}`, "data-alert-id": a.id },
      el("td", {}, fmtTime(a.at)),
      el("td", {}, a.severity),
      el("td", {}, a.type),
      el("td", {}, a.cell || a.cluster),
      el("td", {}, a.active ? "active" : "cleared"),
      el("td", {}, a.text),
    ),
  );
  host.replaceChildren(
    el(
      "table",
      {},
      el("thead", {}, el("tr", {}, ...["time", "severity", "type", "where", "status", "text"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...rows),
    ),
  );
}
