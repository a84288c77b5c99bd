// The dashboard: sign in with a token, then the panels, refreshed on every server-sent event.

import * as api from "./api";
import { byId, toast } from "./dom";
import { ApiError } from "./http";
import type { Change, Cluster } from "./model";
import { forgetToken, type Role, saveToken, savedToken } from "./session";
import { type SseHandle, subscribe } from "./sse";
import "./style.css";
import { renderAlerts } from "./views/alerts";
import { renderCell } from "./views/cell";
import { type ChangeAction, renderChanges, renderQueue } from "./views/changes";
import { renderFidelity } from "./views/fidelity";
import { renderGrid } from "./views/grid";
import { ATTRIBUTES, renderWhatIf } from "./views/whatif";

interface UiState {
  role: Role | null;
  clusters: Cluster[];
  cell: string | null;
  cluster: string | null;
  changes: Change[];
  killSwitch: boolean;
}

const ui: UiState = { role: null, clusters: [], cell: null, cluster: null, changes: [], killSwitch: false };
let events: SseHandle | null = null;
let pending: number | undefined;

function show(signedIn: boolean): void {
  byId("login").hidden = signedIn;
  byId("app").hidden = !signedIn;
  byId("logout").hidden = !signedIn;
  byId("whoami").hidden = !signedIn;
}

const PANELS: Record<string, string> = { cells: "grid", KPIs: "cell", "DT-BSM": "fidelity" };

function report(e: unknown, what: string): void {
  if (e instanceof ApiError && e.status === 401) {
    signOut("the token was refused (401); sign in again");
    return;
  }
  if (e instanceof ApiError && e.status === 503 && PANELS[what]) {
    // no mirror yet (the worker has not checkpointed): said in the panel, not as an error
    const note = document.createElement("p");
    note.className = "empty";
    note.textContent = `waiting for the worker's first checkpoint (${e.detail})`;
    byId(PANELS[what]).replaceChildren(note);
    return;
  }
  toast(`${what}: ${e instanceof Error ? e.message : String(e)}`, "error");
}

async function refreshHealth(): Promise<void> {
  const pill = byId("health");
  try {
    const h = await api.health();
    pill.textContent = h.ready ? "ready" : `not ready${h.reason ? `: ${h.reason}` : ""}`;
    pill.className = `pill ${h.ready ? "ok" : "warn"}`;
  } catch (e) {
    pill.textContent = "API unreachable";
    pill.className = "pill bad";
  }
}

async function refreshGrid(): Promise<void> {
  ui.clusters = await api.clusters();
  if (!ui.cell) {
    // start on a cell with a CM change (its plots show the markers), else the first cell
    const changed = new Set(ui.changes.map((c) => c.cellKey));
    const all = ui.clusters.flatMap((c) => c.cells);
    const first = all.find((c) => changed.has(c.key)) ?? all[0];
    if (first) {
      ui.cell = first.key;
      ui.cluster = first.cluster;
    }
  }
  if (!ui.cluster && ui.clusters.length) ui.cluster = ui.clusters[0].id;
  byId("whatif-cell").textContent = ui.cell ?? "(pick a cell)";
  renderGrid(byId("grid"), ui.clusters, ui.cell, (cell, cluster) => {
    ui.cell = cell;
    ui.cluster = cluster;
    byId("whatif").replaceChildren();
    void refreshAll();
  });
}

async function refreshCell(): Promise<void> {
  if (!ui.cell || !ui.cluster) {
    renderCell(byId("cell"), null, [], []);
    return;
  }
  const latest = ui.clusters.find((c) => c.id === ui.cluster)?.latest ?? null;
  const [series, marks] = await Promise.all([api.kpis(ui.cell, latest), api.marks(ui.cluster, ui.cell, ui.changes)]);
  renderCell(byId("cell"), ui.cell, series, marks);
}

async function refreshFidelity(): Promise<void> {
  if (!ui.cluster) {
    renderFidelity(byId("fidelity"), null, []);
    return;
  }
  const [fid, marks] = await Promise.all([api.fidelity(ui.cluster), api.marks(ui.cluster, null, [])]);
  renderFidelity(byId("fidelity"), fid, marks);
}

async function runWhatIf(): Promise<void> {
  if (!ui.cell || !ui.cluster) {
    toast("pick a cell in the grid first", "error");
    return;
  }
  const attribute = byId<HTMLSelectElement>("whatif-attribute").value;
  const to = Number(byId<HTMLInputElement>("whatif-value").value);
  const cell = ui.cell;
  const host = byId("whatif");
  host.replaceChildren(document.createTextNode("simulating…"));
  try {
    renderWhatIf(host, await api.whatif(ui.cluster, cell, attribute, to), cell);
  } catch (e) {
    host.replaceChildren();
    report(e, "what-if refused");
  }
}

async function refreshAlerts(): Promise<void> {
  renderAlerts(byId("alerts"), await api.alerts());
}

