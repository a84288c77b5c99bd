"""``twin run --metrics-port`` and ``twin api`` as real processes against a real broker.

The worker serves its own registry: ingest and dead-letter counters by reason move as records
arrive. ``twin api --state-dir --tokens --port`` (tokens from a file and the environment) serves
the worker's state and says ready while the worker is, not ready while it lags behind a burst of
records, and not ready, naming the broker, once the broker is gone. Its JSON log names who called
and the cell, cluster or change of the request, and never holds a token, not even one sent in the
query string.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import orjson

from streams.broker import EmbeddedBroker
from tests.api.test_prometheus import free_port
from tests.helpers import publish, wait_for
from twin import topics
from twin.api.auth import generate_tokens
from twin.ports import OutRecord

ROOT = Path(__file__).resolve().parents[2]
TWIN = [sys.executable, "-m", "twin"]
CELL = "nr:00101-000000101"
MAX_LAG = 2000
BURST = 40_000


def _metric(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_worker_metrics_readiness_and_api_logs(fresh_broker: EmbeddedBroker, tmp_path: Path) -> None:
    state_dir, stats = tmp_path / "state", tmp_path / "worker-stats.json"
    config = tmp_path / "worker.toml"
    config.write_text(f'state_dir = "{state_dir}"\ncheckpoint_interval_s = 0.2\nlog_level = "INFO"\n\n'
                      f'[kafka]\ngroup_id = "api-ready"\npartitions = 2\n\n'
                      f'[[topology.clusters]]\nid = "c1"\ncells = ["{CELL}"]\n')
    metrics_port, api_port = free_port(), free_port()
    worker = subprocess.Popen([*TWIN, "run", "--config", str(config), "--bootstrap", fresh_broker.bootstrap_servers,
                               "--stats-file", str(stats), "--metrics-port", str(metrics_port), "--processes", "1",
                               "--name", "w1"], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=(tmp_path / "worker.log").open("wb"))
    tokens = generate_tokens(tmp_path / "tokens.toml")
    env_token = "env-operator-token-" + "z" * 20
    api_log = tmp_path / "api.log"
    api = subprocess.Popen([*TWIN, "api", "--state-dir", str(state_dir), "--tokens", str(tmp_path / "tokens.toml"),
                            "--port", str(api_port), "--config", str(config), "--stats-file", str(stats),
                            "--max-lag", str(MAX_LAG)],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=api_log.open("wb"),
                           env={**os.environ, "TWIN_API_OPERATOR_TOKENS": env_token})
    url, worker_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{metrics_port}/metrics"

    def get(path: str, token: str | None = None, **kw: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(url + path, headers=headers, timeout=10, **kw)  # type: ignore[arg-type]

    def answers(u: str) -> bool:
        try:
            return httpx.get(u, timeout=2).status_code < 600
        except httpx.TransportError:
            return False

    try:
        wait_for(lambda: answers(url + "/api/v1/health") and answers(worker_url), 60, "the API and the worker")
        ready = wait_for(lambda: get("/api/v1/ready").status_code == 200, 60, "readiness")
        assert ready
        body = get("/api/v1/ready").json()
        assert body["ready"] is True and body["workers"][0]["brokerReachable"] is True

        # records the worker dead-letters, counted by reason on the worker's own endpoint
        bad = [OutRecord(topics.PM_CELL, CELL.encode(), b"{not json") for _ in range(5)]
        bad += [OutRecord(topics.PM_CELL, CELL.encode(), orjson.dumps({"cellKey": CELL})) for _ in range(3)]
        asyncio.run(publish(fresh_broker.bootstrap_servers, bad, partitions=2))

        def counted() -> bool:
            text = httpx.get(worker_url, timeout=5).text
            return (_metric(text, "twin_dlq_records_total", reason="json", worker="w1") == 5.0
                    and _metric(text, "twin_dlq_records_total", reason="schema", worker="w1") == 3.0
                    and _metric(text, "twin_ingest_consumed_records_total", worker="w1") == 8.0)
        wait_for(counted, 30, "the worker's dead-letter counters")
        text = httpx.get(worker_url, timeout=5).text
        assert _metric(text, "twin_worker_ready", worker="w1") == 1.0
        assert _metric(text, "twin_consumer_lag_records", stage="mirror", worker="w1") is not None

        # the API with a token from the environment, and requests naming a cell, a cluster and a change
        assert get("/api/v1/me", env_token).json() == {"name": "operator-env-1", "role": "operator"}
        assert get(f"/api/v1/cells/{CELL}", tokens["viewer"]).status_code in (200, 404)
        assert get("/api/v1/clusters/c1", tokens["viewer"]).status_code == 200
        r = httpx.post(f"{url}/api/v1/changes/0b7e7d1c-6f0a-4b8e-9a51-3f4f5d6e7a8b/approve",
                       headers={"Authorization": f"Bearer {tokens['operator']}"}, timeout=10)
        assert r.status_code == 404 and "ledger" in r.json()["error"]
        assert get("/api/v1/events", params={"timeout": 1, "access_token": tokens["viewer"]}).status_code == 200
        assert get("/api/v1/clusters", "not-a-known-token-at-all").status_code == 401

        # a burst the worker needs seconds to work off: not ready while it lags, ready again after
        burst = [OutRecord(topics.PM_CELL, CELL.encode(), b"[%d" % i) for i in range(BURST)]
        sender = threading.Thread(target=lambda: asyncio.run(publish(fresh_broker.bootstrap_servers, burst,
                                                                     partitions=2)))
        sender.start()
        lagging = wait_for(lambda: next((x for x in get("/api/v1/ready").json()["reasons"] if "lags" in x), None),
                           60, "readiness false while the worker lags", poll_s=0.1)
        assert re.match(r"the worker lags: \d+ records behind \(more than 2000\)", lagging), lagging
        sender.join(120)
        wait_for(lambda: get("/api/v1/ready").status_code == 200, 120, "readiness back once the lag is below 2000")
        wait_for(lambda: _metric(httpx.get(worker_url, timeout=5).text, "twin_dlq_records_total", reason="json",
                                 worker="w1") == 5.0 + BURST, 120, "every record of the burst dead-lettered")

        # the broker goes away: the worker notices, the API says not ready and why
        fresh_broker.stop()

        def not_ready() -> dict[str, object] | None:
            r = get("/api/v1/ready")
            return r.json() if r.status_code == 503 else None
        body = wait_for(not_ready, 30, "readiness false")
        assert any("broker unreachable" in reason for reason in body["reasons"]), body
        assert _metric(httpx.get(worker_url, timeout=5).text, "twin_broker_reachable", worker="w1") == 0.0
    finally:
        _stop(api)
        _stop(worker)

    log = api_log.read_text()
    for secret in (tokens["viewer"], tokens["operator"], env_token):
        assert secret not in log
    lines = [orjson.loads(line) for line in log.splitlines() if line.startswith("{")]
    requests = [x for x in lines if x.get("event") == "api.request"]
    assert {x["principal"] for x in requests} >= {"demo-viewer", "demo-operator", "operator-env-1"}
    assert any(x.get("cell") == CELL for x in requests) and any(x.get("cluster") == "c1" for x in requests)
    assert any(x.get("change_id") == "0b7e7d1c-6f0a-4b8e-9a51-3f4f5d6e7a8b" for x in requests)
    assert all("?" not in x["path"] for x in requests)
