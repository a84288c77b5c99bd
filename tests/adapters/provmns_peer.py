"""A ProvMnS server for tests (a test peer, not a product): FastAPI, in memory, checked against 3GPP.

It serves GET / PATCH / PUT / DELETE on ``/ProvMnS/v1800/{className}={id}`` paths (TS 32.158: one
path segment per RDN) over a small 3GPP NRM tree: ``SubNetwork=Emulator/ManagedElement=gnb-001``
with ``GNBDUFunction=1`` (``NRSectorCarrier=1..3``, each with ``CommonBeamformingFunction=1``;
``NRCellDU=1..3``) and ``GNBCUCPFunction=1`` (``NRCellCU=1..3``, each with ``NRCellRelation=1..2``).
PATCH takes ``application/merge-patch+json`` (RFC 7396) and ``application/json-patch+json``
(RFC 6902 ``test`` / ``replace`` / ``add`` / ``remove``; a failed ``test`` answers 409). Bounds are
those of TS 28.541 (power > 0 mW, digitalTilt -900..900, CIO in ``QOffsetRange`` -24..24 dB);
a violation answers 400 with the TS 28.623 ``ErrorResponse`` body ``{"error": {"errorInfo": ...}}``.

Every request it receives is validated against the official ``TS28532_ProvMnS.yaml`` (read from
``../shared/specs/3gpp/openapi/`` with its sibling files for the ``$ref``s, never copied) with
openapi-core; the errors are kept in ``requests`` and the request is answered 400. openapi-core
matches a server variable as one path segment, while TS 32.158's ``{MnSRoot}`` and
``{URI-LDN-first-part}`` span several (``SubNetwork=Emulator/ManagedElement=gnb-001/...``), so the
validator's server-URL parser lets the variables of the ``servers`` URL cross ``/``; the document
itself is used unchanged.

``faults`` switches misbehaviour on for the next request(s): a 500, a dropped connection, a delay
past the client's timeout, a PATCH that stores another value than asked (partial apply) and a
concurrent writer that moves the value just before the next PATCH.

``python -m tests.adapters.provmns_peer`` measures the adapter's apply round trip against it.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_core.templating.paths.iterators import TemplateServersIterator
from openapi_core.templating.paths.parsers import PathParser
from openapi_core.testing import MockRequest, MockResponse
from werkzeug.datastructures import Headers, ImmutableMultiDict

REPO = Path(__file__).resolve().parents[2]
OPENAPI_DIR = REPO.parent / "shared" / "specs" / "3gpp" / "openapi"
PROVMNS_YAML = OPENAPI_DIR / "TS28532_ProvMnS.yaml"
VERSION = "v1800"
PATCH_MEDIA_TYPES = ("application/merge-patch+json", "application/3gpp-merge-patch+json",
                     "application/json-patch+json", "application/3gpp-json-patch+json")
Q_OFFSET_RANGE = frozenset({-24, -22, -20, -18, -16, -14, -12, -10, -8, -6, -5, -4, -3, -2, -1, 0,
                            1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24})
"""TS 28.541 ``QOffsetRange`` (dB)."""

Key = tuple[tuple[str, str], ...]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


# -- the official document ----------------------------------------------------------------------

class _MultiSegmentParser(PathParser):
    """A server-URL parser whose variables may span ``/`` (``{URI-LDN-first-part}`` does)."""

    _PARAM_PATTERN = r".*"


class _MultiSegmentServers(TemplateServersIterator):
    @functools.lru_cache(maxsize=64)  # noqa: B019 (one instance for the process, like the base's cache)
    def _get_server_url_parser(self, server_url: str) -> PathParser:
        return _MultiSegmentParser(server_url, pre_expression="^")


class _ProvMnsPathFinder(APICallPathFinder):
    servers_iterator = _MultiSegmentServers()


class OfficialSpec:
    """Validates requests (and responses) against the official TS28532_ProvMnS.yaml."""

    def __init__(self, path: Path = PROVMNS_YAML) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"official ProvMnS OpenAPI missing: {path} (../shared must sit beside the repo)")
        config = Config(path_finder_cls=_ProvMnsPathFinder,
                        extra_media_type_deserializers={m: json.loads for m in PATCH_MEDIA_TYPES})
        self.openapi = OpenAPI.from_file_path(str(path), config=config)

    @staticmethod
    def _request(method: str, raw_path: str, query: list[tuple[str, str]], content_type: str | None,
                 body: bytes, headers: dict[str, str]) -> MockRequest:
        req = MockRequest("http://provmns.test", method, raw_path, data=body, headers=headers,
                          content_type=content_type or "application/json")
        req.parameters = RequestParameters(query=ImmutableMultiDict(query), header=Headers(headers),
                                           cookie=ImmutableMultiDict(), path={})
        return req

    def request_errors(self, method: str, raw_path: str, query: list[tuple[str, str]], content_type: str | None,
                       body: bytes, headers: dict[str, str]) -> list[str]:
        """Every way the request breaks the document (empty when it conforms)."""
        req = self._request(method, raw_path, query, content_type, body, headers)
        return [_describe(e) for e in self.openapi.iter_request_errors(req)]

    def response_errors(self, method: str, raw_path: str, query: list[tuple[str, str]], content_type: str | None,
                        body: bytes, status: int, response_body: bytes) -> list[str]:
        req = self._request(method, raw_path, query, content_type, body, {})
        resp = MockResponse(response_body, status_code=status, content_type="application/json")
        return [_describe(e) for e in self.openapi.iter_response_errors(req, resp)]


def _describe(exc: BaseException) -> str:
    """An openapi-core error with the schema errors under it (they carry the useful part)."""
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__
    schema_errors = getattr(cause, "schema_errors", None)
    if schema_errors:
        text += " [" + "; ".join(getattr(e, "message", str(e)) for e in schema_errors) + "]"
    return text[:1000]


# -- the NRM tree -----------------------------------------------------------------------------

def initial_tree() -> dict[Key, dict[str, Any]]:
    """``{DN key: attributes}`` of the peer's network: three sectors of one gNB."""
    me: Key = (("SubNetwork", "Emulator"), ("ManagedElement", "gnb-001"))
    du: Key = (*me, ("GNBDUFunction", "1"))
    cucp: Key = (*me, ("GNBCUCPFunction", "1"))
    tree: dict[Key, dict[str, Any]] = {
        me[:1]: {"userLabel": "Emulator"},
        me: {"userLabel": "gnb-001", "vendorName": "twin-test-peer"},
        du: {"gNBDUId": 1, "gNBId": 1, "gNBIdLength": 28},
        cucp: {"gNBId": 1, "gNBIdLength": 28, "gNBCUName": "cucp-1"},
    }
    for i in (1, 2, 3):
        sc: Key = (*du, ("NRSectorCarrier", str(i)))
        tree[sc] = {"txDirection": "DL_AND_UL", "configuredMaxTxPower": 20000 - 1000 * i, "arfcnDL": 632628}
        tree[(*sc, ("CommonBeamformingFunction", "1"))] = {
            "coverageShape": 1, "digitalAzimuth": 0, "digitalTilt": 30 + 10 * i}
        tree[(*du, ("NRCellDU", str(i)))] = {"cellLocalId": i, "nRPCI": i, "administrativeState": "UNLOCKED"}
        cu: Key = (*cucp, ("NRCellCU", str(i)))
        tree[cu] = {"cellLocalId": i}
        for j in (1, 2):
            tree[(*cu, ("NRCellRelation", str(j)))] = {
                "nRTCI": 100 * i + j, "isHOAllowed": True,
                "cellIndividualOffset": {"rsrpOffsetSSB": 0, "rsrqOffsetSSB": 0, "sinrOffsetSSB": 0}}
    return tree


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def bound_errors(cls: str, attributes: dict[str, Any]) -> list[str]:
    """TS 28.541 bounds the peer enforces, as ErrorResponse texts naming attribute and value."""
    errors: list[str] = []
    if cls == "NRSectorCarrier" and "configuredMaxTxPower" in attributes:
        v = attributes["configuredMaxTxPower"]
        if not _int(v) or v <= 0:
            errors.append(f"configuredMaxTxPower={v!r} invalid: an integer > 0 (mW)")
    if cls == "CommonBeamformingFunction":
        for name, lim in (("digitalTilt", 900), ("digitalAzimuth", 1800)):
            if name in attributes and (not _int(v := attributes[name]) or not -lim <= v <= lim):
                errors.append(f"{name}={v!r} invalid: an integer in -{lim}..{lim} (0.1 degree)")
    if cls == "NRCellRelation" and "cellIndividualOffset" in attributes:
        cio = attributes["cellIndividualOffset"]
        if not isinstance(cio, dict):
            errors.append(f"cellIndividualOffset={cio!r} invalid: an object (CellIndividualOffset)")
        else:
            errors += [f"cellIndividualOffset.{k}={v!r} invalid: not in QOffsetRange -24..24 dB"
                       for k, v in cio.items() if not _int(v) or v not in Q_OFFSET_RANGE]
    return errors


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396.

    >>> merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "c": 3}})
    {'a': {'c': 3}}
    """
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def leaf_pointers(patch: Any, prefix: str = "") -> list[str]:
    """The JSON pointers of the leaves a merge patch sets.

    >>> leaf_pointers({"attributes": {"x": 1, "y": {"z": 2}}})
    ['/attributes/x', '/attributes/y/z']
    """
    if not isinstance(patch, dict):
        return [prefix]
    return [p for k, v in patch.items()
            for p in leaf_pointers(v, f"{prefix}/{k.replace('~', '~0').replace('/', '~1')}")]


def _tokens(pointer: str) -> list[str]:
    if not pointer.startswith("/attributes/"):
        raise ValueError(f"path {pointer!r}: this peer patches /attributes/... only")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[2:]]


def pointer_get(attributes: dict[str, Any], pointer: str) -> Any:
    node: Any = attributes
    for t in _tokens(pointer):
        if not isinstance(node, dict) or t not in node:
            raise KeyError(pointer)
        node = node[t]
    return node


def pointer_set(attributes: dict[str, Any], pointer: str, value: Any, *, must_exist: bool) -> None:
    tokens = _tokens(pointer)
    node: Any = attributes
    for t in tokens[:-1]:
        if not isinstance(node, dict) or t not in node:
            raise KeyError(pointer)
        node = node[t]
    if not isinstance(node, dict) or (must_exist and tokens[-1] not in node):
        raise KeyError(pointer)
    if value is _REMOVE:
        del node[tokens[-1]]
    else:
        node[tokens[-1]] = value


_REMOVE = object()


class PreconditionFailed(Exception):
    """A JSON Patch ``test`` op found another value."""


def json_patch(attributes: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 ``test`` / ``replace`` / ``add`` / ``remove`` on a copy of ``attributes``, all or nothing."""
    out = copy.deepcopy(attributes)
    for op in ops:
        kind, path = op["op"], op["path"]
        if kind == "test":
            try:
                held = pointer_get(out, path)
            except KeyError:
                raise PreconditionFailed(f"test failed: {path} does not exist") from None
            if held != op.get("value") or isinstance(held, bool) != isinstance(op.get("value"), bool):
                raise PreconditionFailed(f"test failed: {path} holds {held!r}, not {op.get('value')!r}")
        elif kind in ("replace", "add"):
            pointer_set(out, path, op.get("value"), must_exist=kind == "replace")
        elif kind == "remove":
            pointer_set(out, path, _REMOVE, must_exist=True)
        else:
            raise ValueError(f"op {kind!r} is not supported by this peer")
    return out


