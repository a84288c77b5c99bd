"""``twin sim2real fit``: a Sim2Real model made from a worker's own state.

The real rows come from an in-memory ``Twin`` fed the emulated suburban network
(``mirror_samples``): the runtime's features of each period, the reported KPIs as labels, and every
unusable cell-period counted by reason. The command runs end to end on a worker state directory
written by the worker's own checkpoint store (``CheckpointStore.save`` of the mirrors that
``Twin.ingest`` built, as ``tests/library/test_twin_identity.py`` does; no broker), and the model it
saves serves ``Twin.predict(model="sim2real")`` on that same state.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from replay.bench_sim2real import MAPE_FLOOR as BENCH_FLOOR
from replay.bench_sim2real import mape as bench_mape
from replay.emulator import NetworkEmulator
from twin import Twin, topics
from twin.cli import _load_plugins, app
from twin.config import TwinSettings, load_settings
from twin.mirror.store import CheckpointStore, PartitionState
from twin.ports import OutRecord
from twin.prediction.model import reported_ues
from twin.sim.kpis import CONN, PRB, THP
from twin.sim2real import TARGETS, cell_features
from twin.sim2real.features import period_hour_of
from twin.sim2real.mirror_data import MAPE_FLOOR, SKIP_REASONS, mape, mirror_data, mirror_samples, time_split

START = datetime(2024, 3, 1, tzinfo=UTC)
PERIODS = 10  # hourly: 210 cell-periods of 21 cells
cli = CliRunner()
_load_plugins()


@dataclass(frozen=True)
class State:
    emu: NetworkEmulator
    records: list[OutRecord]
    config_file: Path
    state_dir: Path


def _predict_settings(emu: NetworkEmulator) -> dict[str, Any]:
    m = emu.public_model()
    return {k: m[k] for k in ("scenario", "n_ues", "demand_bps", "indoor_fraction", "seed")}


def _settings(emu: NetworkEmulator, **predict: Any) -> TwinSettings:
    return TwinSettings.model_validate({"topology": emu.topology_config(),
                                        "predict": {**_predict_settings(emu), **predict}})


def _emulated(periods: int) -> tuple[NetworkEmulator, list[OutRecord]]:
    emu = NetworkEmulator("suburban-quiet", seed=2, start=START, granularity_s=3600, mr_per_cell=0)
    records = emu.initial_records()
    for _ in range(periods):
        records += emu.step()
    return emu, records


def _write_state(directory: Path, twin: Twin) -> Path:
    """The twin's mirrors saved by the worker's checkpoint store, as one partition."""
    store = CheckpointStore(directory)
    store.save(PartitionState(0, clusters={cid: twin.mirror(cid) for cid in twin.clusters}))
    store.close()
    return directory


def _write_config(path: Path, emu: NetworkEmulator) -> Path:
    lines = ["[predict]"] + [f"{k} = {orjson.dumps(v).decode()}" for k, v in _predict_settings(emu).items()]
    for c in emu.topology_config()["clusters"]:
        lines += ["", "[[topology.clusters]]", f"id = {orjson.dumps(c['id']).decode()}",
                  f"cells = {orjson.dumps(c['cells']).decode()}"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> State:
    emu, records = _emulated(PERIODS)
    twin = Twin(config=_settings(emu))
    report = twin.ingest(records)
    assert not report.rejected
    tmp = tmp_path_factory.mktemp("fit")
    return State(emu, records, _write_config(tmp / "worker.toml", emu), _write_state(tmp / "state", twin))


def _edit(records: list[OutRecord], edit: Any) -> list[OutRecord]:
    """``records`` with ``edit(doc)`` applied to each decoded value (returns the doc, or None to drop)."""
    out = []
    for r in records:
        doc = edit(r.topic, orjson.loads(r.value))
        if doc is not None:
            out.append(r._replace(value=orjson.dumps(doc)))
    return out


def fit(*args: str) -> tuple[int, str]:
    result = cli.invoke(app, ["sim2real", "fit", *args])
    return result.exit_code, result.output


def _runtime_features(twin: Twin, cluster: str, end: int) -> tuple[tuple[str, ...], np.ndarray]:
    """The cells and feature rows the runtime's Sim2Real engine is given for a period."""
    model = twin._period_model(cluster, end, 3600)
    ues = reported_ues(twin.mirror(cluster), model)
    x = cell_features(model.sim.cluster.sectors, period_hour_of(end, 3600), sum(ues), ues)
    return model.sim.cluster.cell_keys, x


