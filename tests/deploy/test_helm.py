"""The Helm chart ``deploy/helm/ran-twin``, rendered by the real ``helm`` (4.1.4, put in the venv by
``deploy/tools/fetch-helm.sh``, which ``make test``'s bootstrap runs) and every manifest checked
against the Kubernetes JSON schemas shipped in ``kubernetes-validate`` (strict: an unknown or
misspelt field is an error). No cluster runs here; the ServiceMonitor (a Prometheus Operator CRD, no
schema in the package) is checked against the Services it selects instead. The TOML the ConfigMap
carries is loaded by the runtime's own settings, and the commands the pods run by the real CLI."""

from __future__ import annotations

import base64
import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.cli_options import problems
from twin.config import load_settings
from twin.ports import open_adapter

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "ran-twin"
KUBE_VERSION = "1.33.0"
TOKENS = ('[[tokens]]\nname = "noc"\nrole = "viewer"\ntoken = "viewer-token-0123456789"\n\n'
          '[[tokens]]\nname = "eng"\nrole = "operator"\ntoken = "operator-token-0123456789"\n')
VALUES: dict[str, Any] = {
    "secrets": {"apiTokens": TOKENS, "influxToken": "influx-secret-token",
                "ledgerUrl": "postgresql://ran_twin:pw@postgres:5432/ran_twin"},
    "serviceMonitor": {"enabled": True},
}


