"""4xx answers that say what is wrong and name the field: ``{"error", "field", "detail"}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["ApiError", "field_name", "install"]


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


def field_name(loc: Any) -> str:
    """``("body", "changes", 0, "to")`` -> ``changes[0].to``; ``("query", "start")`` -> ``start``.

    >>> field_name(("body", "changes", 0, "to")), field_name(("query", "start")), field_name(("body",))
    ('changes[0].to', 'start', 'body')
    """
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header", "cookie") else list(loc)
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
        return JSONResponse({"error": str(exc.detail), "field": None, "detail": None}, exc.status_code,
                            headers=getattr(exc, "headers", None))
