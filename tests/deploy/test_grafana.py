"""The Grafana dashboard ``deploy/grafana/dashboards/twin.json``: its structure (what Grafana needs to
load a provisioned dashboard), that every panel names a provisioned datasource, that every PromQL
query names only series the runtime really exports (read from ``twin.metrics``' own collectors) and
is accepted by a real Prometheus (Debian's, started on loopback), and that every Flux query names
measurements, tags and fields the runtime really writes (points built by ``twin.timeseries.build``).
No Grafana runs here; what it would show is checked piece by piece against the real producers."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "twin.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "ran-twin.yaml"
# Grafana's variables, as Grafana substitutes them before the query reaches the datasource
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$cluster": ".*"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
                "unless", "le", "inf", "nan"}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def targets(kind: str) -> list[dict[str, Any]]:
    return [t for p in panels() for t in p["targets"] if t["datasource"]["type"] == kind]


def exported_series() -> set[str]:
    """Every series name the runtime's collectors expose: the process registry (worker counters,
    latencies) and the state collector the API registers (gap, DT-BSM, the ledger's figures)."""
    from twin.metrics import REGISTRY, StateCollector

    families = [*REGISTRY.collect(), *StateCollector(lambda: None, lambda: None).collect()]
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "summary": ("_count", "_sum", "_created"), "gauge": ("",), "info": ("_info",)}
    return {f.name + s for f in families for s in suffixes[f.type]}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression: identifiers that are not functions, keywords,
    label names (inside ``{}`` or after ``by``/``without``), strings or durations.

    >>> sorted(promql_metric_names('histogram_quantile(0.99, sum by (le, caller) (rate(a_bucket{x="y"}[5m])))'))
    ['a_bucket']
    >>> sorted(promql_metric_names('max(b) / on (cluster) group_left c{cluster=~"$cluster"}'))
    ['b', 'c']
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end():].lstrip()
        if following.startswith("(") or match.group().lower() in PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def provisioned_uids() -> dict[str, str]:
    return {d["uid"]: d["type"] for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}


def test_the_dashboard_has_what_grafana_needs_to_load_it() -> None:
    d = dashboard()
    assert d["uid"] == "ran-twin" and d["title"] and isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 36
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    for p in d["panels"]:
        grid = p["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y")) and grid["x"] + grid["w"] <= 24, p["title"]
    for p in panels():
        assert p["type"] in {"timeseries", "stat", "bargauge", "table"} and p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
    assert [v["name"] for v in d["templating"]["list"]] == ["bucket", "cluster", "cell", "kpi"]


def test_every_panel_and_variable_names_a_provisioned_datasource() -> None:
    uids = provisioned_uids()
    sources = [p["datasource"] for p in panels()] + [t["datasource"] for p in panels() for t in p["targets"]]
    sources += [v["datasource"] for v in dashboard()["templating"]["list"] if "datasource" in v]
    sources += [a["datasource"] for a in dashboard()["annotations"]["list"]]
    for source in sources:
        assert uids.get(source["uid"]) == source["type"], source
    assert {s["type"] for s in sources} == {"prometheus", "influxdb"}


def test_the_panels_cover_the_runtimes_operations() -> None:
    used = {name for t in targets("prometheus") for name in promql_metric_names(t["expr"])}
    wanted = {"twin_ingest_consumed_records_total",  # ingest rate
              "twin_dlq_records_total",  # DLQ by reason
              "twin_consumer_lag_records", "twin_prediction_seconds_bucket", "twin_whatif_seconds_bucket",
              "twin_gap_error", "twin_dtbsm",  # per cluster
              "twin_cm_guard_decisions_total", "twin_cm_pushes_total", "twin_cm_rollbacks_total"}
    assert wanted <= used, wanted - used
    by_metric = {name: t["expr"] for t in targets("prometheus") for name in promql_metric_names(t["expr"])}
    assert "by (reason)" in by_metric["twin_dlq_records_total"]
    assert "by (outcome, rule)" in by_metric["twin_cm_guard_decisions_total"]
    kpi = [t["query"] for t in targets("influxdb") if '"twin_kpi"' in t["query"]]
    assert kpi and 'group(columns: ["kind"])' in kpi[0]  # real, predicted and calibrated as three series