async function refreshChanges(): Promise<void> {
  ui.changes = await api.changes();
  renderQueue(byId("queue"), ui.changes, ui.role, act);
  renderChanges(byId("changes"), ui.changes, ui.role, act);
}

async function refreshKillSwitch(): Promise<void> {
  ui.killSwitch = await api.killSwitch();
  const pill = byId("killswitch");
  pill.hidden = false;
  pill.textContent = ui.killSwitch ? "kill switch ON: the guard refuses every change" : "kill switch off";
  pill.className = `pill ${ui.killSwitch ? "bad" : "ok"}`;
  const flip = byId<HTMLButtonElement>("killswitch-flip");
  flip.hidden = false;
  flip.disabled = ui.role !== "operator";
  flip.title = ui.role === "operator" ? "" : "operators only";
  flip.textContent = ui.killSwitch ? "release kill switch" : "engage kill switch";
}

async function flipKillSwitch(): Promise<void> {
  const on = !ui.killSwitch;
  if (!window.confirm(on ? "Engage the kill switch? The guard will refuse every CM change." : "Release the kill switch?")) return;
  try {
    await api.setKillSwitch(on);
    toast(`kill switch ${on ? "engaged" : "released"}`);
  } catch (e) {
    report(e, "kill switch refused");
  }
  await refreshAll();
}

async function act(action: ChangeAction, change: Change): Promise<void> {
  let reason: string | undefined;
  if (action !== "approve") {
    const answer = window.prompt(`Reason to ${action === "reject" ? "reject" : "roll back"} ${change.changeId}:`, "");
    if (answer === null) return;
    reason = answer || undefined;
  }
  try {
    const after = await api.decide(change.changeId, action, reason);
    toast(`${action} ${change.changeId.slice(0, 8)}: ${after ?? "done"}`);
  } catch (e) {
    report(e, `${action} ${change.changeId.slice(0, 8)} refused`);
  }
  await refreshAll();
}

let refreshing = false;
let refreshAgain = false;

/** One refresh at a time, the next one right after when asked meanwhile: two refreshes in flight could
 * finish out of order and leave an older answer on screen. */
async function refreshAll(): Promise<void> {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  try {
    do {
      refreshAgain = false;
      await refreshOnce();
    } while (refreshAgain);
  } finally {
    refreshing = false;
  }
}

async function refreshOnce(): Promise<void> {
  await refreshChanges().catch((e) => report(e, "changes")); // the grid's first pick reads them
  const jobs: [string, () => Promise<void>][] = [
    ["health", refreshHealth],
    ["cells", refreshGrid],
    ["alerts", refreshAlerts],
    ["kill switch", refreshKillSwitch],
  ];
  await Promise.all(jobs.map(([name, job]) => job().catch((e) => report(e, name))));
  await Promise.all([
    refreshCell().catch((e) => report(e, "KPIs")),
    refreshFidelity().catch((e) => report(e, "DT-BSM")),
  ]);
  document.body.dataset.loaded = String(Date.now());
}

/** Coalesces bursts of events into one refresh at most every 1.5 s. */
function scheduleRefresh(): void {
  if (pending !== undefined) return;
  pending = window.setTimeout(() => {
    pending = undefined;
    void refreshAll();
  }, 1500);
}

function startEvents(): void {
  events?.close();
  const live = byId("live");
  events = subscribe(
    api.EVENTS,
    (m) => {
      live.dataset.lastEvent = m.event;
      scheduleRefresh();
    },
    (status, detail) => {
      live.textContent = status === "open" ? "live" : status === "error" ? `reconnecting (${detail ?? ""})` : status;
      live.className = `pill ${status === "open" ? "ok" : status === "error" ? "bad" : ""}`;
    },
  );
}

async function signIn(token: string): Promise<void> {
  const err = byId("login-error");
  err.textContent = "";
  try {
    ui.role = await api.whoami(token);
  } catch (e) {
    err.textContent = e instanceof ApiError ? `refused: ${e.detail} (HTTP ${e.status})` : String(e);
    forgetToken();
    show(false);
    return;
  }
  saveToken(token);
  const who = byId("whoami");
  who.textContent = ui.role;
  who.dataset.role = ui.role;
  show(true);
  await refreshAll();
  startEvents();
}

function signOut(message?: string): void {
  events?.close();
  events = null;
  forgetToken();
  ui.role = null;
  show(false);
  if (message) byId("login-error").textContent = message;
}

byId<HTMLFormElement>("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = byId<HTMLInputElement>("login-token");
  const token = input.value.trim();
  input.value = "";
  void signIn(token);
});
byId("logout").addEventListener("click", () => signOut());
byId("killswitch-flip").addEventListener("click", () => void flipKillSwitch());
const attributes = byId<HTMLSelectElement>("whatif-attribute");
for (const [name, unit] of ATTRIBUTES) {
  const option = document.createElement("option");
  option.value = name;
  option.textContent = `${name} (${unit})`;
  attributes.append(option);
}
byId<HTMLFormElement>("whatif-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  void runWhatIf();
});

const existing = savedToken();
if (existing) void signIn(existing);
else show(false);
