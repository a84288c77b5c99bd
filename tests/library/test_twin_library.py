"""``twin.Twin`` against a real worker: its state opened read-only, ``predict`` equal value for
value to what the worker published on ``ran.twin.predictions.v1``, ``whatif`` equal to a direct
simulator run, ``ingest`` in memory equal to the worker's mirror, and clear errors.

The worker run (``tests/library/worker_run.py``) is shared with the documentation's doctests.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.library.worker_run import GP, GROUP, PERIODS, WorkerRun
from twin import NoDataError, Twin, UnknownCellError, UnknownClusterError
from twin.config import TwinSettings, load_settings
from twin.digital_twin import DENSE_MODELS_KEPT, DENSE_SIZES_KEPT
from twin.gap import RSRP_MEAN, SINR_MEAN
from twin.mirror.store import CheckpointStore
from twin.prediction import PredictConfig, simulated_cm
from twin.prediction.model import ClusterPredictor
from twin.schemas import CmChangeRequest
from twin.sim import Simulator, TrafficMap, cluster_from_mirror
from twin.sim.kpis import CONN


@pytest.fixture(scope="module")
def run(emulated_worker_run: WorkerRun) -> WorkerRun:
    return emulated_worker_run


@pytest.fixture(scope="module")
def opened(run: WorkerRun) -> Twin:
    return Twin.from_state(run.state_dir / GROUP, run.config_file)


def _epoch(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp())


def test_predict_equals_every_published_prediction(run: WorkerRun, opened: Twin) -> None:
    assert opened.clusters == ("east", "west")
    assert run.opened_mid_run == 2  # a twin opened beside the running worker saw both clusters
    assert opened.periods("west") == run.period_ends
    predictions = {(c, end): opened.predict(c, end) for c in opened.clusters for end in run.period_ends}
    seen = set()
    for rec in run.published:
        p = predictions[rec["clusterId"], _epoch(rec["periodEnd"])]
        assert p.values[rec["cellKey"]][rec["kpi"]] == rec["predicted"], rec
        assert p.model_version == rec["modelVersion"] and p.gp == GP
        seen.add((rec["cellKey"], rec["periodEnd"], rec["kpi"]))
    # every cell, period and KPI the twin predicts was published, and nothing else
    assert len(seen) == len(run.published) == sum(len(v) for p in predictions.values() for v in p.values.values())
    assert len(run.published) >= 57 * PERIODS * 5
    # the newest period is the default
    newest = opened.predict("west")
    assert newest.period_end == run.period_ends[-1] and newest.values == predictions["west", run.period_ends[-1]].values


def test_a_period_is_predicted_with_the_cm_of_its_time(run: WorkerRun, opened: Twin) -> None:
    """The OSS retilted a cell mid-run; periods before it were published with the old tilt, so the
    twin must not predict them with the mirror's latest CM (that would not match, see above)."""
    cluster = opened.cluster_of(run.retilted)
    mirror = opened.mirror(cluster)
    before = [e for e in run.period_ends if e < run.retilt_at]
    after = [e for e in run.period_ends if e >= run.retilt_at]
    assert before and after
    tilt = next(name for name in mirror.cells[run.retilted].cm if name.endswith(".digitalTilt"))
    old = mirror.cells[run.retilted].cm_as_of(before[-1])[tilt][0]
    new = mirror.cells[run.retilted].cm_as_of(after[0])[tilt][0]
    assert old != new == mirror.cells[run.retilted].cm[tilt][0]
    assert simulated_cm(mirror, as_of=before[-1]) != simulated_cm(mirror)


def _direct_whatif(twin: Twin, cluster: str, end: int, changes: dict[str, dict[str, float]],
                   n_ues: int | None = None) -> dict[str, dict[str, float]]:
    """The same what-if by hand: the simulator built from the mirrored CM of the period, traffic
    scaled so its connected UEs match what the cells reported, then the changes."""
    cfg = twin.predict_config
    mirror = twin.mirror(cluster)
    cluster_model = cluster_from_mirror(simulated_cm(mirror, as_of=end), cluster, cfg.scenario)
    sim = Simulator(cluster_model, TrafficMap(n_ues=n_ues or cfg.n_ues, demand_bps=cfg.demand_bps,
                                              indoor_fraction=cfg.indoor_fraction), seed=cfg.seed)
    unit = sim.evaluate().kpis
    reported = sum(mirror.cells[k].pm[GP][CONN][end] for k in cluster_model.cell_keys)
    sim.evaluate(ue_scale=reported / sum(unit[k][CONN] for k in cluster_model.cell_keys))
    return sim.whatif(changes).deltas


