"""Run the API with uvicorn: in the foreground (``twin api``) or in a thread (``twin demo``, tests)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

__all__ = ["RunningApi", "start_in_thread"]


@dataclass
class RunningApi:
    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)


def config(app: FastAPI, host: str, port: int) -> uvicorn.Config:
    # access_log off: uvicorn's would log query strings (an EventSource token travels there); the
    # app logs each request itself (``api.request``), without the query string
    return uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning", lifespan="off",
                          timeout_graceful_shutdown=2)


def start_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 20.0) -> RunningApi:
    """Serve ``app`` from a daemon thread on ``host:port`` (0: a free port); returns once it listens."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: without, a keep-alive request waits ~40 ms on a delayed ACK
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    server = uvicorn.Server(config(app, host, bound))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="twin-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the API did not start on {host}:{bound}")
        time.sleep(0.02)
    return RunningApi(server, thread, host, bound)
