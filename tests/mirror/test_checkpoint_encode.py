"""The checkpoint snapshot (``encode``, from the live containers) is the ``to_dict`` checkpoint."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.demo.test_prediction import _mirror
from twin.mirror.cluster import ClusterMirror
from twin.mirror.store import CheckpointStore, PartitionState, encode
from twin.prediction import PredictConfig, PredictionService


def _state() -> PartitionState:
    m, _ = _mirror(periods=3)
    PredictionService(PredictConfig(n_ues=300), {"c1": sorted(m.cells)}).on_applied(m)
    key = sorted(m.cells)[0]
    for i in range(3):
        m.apply(["mr", key, [f"ev{i}", 3600.0 * i, 40 + i, 20, 30, [["pci:1:2", -90.5]], 1234.0, 7]])
    m.apply(["pm", key, {"gp": 900, "t": 900.0, "tc": "nr:x", "v": {"HO.Att": 3.0}, "s": False}])
    m.apply(["pmr", key, {"gp": 900, "t": 900.0, "tc": "nr:x", "v": {"HO.Att": 3.0}, "s": False}])
    m.apply(["cm", None, {"dn": "ManagedElement=1", "cls": "ManagedElement", "t": 5.0, "a": {"x": 1}}])
    state = PartitionState(3, next_offset=42)
    state.clusters["c1"] = m
    return state


def test_encode_round_trips_to_the_same_mirror(tmp_path: Path) -> None:
    state = _state()
    doc = orjson.loads(encode(state, {"worker": "w"}))
    assert doc["nextOffset"] == 42 and doc["worker"] == "w"
    m = state.clusters["c1"]
    assert ClusterMirror.from_dict(doc["clusters"]["c1"]).to_dict() == m.to_dict()
    # the same document as the copying form, up to the order of set members
    old = orjson.loads(orjson.dumps(m.to_dict()))
    assert ClusterMirror.from_dict(old).to_dict() == ClusterMirror.from_dict(doc["clusters"]["c1"]).to_dict()
    store = CheckpointStore(tmp_path)
    store.save(state)
    loaded = store.load(3)
    assert loaded.next_offset == 42 and loaded.clusters["c1"].to_dict() == m.to_dict()


def test_snapshot_is_not_changed_by_later_updates() -> None:
    state = _state()
    m = state.clusters["c1"]
    before = orjson.loads(encode(state))
    copy = PartitionState(state.partition, state.next_offset, {"c1": m.snapshot()})
    key = sorted(m.cells)[0]
    m.apply(["pm", key, {"gp": 900, "t": 99000.0, "v": {"RRC.ConnMean": 5.0, "New.Kpi": 1.0}, "s": True}])
    m.apply(["mr", key, ["ev-new", 7300.0, 41, 21, 31, [["pci:1:2", -80.0], ["pci:3:4", None]], 10.0, 3]])
    m.apply(["pmr", key, {"gp": 900, "t": 99000.0, "tc": "nr:x", "v": {"HO.Att": 9.0}, "s": False}])
    m.apply(["cm", None, {"dn": "ManagedElement=1", "cls": "ManagedElement", "t": 6.0, "a": {"x": 2}}])
    m.cell(key).set_predicted(900, 99000, {"RRU.PrbTotDl": 1.0})
    m.apply(["cmn", key, {"dn": f"dn-{key}", "cls": "NRCellDU", "t": 10.0, "a": {"digitalTilt": 150}}])
    assert orjson.loads(encode(copy)) == before != orjson.loads(encode(state))
