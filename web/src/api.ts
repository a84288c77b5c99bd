// The REST API's endpoints (twin/api/routes) mapped onto the dashboard's model.

import { get, post, request } from "./http";
import type { Alert, Change, Cluster, Fidelity, Mark, Series } from "./model";
import type { Role } from "./session";

export const BASE = "/api/v1";
export const EVENTS = `${BASE}/events`;

type Json = Record<string, unknown>;

/** The first of `names` that `o` has (not null): the wire uses camelCase, a few records snake_case. */
function pick(o: Json, ...names: string[]): unknown {
  for (const n of names) if (o[n] !== undefined && o[n] !== null) return o[n];
  return undefined;
}

function str(v: unknown): string {
  return v === undefined || v === null ? "" : String(v);
}

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** Epoch seconds of an ISO time or a number (seconds; milliseconds or nanoseconds are scaled down). */
export function epoch(v: unknown): number | null {
  if (typeof v === "number" && Number.isFinite(v)) {
    if (v > 1e17) return v / 1e9;
    if (v > 1e11) return v / 1e3;
    return v;
  }
  if (typeof v === "string" && v) {
    const t = Date.parse(v);
    return Number.isNaN(t) ? null : t / 1000;
  }
  return null;
}

function list(body: unknown, ...keys: string[]): Json[] {
  if (Array.isArray(body)) return body as Json[];
  if (body && typeof body === "object") {
    for (const k of keys) {
      const v = (body as Json)[k];
      if (Array.isArray(v)) return v as Json[];
    }
  }
  return [];
}

const q = encodeURIComponent;

export interface Health {
  ready: boolean;
  reason: string;
}

export async function health(): Promise<Health> {
  const h = await get<Json>(`${BASE}/health`);
  const ready = pick(h, "ready", "readiness");
  const reasons = pick(h, "reasons", "reason");
  return {
    ready: ready === true || ready === "ready",
    reason: Array.isArray(reasons) ? reasons.join("; ") : str(reasons),
  };
}

export async function whoami(token: string): Promise<Role> {
  const me = await request<Json>("GET", `${BASE}/whoami`, undefined, token);
  const role = str(pick(me, "role"));
  if (role !== "viewer" && role !== "operator") throw new Error(`unknown role ${JSON.stringify(role)}`);
  return role;
}

export async function clusters(): Promise<Cluster[]> {
  const body = await get<unknown>(`${BASE}/cells`);
  const byCluster = new Map<string, Cluster>();
  for (const c of list(body, "cells", "items")) {
    const key = str(pick(c, "cellKey", "cell_key", "key"));
    const cluster = str(pick(c, "cluster", "clusterId"));
    const entry = byCluster.get(cluster) ?? { id: cluster, cells: [], dtbsm: null, firing: false };
    byCluster.set(cluster, entry);
    const err = num(pick(c, "twinError", "error", "mape"));
    entry.cells.push({
      key,
      label: str(pick(c, "name", "label")) || key.split(":").pop() || key,
      cluster,
      error: err,
      state: str(pick(c, "state", "status")),
    });
  }
  try {
    const cl = await get<unknown>(`${BASE}/clusters`);
    for (const c of list(cl, "clusters", "items")) {
      const id = str(pick(c, "cluster", "clusterId", "id"));
      const entry = byCluster.get(id) ?? { id, cells: [], dtbsm: null, firing: false };
      byCluster.set(id, entry);
      const fid = pick(c, "fidelity", "dtbsm") as Json | number | undefined;
      entry.dtbsm = typeof fid === "number" ? fid : fid ? num(pick(fid, "value")) : null;
      entry.firing = Boolean(pick(c, "firing") ?? (fid && typeof fid === "object" ? pick(fid, "firing") : false));
    }
  } catch {
    /* the cells alone still make the grid */
  }
  return [...byCluster.values()].sort((a, b) => a.id.localeCompare(b.id));
}

const UNITS: Record<string, string> = {
  "DRB.UEThpDl": "kbit/s",
  "RRU.PrbTotDl": "%",
  "PEE.AvgPower": "W",
  "RRC.ConnMean": "UEs",
  "CARR.MeanTxPwr": "dBm",
};

