"""4xx answers that say what is wrong and name the field: ``{"error", "field", "detail"}``; and the
503 of a CM ledger that cannot be used (``twin.api.state.LedgerUnavailable``), in the same shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from twin.api.state import LedgerUnavailable

__all__ = ["ApiError", "err", "field_name", "install", "known_query"]


class ApiError(Exception):
    """An answer other than 2xx; ``field`` names the path, query or body field at fault."""

    def __init__(self, status: int, error: str, field: str | None = None, detail: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.field = field
        self.detail = detail
        self.headers = headers


def err(description: str) -> dict[str, Any]:
    """An error answer for a route's ``responses``: the ``ErrorOut`` body and what it means."""
    from twin.api.models import ErrorOut

    return {"model": ErrorOut, "description": description}


def field_name(loc: Any) -> str:
    """``("body", "changes", 0, "to")`` -> ``changes[0].to``; ``("query", "start")`` -> ``start``.

    >>> field_name(("body", "changes", 0, "to")), field_name(("query", "start")), field_name(("body",))
    ('changes[0].to', 'start', 'body')
    """
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header", "cookie") else list(loc)
    if loc and loc[0] == "body" and parts and isinstance(parts[0], int):
        parts = []  # (body, 0): the body as a whole (not JSON)
    if not parts:
        return str(loc[0]) if loc else "request"
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the same shape."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.error, "field": exc.field, "detail": exc.detail}, exc.status,
                            headers=exc.headers)

    @app.exception_handler(LedgerUnavailable)
    async def ledger_unavailable(_: Request, exc: LedgerUnavailable) -> JSONResponse:
        return JSONResponse({"error": str(exc), "field": None,
                             "detail": {"ledger": exc.url, "problem": exc.problem}}, 503)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        first = errors[0] if errors else {"loc": ("request",), "msg": "invalid"}
        name = field_name(first.get("loc", ()))
        value = f" (got {_short(first['input'])})" if "input" in first and first.get("type") != "missing" else ""
        detail = [{"field": field_name(e.get("loc", ())), "message": e.get("msg"), "type": e.get("type")}
                  for e in errors]
        return JSONResponse({"error": f"{name}: {first.get('msg')}{value}", "field": name, "detail": detail}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):  # FastAPI's: not JSON at all
            return JSONResponse({"error": "body: not valid JSON", "field": "body", "detail": None}, 422)
        return JSONResponse({"error": str(exc.detail), "field": None, "detail": None}, exc.status_code,
                            headers=getattr(exc, "headers", None))


def known_query(request: Request) -> None:
    """Refuse query parameters the route does not take (a misspelt filter is an error, not ignored)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    allowed: set[str] = set()
    todo = [dependant]
    while todo:  # the route's own query parameters and those of its dependencies
        d = todo.pop()
        allowed.update(p.alias for p in d.query_params)
        todo.extend(d.dependencies)
    for name in request.query_params:
        if name not in allowed:
            takes = ", ".join(sorted(allowed)) or "none"
            raise ApiError(422, f"unknown query parameter {name[:60]!r} (this path takes: {takes})", name[:60])
