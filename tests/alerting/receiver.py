"""A real HTTP receiver for the webhook tests: a ``ThreadingHTTPServer`` on a loopback port that
answers each POST with the next status of a script (then the last one) and keeps what it got."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback_http import serving

__all__ = ["Receiver", "receiver"]


class Receiver:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[int, dict[str, str], Any]] = []  # (status answered, headers, JSON body)
        self.lock = threading.Lock()
        self.url = ""

    def next_status(self) -> int:
        with self.lock:
            i = len(self.requests)
            return self.statuses[min(i, len(self.statuses) - 1)]

    @property
    def accepted(self) -> list[Any]:
        with self.lock:
            return [body for status, _, body in self.requests if 200 <= status < 300]


@contextmanager
def receiver(statuses: list[int]) -> Iterator[Receiver]:
    state = Receiver(statuses)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status = state.next_status()
            with state.lock:
                state.requests.append((status, dict(self.headers), body))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        state.url = f"{url}/hook"
        yield state
