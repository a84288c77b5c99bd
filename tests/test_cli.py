"""The ``twin`` command line: schema export, mirror show, config errors, environment overrides."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from streams.broker import EmbeddedBroker
from streams.worker import IngestWorker
from tests.helpers import out_record, publish, run_worker_until, settings_for
from twin import topics
from twin.cli import app
from twin.config import load_settings
from twin.synthetic import SyntheticNetwork

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _twin(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``twin ARGS`` as a user runs it (all plug-in commands loaded), in a process of its own."""
    return subprocess.run([sys.executable, "-m", "twin", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={**os.environ, **(env or {})})


# -- twin schema export ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("schemas") / "nested" / "dir"  # created if missing
    result = runner.invoke(app, ["schema", "export", str(out)])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(f"{t}.schema.json" for t in topics.SCHEMAS)
    assert sorted(result.output.split()) == sorted(str(out / f) for f in files)  # prints what it wrote
    return {t: json.loads((out / f"{t}.schema.json").read_text()) for t in topics.SCHEMAS}


def test_schema_export_writes_one_valid_json_schema_per_topic(exported: dict[str, dict[str, Any]]) -> None:
    for topic, schema in exported.items():
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"urn:twin:schema:{topic.removesuffix('.v1')}:1"
        assert schema["title"] == topics.SCHEMAS[topic].__name__
        assert schema.get("additionalProperties") is False, topic  # unknown fields are rejected
    pm = exported[topics.PM_CELL]
    assert {"cellKey", "periodEnd", "granularityPeriodS", "values"} <= set(pm["required"])  # camelCase
    assert "granularity_period_s" not in json.dumps(pm)


def _docs(net: SyntheticNetwork) -> dict[str, list[dict[str, Any]]]:
    return {
        topics.PM_CELL: [orjson.loads(r.to_json_bytes()) for r in net.pm_period(0)],
        topics.MR_UE: [orjson.loads(r.to_json_bytes()) for r in net.mr_events(0, 20)],
        topics.CM_SNAPSHOT: [orjson.loads(r.to_json_bytes()) for r in net.cm_snapshots()],
    }


def test_exported_schemas_accept_real_records_and_reject_bad_ones(exported: dict[str, dict[str, Any]]) -> None:
    docs = _docs(SyntheticNetwork(cells=4))
    for topic, records in docs.items():
        validator = Draft202012Validator(exported[topic])
        for doc in records:
            errors = list(validator.iter_errors(doc))
            assert not errors, (topic, [e.message for e in errors])
    pm = docs[topics.PM_CELL][0]
    mr = docs[topics.MR_UE][0]
    bad = {
        topics.PM_CELL: [
            {k: v for k, v in pm.items() if k != "granularityPeriodS"},
            {**pm, "granularityPeriodS": "fifteen"},
            {**pm, "granularityPeriodS": 0},
            {**pm, "measObjClass": "NRCellXYZ"},
            {**pm, "cellKey": "cell-1"},
            {**pm, "colour": "blue"},
            {**pm, "cell_key": pm["cellKey"]},  # a Python field name is not a wire name
        ],
        topics.MR_UE: [
            {**mr, "source": "CARRIER_PIGEON"},
            {**mr, "eventId": "not-a-uuid"},
            {**mr, "serving": {**mr["serving"], "pci": 1008}},
            {**mr, "serving": {**mr["serving"], "rsrpDbm": -20}},
            {k: v for k, v in mr.items() if k != "ueRef"},
        ],
    }
    for topic, docs_ in bad.items():
        validator = Draft202012Validator(exported[topic])
        for doc in docs_:
            assert list(validator.iter_errors(doc)), (topic, doc)


# -- twin mirror show -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SyntheticNetwork, int]:
    """A checkpoint directory written by a short real worker run (its own broker)."""
    tmp = tmp_path_factory.mktemp("mirror")
    net = SyntheticNetwork(cells=6, seed=5)
    records = [out_record(r) for r in net.cm_snapshots()]
    for period in range(3):
        records += [out_record(r) for r in net.pm_period(period)]
        records += [out_record(r) for r in net.mr_events(period, 30)]
    n_mr = sum(1 for r in records if r.topic == topics.MR_UE)
    settings = settings_for(tmp, [("east", net.keys[:3]), ("west", net.keys[3:])], kafka={"group_id": "cli-test"})
    with EmbeddedBroker() as broker:
        async def scenario() -> None:
            await publish(broker.bootstrap_servers, records)
            worker = IngestWorker(settings, broker.bootstrap_servers)
            await run_worker_until(worker, lambda w: w.stats.records_applied >= len(records))

        asyncio.run(scenario())
    directory = settings.state_dir / "cli-test"
    assert (directory / "state.sqlite").is_file()
    return directory, net, n_mr


def test_mirror_show_json(checkpoints: tuple[Path, SyntheticNetwork, int]) -> None:
    directory, net, n_mr = checkpoints
    result = runner.invoke(app, ["mirror", "show", "--state-dir", str(directory), "--json"])
    assert result.exit_code == 0, result.output
    view = json.loads(result.output)
    assert sorted(view["clusters"]) == ["east", "west"]
    assert sorted(view["clusters"]["east"]["cells"]) == sorted(net.keys[:3])
    assert sorted(view["clusters"]["west"]["cells"]) == sorted(net.keys[3:])
    totals = view["totals"]
    assert totals == {**totals, "clusters": 2, "cells": 6, "mrReports": n_mr, "pmPeriods": 6 * 3,
                      "unknownMeasurements": []}
    cell = view["clusters"]["east"]["cells"][net.keys[0]]
    assert cell["cm"]["NRSectorCarrier.configuredMaxTxPower"]["value"] == 20000
    assert cell["pm"]["900"]["periods"] == 3 and cell["pm"]["900"]["missingPeriods"] == 0
    assert cell["pm"]["900"]["measurements"]["MM.HoExeInterReq"]["method"] == "cc"


def test_mirror_show_one_cell(checkpoints: tuple[Path, SyntheticNetwork, int]) -> None:
    directory, net, _ = checkpoints
    key = net.keys[4]
    result = runner.invoke(app, ["mirror", "show", "--state-dir", str(directory), "--cell", key, "--json"])
    assert result.exit_code == 0, result.output
    view = json.loads(result.output)
    assert list(view["clusters"]) == ["west"] and list(view["clusters"]["west"]["cells"]) == [key]
    assert view["totals"]["cells"] == 1
    assert view["totals"]["mrReports"] == view["clusters"]["west"]["cells"][key]["mr"]["reports"] > 0

    result = runner.invoke(app, ["mirror", "show", "--state-dir", str(directory), "--cell", "nr:00101-0000ffff1"])
    assert result.exit_code == 1
    assert "nr:00101-0000ffff1" in result.output and "not in the mirror" in result.output


def test_mirror_show_table_and_config_lookup(checkpoints: tuple[Path, SyntheticNetwork, int],
                                             tmp_path: Path) -> None:
    directory, _net, n_mr = checkpoints
    config = tmp_path / "twin.toml"
    # The directory comes from the settings: state_dir / kafka.group_id.
    config.write_text(f'state_dir = "{directory.parent}"\n[kafka]\ngroup_id = "{directory.name}"\n')
    result = runner.invoke(app, ["mirror", "show", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert f"2 clusters, 6 cells, 18 PM periods, {n_mr} MR reports" in " ".join(result.output.split())

    config.write_text(f'state_dir = "{tmp_path / "empty"}"\n')
    result = runner.invoke(app, ["mirror", "show", "--config", str(config)])
    assert result.exit_code == 1 and "no checkpoints" in result.output


# -- configuration errors and the environment -----------------------------------------------------------


@pytest.mark.parametrize(("toml", "must_name"), [
    ("[kafka]\npartitions = 0\n", ["kafka.partitions", "greater than or equal to 1"]),
    ("[ingest]\nmax_payload_bytes = \"big\"\n", ["ingest.max_payload_bytes", "big"]),
    ("checkpoint_interval_s = -1\n", ["checkpoint_interval_s"]),
    ("[[topology.clusters]]\nid = \"c1\"\ncells = [\"cell-1\"]\n", ["topology.clusters.0.cells", "'cell-1'"]),
    ("colour = \"blue\"\n", ["colour", "Extra inputs are not permitted"]),
])
def test_run_with_a_bad_config_exits_2_naming_the_field(toml: str, must_name: list[str], tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    result = _twin("run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: "), result.stderr
    for part in must_name:
        assert part in result.stderr, (part, result.stderr)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists()  # nothing started


def test_run_with_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = _twin("run", "--config", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert result.returncode == 2 and "nope.toml" in result.stderr and "does not exist" in result.stderr


def test_run_with_a_bad_environment_value_exits_2(tmp_path: Path) -> None:
    result = _twin("run", env={"TWIN_KAFKA__PARTITIONS": "lots"}, cwd=tmp_path)
    assert result.returncode == 2 and "kafka.partitions" in result.stderr and "lots" in result.stderr


def test_environment_overrides_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "site.toml"
    config.write_text('log_level = "WARNING"\n[kafka]\nbootstrap_servers = "file-kafka:9092"\ngroup_id = "g1"\n')
    monkeypatch.delenv("TWIN_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    assert load_settings(config).kafka.bootstrap_servers == "file-kafka:9092"
    assert load_settings().kafka.bootstrap_servers is None  # no file, no env: the embedded broker
    monkeypatch.setenv("TWIN_KAFKA__BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("TWIN_KAFKA__PARTITIONS", "3")
    settings = load_settings(config)
    assert settings.kafka.bootstrap_servers == "kafka-1:9092,kafka-2:9092"  # environment wins
    assert settings.kafka.partitions == 3
    assert settings.kafka.group_id == "g1" and settings.log_level == "WARNING"  # the rest from the file
    assert "TWIN_CONFIG_FILE" not in os.environ  # the file choice does not leak into later loads
    monkeypatch.setenv("TWIN_KAFKA__PARTITIONS", "0")
    with pytest.raises(ValueError, match=r"kafka\.partitions"):
        load_settings(config)
    with pytest.raises(FileNotFoundError, match=r"missing\.toml"):
        load_settings(tmp_path / "missing.toml")


def test_a_misspelt_key_inside_a_section_is_an_error(tmp_path: Path) -> None:
    from twin.config import load_settings

    config = tmp_path / "typo.toml"
    config.write_text('[kafka]\nbootstrap_server = "kafka:9092"\n')
    with pytest.raises(ValueError, match="bootstrap_server"):
        load_settings(config)


# -- the command groups, as plug-ins ----------------------------------------------------------


@pytest.mark.parametrize(("args", "commands"), [
    ((), ["demo", "broker", "run", "mirror", "replay", "schema", "sim", "bench"]),
    (("sim",), ["evaluate", "export-link-table"]),
    (("bench",), ["sim", "ingest", "e2e"]),
    (("bench", "sim"), ["--cells", "--repeats"]),
    (("bench", "ingest"), ["--help"]),
    (("bench", "e2e"), ["--help"]),
])
def test_help_of_every_command_group(args: tuple[str, ...], commands: list[str]) -> None:
    """Each group gets the app and the ``bench`` group from ``twin.cli`` (none imports it) and registers once."""
    result = _twin(*args, "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    for command in commands:
        assert command in result.stdout, (args, command, result.stdout)
    if args == ("bench",):  # each benchmark once, however the groups were loaded
        assert [line.split()[1] for line in result.stdout.splitlines() if line.startswith("│ ")
                and line.split()[1] in ("sim", "ingest", "e2e")] == ["sim", "ingest", "e2e"]


# -- deferred commands: the benchmarks and the demo are imported only when named ---------------------

_HEAVY = ("streams.demo", "streams.bench_e2e", "replay.bench_fidelity", "replay.bench_optimize", "twin.fidelity",
          "river.drift", "numba", "torch")


def _imported_after_load(*args: str) -> set[str]:
    """Which of ``_HEAVY`` a fresh interpreter has imported once ``twin ARGS`` registered its commands."""
    code = ("import sys; from twin.cli import _load_plugins; _load_plugins(sys.argv[1:]); "
            f"print(' '.join(m for m in {_HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


@pytest.mark.parametrize("args", [(), ("--help",), ("cm", "list", "--json"), ("mirror", "show"), ("bench",),
                                  ("bench", "sim", "--help"), ("replay", "--help"), ("run", "--config", "x.toml")])
def test_a_command_line_imports_no_benchmark_it_does_not_name(args: tuple[str, ...]) -> None:
    assert _imported_after_load(*args) == set()


@pytest.mark.parametrize(("args", "expected", "absent"), [
    (("bench", "fidelity", "--help"), {"replay.bench_fidelity", "river.drift"},
     {"streams.demo", "replay.bench_optimize"}),
    (("bench", "bisim", "--json"), {"twin.fidelity", "numba"}, {"replay.bench_fidelity", "streams.demo"}),
    (("demo", "--speed", "0"), {"streams.demo"}, {"replay.bench_optimize"}),
    (("bench", "no-such-benchmark"), set(_HEAVY) - {"torch"}, set()),  # unknown: all, for click's suggestions
])
def test_a_command_line_imports_the_deferred_command_it_names(args: tuple[str, ...], expected: set[str],
                                                               absent: set[str]) -> None:
    imported = _imported_after_load(*args)
    assert expected <= imported, (args, imported)
    assert not absent & imported, (args, imported)


def test_every_deferred_command_is_listed_with_its_docstring_and_runs_when_named() -> None:
    listing = _twin("bench", "--help", env={"COLUMNS": "250"})
    assert listing.returncode == 0, listing.stderr
    for name, first_line in [("fidelity", "Drift detection, calibrated accuracy and resyncs"),
                             ("bisim", "Time the exact DT-BSM"), ("ingest", ""), ("optimize", ""),
                             ("mr-ceiling", ""), ("soak", ""), ("scale", ""), ("gap-models", ""), ("prefilter", "")]:
        line = next((ln for ln in listing.stdout.splitlines() if ln.startswith(f"│ {name} ")), None)
        assert line is not None, (name, listing.stdout)
        assert first_line in line
    root = _twin("--help", env={"COLUMNS": "250"})
    assert "Run the emulated network, the broker and the twin together" in root.stdout
    named = _twin("bench", "fidelity", "--help", env={"COLUMNS": "250"})  # the real command: its options
    assert named.returncode == 0 and "--drift" in named.stdout and "--mr-per-cell" in named.stdout, named.stdout
    unknown = _twin("bench", "fidelty")
    assert unknown.returncode == 2 and "No such command 'fidelty'" in unknown.stderr, unknown.stderr
