"""Hostile or careless input to the API, over real HTTP (uvicorn on a loopback port, as
``tests/api/conftest.py`` serves it): every such request is a 4xx whose message names the field and
the value (truncated), never a 500, a hang or a body read whole into memory.

- A request body over ``MAX_BODY_BYTES`` (1 MiB) is refused with 413 naming the limit, before it is
  parsed: at once when its Content-Length says so (the rest is never read), else as it streams in.
- A body that cannot be parsed says why (where the syntax breaks, not UTF-8, nested too deeply, a
  number with too many digits), and a body sent as another Content-Type says so.
- Path parameters are bounded like the query's (200 characters), so a long id is refused with its
  value truncated instead of echoed whole.
- A NUL character in a path or query parameter is refused: PostgreSQL cannot take one (the ledger's
  queries answered 500 with ``psycopg.DataError``).

Checked and found sound, so not repeated here: ``NaN``, ``Infinity`` and ``1e999`` in a body (422
naming the field), negative, huge or non-integer ``limit``/``start``/``gp``/``timeout`` (422 naming
the parameter), a lone surrogate escape (422), a request head over 16 KiB (uvicorn's h11 answers 400).
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from twin.api.app import MAX_BODY_BYTES, create_app
from twin.api.auth import generate_tokens, load_tokens
from twin.api.server import RunningApi, start_in_thread
from twin.api.state import ApiState
from twin.config import TwinSettings
from twin.ledger import open_ledger
from twin.ledger.decisions import set_kill_switch
from twin.mirror.store import CheckpointStore

CELL = "nr:00101-000000101"
TOPOLOGY = {"topology": {"clusters": [{"id": "north", "cells": [CELL]}]}}
WHATIF = {"cluster": "north", "changes": [{"cellKey": CELL, "attribute": "digitalTilt", "to": 60}]}
FIFTY_MB = 50 * 1024 * 1024
CHUNK = b" " * 65536


@dataclass
class Api:
    running: RunningApi
    tokens: dict[str, str]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def client(self, role: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.running.url, headers=self.auth(role) if role else {}, timeout=10.0)


def serve(tmp: Path, ledger_url: str) -> Api:
    """The real app over a checkpoint store of one cluster (no PM yet) and a real ledger."""
    settings = TwinSettings.model_validate({"state_dir": str(tmp / "state"), **TOPOLOGY})
    CheckpointStore(tmp / "state" / "twin-worker").partitions()  # the worker opened its store
    led = open_ledger(ledger_url)
    set_kill_switch(led, False, by="test", at=datetime.now(UTC))
    led.close()
    tokens = generate_tokens(tmp / "tokens.toml")
    app = create_app(ApiState(settings, tmp / "state", [], ledger_url), load_tokens(tmp / "tokens.toml", environ={}))
    return Api(start_in_thread(app), tokens)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("api-abuse")
    served = serve(tmp, str(tmp / "cm-ledger.sqlite"))
    yield served
    served.running.stop()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the client got to send

    def json(self) -> Any:
        return orjson.loads(self.body)


def raw(api: Api, method: str, path: str, headers: dict[str, str], body: bytes = b"", *,
        declared: int | None = None, stream_up_to: int = 0, timeout: float = 5.0) -> Answer:
    """One request on its own connection: ``body`` sent with ``declared`` as its Content-Length (the
    rest never sent), or, with ``stream_up_to``, chunked (no Content-Length) in 64 KiB chunks until
    that many bytes or until the server stops reading; then the answer, read until the server closes."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {api.running.host}", "Connection: close",
            *(f"{k}: {v}" for k, v in headers.items())]
    if stream_up_to:
        head.append("Transfer-Encoding: chunked")
    else:
        head.append(f"Content-Length: {len(body) if declared is None else declared}")
    sock = socket.create_connection((api.running.host, api.running.port), timeout=timeout)
    sent = 0
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            if stream_up_to:
                frame = f"{len(CHUNK):x}\r\n".encode() + CHUNK + b"\r\n"
                sock.sendall(f"{len(body):x}\r\n".encode() + body + b"\r\n")
                sent = len(body)
                while sent < stream_up_to:
                    sock.sendall(frame)
                    sent += len(CHUNK)
                sock.sendall(b"0\r\n\r\n")
            else:
                sock.sendall(body)
                sent = len(body)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the server answered and closed without reading the rest
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass  # the server closed with our unread bytes in its buffer (after its answer)
    finally:
        sock.close()
    assert data, f"no answer to {method} {path}"
    head_bytes, _, rest = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return Answer(int(lines[0].split()[1]), {k.lower(): v for k, v in fields.items()}, rest, sent)


BODY_ROUTES = [("POST", "/api/v1/whatif", "viewer"), ("POST", "/api/v1/changes/abc/approve", "operator"),
               ("POST", "/api/v1/changes/abc/reject", "operator"), ("POST", "/api/v1/changes/abc/rollback", "operator"),
               ("PUT", "/api/v1/kill-switch", "operator")]


def assert_too_large(answer: Answer) -> None:
    assert answer.status == 413, (answer.status, answer.body[:300])
    out = answer.json()
    assert out["field"] == "body" and f"{MAX_BODY_BYTES} bytes" in out["error"], out
    assert out["detail"]["limit"] == MAX_BODY_BYTES