def test_whatif_with_tilt_and_power_equals_a_direct_simulator_run(run: WorkerRun, opened: Twin) -> None:
    cluster, end = "west", run.period_ends[3]
    a, b = run.clusters["west"][0], run.clusters["west"][7]
    request = CmChangeRequest.model_validate({
        "changeId": str(uuid.uuid4()), "requestedAt": datetime.now(UTC), "requester": "test", "cellKey": a,
        "targetDn": f"ManagedElement=1,SectorEquipmentFunction={a}", "class": "SectorEquipmentFunction",
        "attribute": "digitalTilt", "to": 140})
    w = opened.whatif(cluster, [request, {"cellKey": b, "attribute": "configuredMaxTxPower", "to": 10000}],
                      period_end=end)
    assert w.changes == {a: {"digitalTilt": 140}, b: {"configuredMaxTxPower": 10000}}
    assert (w.cluster_id, w.period_end, w.gp) == (cluster, end, GP) and w.converged
    assert w.baseline == opened.predict(cluster, end).values  # the baseline is the period's prediction
    direct = _direct_whatif(opened, cluster, end, {a: {"digitalTilt": 140}, b: {"configuredMaxTxPower": 10000}})
    compared = 0
    for cell, deltas in w.delta.items():
        for kpi, delta in deltas.items():
            assert w.changed[cell][kpi] - w.baseline[cell][kpi] == delta
            if kpi in (RSRP_MEAN, SINR_MEAN):  # derived from the histograms; the simulator's deltas do not carry them
                continue
            assert delta == pytest.approx(direct[cell][kpi], rel=1e-9, abs=1e-9), (cell, kpi)
            compared += 1
    assert compared >= 30 * 5
    # the changes matter: power down by 6 dB lowers the cell's transmit power KPI, tilting 6° further down moves UEs
    assert w.delta[b]["CARR.MeanTxPwr"] < 0 and abs(w.delta[a][CONN]) > 0.1
    assert {r["cell"] for r in w.rows()} == set(w.delta) and len(w.rows()) == sum(len(d) for d in w.delta.values())
    # the same with the {cell: {attribute: value}} form
    again = opened.whatif(cluster, {a: {"digitalTilt": 140}, b: {"configuredMaxTxPower": 10000}}, period_end=end)
    assert again.delta == w.delta


def test_whatif_on_a_denser_drop_equals_a_direct_run_with_that_many_points(run: WorkerRun, opened: Twin) -> None:
    cluster, end = "west", run.period_ends[3]
    a = run.clusters["west"][0]
    changes = {a: {"digitalTilt": 140}}
    dense = opened.whatif(cluster, changes, period_end=end, ue_points=9000)
    default = opened.whatif(cluster, changes, period_end=end)
    assert dense.ue_baseline is not None and default.ue_baseline is not None
    assert len(dense.ue_baseline.throughput_bps) == 9000 != len(default.ue_baseline.throughput_bps)
    assert opened.whatif(cluster, changes, period_end=end, ue_points=opened.predict_config.n_ues).delta == default.delta
    direct = _direct_whatif(opened, cluster, end, changes, n_ues=9000)
    compared = 0
    for cell, deltas in dense.delta.items():
        for kpi, delta in deltas.items():
            if kpi not in (RSRP_MEAN, SINR_MEAN):
                assert delta == pytest.approx(direct[cell][kpi], rel=1e-9, abs=1e-9), (cell, kpi)
                compared += 1
    assert compared >= 30 * 5
    assert dense.delta != default.delta  # another drop: other numbers, the same model
    for bad in (0, -5, 2.5, True, "9000"):
        with pytest.raises(ValueError, match=f"ue_points={bad!r} must be an integer >= 1"):
            opened.whatif(cluster, changes, period_end=end, ue_points=bad)  # type: ignore[arg-type]


def test_denser_what_if_models_are_kept_for_the_clusters_used_last(run: WorkerRun, opened: Twin) -> None:
    """The optimiser's denser models are cached per cluster, least recently used out first: a twin
    that optimises many clusters holds ``DENSE_MODELS_KEPT`` of them, not all (15 MB each for 21
    cells at 12,000 points)."""
    end = run.period_ends[3]
    for cluster in ("west", "east"):
        opened.whatif(cluster, {}, period_end=end, ue_points=7000)
    assert opened._dense[7000].max_models == DENSE_MODELS_KEPT and len(opened._dense[7000]._models) == 2
    mirrors = {c: opened.mirror(c) for c in ("west", "east")}
    one = ClusterPredictor(replace(opened.predict_config, n_ues=500), max_models=1)
    for cluster in ("west", "west", "east", "west"):
        assert one.period_model(mirrors[cluster], GP, end) is not None
    assert one.builds == 3 and list(one._models) == ["west"]  # east pushed west out, then the other way
    two = ClusterPredictor(replace(opened.predict_config, n_ues=500), max_models=2)
    for cluster in ("west", "east", "west", "east"):
        two.period_model(mirrors[cluster], GP, end)
    assert two.builds == 2 and list(two._models) == ["west", "east"]
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=f"max_models={bad!r} must be an integer >= 1 or None"):
            ClusterPredictor(opened.predict_config, max_models=bad)  # type: ignore[arg-type]