def test_every_promql_query_names_only_metrics_the_runtime_exports() -> None:
    exported = exported_series()
    assert "twin_dlq_records_total" in exported and "twin_dtbsm" in exported  # the collectors were read
    queries = [t["expr"] for t in targets("prometheus")]
    queries += [v["definition"] for v in dashboard()["templating"]["list"] if v.get("type") == "query"
                and v["datasource"]["type"] == "prometheus"]
    for expr in queries:
        names = promql_metric_names(re.sub(r"label_values\((\w+),.*\)", r"\1", expr))
        assert names, expr
        assert names <= exported, (expr, names - exported)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus (Debian's package) on a free loopback port, with nothing to scrape."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus missing: install Debian's prometheus package (make test's bootstrap does)")
    work = tmp_path_factory.mktemp("prometheus")
    (work / "prometheus.yml").write_text("global: {scrape_interval: 15s}\nscrape_configs: []\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'db'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                            stderr=(work / "log").open("wb"))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"prometheus did not start: {(work / 'log').read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_real_prometheus_accepts_every_query(prometheus: str) -> None:
    for t in targets("prometheus"):
        expr = t["expr"]
        for var, value in GRAFANA_VARS.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, expr
        query = urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(f"{prometheus}/api/v1/query?{query}", timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as exc:
            pytest.fail(f"{t['expr']}: {exc.read().decode()}")
        assert body["status"] == "success", (t["expr"], body)


def written_schema() -> dict[str, tuple[set[str], set[str]]]:
    """Measurement -> (tag keys, field names) of points the runtime builds for each of its outputs."""
    from twin.schemas import Alert, ChangeState, CmChangeResult, Fidelity, Transport
    from twin.timeseries.build import alert_point, change_point, fidelity_point, period_points
    from twin.timeseries.points import MEASUREMENTS

    cell = "nr:00101-000000101"
    points = period_points("c1", 900, {cell: {"DRB.UEThpDl": 1.0}}, {cell: {"DRB.UEThpDl": 2.0}},
                           {cell: {"DRB.UEThpDl": 3.0}})
    points.append(fidelity_point(Fidelity.model_construct(cluster_id="c1", period_end=900, value=0.1, lower=0.05,
                                                          upper=0.2, coverage=0.5, tau=0.1, firing=False)))
    points.append(alert_point(Alert(alert_id="0b6e5f2a-7a1c-5c6e-9d2e-0f9e1b2c3d4e", cell_key=cell, cluster_id="c1",
                                    raised_at=datetime(2026, 1, 1, tzinfo=UTC), severity="MAJOR",
                                    type="TWIN_DIVERGENCE")))
    change = CmChangeResult(change_id="1b6e5f2a-7a1c-5c6e-9d2e-0f9e1b2c3d4e", cell_key=cell,
                            state=ChangeState.FAILED, transport=Transport.EMULATOR, error="x")
    points.append(change_point(change, 0))
    schema: dict[str, tuple[set[str], set[str]]] = {}
    for p in points:
        tags, fields = schema.setdefault(p.measurement, (set(), set()))
        tags.update(p.tags)
        fields.update(p.fields)
    assert set(schema) <= set(MEASUREMENTS)
    return schema


def flux_queries() -> list[str]:
    queries = [t["query"] for t in targets("influxdb")]
    queries += [a["target"]["query"] for a in dashboard()["annotations"]["list"]]
    queries += [v["query"] for v in dashboard()["templating"]["list"] if v.get("datasource", {}).get("type") ==
                "influxdb"]
    return queries


def test_every_flux_query_names_what_the_runtime_writes() -> None:
    schema = written_schema()
    bucket = next(v["query"] for v in dashboard()["templating"]["list"] if v["name"] == "bucket")
    datasource = next(d for d in yaml.safe_load(DATASOURCES.read_text())["datasources"] if d["type"] == "influxdb")
    assert bucket == datasource["jsonData"]["defaultBucket"]
    for query in flux_queries():
        assert 'bucket: "${bucket}"' in query, query
        measurements = set(re.findall(r'r\._measurement == "([^"]+)"', query))
        assert len(measurements) == 1 and measurements <= set(schema), query
        tags, fields = schema[measurements.pop()]
        assert set(re.findall(r'r\._field == "([^"]+)"', query)) <= fields, query
        assert {m for m in re.findall(r"\br\.(\w+)", query) if not m.startswith("_")} <= tags, query
        for columns in re.findall(r"columns: \[([^\]]*)\]", query):
            named = set(re.findall(r'"([^"]+)"', columns))
            assert named <= tags | {"_time", "_value", "_field"}, (query, named)


def test_the_kpi_choices_are_kpis_the_twin_predicts() -> None:
    from twin.gap import GAP_KPIS

    kpi = next(v for v in dashboard()["templating"]["list"] if v["name"] == "kpi")
    assert set(kpi["query"].split(",")) == set(GAP_KPIS)
