"""``create_app``: the REST API over one worker's state, with its OpenAPI document, ``/metrics``
and the dashboard's static files at ``/``."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import structlog
from fastapi import Depends, FastAPI, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twin import metrics
from twin.api import errors
from twin.api.auth import TokenStore
from twin.api.routes import changes, events, network, status, whatif
from twin.api.state import ApiState, LedgerUnavailable, MirrorUnavailable

__all__ = ["MAX_BODY_BYTES", "STATIC", "create_app"]

STATIC = Path(__file__).with_name("static")
#: the largest request body the API reads: the largest a route takes (a what-if of 64 changes, a
#: 2000-character reason) is tens of kB; more is refused with 413 before it is read whole or parsed
MAX_BODY_BYTES = 1_048_576
log = structlog.get_logger("twin.api")

DESCRIPTION = """The operations API of the RAN digital twin: the mirrored network, the twin's
predictions, gap, DT-BSM and resyncs, alerts, CM changes through the guard, what-ifs.

Authenticate with `Authorization: Bearer <token>`. A **viewer** reads and runs what-ifs; an
**operator** also approves, rejects and rolls back changes and flips the kill switch. Every 4xx
answer is `{"error", "field", "detail"}` and names the field at fault."""


class _Observe:
    """Counts and times every request and writes the access log (``api.request``): the principal's
    name, the route, the status, and the cell, cluster or change id of the path; the path without
    its query string (an EventSource token travels there). A plain ASGI middleware: Starlette's
    ``BaseHTTPMiddleware`` re-streams each response, which costs a delayed-ACK wait per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            method = str(scope.get("method", ""))
            template = getattr(route, "path", None) or ("static" if method == "GET" else "unmatched")
            seconds = time.perf_counter() - started
            metrics.API_REQUESTS.labels(method, template, str(status["code"])).inc()
            metrics.API_SECONDS.labels(template).observe(seconds)
            who = (scope.get("state") or {}).get("principal")
            params = scope.get("path_params") or {}
            log.info("api.request", method=method, path=scope.get("path"), route=template, status=status["code"],
                     ms=round(seconds * 1000, 1), principal=getattr(who, "name", None), cluster=params.get("cluster"),
                     cell=params.get("cell"), change_id=params.get("change_id"))


class _BodyLimit:
    """Refuses a request body over ``limit`` bytes with 413 naming the limit (``errors.BodyTooLarge``),
    before it is parsed: at once, unread, when its Content-Length says so; else (chunked) as soon as
    the bytes read pass the limit. Without it uvicorn and FastAPI read any body whole into memory and
    parse it, before the bearer token is even looked at."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await errors.too_large(errors.BodyTooLarge(self.limit, declared=declared))(scope, receive, send)
            return
        received = 0

        async def counting() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise errors.BodyTooLarge(self.limit, received=received)
            return message

        await self.app(scope, counting, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class _StateCollector(Collector):
    """``twin.metrics.StateCollector`` over the served state, plus ``twin_cm_ledger_up``: while the CM
    ledger cannot be opened or read, its series are left out and ``twin_cm_ledger_up`` is 0, and the
    rest of the scrape answers (one broken component must not fail Prometheus' scrape)."""

    def __init__(self, state: ApiState) -> None:
        self.state = state

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            twin = self.state.twin()
        except MirrorUnavailable:  # readiness says why; the mirror's series are left out meanwhile
            twin = None
        up = GaugeMetricFamily("twin_cm_ledger_up", "1 while the API can read the CM ledger (or none was "
                               "created yet); 0 while it cannot, and the twin_cm_* ledger series are left out")
        try:
            with self.state.ledger_errors():
                families = list(metrics.StateCollector(lambda: twin, self.state.ledger).collect())
            up.add_metric([], 1.0)
        except LedgerUnavailable:
            families = list(metrics.StateCollector(lambda: twin, lambda: None).collect())
            up.add_metric([], 0.0)
        yield from families
        yield up


def create_app(state: ApiState, tokens: TokenStore, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The API serving ``state``, authenticating with ``tokens``; request bodies over ``max_body_bytes``
    are refused (413)."""
    from twin.api.routes.status import _version

    app = FastAPI(title="RAN digital twin API", version=_version(), description=DESCRIPTION,
                  openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs", redoc_url=None,
                  dependencies=[Depends(errors.plain_parameters), Depends(errors.known_query)])
    app.state.twin_api = state
    app.state.tokens = tokens
    own = CollectorRegistry(auto_describe=True)
    own.register(_StateCollector(state))
    app.state.registry = own
    errors.install(app)
    for module in (status, network, changes, whatif, events):
        app.include_router(module.router)

    app.add_middleware(_BodyLimit, limit=max_body_bytes)
    app.add_middleware(_Observe)  # outermost: a 413 of the body limit is counted and logged too

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        with state.lock:
            body = generate_latest(metrics.REGISTRY) + generate_latest(own)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.mount("/", StaticFiles(directory=STATIC, html=True), name="static")
    return app
