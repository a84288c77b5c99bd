"""A real Prometheus server (Debian's ``prometheus``) on loopback scrapes the API's ``/metrics``
every second; the test queries it for figures the runtime exported and checks their values
against the twin and the ledger they come from."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import Served


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture()
def prometheus(served: Served, tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("Debian's prometheus is not installed (deploy/bootstrap.sh installs it)")
    target = served.url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: twin-api
    metrics_path: /metrics
    static_configs:
      - targets: ["{target}"]
""")
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prometheus did not start: {(tmp_path / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def query(url: str, promql: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """The instant query's result, once it has one (the first scrapes take a second or two)."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = httpx.get(url + "/api/v1/query", params={"query": promql}, timeout=5).json()
        assert body["status"] == "success", body
        if body["data"]["result"]:
            result: list[dict[str, Any]] = body["data"]["result"]
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"no result for {promql} in {timeout_s} s")
        time.sleep(0.25)


def test_prometheus_scrapes_the_api(served: Served, prometheus: str) -> None:
    up = query(prometheus, 'up{job="twin-api"} == 1')
    assert up[0]["metric"]["instance"] == served.url.removeprefix("http://")
    twin = served.twin()
    # DT-BSM and trust per cluster, as the twin reads them from the worker's checkpoints
    for cluster in twin.clusters:
        verdict = twin.trust(cluster)
        got = query(prometheus, f'twin_dtbsm{{cluster="{cluster}"}}')
        assert float(got[0]["value"][1]) == pytest.approx(verdict.value)
        assert float(query(prometheus, f'twin_trusted{{cluster="{cluster}"}}')[0]["value"][1]) == float(
            verdict.trusted)
    gap = query(prometheus, 'twin_gap_error{cluster="west",kind="calibrated"}')
    assert float(gap[0]["value"][1]) == pytest.approx(twin.calibrated_error("west"))
    # the guard's decisions by rule, from the ledger: four changes allowed (pending), one refused (max_step)
    rules = {(r["metric"]["outcome"], r["metric"]["rule"]): float(r["value"][1])
             for r in query(prometheus, "twin_cm_guard_decisions_total")}
    assert rules == {("pending_approval", "none"): 4.0, ("rejected", "max_step"): 1.0}
    # the worker's prediction latency histogram, observed by the real worker run in this process
    count = query(prometheus, "twin_prediction_seconds_count")
    assert float(count[0]["value"][1]) >= 1
    assert float(query(prometheus, "twin_prediction_seconds_sum")[0]["value"][1]) > 0
    # the API's own request counter moves between scrapes
    with served.client("viewer") as c:
        for _ in range(5):
            assert c.get("/api/v1/clusters").status_code == 200
    rate = query(prometheus, 'sum(twin_api_requests_total{route="/api/v1/clusters",status="200"}) >= 5')
    assert float(rate[0]["value"][1]) >= 5