def test_denser_what_if_models_are_kept_for_the_densities_used_last(run: WorkerRun, opened: Twin) -> None:
    """A caller sweeping ``ue_points`` keeps the models of the ``DENSE_SIZES_KEPT`` values it used
    last, not one model set per value it tried; a value used again in time is the same model."""
    end = run.period_ends[3]
    opened._dense.clear()
    kept = opened.whatif("west", {}, period_end=end, ue_points=600)
    first = opened._dense[600]
    for n in (700, 600, 800, 600, 900):
        opened.whatif("west", {}, period_end=end, ue_points=n)
        assert len(opened._dense) <= DENSE_SIZES_KEPT
    assert list(opened._dense) == [600, 900]  # 700 and 800 out, least recently used first
    again = opened.whatif("west", {}, period_end=end, ue_points=600)
    assert opened._dense[600] is first and first.builds == 1 and again.delta == kept.delta
    opened.whatif("west", {}, period_end=end, ue_points=700)
    assert list(opened._dense) == [600, 700]  # 900 out now


@pytest.mark.parametrize(("changes", "error", "message"), [
    ({"nr:00101-0000ffff1": {"digitalTilt": 40}}, UnknownCellError, "unknown cell 'nr:00101-0000ffff1'"),
    ({"EAST": {"digitalTilt": 40}}, UnknownCellError, "is in cluster 'east', not 'west'"),
    ({"WEST": {"fooBar": 1}}, ValueError, "attribute 'fooBar' (value 1) is not simulated"),
    ({"WEST": {"digitalTilt": 1200}}, ValueError, "digitalTilt=1200 outside the allowed range -900..900"),
    ({"WEST": {"configuredMaxTxPower": -5}}, ValueError, "configuredMaxTxPower=-5 outside the allowed range"),
    ([("WEST", "digitalTilt", 40), ("WEST", "digitalTilt", 50)], ValueError, "digitalTilt is changed twice"),
    ([{"cellKey": "WEST", "to": 40}], ValueError, "lacks 'attribute'"),
    (42, ValueError, "changes must be change requests"),
])
def test_whatif_rejects_bad_changes_naming_them(run: WorkerRun, opened: Twin, changes: object,
                                                error: type[Exception], message: str) -> None:
    def fill(value: object) -> object:
        text = orjson.dumps(value).decode().replace("WEST", run.clusters["west"][2]).replace(
            "EAST", run.clusters["east"][0])
        return orjson.loads(text) if not isinstance(value, list) or not value or not isinstance(value[0], tuple) \
            else [tuple(x) for x in orjson.loads(text)]

    with pytest.raises(error) as info:
        opened.whatif("west", fill(changes))
    assert message in str(info.value)


def test_ingest_in_memory_gives_the_workers_mirror_and_predictions(run: WorkerRun, opened: Twin) -> None:
    twin = Twin(config=run.config_file)
    report = twin.ingest(run.records)
    assert report.rejected == [] and report.applied == len(run.records)
    assert report.clusters == {"east", "west"} and len(report.predictions) == 2 * PERIODS
    for cluster in ("east", "west"):
        assert twin.mirror(cluster).to_dict() == opened.mirror(cluster).to_dict()
    for rec in run.published[::7]:
        p = twin.predict(rec["clusterId"], _epoch(rec["periodEnd"]))
        assert p.values[rec["cellKey"]][rec["kpi"]] == rec["predicted"]


def test_ingest_reports_invalid_records_with_the_workers_reasons(run: WorkerRun) -> None:
    twin = Twin(config=run.config_file)
    pm = orjson.loads(next(r.value for r in run.records if r.topic == "ran.pm.cell.v1"))
    report = twin.ingest([
        {**pm, "granularityPeriodS": "fifteen"},
        {"hello": "world"},
        b"{not json",
        pm,
        object(),
    ])
    reasons = [r.reason for r in report.rejected]
    assert report.applied == 1 and [r.index for r in report.rejected] == [0, 1, 2, 4]
    assert "field granularityPeriodS" in reasons[0]
    assert "cannot tell the topic" in reasons[1] and "give topic=" in reasons[1]
    assert reasons[2] == "a raw JSON record needs topic="
    assert "is not a telemetry record" in reasons[3]
    report = twin.ingest([b"{not json"], topic="ran.pm.cell.v1")
    assert report.rejected[0].error_class == "json" and "not valid JSON" in report.rejected[0].reason


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(path)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(path.rglob("*"))}