def helm() -> str:
    found = shutil.which("helm", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if found is None:
        pytest.fail("helm is not installed: run `bash deploy/tools/fetch-helm.sh .venv` (make test's bootstrap does)")
    return found


def run_helm(tmp_path: Path, args: list[str], values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    return subprocess.run([helm(), *args, str(CHART), "-f", str(values_file)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "HELM_CACHE_HOME": str(tmp_path / "cache"),
                                           "HELM_CONFIG_HOME": str(tmp_path / "config"),
                                           "HELM_DATA_HOME": str(tmp_path / "data")})


def render(tmp_path: Path, values: dict[str, Any] = VALUES) -> list[dict[str, Any]]:
    out = run_helm(tmp_path, ["template", "twin", "--kube-version", KUBE_VERSION], values)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def merged(**changes: Any) -> dict[str, Any]:
    values = copy.deepcopy(VALUES)
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = values
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    return values


def one(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, [(d["kind"], d["metadata"]["name"]) for d in docs]
    return found[0]


def containers(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for d in docs if d["kind"] in ("Deployment", "StatefulSet")
            for c in d["spec"]["template"]["spec"]["containers"]}


def test_the_chart_passes_helm_lint(tmp_path: Path) -> None:
    out = run_helm(tmp_path, ["lint", "--strict"], VALUES)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


def test_every_rendered_manifest_matches_the_kubernetes_schemas(tmp_path: Path) -> None:
    docs = render(tmp_path)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "PersistentVolumeClaim", "Secret", "Service", "Service",
                     "ServiceMonitor", "StatefulSet"]
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":
            continue  # a CRD: checked below against the Services it selects
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)  # raises ValidationError naming the field


def test_the_schema_check_would_catch_a_misspelt_or_mistyped_field(tmp_path: Path) -> None:
    """The validator is strict and really loaded: a typo and a wrong type are refused."""
    worker = one(render(tmp_path), "StatefulSet")
    typo = copy.deepcopy(worker)
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolice"):
        kubernetes_validate.validate(typo, KUBE_VERSION, strict=True)
    wrong = copy.deepcopy(worker)
    wrong["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError, match="two"):
        kubernetes_validate.validate(wrong, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("partitions", [4, 12])
def test_worker_replicas_go_up_to_the_partition_count_and_no_further(tmp_path: Path, partitions: int) -> None:
    docs = render(tmp_path, merged(kafka__partitions=partitions, worker__replicas=partitions))
    assert one(docs, "StatefulSet")["spec"]["replicas"] == partitions
    env = {e["name"]: e.get("value") for e in containers(docs)["worker"]["env"]}
    assert env["TWIN_KAFKA__PARTITIONS"] == str(partitions)
    too_many = merged(kafka__partitions=partitions, worker__replicas=partitions + 1)
    out = run_helm(tmp_path, ["template", "twin"], too_many)
    assert out.returncode != 0
    assert f"worker.replicas ({partitions + 1}) must not exceed kafka.partitions ({partitions})" in out.stderr


@pytest.mark.parametrize(("change", "message"), [
    ({"worker__replicas": 0}, "/worker/replicas"),
    ({"kafka__bootstrapServers": "kafka with spaces"}, "/kafka/bootstrapServers"),
    ({"worker__processes": 3}, "/worker/processes"),
    ({"secrets__ledgerUrl": "mysql://db"}, "/secrets/ledgerUrl"),
])
def test_the_values_schema_refuses_bad_values_by_name(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    out = run_helm(tmp_path, ["template", "twin"], merged(**change))
    assert out.returncode != 0 and message in out.stderr, out.stderr


def test_rendering_without_api_tokens_says_which_value_is_missing(tmp_path: Path) -> None:
    out = run_helm(tmp_path, ["template", "twin"], merged(secrets__apiTokens=""))
    assert out.returncode != 0 and "secrets.apiTokens is empty" in out.stderr


def test_the_config_map_holds_settings_the_runtime_accepts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pod's view: the ConfigMap's TOML plus the container's environment (plain values and the
    Secret's keys), loaded by ``twin.config.load_settings`` with the adapter opened by its entry point."""
    docs = render(tmp_path, merged(kafka__partitions=16, kafka__bootstrapServers="k-0:9092,k-1:9092"))
    config = tmp_path / "twin.toml"
    config.write_text(one(docs, "ConfigMap")["data"]["twin.toml"])
    secret = {k: base64.b64decode(v).decode() for k, v in one(docs, "Secret")["data"].items()}
    for var in containers(docs)["worker"]["env"]:
        if "value" in var and var["name"].startswith("TWIN_"):
            monkeypatch.setenv(var["name"], var["value"])
        elif "secretKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] == one(docs, "Secret")["metadata"]["name"]
            if ref["key"] in secret:
                monkeypatch.setenv(var["name"], secret[ref["key"]])
            else:
                assert ref.get("optional") is True, ref
    settings = load_settings(config)
    assert settings.kafka.partitions == 16 and settings.kafka.bootstrap_servers == "k-0:9092,k-1:9092"
    assert settings.cm.ledger == "postgresql://ran_twin:pw@postgres:5432/ran_twin"
    assert settings.timeseries.backend == "influxdb" and settings.timeseries.token is not None
    assert settings.timeseries.token.get_secret_value() == "influx-secret-token"
    assert settings.guard.mode == "manual"
    assert open_adapter(settings.cm.adapter, **settings.cm.adapter_options) is not None


def test_the_commands_the_pods_run_exist_in_the_cli(tmp_path: Path) -> None:
    found = containers(render(tmp_path))
    assert set(found) == {"worker", "api", "cm"}
    for name, container in found.items():
        argv = [re.sub(r"\$\((\w+)\)", "x", a) for a in container["args"]]  # $(POD_NAME): set by Kubernetes
        assert problems(argv) == [], (name, argv)
    worker = found["worker"]["args"]
    assert worker[:1] == ["run"] and worker[worker.index("--metrics-host") + 1] == "0.0.0.0"


def test_the_secret_holds_what_is_given_and_nothing_empty(tmp_path: Path) -> None:
    docs = render(tmp_path)
    data = {k: base64.b64decode(v).decode() for k, v in one(docs, "Secret")["data"].items()}
    assert set(data) == {"api-tokens", "influx-token", "ledger-url"}  # webhookBearerToken is empty: left out
    from twin.api.auth import parse_tokens_toml

    entries = parse_tokens_toml(data["api-tokens"], "api-tokens")
    assert sorted(principal.role for principal, _ in entries) == ["operator", "viewer"]
    api = one(docs, "Deployment", "-api")["spec"]["template"]["spec"]
    tokens = next(v for v in api["volumes"] if v["name"] == "tokens")["secret"]
    mount = next(m for m in api["containers"][0]["volumeMounts"] if m["name"] == "tokens")
    path = api["containers"][0]["args"][api["containers"][0]["args"].index("--tokens") + 1]
    assert tokens["items"] == [{"key": "api-tokens", "path": "api-tokens"}]
    assert path == f"{mount['mountPath']}/api-tokens"


def test_an_existing_secret_replaces_the_charts_own(tmp_path: Path) -> None:
    docs = render(tmp_path, merged(secrets__create=False, secrets__existingSecret="ops-ran-twin",
                                   secrets__apiTokens=""))
    assert not [d for d in docs if d["kind"] == "Secret"]
    refs = {v["valueFrom"]["secretKeyRef"]["name"] for c in containers(docs).values() for v in c["env"]
            if "secretKeyRef" in v.get("valueFrom", {})}
    assert refs == {"ops-ran-twin"}
    api = one(docs, "Deployment", "-api")["spec"]["template"]["spec"]
    assert next(v for v in api["volumes"] if v["name"] == "tokens")["secret"]["secretName"] == "ops-ran-twin"


def test_the_service_monitor_scrapes_the_api_and_every_worker_process(tmp_path: Path) -> None:
    docs = render(tmp_path)
    monitor = one(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selected = [d for d in docs if d["kind"] == "Service"
                and monitor["spec"]["selector"]["matchLabels"].items() <= d["metadata"]["labels"].items()]
    ports = {p["name"]: (s, p) for s in selected for p in s["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"http", "metrics", "metrics-rekey"}
    worker = containers(docs)["worker"]
    port = int(worker["args"][worker["args"].index("--metrics-port") + 1])
    by_name = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert by_name == {"metrics": port, "metrics-rekey": port + 1}  # the re-keying child serves on PORT+1


def test_the_pods_run_as_the_images_user(tmp_path: Path) -> None:
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "deploy" / "Containerfile").read_text(), re.M)
    assert user is not None
    workloads = [doc for doc in render(tmp_path) if doc["kind"] in ("Deployment", "StatefulSet")]
    assert workloads
    for doc in workloads:
        pod = doc["spec"]["template"]["spec"]["securityContext"]
        assert (pod["runAsUser"], pod["runAsGroup"], pod["runAsNonRoot"]) == (int(user[1]), int(user[2]), True)


def test_the_api_reads_every_workers_stats_file_on_the_shared_volume(tmp_path: Path) -> None:
    """Readiness (/api/v1/ready) is false while a worker lags: the API must read each replica's file."""
    docs = render(tmp_path, merged(worker__replicas=3))
    worker = containers(docs)["worker"]
    pattern = worker["args"][worker["args"].index("--stats-file") + 1]
    pods = [f"{one(docs, 'StatefulSet')['metadata']['name']}-{i}" for i in range(3)]
    api = containers(docs)["api"]["args"]
    given = [api[i + 1] for i, a in enumerate(api) if a == "--stats-file"]
    assert given == [pattern.replace("$(POD_NAME)", pod) for pod in pods]
    state_mount = next(m["mountPath"] for m in worker["volumeMounts"] if m["name"] == "state")
    assert all(path.startswith(state_mount + "/") for path in given)  # the volume every pod mounts
    health = next(e["value"] for e in worker["env"] if e["name"] == "TWIN_HEALTHCHECK")
    assert health == f"stats:{pattern}"


@pytest.mark.parametrize("variant", [
    {"api__enabled": False, "cm__enabled": False, "secrets__apiTokens": ""},
    {"persistence__existingClaim": "shared-rwx", "serviceMonitor__enabled": False},
    {"api__service__type": "LoadBalancer", "worker__processes": 1, "image__tag": "0.1.0-rc1",
     "imagePullSecrets": [{"name": "registry"}], "worker__nodeSelector": {"pool": "twin"}},
])
def test_every_variant_of_the_values_renders_valid_manifests(tmp_path: Path, variant: dict[str, Any]) -> None:
    docs = render(tmp_path, merged(**variant))
    for doc in docs:
        if doc["kind"] != "ServiceMonitor":
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    names = {(d["kind"], d["metadata"]["name"].removeprefix("twin-ran-twin")) for d in docs}
    assert (("Deployment", "-api") in names) is variant.get("api__enabled", True)
    assert (("Deployment", "-cm") in names) is variant.get("cm__enabled", True)
    claim = variant.get("persistence__existingClaim")
    assert (("PersistentVolumeClaim", "-state") in names) is (claim is None)
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            volumes = doc["spec"]["template"]["spec"]["volumes"]
            state = next(v for v in volumes if v["name"] == "state")["persistentVolumeClaim"]["claimName"]
            assert state == (claim or "twin-ran-twin-state")


def test_adapter_credentials_come_from_the_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ProvMnS token is part of ``[cm] adapter_options``: the Secret's JSON replaces the config's options."""
    options = '{"base_url": "https://oss-2.example:8443", "token": "provmns-secret"}'
    docs = render(tmp_path, merged(secrets__cmAdapterOptions=options))
    secret = {k: base64.b64decode(v).decode() for k, v in one(docs, "Secret")["data"].items()}
    assert secret["cm-adapter-options"] == options
    cm = containers(docs)["cm"]
    ref = next(v["valueFrom"]["secretKeyRef"] for v in cm["env"] if v["name"] == "TWIN_CM__ADAPTER_OPTIONS")
    assert ref["key"] == "cm-adapter-options"
    config = tmp_path / "twin.toml"
    config.write_text(one(docs, "ConfigMap")["data"]["twin.toml"])
    monkeypatch.setenv("TWIN_CM__ADAPTER_OPTIONS", secret[ref["key"]])
    settings = load_settings(config)
    assert settings.cm.adapter_options == {"base_url": "https://oss-2.example:8443", "token": "provmns-secret"}
    assert open_adapter(settings.cm.adapter, **settings.cm.adapter_options) is not None
    out = run_helm(tmp_path, ["template", "twin"], merged(secrets__cmAdapterOptions="token=x"))
    assert out.returncode != 0 and "/secrets/cmAdapterOptions" in out.stderr


# Kafka client security (kafka.security, secrets.kafkaSaslPassword): the TWIN_KAFKA__* variables the pods get.
SASL_PASSWORD = "scram-pw-8d1f0c"  # a test value, looked for in the rendered text
TLS_DIR = "/run/secrets/kafka-tls"
SECURE = {"kafka__security": {"protocol": "SASL_SSL", "saslMechanism": "SCRAM-SHA-512", "saslUsername": "ran-twin",
                              "tls": {"existingSecret": "kafka-client-tls", "clientCert": True}},
          "secrets__kafkaSaslPassword": SASL_PASSWORD}
CA_ONLY = {"kafka__security": {"protocol": "SSL", "tls": {"existingSecret": "kafka-ca", "checkHostname": False}}}


def pods(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d["spec"]["template"]["spec"] for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def kafka_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"] if e["name"].startswith("TWIN_KAFKA__")}


def load_with_pod_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docs: list[dict[str, Any]],
                      container: dict[str, Any]) -> Any:
    """The runtime's settings as this container would load them: the ConfigMap's TOML plus its plain
    TWIN_* values (the TLS paths moved onto real files here) and the Secret's keys; an env name that is
    no setting is refused by ``extra="forbid"``."""
    tls = tmp_path / "kafka-tls"
    tls.mkdir(exist_ok=True)
    for name in ("ca.crt", "tls.crt", "tls.key"):
        (tls / name).write_text("-----BEGIN PLACEHOLDER-----\n-----END PLACEHOLDER-----\n")
    config = tmp_path / "twin.toml"
    config.write_text(one(docs, "ConfigMap")["data"]["twin.toml"])
    secret = {k: base64.b64decode(v).decode() for k, v in one(docs, "Secret")["data"].items()}
    with monkeypatch.context() as env:
        for name in [n for n in os.environ if n.startswith("TWIN_")]:
            env.delenv(name)
        for var in container["env"]:
            if not var["name"].startswith("TWIN_") or var["name"] == "TWIN_HEALTHCHECK":
                continue
            if "value" in var:
                env.setenv(var["name"], var["value"].replace(TLS_DIR, str(tls)))
            elif var["valueFrom"]["secretKeyRef"]["key"] in secret:
                env.setenv(var["name"], secret[var["valueFrom"]["secretKeyRef"]["key"]])
        return load_settings(config)


@pytest.mark.parametrize("security", [SECURE, CA_ONLY], ids=["sasl_ssl-mtls", "ssl-ca-only"])
def test_kafka_security_reaches_every_container_as_settings_the_runtime_accepts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, security: dict[str, Any]) -> None:
    out = run_helm(tmp_path, ["template", "twin", "--kube-version", KUBE_VERSION], merged(**security))
    assert out.returncode == 0, out.stderr
    assert SASL_PASSWORD not in out.stdout  # only base64 in the Secret; the pods take it by secretKeyRef
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    for doc in docs:
        if doc["kind"] != "ServiceMonitor":
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    sec = security["kafka__security"]
    sasl = sec["protocol"].startswith("SASL_")
    client_cert = sec["tls"].get("clientCert", False)
    expected = {"BOOTSTRAP_SERVERS", "PARTITIONS", "GROUP_ID", "SECURITY_PROTOCOL", "SSL_CHECK_HOSTNAME", "SSL_CAFILE"}
    expected |= {"SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD"} if sasl else set()
    expected |= {"SSL_CERTFILE", "SSL_KEYFILE"} if client_cert else set()
    found = containers(docs)
    assert set(found) == {"worker", "api", "cm"}
    for name, container in found.items():
        env = kafka_env(container)
        assert set(env) == {f"TWIN_KAFKA__{n}" for n in expected}, name
        assert env["TWIN_KAFKA__SECURITY_PROTOCOL"]["value"] == sec["protocol"]
        assert env["TWIN_KAFKA__SSL_CAFILE"]["value"] == f"{TLS_DIR}/ca.crt"
        if sasl:
            assert "value" not in env["TWIN_KAFKA__SASL_PASSWORD"]
            ref = env["TWIN_KAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": one(docs, "Secret")["metadata"]["name"], "key": "kafka-sasl-password",
                           "optional": True}
        mounts = [m for m in container["volumeMounts"] if m["name"] == "kafka-tls"]
        assert mounts == [{"name": "kafka-tls", "mountPath": TLS_DIR, "readOnly": True}], name
        settings = load_with_pod_env(tmp_path, monkeypatch, docs, container)
        kafka = settings.kafka
        assert kafka.security_protocol == sec["protocol"]
        assert kafka.ssl_cafile == tmp_path / "kafka-tls" / "ca.crt"
        assert kafka.ssl_check_hostname is sec["tls"].get("checkHostname", True)
        if sasl:
            assert (kafka.sasl_mechanism, kafka.sasl_username) == (sec["saslMechanism"], sec["saslUsername"])
            assert kafka.sasl_password is not None and kafka.sasl_password.get_secret_value() == SASL_PASSWORD
        else:
            assert kafka.sasl_mechanism is None and kafka.sasl_password is None
        if client_cert:
            assert (kafka.ssl_certfile, kafka.ssl_keyfile) == (tmp_path / "kafka-tls" / "tls.crt",
                                                               tmp_path / "kafka-tls" / "tls.key")
        else:
            assert kafka.ssl_certfile is None and kafka.ssl_keyfile is None
    for pod in pods(docs):
        volume = [v for v in pod["volumes"] if v["name"] == "kafka-tls"]
        assert volume == [{"name": "kafka-tls", "secret": {"secretName": sec["tls"]["existingSecret"],
                                                           "defaultMode": 0o440}}]
    secret = {k: base64.b64decode(v).decode() for k, v in one(docs, "Secret")["data"].items()}
    assert secret.get("kafka-sasl-password") == (SASL_PASSWORD if sasl else None)


def test_the_pod_env_check_catches_a_misspelt_kafka_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loading above is a real check: a variable the runtime does not know fails it."""
    docs = render(tmp_path, merged(**SECURE))
    worker = copy.deepcopy(containers(docs)["worker"])
    worker["env"].append({"name": "TWIN_KAFKA__SSL_CAFLIE", "value": f"{TLS_DIR}/ca.crt"})
    with pytest.raises(ValueError, match="ssl_caflie"):
        load_with_pod_env(tmp_path, monkeypatch, docs, worker)


def test_default_values_set_plaintext_and_nothing_else_of_kafka_security(tmp_path: Path) -> None:
    docs = render(tmp_path)
    for name, container in containers(docs).items():
        env = kafka_env(container)
        assert set(env) == {"TWIN_KAFKA__BOOTSTRAP_SERVERS", "TWIN_KAFKA__PARTITIONS", "TWIN_KAFKA__GROUP_ID",
                            "TWIN_KAFKA__SECURITY_PROTOCOL"}, name
        assert env["TWIN_KAFKA__SECURITY_PROTOCOL"]["value"] == "PLAINTEXT"
        assert not [m for m in container["volumeMounts"] if m["name"] == "kafka-tls"], name
    for pod in pods(docs):
        assert not [v for v in pod["volumes"] if v["name"] == "kafka-tls"]
    assert "kafka-sasl-password" not in one(docs, "Secret")["data"]


@pytest.mark.parametrize(("change", "message"), [
    ({"kafka__security": {"protocol": "SASL_PLAINTEXT", "saslUsername": "u"}, "secrets__kafkaSaslPassword": "p"},
     "kafka.security.saslMechanism is empty: kafka.security.protocol=SASL_PLAINTEXT needs PLAIN, SCRAM-SHA-256"),
    ({"kafka__security": {"protocol": "SASL_SSL", "saslMechanism": "PLAIN"}, "secrets__kafkaSaslPassword": "p"},
     "kafka.security.saslUsername is empty: kafka.security.protocol=SASL_SSL needs the SASL user name"),
    ({"kafka__security": {"protocol": "SASL_SSL", "saslMechanism": "SCRAM-SHA-256", "saslUsername": "u"}},
     "secrets.kafkaSaslPassword is empty: kafka.security.protocol=SASL_SSL needs the SASL password"),
    ({"kafka__security": {"protocol": "SSL", "tls": {"clientCert": True}}},
     "kafka.security.tls.clientCert is true but kafka.security.tls.existingSecret is empty"),
    ({"kafka__security": {"protocol": "SASL_SSL", "saslMechanism": "PLAIN", "saslUsername": "u",
                          "tls": {"clientCert": True}}, "secrets__kafkaSaslPassword": "p"},
     "kafka.security.tls.clientCert is true but kafka.security.tls.existingSecret is empty"),
    ({"kafka__security": {"protocol": "TLS"}}, "/kafka/security/protocol"),
    ({"kafka__security": {"protocol": "SASL_SSL", "saslMechanism": "GSSAPI"}}, "/kafka/security/saslMechanism"),
    ({"kafka__security": {"protocol": "SSL", "tls": {"existingSecert": "x"}}}, "existingSecert"),
])
def test_incomplete_kafka_security_fails_rendering_by_name(tmp_path: Path, change: dict[str, Any],
                                                           message: str) -> None:
    out = run_helm(tmp_path, ["template", "twin"], merged(**change))
    assert out.returncode != 0 and message in out.stderr, out.stderr


def test_an_existing_secret_is_trusted_to_hold_the_sasl_password(tmp_path: Path) -> None:
    docs = render(tmp_path, merged(secrets__create=False, secrets__existingSecret="ops-ran-twin", secrets__apiTokens="",
                                   kafka__security={"protocol": "SASL_PLAINTEXT", "saslMechanism": "PLAIN",
                                                    "saslUsername": "u"}))
    for container in containers(docs).values():
        ref = kafka_env(container)["TWIN_KAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == ("ops-ran-twin", "kafka-sasl-password")
        assert "TWIN_KAFKA__SSL_CAFILE" not in kafka_env(container)  # no TLS with SASL_PLAINTEXT
    out = run_helm(tmp_path, ["template", "twin"], merged(secrets__create=False, secrets__apiTokens=""))
    assert out.returncode != 0 and "cm-adapter-options and kafka-sasl-password" in out.stderr