# -- the server -----------------------------------------------------------------------------

@dataclass
class Faults:
    """Misbehaviour for the next requests (each counter counts down per request it hits).

    ``only_method`` limits the 500 / drop / delay switches to requests of that method ("PATCH").
    """

    only_method: str | None = None
    fail_next: int = 0
    """Answer 500 with an ErrorResponse, changing nothing."""
    close_next: int = 0
    """Drop the TCP connection without an answer, changing nothing."""
    delay_next: int = 0
    delay_s: float = 0.0
    """Sleep before handling (the request still takes effect afterwards)."""
    store_instead: Any = None
    """Accept the next PATCH (204) but store this value at every leaf it sets (a partial apply)."""
    concurrent_value: Any = None
    """Just before the next PATCH, another writer sets every leaf it touches to this value."""


@dataclass
class Received:
    """One request as the peer saw it, with the official document's verdict on it."""

    method: str
    raw_path: str
    query: list[tuple[str, str]]
    content_type: str | None
    body: bytes
    authorization: str | None
    errors: list[str]
    validation_ms: float
    status: int = 0
    response_errors: list[str] = field(default_factory=list)


def _error(status: int, info: str) -> JSONResponse:
    """TS 28.623 ``ErrorResponse``."""
    return JSONResponse({"error": {"errorInfo": info}}, status_code=status)