@pytest.mark.parametrize(("method", "path", "role"), BODY_ROUTES)
def test_a_body_declared_over_the_limit_is_refused_before_it_is_read(api: Api, method: str, path: str,
                                                                     role: str) -> None:
    """50 MB announced, 64 KiB sent: the answer comes at once (without the token too: nothing is read
    before the caller is known), not after waiting for and parsing the other 49.9 MB."""
    for headers in (api.auth(role), {}):
        started = time.monotonic()
        answer = raw(api, method, path, {**headers, "Content-Type": "application/json"}, b"[" + CHUNK,
                     declared=FIFTY_MB)
        assert_too_large(answer)
        assert str(FIFTY_MB) in answer.json()["error"]
        assert time.monotonic() - started < 3.0


def test_a_streamed_body_is_counted_as_it_comes(api: Api) -> None:
    """Chunked (no Content-Length): refused once the bytes read pass the limit; the server stops
    reading, so the client never gets to send the 50 MB."""
    answer = raw(api, "POST", "/api/v1/whatif", {**api.auth("viewer"), "Content-Type": "application/json"},
                 b'{"cluster": "', stream_up_to=FIFTY_MB)
    assert_too_large(answer)
    assert answer.sent < FIFTY_MB
    million = b"[" + b"0," * 999_999 + b"0]"  # a JSON array of a million elements (2 MB)
    assert_too_large(raw(api, "POST", "/api/v1/whatif", {**api.auth("viewer"), "Content-Type": "application/json"},
                         million))
    with api.client() as c:
        assert c.get("/api/v1/health").status_code == 200


def test_a_body_at_the_limit_is_read(api: Api) -> None:
    body = orjson.dumps(WHATIF)
    body += b" " * (MAX_BODY_BYTES - len(body))
    with api.client("viewer") as c:
        r = c.post("/api/v1/whatif", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 409 and "no PM period yet" in r.json()["error"], r.text  # parsed, on to the twin


@pytest.mark.parametrize(("body", "says"), [
    (b'{"cluster": "north", "changes": ', "Expecting value: line 1 column 33 (char 32)"),
    (b'{"cluster": "north",\n "changes": nope}', "Expecting value: line 2 column 13 (char 33)"),
    (b'{"cluster": "\xff\xfe"}', "not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"cluster": "north", "periodEnd": ' + b"9" * 5000 + b"}", "4300 digits"),
])
def test_a_body_that_cannot_be_parsed_says_why(api: Api, body: bytes, says: str) -> None:
    with api.client("viewer") as c:
        r = c.post("/api/v1/whatif", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    out = r.json()
    assert out["field"] == "body" and out["error"].startswith("body: ") and says in out["error"], out
    assert "(got {})" not in out["error"] and len(out["error"]) < 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_sent_as_another_content_type_says_so(api: Api, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    with api.client("viewer") as c, api.client("operator") as op:
        for r in (c.post("/api/v1/whatif", content=orjson.dumps(WHATIF), headers=headers),
                  op.put("/api/v1/kill-switch", content=b'{"on": true}', headers=headers)):
            assert r.status_code == 422, r.text
            out = r.json()
            assert out["field"] == "Content-Type" and "application/json" in out["error"], out
            assert (repr(content_type) if content_type else "Content-Type: missing") in out["error"], out


def test_a_long_path_parameter_is_refused_with_its_value_truncated(api: Api) -> None:
    long = "x" * 15_000  # within uvicorn's 16 KiB request head
    with api.client("viewer") as c, api.client("operator") as op:
        for r, field in ((c.get(f"/api/v1/changes/{long}"), "change_id"),
                         (op.post(f"/api/v1/changes/{long}/approve"), "change_id"),
                         (c.get(f"/api/v1/cells/{long}"), "cell"), (c.get(f"/api/v1/cells/{long}/kpis"), "cell"),
                         (c.get(f"/api/v1/clusters/{long}"), "cluster"),
                         (c.get(f"/api/v1/clusters/{long}/gap"), "cluster")):
            assert r.status_code == 422, (field, r.status_code)
            out = r.json()
            assert out["field"] == field and "at most 200 characters" in out["error"] and len(r.text) < 1000, out
    # a 1 MB change id: refused by the HTTP layer (uvicorn's h11, 16 KiB request head), the API goes on
    answer = raw(api, "GET", f"/api/v1/changes/{'x' * 1_000_000}", api.auth("viewer"))
    assert answer.status == 400
    with api.client() as c:
        assert c.get("/api/v1/health").status_code == 200


def test_a_nul_in_a_path_or_query_parameter_is_refused(postgres_url: str, tmp_path: Path) -> None:
    """On a PostgreSQL ledger these answered 500 (``psycopg.DataError: PostgreSQL text fields cannot
    contain NUL (0x00) bytes``); on SQLite a 404 or an empty list."""
    served = serve(tmp_path, postgres_url)
    try:
        with served.client("viewer") as c, served.client("operator") as op:
            for r, field in ((c.get("/api/v1/changes/a%00b"), "change_id"),
                             (op.post("/api/v1/changes/a%00b/approve"), "change_id"),
                             (c.get("/api/v1/changes", params={"cluster": "no\x00rth"}), "cluster"),
                             (c.get("/api/v1/changes", params={"cell": "a\x00b"}), "cell"),
                             (c.get("/api/v1/cells/a%00b"), "cell"),
                             (c.get("/api/v1/alerts", params={"cluster": "a\x00b"}), "cluster")):
                assert r.status_code == 422, (field, r.status_code, r.text[:200])
                out = r.json()
                assert out["field"] == field and "NUL" in out["error"] and "\\x00" in out["error"], out
            ok = c.get("/api/v1/changes", params={"cluster": "north"})
            assert ok.status_code == 200 and ok.json() == {"changes": []}
            assert c.get(f"/api/v1/changes/{uuid.uuid4()}").status_code == 404
    finally:
        served.running.stop()
