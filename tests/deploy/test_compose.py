"""The compose stack ``deploy/compose.yaml`` and its files, without a container engine (none runs
here): the file against the compose-spec schema (shipped in check-jsonschema), Kafka's KRaft settings,
every mounted file present, the commands the runtime's services run accepted by the real CLI, the
Prometheus config by the real ``promtool``, and the settings the services load accepted by
``TwinSettings`` and naming the stack's own services. The example production config is loaded too."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy.cli_options import problems
from twin.api.auth import parse_tokens_toml
from twin.config import load_settings
from twin.ports import open_adapter

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
TWIN_SERVICES = ("twin-worker", "twin-cm", "twin-api")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def services() -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"]
    return found


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_the_compose_file_matches_the_compose_spec() -> None:
    tool = Path(sys.executable).parent / "check-jsonschema"
    out = subprocess.run([str(tool), "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "compose.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_stack_has_kafka_influxdb_grafana_and_the_runtimes_services() -> None:
    assert set(services()) == {"kafka", "influxdb", "postgres", "prometheus", "grafana", *TWIN_SERVICES}
    for name in TWIN_SERVICES:
        service = services()[name]
        assert service["image"] == services()["twin-worker"]["image"] and service["restart"] == "on-failure"
        assert "/var/lib/ran-twin" in [v.split(":")[1] for v in service["volumes"]]  # the shared state volume


def test_kafka_runs_in_kraft_mode_with_the_twins_partition_count() -> None:
    kafka = services()["kafka"]
    env = {k: str(v) for k, v in kafka["environment"].items()}
    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in k for k in env)
    voter_id, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")
    assert voter_id == env["KAFKA_NODE_ID"] and voter == "kafka:9093"
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    assert listeners["CONTROLLER"] == ":9093" and env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16  # KRaft's cluster id: 16 bytes, base64url
    settings = load_settings(DEPLOY / "config" / "compose.toml")
    assert settings.kafka.bootstrap_servers == env["KAFKA_ADVERTISED_LISTENERS"].removeprefix("PLAINTEXT://")
    assert int(env["KAFKA_NUM_PARTITIONS"]) == settings.kafka.partitions
    assert settings.kafka.idempotent_producer  # Apache Kafka accepts them (Tansu does not)


def test_every_mounted_file_exists() -> None:
    mounts = [v for s in services().values() for v in s.get("volumes", []) if v.startswith("./")]
    mounts += [s["file"] for s in compose().get("secrets", {}).values()]
    assert mounts
    for mount in mounts:
        source = DEPLOY / mount.split(":")[0]
        if source == DEPLOY / "secrets" / "api-tokens":  # the operator's own file (ignored by git): its example
            source = source.with_name("api-tokens.example")
        assert source.exists(), mount


def test_the_runtimes_commands_exist_in_the_cli() -> None:
    for name in TWIN_SERVICES:
        assert problems(services()[name]["command"]) == [], name


def test_the_services_settings_load_and_name_the_stacks_services(monkeypatch: pytest.MonkeyPatch) -> None:
    worker = services()["twin-worker"]
    config = next(v for v in worker["volumes"] if v.endswith(":/etc/ran-twin/twin.toml:ro")).split(":")[0]
    assert option(worker["command"], "--config") == "/etc/ran-twin/twin.toml"
    for key, value in worker["environment"].items():
        if key.startswith("TWIN_"):
            monkeypatch.setenv(key, "token-from-env" if value.startswith("${INFLUX_TOKEN") else value)
    monkeypatch.setenv("TWIN_KAFKA__BOOTSTRAP_SERVERS", "kafka:9092")  # ${KAFKA_BOOTSTRAP:-kafka:9092}
    settings = load_settings(DEPLOY / config)
    assert settings.timeseries.backend == "influxdb" and settings.timeseries.token is not None
    assert settings.timeseries.token.get_secret_value() == "token-from-env"
    influx = {k: str(v) for k, v in services()["influxdb"]["environment"].items()}
    assert (settings.timeseries.org, settings.timeseries.bucket) == (influx["DOCKER_INFLUXDB_INIT_ORG"],
                                                                   influx["DOCKER_INFLUXDB_INIT_BUCKET"])
    assert urlsplit(settings.timeseries.url).hostname in services()
    ledger = urlsplit(settings.cm.ledger or "")
    postgres = services()["postgres"]["environment"]
    assert ledger.scheme == "postgresql" and ledger.hostname in services() and ledger.password is None  # PGPASSWORD
    assert (ledger.username, ledger.path.strip("/")) == (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"])
    assert "PGPASSWORD" in worker["environment"]
    assert settings.state_dir == Path(worker["environment"]["TWIN_STATE_DIR"])
    api = services()["twin-api"]["command"]
    assert option(api, "--state-dir") == f"{settings.state_dir}/{settings.kafka.group_id}"
    assert option(api, "--stats-file") == option(worker["command"], "--stats-file")  # readiness reads it
    assert open_adapter(settings.cm.adapter, **settings.cm.adapter_options) is not None


def test_the_api_tokens_example_is_a_valid_token_file() -> None:
    entries = parse_tokens_toml((DEPLOY / "secrets" / "api-tokens.example").read_text(), "api-tokens.example")
    assert sorted(principal.role for principal, _ in entries) == ["operator", "viewer"]
    api = services()["twin-api"]
    assert option(api["command"], "--tokens") == "/run/secrets/api-tokens" and api["secrets"] == ["api-tokens"]
    assert (DEPLOY / "secrets" / ".gitignore").read_text().split() == ["api-tokens"]


def test_prometheus_scrapes_the_api_and_both_worker_processes() -> None:
    path = DEPLOY / "prometheus" / "prometheus.yml"
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool missing: install Debian's prometheus package (make test's bootstrap does)")
    out = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    jobs = {j["job_name"]: [t for c in j["static_configs"] for t in c["targets"]]
            for j in yaml.safe_load(path.read_text())["scrape_configs"]}
    worker, api = services()["twin-worker"]["command"], services()["twin-api"]["command"]
    port = int(option(worker, "--metrics-port"))
    assert option(worker, "--metrics-host") == "0.0.0.0"
    assert jobs["twin-worker"] == [f"twin-worker:{port}", f"twin-worker:{port + 1}"]  # the re-keying child: +1
    assert jobs["twin-api"] == [f"twin-api:{option(api, '--port')}"] and option(api, "--host") == "0.0.0.0"


def test_grafana_is_provisioned_with_both_datasources_and_the_dashboard_folder() -> None:
    grafana = services()["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("./"))
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = yaml.safe_load((provisioning / "dashboards" / "ran-twin.yaml").read_text())["providers"]
    assert [p["options"]["path"] for p in providers] == [mounts["./grafana/dashboards"]]
    assert (DEPLOY / "grafana" / "dashboards" / "twin.json").is_file()
    sources = {d["type"]: d for d in yaml.safe_load((provisioning / "datasources" / "ran-twin.yaml").read_text())[
        "datasources"]}
    assert set(sources) == {"prometheus", "influxdb"}
    assert urlsplit(sources["prometheus"]["url"]).netloc == "prometheus:9090"
    influx = sources["influxdb"]
    assert urlsplit(influx["url"]).netloc == "influxdb:8086" and influx["jsonData"]["version"] == "Flux"
    assert influx["secureJsonData"]["token"] == "$INFLUX_TOKEN" and "INFLUX_TOKEN" in grafana["environment"]
    init = services()["influxdb"]["environment"]
    assert influx["jsonData"]["organization"] == init["DOCKER_INFLUXDB_INIT_ORG"]
    assert influx["jsonData"]["defaultBucket"] == init["DOCKER_INFLUXDB_INIT_BUCKET"]


def test_the_production_example_config_validates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = DEPLOY / "config" / "production.toml"
    with pytest.raises(ValueError, match=re.escape("kafka.ssl_cafile: /etc/ran-twin/kafka-ca.pem does not exist")):
        load_settings(path)  # the Kafka CA is a file mounted where the config says
    (tmp_path / "kafka-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("TWIN_KAFKA__SSL_CAFILE", str(tmp_path / "kafka-ca.pem"))
    with pytest.raises(ValueError, match=re.escape("kafka.sasl_password is required")):  # the Kafka password: env only
        load_settings(path)
    monkeypatch.setenv("TWIN_KAFKA__SASL_PASSWORD", "k4fka")
    settings = load_settings(path)
    assert (settings.kafka.security_protocol, settings.kafka.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert settings.kafka.sasl_password is not None and settings.kafka.sasl_password.get_secret_value() == "k4fka"
    assert len((settings.kafka.bootstrap_servers or "").split(",")) == 3 and settings.kafka.idempotent_producer
    assert settings.timeseries.backend == "influxdb" and settings.timeseries.url.startswith("https://")
    assert settings.webhook.url is not None and settings.webhook.url.startswith("https://")
    assert settings.guard.mode == "manual" and settings.guard.trust_gate
    assert (settings.cm.ledger or "").startswith("postgresql://") and urlsplit(settings.cm.ledger).password is None
    assert settings.timeseries.token is None and settings.webhook.bearer_token is None  # secrets: env only
    monkeypatch.setenv("TWIN_TIMESERIES__TOKEN", "t0ken")
    monkeypatch.setenv("TWIN_WEBHOOK__BEARER_TOKEN", "b3arer")
    with_env = load_settings(path)
    assert with_env.timeseries.token is not None and with_env.timeseries.token.get_secret_value() == "t0ken"
    assert with_env.webhook.bearer_token is not None and with_env.webhook.bearer_token.get_secret_value() == "b3arer"
    assert open_adapter(settings.cm.adapter, **settings.cm.adapter_options) is not None
    monkeypatch.setenv("TWIN_GUARD__MODE", "sometimes")
    with pytest.raises(ValueError, match="mode"):  # a bad value names its field
        load_settings(path)


def test_the_api_service_runs_as_compose_starts_it(tmp_path: Path) -> None:
    """``twin api`` with the compose service's own arguments (its container paths mapped into the test's
    folder, loopback instead of all interfaces), found healthy by the image's health check as compose
    runs it, answering the example token file's viewer, and serving every metric the dashboard asks for."""
    from tests.deploy.test_grafana import promql_metric_names, targets

    api = services()["twin-api"]
    tokens = tmp_path / "api-tokens"
    shutil.copy(DEPLOY / "secrets" / "api-tokens.example", tokens)
    compose_port = option(api["command"], "--port")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    paths = {"/etc/ran-twin/twin.toml": str(DEPLOY / "config" / "compose.toml"), "/run/secrets/api-tokens": str(tokens),
             "/var/lib/ran-twin/state/twin-worker": str(tmp_path / "state" / "twin-worker"),
             "/var/lib/ran-twin/worker-stats.json": str(tmp_path / "worker-stats.json"),
             "0.0.0.0": "127.0.0.1", compose_port: str(port)}
    argv = [paths.get(a, a) for a in api["command"]]
    assert argv != api["command"] and problems(argv) == []
    env = {**os.environ, "TWIN_STATE_DIR": str(tmp_path / "state"), "TWIN_TIMESERIES__BACKEND": "local",
           "TWIN_CM__LEDGER": str(tmp_path / "ledger.sqlite")}  # no PostgreSQL or InfluxDB here
    log_file = tmp_path / "api.log"
    log = log_file.open("wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "twin"), *argv], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 90
        check = {"PATH": os.environ["PATH"],
                 "TWIN_HEALTHCHECK": api["environment"]["TWIN_HEALTHCHECK"].replace(compose_port, port)}
        while (health := subprocess.run([sys.executable, "-I", str(DEPLOY / "healthcheck.py")], env=check,
                                        capture_output=True, text=True)).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, health.stderr + log_file.read_text()[-3000:]
            time.sleep(0.5)
        base = f"http://127.0.0.1:{port}"
        viewer = next(t for p, t in parse_tokens_toml(tokens.read_text(), "t") if p.role == "viewer")
        request = urllib.request.Request(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {viewer}"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert json.load(r)["role"] == "viewer"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/api/v1/me", timeout=10)
        assert refused.value.code == 401
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
            text = r.read().decode()
        suffixes = {"histogram": ("_bucket", "_count", "_sum"), "counter": ("",), "gauge": ("",)}
        served = {name + s for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
                  for s in suffixes.get(kind, ("",))}  # a counter's TYPE line names it with _total
        wanted = {n for t in targets("prometheus") for n in promql_metric_names(t["expr"])}
        assert wanted <= served, wanted - served
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
