"""A real HTTP server on a loopback port answering ``/api/v2/write`` with scripted statuses, for the
writer's answers that VictoriaMetrics never gives (refusals, auth failures, overload)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any, NamedTuple

from tests.loopback_http import serving


class Request(NamedTuple):
    status: int  # what the server answered
    path: str  # path and query
    authorization: str
    body: bytes
    at: float  # time.monotonic() when it came


@contextmanager
def influx_like(statuses: list[int]) -> Iterator[tuple[str, list[Request]]]:
    """Yields (url, requests). The n-th request is answered ``statuses[min(n, len - 1)]``; the list
    is read at each request, so a test may change it meanwhile."""
    seen: list[Request] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = statuses[min(len(seen), len(statuses) - 1)]
            seen.append(Request(status, self.path, self.headers.get("Authorization", ""), body, time.monotonic()))
            payload = b'{"code":"invalid","message":"unable to parse"}' if status >= 300 else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        yield url, seen