def test_from_state_is_read_only_and_finds_the_workers_folder(run: WorkerRun) -> None:
    before = _tree(run.state_dir)
    twin = Twin.from_state(run.state_dir, run.config_file)  # the worker's state_dir, not its group folder
    twin.predict("east")
    twin.whatif("east", {run.clusters["east"][1]: {"digitalTilt": 30}})
    twin.refresh()
    assert _tree(run.state_dir) == before
    assert twin.clusters == ("east", "west")
    settings = load_settings(run.config_file)
    assert Twin.from_state(config=settings).clusters == ("east", "west")  # state_dir from the settings
    with pytest.raises(FileNotFoundError, match="no worker state in"):
        Twin.from_state(run.state_dir / "nowhere", run.config_file)
    assert not (run.state_dir / "nowhere").exists()
    with pytest.raises(PermissionError):
        CheckpointStore(run.state_dir / GROUP, read_only=True).write(0, b"{}")
    with pytest.raises(RuntimeError, match="built in memory"):
        Twin().refresh()


CELL = "nr:00101-00000a01c"


def test_questions_about_unknown_or_empty_clusters_say_so(run: WorkerRun) -> None:
    settings = TwinSettings.model_validate({"topology": {"clusters": [{"id": "empty", "cells": []}]}})
    twin = Twin(config=settings)
    with pytest.raises(UnknownClusterError, match="unknown cluster 'nowhere'; the twin has 'empty'"):
        twin.predict("nowhere")
    with pytest.raises(NoDataError, match="has no PM period yet"):
        twin.predict("empty")
    with pytest.raises(NoDataError, match="'empty' has no PM period with gp=900 at or before period_end=1700000000"):
        twin.predict("empty", period_end=1_700_000_000, gp=900)
    # PM but no CM: nothing places the cell
    bare = Twin(config=TwinSettings.model_validate({"topology": {"clusters": [{"id": "bare", "cells": [CELL]}]}}))
    report = bare.ingest([{"cellKey": CELL, "measObjDn": "ManagedElement=1,NRCellDU=1", "measObjClass": "NRCellDU",
                           "periodEnd": "2024-03-01T10:15:00Z", "granularityPeriodS": 900,
                           "values": {"RRC.ConnMean": 12.0}}])
    assert not report.rejected, report
    with pytest.raises(NoDataError, match="no cell with a position"):
        bare.predict("bare")
    # a period before the first one mirrored: no UE to simulate, said so (the API's 409), not zeros
    opened = Twin.from_state(run.state_dir, run.config_file)
    first = run.period_ends[0]
    with pytest.raises(NoDataError, match=f"no PM period with gp=900 at or before period_end={first - 3600}; "
                                          f"the first is {first}"):
        opened.whatif("west", {run.clusters["west"][0]: {"digitalTilt": 40}}, period_end=first - 3600)
    with pytest.raises(ValueError, match="period_end=2024-03-01T00:00:00 has no time zone"):
        twin.predict("empty", period_end=datetime(2024, 3, 1), gp=900)
    with pytest.raises(ValueError, match="gp=0 is not a granularity period"):
        twin.predict("empty", gp=0)
    assert np.isfinite(Twin.from_state(run.state_dir, run.config_file).predict(
        "west", period_end=datetime.fromtimestamp(run.period_ends[0], UTC)).values[run.clusters["west"][0]][CONN])
    # a PredictConfig is checked when built, naming the field
    with pytest.raises(ValueError, match=r"PredictConfig\.indoor_fraction=1\.5 must be in 0\.\.1"):
        PredictConfig(indoor_fraction=1.5)


def test_the_order_cm_arrives_in_changes_no_prediction(run: WorkerRun, opened: Twin) -> None:
    """The retilt notification reaching the twin before the initial CM snapshots (they travel on
    different topics and partitions) must not change what any period is predicted with."""
    notifications = [r for r in run.records if r.topic == "ran.cm.notifications.v1"]
    rest = [r for r in run.records if r.topic != "ran.cm.notifications.v1"]
    assert notifications
    twin = Twin(config=run.config_file)
    report = twin.ingest(notifications + rest)
    assert report.rejected == []
    for cluster in ("east", "west"):
        assert twin.mirror(cluster).to_dict() == opened.mirror(cluster).to_dict()
    for rec in run.published:
        p = twin.predict(rec["clusterId"], _epoch(rec["periodEnd"]))
        assert p.values[rec["cellKey"]][rec["kpi"]] == rec["predicted"]
