"""The Sim2Real model in the twin: saved and loaded with its metadata, chosen per call or by
``[predict] engine``, flagged outside its training ranges, and loaded by a real worker that
publishes its predictions through the embedded broker."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from replay.emulator import NetworkEmulator
from streams.broker import EmbeddedBroker
from streams.worker import IngestWorker
from tests.helpers import consume_all, publish
from tests.sim2real.conftest import SCENARIO, START, Trained
from twin import Twin, topics
from twin.config import TwinSettings
from twin.prediction import to_records
from twin.prediction.model import reported_ues
from twin.sim.kpis import CONN, PRB, THP, TXPWR
from twin.sim2real import FEATURES, TARGETS, cell_features
from twin.sim2real.features import period_hour_of
from twin.sim2real.model import Sim2RealModel

PERIODS = 4


def _settings(emu: NetworkEmulator, model_dir: Path | None, engine: str = "sim2real", **extra: Any) -> TwinSettings:
    m = emu.public_model()
    predict = {k: m[k] for k in ("scenario", "n_ues", "demand_bps", "indoor_fraction", "seed")}
    predict.update(engine=engine, sim2real_model=str(model_dir) if model_dir else None)
    return TwinSettings.model_validate({"topology": emu.topology_config(), "predict": predict, **extra})


def _emulated(periods: int = PERIODS) -> tuple[NetworkEmulator, list[Any]]:
    emu = NetworkEmulator(SCENARIO, seed=2, start=START, granularity_s=3600, mr_per_cell=0)
    records = emu.initial_records()
    for _ in range(periods):
        records += emu.step()
    return emu, records


def test_the_model_saves_its_metadata_and_loads_the_same(trained: Trained) -> None:
    doc = json.loads((trained.model_dir / "model.json").read_text())
    assert doc["method"] == "transfer" and doc["features"] == list(FEATURES) and doc["targets"] == list(TARGETS)
    assert doc["versions"]["torch"].startswith("2.13.0") and doc["meta"] == {"test": True}
    assert set(doc["ranges"]) == set(FEATURES) and len(doc["envs"]) == 21
    model = Sim2RealModel.load(trained.model_dir)
    s = trained.real.samples
    envs = [s.envs[e] for e in s.env[:50]]
    again = Sim2RealModel(trained.transfer, s.envs, model.ranges, "transfer")  # type: ignore[arg-type]
    assert np.allclose(model.predict(s.x[:50], envs).values, again.predict(s.x[:50], envs).values)


def test_a_broken_or_foreign_model_is_refused_naming_it(trained: Trained, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        Sim2RealModel.load(tmp_path)
    (tmp_path / "weights.pt").write_bytes((trained.model_dir / "weights.pt").read_bytes())
    doc = json.loads((trained.model_dir / "model.json").read_text())
    doc["features"] = doc["features"][:-1]
    (tmp_path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="features/targets this version does not read"):
        Sim2RealModel.load(tmp_path)
    model = Sim2RealModel.load(trained.model_dir)
    with pytest.raises(ValueError, match=r"expected \(N, 21\)"):
        model.predict(np.zeros((2, 3)), ["a", "b"])
    with pytest.raises(ValidationError, match=r"needs predict\.sim2real_model"):
        TwinSettings.model_validate({"predict": {"engine": "sim2real"}})
    with pytest.raises(ValidationError, match="engine"):
        TwinSettings.model_validate({"predict": {"engine": "neural"}})


def test_twin_predict_and_whatif_go_through_the_chosen_engine(trained: Trained) -> None:
    emu, records = _emulated()
    twin = Twin(config=_settings(emu, trained.model_dir, engine="simulation"))
    report = twin.ingest(records)
    assert not report.rejected and report.predictions
    cluster = emu.cluster_id
    sim = twin.predict(cluster, model="simulation")
    s2r = twin.predict(cluster, model="sim2real")
    assert sim.model_version == "sim-38901-v1" and s2r.model_version == "sim-38901-v1+sim2real-transfer"
    assert twin.predict(cluster).values == sim.values  # [predict] engine = simulation
    # the model's values, from the CM, hour and reported load of the period
    model = Sim2RealModel.load(trained.model_dir)
    state = twin._period_model(cluster, None, None)
    ues = reported_ues(twin.mirror(cluster), state)
    reported = [twin.mirror(cluster).cells[k].pm[3600][CONN][s2r.period_end] for k in state.sim.cluster.cell_keys]
    assert ues == reported  # the cells' own RRC.ConnMean of the period
    x = cell_features(state.sim.cluster.sectors, period_hour_of(s2r.period_end, s2r.gp), sum(ues), ues)
    keys = state.sim.cluster.cell_keys
    want = model.predict(x, [f"{cluster}/{k}" for k in keys]).values
    for i, k in enumerate(keys):
        assert s2r.values[k][THP] == pytest.approx(want[i, 0]) and s2r.values[k][PRB] == pytest.approx(want[i, 1])
        assert s2r.values[k][TXPWR] == sim.values[k][TXPWR]  # the rest stays the simulation's
    assert s2r.out_of_range == {}
    # a what-if beyond the training ranges is flagged, and moves the cell's KPIs and its UEs
    cell = keys[3]
    w = twin.whatif(cluster, {cell: {"digitalTilt": 190}}, model="sim2real")
    assert w.out_of_range.get(cell) == ["tilt_deg"] and w.delta[cell][THP] != 0.0
    assert w.baseline[cell][THP] == pytest.approx(s2r.values[cell][THP])
    plain = twin.whatif(cluster, {cell: {"digitalTilt": 60}}, model="simulation")
    assert plain.out_of_range == {} and plain.model_version == "sim-38901-v1"
    served = plain.ue_baseline is not None and w.ue_baseline is not None
    assert served and not np.array_equal(w.ue_baseline.throughput_bps, plain.ue_baseline.throughput_bps)
    with pytest.raises(ValueError, match="model='neural' is not one of 'simulation', 'sim2real'"):
        twin.predict(cluster, model="neural")


def test_without_a_model_sim2real_is_refused_naming_the_setting() -> None:
    emu, records = _emulated(1)
    twin = Twin(config=_settings(emu, None, engine="simulation"))
    twin.ingest(records)
    with pytest.raises(ValueError, match=r"set \[predict\] sim2real_model"):
        twin.predict(emu.cluster_id, model="sim2real")


def test_the_engine_setting_makes_ingest_publish_sim2real_records(trained: Trained) -> None:
    emu, records = _emulated(2)
    twin = Twin(config=_settings(emu, trained.model_dir))
    report = twin.ingest(records)
    assert len(report.predictions) == 2
    for p in report.predictions:
        assert p.model_version.endswith("+sim2real-transfer")
        wire = [orjson.loads(r.to_json_bytes()) for r in to_records(p)]
        assert all(("outOfRange" in r) == (r["kpi"] in TARGETS) for r in wire)


def test_a_worker_loads_the_model_and_publishes_its_predictions(trained: Trained, tmp_path: Path) -> None:
    emu, records = _emulated()
    settings = _settings(emu, trained.model_dir, state_dir=str(tmp_path / "state"),
                         kafka={"group_id": "sim2real-worker", "partitions": 2}, checkpoint_interval_s=0.2)

    async def scenario(bootstrap: str) -> tuple[IngestWorker, list[dict[str, Any]]]:
        await publish(bootstrap, records, partitions=2)
        worker = IngestWorker(settings, bootstrap, worker_name="sim2real-test")
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        deadline = time.monotonic() + 90
        try:
            while worker.mirror.predictions is None or worker.mirror.predictions.stats.periods < PERIODS:
                if task.done():
                    task.result()
                    raise AssertionError("worker stopped early")
                assert time.monotonic() < deadline, worker.stats.as_dict()
                await asyncio.sleep(0.05)
            while worker.stats.checkpoints == 0:
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await task
        assert worker.mirror.predictions is not None
        expected = worker.mirror.predictions.stats.records
        values = await consume_all(bootstrap, topics.PREDICTIONS, expected)
        return worker, [orjson.loads(v) for v in values if v is not None]

    with EmbeddedBroker() as broker:
        worker, published = asyncio.run(scenario(broker.bootstrap_servers))
    assert worker.stats.dead_lettered.total() == 0
    assert published and {p["modelVersion"] for p in published} == {"sim-38901-v1+sim2real-transfer"}
    opened = Twin.from_state(tmp_path / "state" / "sim2real-worker", settings)
    for end in sorted({p["periodEnd"] for p in published}):
        epoch = round(datetime.fromisoformat(end).timestamp())
        mine = opened.predict(emu.cluster_id, epoch)
        for p in (p for p in published if p["periodEnd"] == end and p["kpi"] in TARGETS):
            assert p["predicted"] == pytest.approx(mine.values[p["cellKey"]][p["kpi"]], rel=1e-9)
            assert p["outOfRange"] == mine.out_of_range.get(p["cellKey"], [])
    assert datetime.now(UTC) > START


def test_the_optimiser_scores_candidates_through_the_configured_engine(trained: Trained) -> None:
    """The optimiser asks Twin.whatif; with [predict] engine = "sim2real" its scores come from the model."""
    from twin.guard import GuardPolicy
    from twin.optimize import Candidate, Optimizer

    emu, records = _emulated(2)
    scores = {}
    for engine in ("simulation", "sim2real"):
        twin = Twin(config=_settings(emu, trained.model_dir, engine=engine))
        twin.ingest(records)
        opt = Optimizer(twin, GuardPolicy(mode="auto", trust_gate=False))
        cell = emu.cells[2]
        sef = "SectorEquipmentFunction"
        cand = Candidate(cell, sef, "digitalTilt", 40, 80, emu.dn(cell, sef))
        score, w = opt.evaluate(emu.cluster_id, [cand])
        scores[engine] = score.gain_pct
        assert w.model_version.endswith("+sim2real-transfer") == (engine == "sim2real")
    assert scores["simulation"] != scores["sim2real"]


def test_a_cell_the_model_never_saw_is_flagged(trained: Trained, tmp_path: Path) -> None:
    model = Sim2RealModel.load(trained.model_dir)
    known = model.envs[1:]  # forget one cell
    Sim2RealModel(model.net.with_envs(len(known), list(range(1, len(model.envs)))), known, model.ranges,
                  model.method).save(tmp_path / "m")
    emu, records = _emulated(1)
    twin = Twin(config=_settings(emu, tmp_path / "m"))
    twin.ingest(records)
    p = twin.predict(emu.cluster_id)
    forgotten = model.envs[0].split("/", 1)[1]
    assert p.out_of_range == {forgotten: ["cell"]}
    assert np.isfinite(p.values[forgotten][THP])
