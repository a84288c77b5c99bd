"""4xx answers that say what is wrong and name the field: ``{"error", "field", "detail"}``; and the
503 of a CM ledger that cannot be used (``twin.api.state.LedgerUnavailable``), in the same shape.

A body that cannot be parsed says why (where the JSON syntax breaks, not UTF-8, nested too deeply, a
number with too many digits); one sent as another Content-Type says so; one over the size limit is a
413 naming the limit (:class:`BodyTooLarge`, raised by ``twin.api.app``'s body limit while it streams
in, before anything is parsed)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from twin.api.state import LedgerUnavailable, MirrorUnavailable

__all__ = ["ApiError", "BodyTooLarge", "err", "field_name", "install", "known_query", "plain_parameters",
           "too_large"]


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


class BodyTooLarge(StarletteHTTPException):
    """A request body over ``limit`` bytes: ``received`` bytes read so far, or ``declared`` by its
    Content-Length. An ``HTTPException``, so that FastAPI passes it on from reading the body (any other
    error there becomes its 400 "There was an error parsing the body")."""

    def __init__(self, limit: int, received: int = 0, declared: int | None = None) -> None:
        self.limit = limit
        self.received = received
        self.declared = declared
        size = f"Content-Length {declared}" if declared is not None else f"{received} bytes read so far"
        super().__init__(413, f"body: the request body is over the limit of {limit} bytes ({size})")


def too_large(exc: BodyTooLarge) -> JSONResponse:
    """The 413 of ``exc``, in the shape of every error (``Connection: close``: the rest is not read)."""
    return JSONResponse({"error": exc.detail, "field": "body",
                         "detail": {"limit": exc.limit, "declared": exc.declared, "received": exc.received}}, 413,
                        headers={"Connection": "close"})


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


def _json_invalid(error: dict[str, Any], doc: Any) -> str:
    """FastAPI's ``json_invalid`` error (its ``loc`` is ``("body", pos)``) as Python's ``json`` says it,
    with the line, column and the text around the position: ``Expecting value: line 1 column 12 (char
    11) (near '{"cluster":')``."""
    loc = error.get("loc", ())
    pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    why = str((error.get("ctx") or {}).get("error") or error.get("msg") or "JSON decode error")
    if pos is None or not isinstance(doc, str):
        return f"body: not valid JSON: {why}"
    line = doc.count("\n", 0, pos) + 1
    column = pos - doc.rfind("\n", 0, pos)
    near = _short(doc[max(0, pos - 30):pos + 10])
    return f"body: not valid JSON: {why}: line {line} column {column} (char {pos}) (near {near})"


def _unparsable(cause: BaseException | None) -> str:
    """Why FastAPI could not parse a body (its 400 "There was an error parsing the body", from ``cause``)."""
    if isinstance(cause, RecursionError):
        return f"body: JSON nested too deeply to parse ({cause})"
    if isinstance(cause, UnicodeDecodeError):
        return f"body: not UTF-8 JSON ({cause})"
    if isinstance(cause, ValueError):  # e.g. an integer of more than 4300 digits
        return f"body: not valid JSON: {str(cause).split('; use sys.')[0][:200]}"
    return "body: not valid JSON" + (f": {type(cause).__name__}: {str(cause)[:200]}" if cause is not None else "")


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

    @app.exception_handler(MirrorUnavailable)
    async def mirror_unavailable(_: Request, exc: MirrorUnavailable) -> JSONResponse:
        return JSONResponse({"error": str(exc), "field": None, "detail": None}, 503)

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return too_large(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        first = errors[0] if errors else {"loc": ("request",), "msg": "invalid"}
        name = field_name(first.get("loc", ()))
        value = f" (got {_short(first['input'])})" if "input" in first and first.get("type") != "missing" else ""
        detail = [{"field": field_name(e.get("loc", ())), "message": e.get("msg"), "type": e.get("type")}
                  for e in errors]
        if first.get("type") == "json_invalid":  # its input is a placeholder {}: say where the syntax breaks
            return JSONResponse({"error": _json_invalid(first, exc.body), "field": "body", "detail": detail}, 422)
        if tuple(first.get("loc", ())) == ("body",) and isinstance(first.get("input"), bytes):
            # FastAPI parses JSON only with a JSON Content-Type; any other leaves the body raw bytes
            given = request.headers.get("content-type")
            sent = f"{_short(given)} is not JSON" if given else "missing"
            return JSONResponse({"error": f"Content-Type: {sent}; send the body as application/json",
                                 "field": "Content-Type", "detail": detail}, 422)
        return JSONResponse({"error": f"{name}: {first.get('msg')}{value}", "field": name, "detail": detail}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):  # FastAPI's: not JSON at all
            return JSONResponse({"error": _unparsable(exc.__cause__), "field": "body", "detail": None}, 422)
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


def plain_parameters(request: Request) -> None:
    """Refuse a NUL character in a path or query parameter: no id, name or filter has one, and
    PostgreSQL cannot take one (psycopg raises ``DataError``, which was a 500 on the ledger's routes)."""
    for name, value in [*request.path_params.items(), *request.query_params.multi_items()]:
        if isinstance(value, str) and "\x00" in value:
            raise ApiError(422, f"{name[:60]}: a NUL character is not allowed (got {_short(value)})", name[:60])
