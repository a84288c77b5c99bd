// The approval queue (PENDING_APPROVAL changes with approve / reject) and the recent changes with roll back.
// Buttons are disabled for viewers; the API refuses them anyway (403), which the dashboard reports.

import { el, fmtTime } from "../dom";
import type { Change } from "../model";
import type { Role } from "../session";

export type ChangeAction = "approve" | "reject" | "rollback";

const ROLLBACKABLE = new Set(["APPLIED", "OBSERVING", "CONFIRMED"]);

function value(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}

function button(action: ChangeAction, change: Change, role: Role | null, act: (a: ChangeAction, c: Change) => void) {
  const allowed = role === "operator";
  const b = el(
    "button",
    {
      type: "button",
      class: `action ${action}`,
      "data-action": action,
      "data-change-id": change.changeId,
      title: allowed ? `${action} ${change.changeId}` : "operators only",
    },
    action === "rollback" ? "roll back" : action,
  );
  b.disabled = !allowed;
  b.addEventListener("click", () => act(action, change));
  return b;
}

function describe(c: Change): string {
  return `${c.attribute}: ${value(c.from)} → ${value(c.to)}`;
}

export function renderQueue(
  host: HTMLElement,
  changes: Change[],
  role: Role | null,
  act: (a: ChangeAction, c: Change) => void,
): void {
  const pending = changes.filter((c) => c.state === "PENDING_APPROVAL");
  if (!pending.length) {
    host.replaceChildren(el("p", { class: "empty" }, "no change waits for approval"));
    return;
  }
  const rows = pending.map((c) =>
    el(
      "tr",
      { class: "change-row pending", "data-change-id": c.changeId, "data-state": c.state },
      el("td", { class: "mono" }, c.changeId.slice(0, 8)),
      el("td", {}, c.cellKey),
      el("td", {}, describe(c)),
      el("td", {}, c.requester),
      el("td", {}, fmtTime(c.requestedAt)),
      el("td", { class: "state" }, c.state),
      el("td", { class: "buttons" }, button("approve", c, role, act), button("reject", c, role, act)),
    ),
  );
  host.replaceChildren(
    el(
      "table",
      {},
      el(
        "thead",
        {},
        el("tr", {}, ...["change", "cell", "what", "requester", "requested", "state", ""].map((h) => el("th", {}, h))),
      ),
      el("tbody", {}, ...rows),
    ),
  );
}

export function renderChanges(
  host: HTMLElement,
  changes: Change[],
  role: Role | null,
  act: (a: ChangeAction, c: Change) => void,
): void {
  const shown = [...changes].sort((a, b) => b.updatedAt.localeCompare(a.updatedAt)).slice(0, 50);
  if (!shown.length) {
    host.replaceChildren(el("p", { class: "empty" }, "no CM changes in the ledger"));
    return;
  }
  const rows = shown.map((c) =>
    el(
      "tr",
      { class: "change-row", "data-change-id": c.changeId, "data-state": c.state },
      el("td", { class: "mono" }, c.changeId.slice(0, 8)),
      el("td", {}, c.cellKey),
      el("td", {}, describe(c)),
      el("td", { class: `state st-${c.state.toLowerCase()}` }, c.state),
      el("td", {}, c.decidedBy ?? ""),
      el("td", {}, fmtTime(c.updatedAt)),
      el("td", { class: "buttons" }, ROLLBACKABLE.has(c.state) ? button("rollback", c, role, act) : null),
    ),
  );
  host.replaceChildren(
    el(
      "table",
      {},
      el(
        "thead",
        {},
        el("tr", {}, ...["change", "cell", "what", "state", "decided by", "updated", ""].map((h) => el("th", {}, h))),
      ),
      el("tbody", {}, ...rows),
    ),
  );
}
