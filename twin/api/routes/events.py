"""``GET /api/v1/events``: server-sent events for the dashboard: new alerts, CM changes that moved,
and each cluster's newest predicted period, polled from the served state once a second.

Events: ``alert`` (an alert raised, updated or cleared: ``twin.alert_log.AlertState.to_dict``),
``change`` (a change's new state: ``ChangeView.as_json``), ``kpi`` (``{cluster, gp, periodEnd}``
when a cluster's predictions reach a new period), and a ``: keep-alive`` comment every 15 s. The
first poll sends the current state, so a client needs no separate first read. ``EventSource``
cannot send headers, so the token may come as ``?access_token=`` here (it is never logged).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from twin.api.deps import State, Viewer
from twin.api.errors import err
from twin.api.state import ApiState, LedgerUnavailable

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["events"], responses={422: err("a bad field or value (named)")})


def _snapshot(s: ApiState) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {"alert": {}, "change": {}, "kpi": {}}
    for a in s.alerts():
        out["alert"][a.alert_id] = a.to_dict()
    with s.lock:
        try:
            with s.ledger_errors():
                led = s.ledger()
                for v in led.changes() if led is not None else ():
                    out["change"][v.request.change_id] = v.as_json()
        except LedgerUnavailable:
            pass  # logged (api.ledger_unavailable); the stream goes on with alerts and KPIs
        twin = s.twin()
        if twin is not None:
            for cluster in twin.clusters:
                through = twin.mirror(cluster).predicted_through
                for gp, end in through.items():
                    out["kpi"][f"{cluster}/{gp}"] = {"cluster": cluster, "gp": gp, "periodEnd": end}
    return out


async def _stream(request: Request, s: ApiState, interval_s: float, timeout_s: float | None) -> AsyncIterator[bytes]:
    seen: dict[str, dict[str, Any]] = {"alert": {}, "change": {}, "kpi": {}}
    started = last_sent = time.monotonic()
    yield b"retry: 2000\n\n"
    while True:
        snap = await asyncio.to_thread(_snapshot, s)
        for kind, items in snap.items():
            for key, value in items.items():
                if seen[kind].get(key) != value:
                    seen[kind][key] = value
                    yield b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(value) + b"\n\n"
                    last_sent = time.monotonic()
        if time.monotonic() - last_sent > 15:
            yield b": keep-alive\n\n"
            last_sent = time.monotonic()
        if timeout_s is not None and time.monotonic() - started >= timeout_s:
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(interval_s)


@router.get("/events", summary="Server-sent events: alerts, CM changes, new predicted periods",
            responses={200: {"content": {"text/event-stream": {}}, "description": "an event stream"},
                       401: err("no or unknown bearer token")})
def events(request: Request, s: State, _: Viewer,
           timeout: Annotated[float | None, Query(gt=0, le=86400, description="close the stream after this many "
                                                  "seconds (default: never)")] = None,
           access_token: Annotated[str | None, Query(description="the bearer token, for EventSource clients "
                                                     "that cannot send headers")] = None) -> StreamingResponse:
    del access_token  # read by the auth dependency
    return StreamingResponse(_stream(request, s, 1.0, timeout), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
