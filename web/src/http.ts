// fetch with the session's bearer token; non-2xx answers become an ApiError carrying the server's detail.

import { savedToken } from "./session";

export class ApiError extends Error {
  constructor(public readonly status: number, public readonly detail: string) {
    super(`HTTP ${status}: ${detail}`);
  }
}

function describe(body: unknown): string {
  if (body && typeof body === "object" && "error" in body) {
    // the API's 4xx shape: {"error", "field", "detail"}
    const e = body as { error: unknown; field?: unknown };
    return e.field ? `${String(e.error)} (field ${String(e.field)})` : String(e.error);
  }
  if (body && typeof body === "object" && "detail" in body) {
    const d = (body as { detail: unknown }).detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) {
      return d
        .map((e) => {
          const item = e as { loc?: unknown[]; msg?: string };
          return `${(item.loc ?? []).join(".")}: ${item.msg ?? JSON.stringify(e)}`;
        })
        .join("; ");
    }
    return JSON.stringify(d);
  }
  return typeof body === "string" ? body : JSON.stringify(body);
}

export function authHeaders(token: string | null = savedToken()): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export async function request<T>(method: string, path: string, body?: unknown, token?: string | null): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json", ...authHeaders(token ?? savedToken()) };
  const init: RequestInit = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    /* keep the text */
  }
  if (!res.ok) throw new ApiError(res.status, describe(parsed));
  return parsed as T;
}

export const get = <T>(path: string): Promise<T> => request<T>("GET", path);
export const post = <T>(path: string, body?: unknown): Promise<T> => request<T>("POST", path, body ?? {});
