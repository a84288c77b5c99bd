"""A real VictoriaMetrics server (Debian's ``victoria-metrics``) on a loopback port, for the tests.

It accepts ``influxdb-client`` writes on ``/api/v2/write`` (InfluxDB line protocol: measurement
``m`` with field ``f`` becomes the metric ``m_f``, tags become labels, times are kept in ms) and
answers ``/api/v1/export``. ``stop`` and ``start`` again on the same port and data directory prove
a writer's buffering.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["Victoria"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Victoria:
    """``start``/``stop`` a victoria-metrics process; ``export`` its samples."""

    def __init__(self, data: Path) -> None:
        binary = shutil.which("victoria-metrics")
        if binary is None:
            raise RuntimeError("victoria-metrics is not installed (Debian package victoria-metrics; "
                               "deploy/bootstrap.sh installs it)")
        self.binary, self.data, self.port = binary, data, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data.parent / "victoria.log"

    def start(self, timeout_s: float = 20.0) -> None:
        assert self.proc is None
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([self.binary, f"-httpListenAddr=127.0.0.1:{self.port}",
                                          f"-storageDataPath={self.data}", "-retentionPeriod=10y"],
                                         stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                tail = self.log.read_text()[-2000:]
                raise RuntimeError(f"victoria-metrics exited with {self.proc.returncode}: {tail}")
            time.sleep(0.05)
        raise RuntimeError(f"victoria-metrics did not answer on {self.url} in {timeout_s} s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # a graceful stop: it flushes what it took
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None

    def export(self, match: str) -> list[dict[str, Any]]:
        """Every sample of the series matching ``match`` (a series selector), after a flush."""
        httpx.get(f"{self.url}/internal/force_flush", timeout=10)
        r = httpx.post(f"{self.url}/api/v1/export", data={"match[]": match}, timeout=30)
        r.raise_for_status()
        return [json.loads(row) for row in r.text.splitlines() if row.strip()]