class ProvMnsPeer:
    """The server, its tree, its request log and its fault switches; ``start`` / ``stop`` it."""

    def __init__(self, *, token: str | None = None, validate_requests: bool = True, validate_responses: bool = False,
                 spec: OfficialSpec | None = None) -> None:
        self.spec = spec or OfficialSpec()
        self.validate_requests = validate_requests
        self.token = token
        self.validate_responses = validate_responses
        self._initial = (token, validate_responses)
        self.tree = initial_tree()
        self.faults = Faults()
        self.requests: list[Received] = []
        self.handled = 0
        self._lock = threading.Lock()
        self.app = FastAPI(title="ProvMnS test peer", openapi_url=None, docs_url=None, redoc_url=None)
        self.app.add_api_route("/ProvMnS/{rest:path}", self._handle, methods=["GET", "PATCH", "PUT", "DELETE"])
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ProvMnsPeer:
        """Serve on a free port of 127.0.0.1 from a background thread."""
        # proto IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY on accepted sockets only then; without
        # it every keep-alive response pays the 40 ms Nagle / delayed-ACK stall.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._asgi, interface="asgi3", log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="provmns-peer", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("ProvMnS peer did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def __enter__(self) -> ProvMnsPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Fresh tree, no faults, empty log."""
        with self._lock:
            self.tree = initial_tree()
            self.faults = Faults()
            self.requests = []
            self.token, self.validate_responses = self._initial

    def validation_errors(self) -> list[str]:
        """Every official-document error over all requests received so far."""
        return [f"{r.method} {r.raw_path}: {e}" for r in self.requests for e in [*r.errors, *r.response_errors]]

    def value(self, dn: str, pointer: str) -> Any:
        """An attribute of the tree, bypassing HTTP (``pointer`` like ``/attributes/digitalTilt``)."""
        key = tuple((c, i) for c, _, i in (p.partition("=") for p in dn.split(",")))
        return pointer_get(self.tree[key], pointer)

    # -- ASGI: the connection-dropping fault needs the transport, below FastAPI

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.faults.close_next > 0 and self._hits(scope["method"]):
            self.faults.close_next -= 1
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            self._record(scope, body)
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is None:
                raise RuntimeError("cannot reach the connection to drop it (uvicorn internals changed)")
            transport.close()
            return
        await self.app(scope, receive, send)

    def _hits(self, method: str) -> bool:
        return self.faults.only_method in (None, method)

    def _record(self, scope: Scope, body: bytes) -> Received:
        raw_path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        content_type = headers.get("content-type")
        started = time.perf_counter()
        errors = self.spec.request_errors(scope["method"], raw_path, query, content_type, body,
                                          {k: v for k, v in headers.items() if k != "authorization"}
                                          ) if self.validate_requests else []
        got = Received(scope["method"], raw_path, query, content_type, body, headers.get("authorization"), errors,
                       1e3 * (time.perf_counter() - started))
        with self._lock:
            self.requests.append(got)
        return got

    async def _handle(self, request: Request, rest: str) -> Response:
        body = await request.body()
        got = self._record(request.scope, body)
        try:
            response = await self._answer(request, got, body)
        finally:
            self.handled += 1
        got.status = response.status_code
        if response.status_code >= 400 or self.validate_responses:
            got.response_errors = self.spec.response_errors(
                got.method, got.raw_path, got.query, got.content_type, body, response.status_code, bytes(response.body))
        return response

    async def _answer(self, request: Request, got: Received, body: bytes) -> Response:
        f = self.faults
        if f.delay_next > 0 and self._hits(got.method):
            f.delay_next -= 1
            await asyncio.sleep(f.delay_s)
        if f.fail_next > 0 and self._hits(got.method):
            f.fail_next -= 1
            return _error(500, "injected internal error (test peer fault)")
        if self.token is not None and got.authorization != f"Bearer {self.token}":
            return _error(401, "missing or wrong bearer token")
        if got.errors:
            return _error(400, "request does not conform to TS28532_ProvMnS.yaml: " + "; ".join(got.errors))
        prefix = f"/ProvMnS/{VERSION}/"
        if not got.raw_path.startswith(prefix):
            return _error(404, f"unknown MnS version in {got.raw_path} (this peer serves {VERSION})")
        try:
            key: Key = tuple((unquote(c), unquote(i)) for c, _, i in
                             (seg.rpartition("=") for seg in got.raw_path[len(prefix):].strip("/").split("/")))
        except ValueError:
            return _error(400, f"bad resource path {got.raw_path}")
        with self._lock:
            if request.method == "GET":
                return self._get(key, got.query)
            if request.method == "PATCH":
                return self._patch(key, got.content_type or "", body)
            if request.method == "PUT":
                return self._put(key, body)
            return self._delete(key)

    # -- operations (under the lock)

    def _representation(self, key: Key, names: list[str] | None, depth: int) -> dict[str, Any]:
        attributes = self.tree[key]
        if names:
            attributes = {k: v for k, v in attributes.items() if k in names}
        rep: dict[str, Any] = {"id": key[-1][1], "objectClass": key[-1][0],
                               "objectInstance": ",".join(f"{c}={i}" for c, i in key),
                               "attributes": copy.deepcopy(attributes)}
        if depth > 0:
            for child in self.tree:
                if len(child) == len(key) + 1 and child[:-1] == key:
                    rep.setdefault(child[-1][0], []).append(self._representation(child, names, depth - 1))
        return rep

    def _get(self, key: Key, query: list[tuple[str, str]]) -> Response:
        if key not in self.tree:
            return _error(404, f"no MOI {','.join(f'{c}={i}' for c, i in key)}")
        q = dict(query)
        depth = {"BASE_ONLY": 0, "BASE_NTH_LEVEL": int(q.get("scopeLevel", "1")), "BASE_SUBTREE": 99,
                 "BASE_ALL": 99}.get(q.get("scopeType", "BASE_ONLY"), 0)
        names = [n for n in q.get("attributes", "").split(",") if n]
        names += [f.split("/")[1] for f in q.get("fields", "").split(",") if f.startswith("attributes/")]
        return JSONResponse(self._representation(key, names or None, depth))

    def _patch(self, key: Key, content_type: str, body: bytes) -> Response:
        if key not in self.tree:
            return _error(404, f"no MOI {','.join(f'{c}={i}' for c, i in key)}")
        cls = key[-1][0]
        doc = json.loads(body)
        if "merge-patch" in content_type:
            if set(doc) - {"id", "attributes", "objectClass", "objectInstance"}:
                return _error(400, "this peer patches attributes only (no child MOIs)")
            if doc.get("id", key[-1][1]) != key[-1][1]:
                return _error(400, f"id {doc['id']!r} does not match the URI")
            touched = leaf_pointers({"attributes": doc.get("attributes", {})})
        else:
            touched = [op["path"] for op in doc if op["op"] in ("replace", "add")]
        f = self.faults
        if f.concurrent_value is not None:
            for p in touched:
                pointer_set(self.tree[key], p, f.concurrent_value, must_exist=False)
            f.concurrent_value = None
        try:
            if "merge-patch" in content_type:
                new = merge_patch(self.tree[key], doc.get("attributes", {}))
            else:
                new = json_patch(self.tree[key], doc)
        except PreconditionFailed as exc:
            return _error(409, f"{cls}: {exc}")
        except (KeyError, ValueError) as exc:
            return _error(400, f"{cls}: cannot apply the patch: {exc}")
        errors = bound_errors(cls, new)
        if errors:
            return _error(400, f"{cls}: " + "; ".join(errors))
        if f.store_instead is not None:
            for p in touched:
                pointer_set(new, p, f.store_instead, must_exist=False)
            f.store_instead = None
        self.tree[key] = new
        return Response(status_code=204)

    def _put(self, key: Key, body: bytes) -> Response:
        doc = json.loads(body)
        if not isinstance(doc, dict) or doc.get("id") != key[-1][1]:
            return _error(400, "PUT body must be a Resource whose id matches the URI")
        if len(key) > 1 and key[:-1] not in self.tree:
            return _error(404, "parent MOI does not exist")
        attributes = doc.get("attributes", {})
        errors = bound_errors(key[-1][0], attributes)
        if errors:
            return _error(400, "; ".join(errors))
        created = key not in self.tree
        self.tree[key] = copy.deepcopy(attributes)
        return JSONResponse(self._representation(key, None, 0), status_code=201 if created else 200)

    def _delete(self, key: Key) -> Response:
        if key not in self.tree:
            return _error(404, "no such MOI")
        for k in [k for k in self.tree if k[:len(key)] == key]:
            del self.tree[k]
        return Response(status_code=200)


