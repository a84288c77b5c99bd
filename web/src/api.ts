// The REST API's endpoints (twin/api/routes) mapped onto the dashboard's model.

import { get, post, request } from "./http";
import type { Alert, Change, Cluster, Fidelity, Mark, Series } from "./model";
import type { Role } from "./session";
import type { WhatIfAnswer } from "./views/whatif";

export const BASE = "/api/v1";
export const EVENTS = `${BASE}/events`;

type Json = Record<string, unknown>;

/** The first of `names` that `o` has (not null): the wire uses camelCase, a few records snake_case. */
function pick(o: Json, ...names: string[]): unknown {
  for (const n of names) if (o[n] !== undefined && o[n] !== null) return o[n];
  return undefined;
}

/** A tile's label: the cell key's local part without leading zeros ("nr:00101-000000b01" -> "b01"). */
export function shortName(key: string): string {
  const local = key.split(/[:-]/).pop() ?? key;
  return local.replace(/^0+(?=.)/, "") || key;
}

function fmtEpoch(v: unknown): string {
  const t = epoch(v);
  return t === null ? "" : new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ");
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

/** Readiness (`GET /ready`: 200 when ready, 503 with the reasons when not; no token needed). */
export async function health(): Promise<Health> {
  const res = await fetch(`${BASE}/ready`, { cache: "no-store", headers: { Accept: "application/json" } });
  if (res.status !== 200 && res.status !== 503) throw new Error(`HTTP ${res.status}`);
  const h = (await res.json()) as Json;
  const reasons = pick(h, "reasons");
  return { ready: h.ready === true, reason: Array.isArray(reasons) ? reasons.join("; ") : str(reasons) };
}

export async function whoami(token: string): Promise<Role> {
  const me = await request<Json>("GET", `${BASE}/me`, undefined, token);
  const role = str(pick(me, "role"));
  if (role !== "viewer" && role !== "operator") throw new Error(`unknown role ${JSON.stringify(role)}`);
  return role;
}

/** `GET /cells` (each cell's latest twin error) grouped by cluster, with `GET /clusters`' DT-BSM. */
export async function clusters(): Promise<Cluster[]> {
  const body = await get<unknown>(`${BASE}/cells`);
  const byCluster = new Map<string, Cluster>();
  for (const c of list(body, "cells", "items")) {
    const key = str(pick(c, "cellKey", "cell_key", "key"));
    const cluster = str(pick(c, "cluster", "clusterId"));
    const entry = byCluster.get(cluster) ?? { id: cluster, cells: [], dtbsm: null, firing: false, latest: null };
    byCluster.set(cluster, entry);
    const latest = (pick(c, "latest") ?? {}) as Json;
    const err = num(pick(latest, "error"));
    entry.cells.push({
      key,
      label: shortName(key),
      cluster,
      error: err,
      state: c.mirrored === false ? "not mirrored yet" : latest.periodEnd ? `period ${fmtEpoch(latest.periodEnd)}` : "",
    });
  }
  try {
    const cl = await get<unknown>(`${BASE}/clusters`);
    for (const c of list(cl, "clusters", "items")) {
      const id = str(pick(c, "cluster", "clusterId", "id"));
      const entry = byCluster.get(id) ?? { id, cells: [], dtbsm: null, firing: false, latest: null };
      byCluster.set(id, entry);
      const fid = (pick(c, "dtbsm") ?? {}) as Json;
      entry.dtbsm = num(pick(fid, "value"));
      entry.latest = epoch(pick(c, "latestPeriodEnd"));
      const thr = num(pick(fid, "threshold"));
      entry.firing = entry.dtbsm !== null && thr !== null && entry.dtbsm > thr;
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

/** The cell's KPI history (`GET /cells/{cell}/kpis`, the last `hours` before `latest`): one series per KPI. */
export async function kpis(cell: string, latest: number | null, hours = 48): Promise<Series[]> {
  const range = latest === null ? "" : `?start=${Math.max(0, Math.floor(latest - hours * 3600))}`;
  const body = await get<Json>(`${BASE}/cells/${q(cell)}/kpis${range}`);
  const series = (body.series ?? {}) as Record<string, Json[]>;
  const order = ["DRB.UEThpDl", "RRU.PrbTotDl", "PEE.AvgPower"];
  const rank = (k: string) => (order.includes(k) ? order.indexOf(k) : 99);
  return Object.entries(series)
    .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))
    .map(([kpi, points]) => {
      const rows = points
        .map((p) => ({ t: epoch(p.periodEnd), real: num(p.real), predicted: num(p.predicted), calibrated: num(p.calibrated) }))
        .filter((p): p is { t: number; real: number | null; predicted: number | null; calibrated: number | null } => p.t !== null)
        .sort((a, b) => a.t - b.t);
      return {
        kpi,
        unit: UNITS[kpi] ?? "",
        xs: rows.map((r) => r.t),
        real: rows.map((r) => r.real),
        predicted: rows.map((r) => r.predicted),
        calibrated: rows.map((r) => r.calibrated),
      };
    });
}

/** CM changes on the cell (when `cell` is given) and the cluster's resyncs, as chart markers. */
export async function marks(cluster: string, cell: string | null, changes: Change[]): Promise<Mark[]> {
  const out: Mark[] = [];
  if (cell) {
    for (const c of changes) {
      if (c.cellKey !== cell) continue;
      // requestedAt is the change's event time (the KPIs' clock); decisions are stamped with the wall clock
      const t = epoch(c.requestedAt);
      const to = typeof c.to === "string" ? c.to : JSON.stringify(c.to);
      if (t !== null) out.push({ t, kind: "change", label: `${c.attribute} → ${to} (${c.state.toLowerCase()})` });
    }
  }
  const body = await get<unknown>(`${BASE}/clusters/${q(cluster)}/resyncs`);
  for (const r of list(body, "resyncs")) {
    const cells = Array.isArray(r.cells) ? (r.cells as unknown[]).map(String) : [];
    if (cell && cells.length && !cells.includes(cell)) continue;
    const t = epoch(pick(r, "at"));
    if (t !== null) out.push({ t, kind: "resync", label: `resync ${str(pick(r, "status")).toLowerCase()}`.trim() });
  }
  return out;
}

export async function fidelity(cluster: string): Promise<Fidelity> {
  const body = await get<unknown>(`${BASE}/clusters/${q(cluster)}/fidelity`);
  const records = list(body, "history");
  const threshold =
    body && typeof body === "object" && !Array.isArray(body)
      ? num(pick(body as Json, "threshold", "tau"))
      : null;
  const points = records
    .map((r) => ({
      t: epoch(pick(r, "periodEnd", "period_end")) ?? NaN,
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

/** The twin's predicted KPI deltas of one change (`POST /whatif`; nothing is applied). */
export async function whatif(cluster: string, cell: string, attribute: string, to: number): Promise<WhatIfAnswer> {
  return post<WhatIfAnswer>(`${BASE}/whatif`, { cluster, changes: [{ cellKey: cell, attribute, to }] });
}

/** The kill switch (`GET /kill-switch`; true: the guard refuses every change). */
export async function killSwitch(): Promise<boolean> {
  const body = await get<Json>(`${BASE}/kill-switch`);
  return body.on === true;
}

/** Flips the kill switch (`PUT /kill-switch`, operators only). */
export async function setKillSwitch(on: boolean): Promise<boolean> {
  const body = await request<Json>("PUT", `${BASE}/kill-switch`, { on });
  return body.on === true;
}