/** The cell's KPI history: one series per KPI with real, predicted and calibrated aligned on period ends. */
export async function kpis(cell: string, hours = 24): Promise<Series[]> {
  const end = new Date();
  const start = new Date(end.getTime() - hours * 3600e3);
  const body = await get<unknown>(`${BASE}/cells/${q(cell)}/kpis?start=${q(start.toISOString())}&end=${q(end.toISOString())}`);
  const byKpi = new Map<string, Map<number, { real?: number; predicted?: number; calibrated?: number }>>();
  for (const p of list(body, "points", "series", "items")) {
    const kpi = str(pick(p, "kpi"));
    const t = epoch(pick(p, "periodEnd", "time", "t", "at"));
    if (!kpi || t === null) continue;
    const rows = byKpi.get(kpi) ?? new Map();
    byKpi.set(kpi, rows);
    const row = rows.get(t) ?? {};
    rows.set(t, row);
    const kind = str(pick(p, "kind"));
    if (kind) {
      const v = num(pick(p, "value"));
      if (v !== null && (kind === "real" || kind === "predicted" || kind === "calibrated")) row[kind] = v;
    } else {
      for (const k of ["real", "predicted", "calibrated"] as const) {
        const v = num(pick(p, k));
        if (v !== null) row[k] = v;
      }
    }
  }
  const order = ["DRB.UEThpDl", "RRU.PrbTotDl", "PEE.AvgPower"];
  return [...byKpi.entries()]
    .sort(([a], [b]) => (order.indexOf(a) + 99 * +!order.includes(a)) - (order.indexOf(b) + 99 * +!order.includes(b)))
    .map(([kpi, rows]) => {
      const xs = [...rows.keys()].sort((a, b) => a - b);
      return {
        kpi,
        unit: UNITS[kpi] ?? "",
        xs,
        real: xs.map((t) => rows.get(t)?.real ?? null),
        predicted: xs.map((t) => rows.get(t)?.predicted ?? null),
        calibrated: xs.map((t) => rows.get(t)?.calibrated ?? null),
      };
    });
}

/** CM changes on the cell (when `cell` is given) and the cluster's resyncs, as chart markers. */
export async function marks(cluster: string, cell: string | null, changes: Change[]): Promise<Mark[]> {
  const out: Mark[] = [];
  if (cell) {
    for (const c of changes) {
      if (c.cellKey !== cell) continue;
      const t = epoch(c.updatedAt);
      if (t !== null) out.push({ t, kind: "change", label: `${c.attribute} ${c.state.toLowerCase()}` });
    }
  }
  const body = await get<unknown>(`${BASE}/clusters/${q(cluster)}/resyncs`);
  for (const r of list(body, "resyncs", "items")) {
    const t = epoch(pick(r, "at", "time", "completedAt", "startedAt", "periodEnd"));
    if (t !== null) out.push({ t, kind: "resync", label: `resync ${str(pick(r, "status")).toLowerCase()}`.trim() });
  }
  return out;
}

export async function fidelity(cluster: string): Promise<Fidelity> {
  const body = await get<unknown>(`${BASE}/clusters/${q(cluster)}/fidelity`);
  const records = list(body, "records", "points", "items");
  const threshold =
    body && typeof body === "object" && !Array.isArray(body)
      ? num(pick(body as Json, "threshold", "tau"))
      : null;
  const points = records
    .map((r) => ({
      t: epoch(pick(r, "periodEnd", "period_end", "at", "time")) ?? NaN,
      value: num(pick(r, "value", "dtbsm")),
      lower: num(pick(r, "lower")),
      upper: num(pick(r, "upper")),
      tau: num(pick(r, "tau", "threshold")),
    }))
    .filter((p) => Number.isFinite(p.t))
    .sort((a, b) => a.t - b.t);
  const lastTau = [...points].reverse().find((p) => p.tau !== null)?.tau ?? null;
  return { cluster, threshold: threshold ?? lastTau, points };
}

export async function alerts(): Promise<Alert[]> {
  const body = await get<unknown>(`${BASE}/alerts`);
  return list(body, "alerts", "items")
    .map((a) => ({
      id: str(pick(a, "alertId", "alert_id", "id")),
      type: str(pick(a, "type")),
      severity: str(pick(a, "severity")),
      cluster: str(pick(a, "clusterId", "cluster_id", "cluster")),
      cell: str(pick(a, "cellKey", "cell_key")),
      text: str(pick(a, "text", "probableCause")),
      active: pick(a, "active") !== false,
      at: str(pick(a, "raisedAt", "raised_at")),
    }))
    .sort((a, b) => b.at.localeCompare(a.at));
}

export async function changes(): Promise<Change[]> {
  const body = await get<unknown>(`${BASE}/changes`);
  return list(body, "changes", "items").map((c) => ({
    changeId: str(pick(c, "changeId", "change_id")),
    cellKey: str(pick(c, "cellKey", "cell_key")),
    cluster: str(pick(c, "cluster")),
    attribute: str(pick(c, "attribute")),
    from: pick(c, "from", "from_"),
    to: pick(c, "to"),
    state: str(pick(c, "state")),
    requester: str(pick(c, "requester")),
    requestedAt: str(pick(c, "requestedAt", "requested_at")),
    updatedAt: str(pick(c, "updatedAt", "updated_at", "requestedAt")),
    reason: (pick(c, "reason") as string | undefined) ?? null,
    decidedBy: (pick(c, "decidedBy", "decided_by") as string | undefined) ?? null,
  }));
}

/** Approve, reject or roll back a change; answers the change's new state. */
export async function decide(id: string, action: "approve" | "reject" | "rollback", reason?: string): Promise<string> {
  const body = await post<Json>(`${BASE}/changes/${q(id)}/${action}`, reason ? { reason } : {});
  return str(pick(body ?? {}, "state"));
}

/** The kill switch's state (true: pushes stopped), or null when the API has none. */
export async function killSwitch(): Promise<boolean | null> {
  const body = await get<Json>(`${BASE}/killswitch`);
  const v = pick(body, "engaged", "on", "enabled", "value", "killSwitch");
  return typeof v === "boolean" ? v : null;
}