def test_mirror_samples_are_the_runtime_features_with_the_reported_kpis(state: State) -> None:
    twin = Twin(config=_settings(state.emu))
    twin.ingest(state.records)
    samples, skipped = mirror_samples(twin)
    cluster = state.emu.cluster_id
    keys = state.emu.cells
    assert len(samples) == PERIODS * len(keys) and skipped == dict.fromkeys(SKIP_REASONS, 0)
    assert set(samples.envs) == {f"{cluster}/{k}" for k in keys}
    data = mirror_data(twin)
    assert data.load_from_twin == 0 and set(data.gp.tolist()) == {3600} and data.clusters == (cluster,)
    mirror = twin.mirror(cluster)
    newest = int(data.period_end.max())
    rows = np.flatnonzero(data.period_end == newest)
    cells, x = _runtime_features(twin, cluster, newest)
    order = [cells.index(samples.envs[e].split("/", 1)[1]) for e in samples.env[rows]]
    assert np.allclose(samples.x[rows], x[order])
    for row in rows:
        pm = mirror.cells[samples.envs[samples.env[row]].split("/", 1)[1]].pm[3600]
        assert samples.y[row].tolist() == [pm[THP][newest], pm[PRB][newest]]


def test_unusable_cell_periods_are_skipped_and_counted_by_reason() -> None:
    emu, records = _emulated(4)
    ends = sorted({orjson.loads(r.value)["periodEnd"] for r in records if r.topic == topics.PM_CELL})
    a, b, c, d = emu.cells[:4]

    def edit(topic: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        key = doc.get("cellKey")
        if topic == topics.CM_SNAPSHOT and key == c and "lat" in doc["attributes"]:
            doc["attributes"] = {k: v for k, v in doc["attributes"].items() if k not in ("lat", "lon")}
        if topic != topics.PM_CELL:
            return doc
        if key == a and doc["periodEnd"] == ends[0]:  # no load reported yet: the twin's own counts
            del doc["values"][CONN]
        if key == b and doc["periodEnd"] == ends[2]:
            del doc["values"][THP]
        if key == d and doc["periodEnd"] == ends[3]:
            doc["suspect"] = True
        return doc

    twin = Twin(config=_settings(emu))
    assert not twin.ingest(_edit(records, edit)).rejected
    data = mirror_data(twin)
    samples, skipped = data.samples, data.skipped
    assert skipped == {**dict.fromkeys(SKIP_REASONS, 0), "no_position": 4, "no_conn": 1, "no_thp": 1, "suspect": 1}
    assert len(samples) == 4 * len(emu.cells) - sum(skipped.values())
    assert f"{emu.cluster_id}/{c}" not in samples.envs
    # period 0: the other positioned cells' rows count a's connected UEs as the runtime does
    first = int(data.period_end.min())
    rows = np.flatnonzero(data.period_end == first)
    assert data.load_from_twin == len(rows) == len(emu.cells) - 2
    cells, x = _runtime_features(twin, emu.cluster_id, first)
    assert a in cells and c not in cells
    order = [cells.index(samples.envs[e].split("/", 1)[1]) for e in samples.env[rows]]
    assert np.allclose(samples.x[rows], x[order])


def test_time_split_holds_out_the_last_periods_and_mape_has_the_benchmarks_floors() -> None:
    train, test = time_split(np.repeat(np.arange(10), 3))
    assert len(test) == 6 and set(test.tolist()) == set(range(24, 30)) and len(train) == 24
    assert len(time_split(np.zeros(5, dtype=np.int64))[1]) == 0  # a single period: nothing held out
    pred = np.array([[900.0, 0.5], [2200.0, 50.0], [10.0, 0.2]])
    truth = np.array([[1000.0, 0.0], [2000.0, 40.0], [0.0, 0.0]])
    assert MAPE_FLOOR == BENCH_FLOOR and mape(pred, truth) == bench_mape(pred, truth)


def test_fit_makes_a_model_from_the_state_that_the_twin_serves(state: State, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "model"
    code, output = fit("--state-dir", str(state.state_dir), "--config", str(state.config_file), "--out", str(out),
                       "--twin-samples", "800", "--epochs", "2", "--min-steps", "40", "--seed", "3", "--json")
    assert code == 0, output
    doc = json.loads(output)
    cluster = state.emu.cluster_id
    n = PERIODS * len(state.emu.cells)
    assert doc["clusters"] == [cluster] and doc["method"] == "transfer"
    samples = doc["samples"]
    assert samples["used"] == n and samples["twin"] == 800 and sum(samples["skipped"].values()) == 0
    assert doc["periods"]["count"] == PERIODS and doc["periods"]["first"] < doc["periods"]["last"]
    assert doc["twinModel"]["version"] == "sim-38901-v1" and doc["stateDir"] == str(state.state_dir.resolve())
    held = doc["heldOut"]
    assert held["samples"] == 2 * len(state.emu.cells) and held["trainSamples"] == n - held["samples"]
    assert math.isfinite(held["mape"]) and set(held["mapeByKpi"]) == set(TARGETS) and "twinOnlyMape" in held
    assert math.isfinite(doc["adapt"]["valLoss"]) and doc["pretrain"]["steps"] >= 40

    from twin.sim2real.model import Sim2RealModel

    model = Sim2RealModel.load(out)
    assert model.method == "transfer" and len(model.envs) == len(state.emu.cells)
    assert model.meta["heldOut"]["mape"] == held["mape"] and model.meta["samples"]["used"] == n
    monkeypatch.setenv("TWIN_PREDICT__SIM2REAL_MODEL", str(out))
    twin = Twin.from_state(state.state_dir, load_settings(state.config_file))
    pred = twin.predict(cluster, model="sim2real")
    assert pred.model_version == "sim-38901-v1+sim2real-transfer" and pred.out_of_range == {}
    assert all(math.isfinite(v[THP]) and v[THP] > 0 and 0 <= v[PRB] <= 100 for v in pred.values.values())


def test_fit_refuses_a_missing_empty_or_too_small_state_naming_the_problem(state: State, tmp_path: Path) -> None:
    common = ("--config", str(state.config_file), "--out", str(tmp_path / "m"), "--twin-samples", "100")
    code, output = fit("--state-dir", str(tmp_path / "nowhere"), *common)
    assert code == 1 and "no worker state in" in output and not (tmp_path / "nowhere").exists()
    code, output = fit("--state-dir", str(state.state_dir), *common, "--method", "magic")
    assert code == 2 and "--method 'magic' is not one of transfer, finetune, real_only" in output

    emu, records = _emulated(2)
    cm_only = Twin(config=_settings(emu))
    cm_only.ingest([r for r in records if r.topic != topics.PM_CELL])
    code, output = fit("--state-dir", str(_write_state(tmp_path / "cm-only", cm_only)), *common)
    assert code == 1 and "holds no usable period" in output
    small = Twin(config=_settings(emu))
    small.ingest(records)
    code, output = fit("--state-dir", str(_write_state(tmp_path / "small", small)), *common)
    assert code == 1 and f"holds {2 * len(emu.cells)} usable samples, fewer than 50" in output
    assert not (tmp_path / "m").exists()
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.json").write_text("{}")
    code, output = fit("--state-dir", str(state.state_dir), *common)
    assert code == 2 and "already holds a model" in output and "--force" in output
    assert (tmp_path / "m" / "model.json").read_text() == "{}"


def test_the_cli_starts_without_torch() -> None:
    code = ("import sys; from typer.testing import CliRunner; from twin.cli import _load_plugins, app; "
            "_load_plugins(); r = CliRunner().invoke(app, ['sim2real', 'fit', '--help']); "
            "assert r.exit_code == 0 and '--twin-samples' in r.output, r.output; "
            "assert 'torch' not in sys.modules, 'torch imported at start-up'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
