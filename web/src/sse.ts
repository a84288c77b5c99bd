// Server-sent events read with fetch, so the bearer token goes in the Authorization header like every
// other call (EventSource cannot send headers, and a token in a URL would end up in access logs).
// Reconnects with backoff and sends Last-Event-ID so the server can resume.

import { authHeaders } from "./http";

export interface SseMessage {
  event: string;
  data: string;
  id: string | null;
}

export interface SseHandle {
  close(): void;
}

export type SseStatus = "connecting" | "open" | "closed" | "error";

/** Parses one SSE block (lines between blank lines) per the WHATWG rules; null for a comment-only block. */
export function parseBlock(block: string): SseMessage | null {
  let event = "message";
  let id: string | null = null;
  const data: string[] = [];
  let any = false;
  for (const raw of block.split(/\r\n|\r|\n/)) {
    if (raw === "" || raw.startsWith(":")) continue;
    const colon = raw.indexOf(":");
    const field = colon < 0 ? raw : raw.slice(0, colon);
    let value = colon < 0 ? "" : raw.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
    else continue;
    any = true;
  }
  return any && data.length ? { event, data: data.join("\n"), id } : null;
}

export function subscribe(
  path: string,
  onMessage: (m: SseMessage) => void,
  onStatus: (s: SseStatus, detail?: string) => void,
): SseHandle {
  let stopped = false;
  let lastId: string | null = null;
  let delay = 1000;
  let controller: AbortController | null = null;

  async function once(): Promise<void> {
    controller = new AbortController();
    const headers: Record<string, string> = { Accept: "text/event-stream", ...authHeaders() };
    if (lastId !== null) headers["Last-Event-ID"] = lastId;
    onStatus("connecting");
    const res = await fetch(path, { headers, signal: controller.signal, cache: "no-store" });
    if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
    onStatus("open");
    delay = 1000;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      const blocks = buffer.split(/\r\n\r\n|\n\n|\r\r/);
      buffer = blocks.pop() ?? "";
      for (const b of blocks) {
        const m = parseBlock(b);
        if (!m) continue;
        if (m.id !== null) lastId = m.id;
        onMessage(m);
      }
    }
  }

  async function loop(): Promise<void> {
    while (!stopped) {
      try {
        await once();
        if (!stopped) onStatus("closed");
      } catch (e) {
        if (stopped) return;
        onStatus("error", String(e));
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }

  void loop();
  return {
    close() {
      stopped = true;
      controller?.abort();
    },
  };
}