def measure(n: int = 40, validate_requests: bool = True) -> dict[str, float]:
    """Apply round trip of ``ProvMnsAdapter`` against the peer (ms) and the peer's validation cost."""
    from adapters.provmns import ProvMnsAdapter
    from adapters.provmns.adapter import PatchFormat
    from twin.schemas import CmChangeRequest

    out: dict[str, float] = {}
    with ProvMnsPeer(validate_requests=validate_requests) as peer:
        formats: tuple[PatchFormat, ...] = ("merge", "json-patch")
        for fmt in formats:
            adapter = ProvMnsAdapter(peer.base_url, patch_format=fmt)
            dn = "SubNetwork=Emulator,ManagedElement=gnb-001,GNBDUFunction=1,NRSectorCarrier=1"
            peer.reset()
            value = 19000
            times = []
            for k in range(n):
                new = 15000 + (k % 2) * 1000
                req = CmChangeRequest(change_id=str(uuid.uuid4()), requested_at=datetime.now(UTC), requester="bench",
                                      cell_key="nr:00101-000000101", target_dn=dn, class_="NRSectorCarrier",
                                      attribute="configuredMaxTxPower", from_=value, to=new, unit="mW")
                started = time.perf_counter()
                result = adapter.apply(req)
                times.append(1e3 * (time.perf_counter() - started))
                assert result.state.value == "APPLIED", result
                value = new
            adapter.close()
            v = [r.validation_ms for r in peer.requests] if validate_requests else [0.0]
            assert not peer.validation_errors(), peer.validation_errors()
            out[f"{fmt}: apply p50 ms"] = statistics.median(times)
            out[f"{fmt}: apply p95 ms"] = statistics.quantiles(times, n=20)[18]
            out[f"{fmt}: requests per apply"] = len(peer.requests) / n
            out[f"{fmt}: validation ms per request (mean)"] = statistics.fmean(v)
            out[f"{fmt}: validation ms per PATCH (mean)"] = statistics.fmean(
                [r.validation_ms for r in peer.requests if r.method == "PATCH"] or [0.0])
    return out


if __name__ == "__main__":
    import sys

    check = "--no-validation" not in sys.argv
    print(f"requests validated against the official document: {check}")
    for name, value in measure(validate_requests=check).items():
        print(f"{name:45s} {value:8.2f}")
