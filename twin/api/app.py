"""``create_app``: the REST API over one worker's state, with its OpenAPI document, ``/metrics``
and the dashboard's static files at ``/``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from fastapi import Depends, FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from twin import metrics
from twin.api import errors
from twin.api.auth import TokenStore
from twin.api.routes import changes, events, network, status, whatif
from twin.api.state import ApiState

__all__ = ["STATIC", "create_app"]

STATIC = Path(__file__).with_name("static")
log = structlog.get_logger("twin.api")

DESCRIPTION = """The operations API of the RAN digital twin: the mirrored network, the twin's
predictions, gap, DT-BSM and resyncs, alerts, CM changes through the guard, what-ifs.

Authenticate with `Authorization: Bearer <token>`. A **viewer** reads and runs what-ifs; an
**operator** also approves, rejects and rolls back changes and flips the kill switch. Every 4xx
answer is `{"error", "field", "detail"}` and names the field at fault."""


def create_app(state: ApiState, tokens: TokenStore) -> FastAPI:
    """The API serving ``state``, authenticating with ``tokens``."""
    from twin.api.routes.status import _version

    app = FastAPI(title="RAN digital twin API", version=_version(), description=DESCRIPTION,
                  openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs", redoc_url=None,
                  dependencies=[Depends(errors.known_query)])
    app.state.twin_api = state
    app.state.tokens = tokens
    own = CollectorRegistry(auto_describe=True)
    own.register(metrics.StateCollector(state.twin, state.ledger))
    app.state.registry = own
    errors.install(app)
    for module in (status, network, changes, whatif, events):
        app.include_router(module.router)

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        status_code = 500
        try:
            response = await call_next(request)
            status_code = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", None) or ("static" if request.method == "GET" else "unmatched")
            seconds = time.perf_counter() - started
            metrics.API_REQUESTS.labels(request.method, template, str(status_code)).inc()
            metrics.API_SECONDS.labels(template).observe(seconds)
            # the path without its query string: an EventSource token travels there and is never logged
            who = getattr(request.state, "principal", None)
            log.info("api.request", method=request.method, path=request.url.path, route=template,
                     status=status_code, ms=round(seconds * 1000, 1), principal=who.name if who else None,
                     cluster=request.path_params.get("cluster"), cell=request.path_params.get("cell"),
                     change_id=request.path_params.get("change_id"))

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        with state.lock:
            body = generate_latest(metrics.REGISTRY) + generate_latest(own)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.mount("/", StaticFiles(directory=STATIC, html=True), name="static")
    return app
