// Tiny DOM helpers: elements are built with textContent only, never innerHTML, so server text cannot inject markup.

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return node;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`missing element #${id}`);
  return node as T;
}

export function fmtTime(t: number | string | null | undefined): string {
  if (t === null || t === undefined || t === "") return "";
  const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toISOString().replace("T", " ").slice(0, 16) + "Z";
}

export function fmtNum(v: unknown, digits = 3): string {
  if (typeof v !== "number" || !Number.isFinite(v)) return v === null || v === undefined ? "" : String(v);
  if (Math.abs(v) >= 10 ** digits || (Math.abs(v) >= 100 && digits <= 3)) return v.toFixed(0);
  return v.toPrecision(digits);
}

let toastTimer: number | undefined;

/** Shows a message in the status line (role=status, so the tests and screen readers can read it). */
export function toast(text: string, kind: "ok" | "error" = "ok"): void {
  const box = byId("toast");
  box.textContent = text;
  box.className = `toast ${kind}`;
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => {
    box.className = "toast";
  }, 8000);
}
