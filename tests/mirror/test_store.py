"""The incremental checkpoint store (``twin.mirror.store``): round trips, only what changed is
written, retention deletes keys, a killed writer never leaves state and offset apart, earlier JSON
checkpoints are migrated, readers create nothing."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.demo.test_prediction import _mirror
from twin.mirror.cell import CellMirror
from twin.mirror.cluster import ClusterMirror
from twin.mirror.store import DB_NAME, SEP, CheckpointStore, PartitionState, take_changes
from twin.prediction import PredictConfig, PredictionService

MR_AT = 3600.0 * 100  # event time of the MR below (hour 100)


def _mr(key: str, i: int, t: float = MR_AT) -> list[Any]:
    return ["mr", key, [f"ev-{key}-{i}", t + i % 3000, 40 + i % 50, 20, 30, [["pci:1:2", -90.5]], 1234.0, 7]]


def _state() -> PartitionState:
    m, _ = _mirror(periods=3)
    PredictionService(PredictConfig(n_ues=300), {"c1": sorted(m.cells)}).on_applied(m)
    key = sorted(m.cells)[0]
    for i in range(3):
        m.apply(["mr", key, [f"ev{i}", 3600.0 * i, 40 + i, 20, 30, [["pci:1:2", -90.5]], 1234.0, 7]])
    m.apply(["pmr", key, {"gp": 900, "t": 900.0, "tc": "nr:x", "v": {"HO.Att": 3.0}, "s": False}])
    m.apply(["cm", None, {"dn": "ManagedElement=1", "cls": "ManagedElement", "t": 5.0, "a": {"x": 1}}])
    m.apply(["pm", key, {"gp": 900, "t": 900.0, "v": {"Vendor.Odd": 1.0}, "s": True}])
    state = PartitionState(3, next_offset=42, meta={"cluster_id": "abc"})
    state.clusters["c1"] = m
    state.unassigned.add("nr:00101-0000ffff1", [("pm", "nr:00101-0000ffff1",
                                                  {"gp": 900, "t": 900.0, "v": {"A": 1.0}, "s": False})])
    return state


def _rows(directory: Path) -> dict[str, bytes]:
    with sqlite3.connect(directory / DB_NAME) as db:
        return {k: bytes(v) for k, v in db.execute("SELECT k, v FROM kv")}


def test_a_checkpoint_round_trips_the_partition(tmp_path: Path) -> None:
    state = _state()
    store = CheckpointStore(tmp_path)
    store.save(state, {"worker": "w"})
    loaded = CheckpointStore(tmp_path, read_only=True).load(3)
    assert loaded.next_offset == 42 and loaded.meta == {"cluster_id": "abc", "worker": "w"}
    assert loaded.clusters["c1"].to_dict() == state.clusters["c1"].to_dict()
    assert loaded.unassigned.summary() == state.unassigned.summary()
    assert "Vendor.Odd" in loaded.clusters["c1"].cell(sorted(state.clusters["c1"].cells)[0]).unknown
    assert store.partitions() == [3] and CheckpointStore(tmp_path).load(7).clusters == {}
    # the loaded state continues incrementally: nothing changed, nothing but the offset is written
    loaded_rw = store.load(3)
    loaded_rw.next_offset = 43
    changes = take_changes(loaded_rw)
    assert changes.keys() == 0 and not changes.full
    store.write(changes)
    assert store.load(3).next_offset == 43


def test_a_checkpoint_with_one_cell_changed_writes_only_that_cells_keys(tmp_path: Path) -> None:
    state = _state()
    store = CheckpointStore(tmp_path)
    store.save(state)
    m = state.clusters["c1"]
    key = sorted(m.cells)[1]
    before = _rows(tmp_path)
    m.apply(["pm", key, {"gp": 900, "t": 3600.0, "v": {"RRU.PrbTotDl": 50.0, "DRB.UEThpDl": 1e4}, "s": False}])
    for i in range(5):
        m.apply(_mr(key, i))
    m.apply(_mr(key, 0))  # a duplicate
    changes = take_changes(state, {"worker": "w"})
    assert changes.cells == 1
    prefix = f"k{SEP}c1{SEP}{key}{SEP}"
    written = sorted(k[len(prefix):].split(SEP)[0] for k, _ in changes.puts if k.startswith(prefix))
    # the new period, the MR aggregate, the new event ids, and the cluster's prediction bookkeeping
    # (period 3600 is now pending): nothing of the other cells, nothing of this cell's older periods
    assert [k for k, _ in changes.puts if not k.startswith(prefix)] == [f"c{SEP}c1{SEP}b"]
    assert written == ["d", "m", "p"]
    store.write(changes)
    assert store.last_write.puts == 4 and store.last_write.deletes == 0
    after = _rows(tmp_path)
    assert {k for k in after if after[k] != before.get(k)} == {k for k, _ in changes.puts}
    assert CheckpointStore(tmp_path, read_only=True).load(3).clusters["c1"].to_dict() == m.to_dict()
    # a CM change of one cell: its head only
    m.apply(["cmn", key, {"dn": f"dn-{key}", "cls": "NRCellDU", "t": 10.0, "a": {"digitalTilt": 150}}])
    assert [k for k, _ in take_changes(state).puts] == [f"{prefix}h"]


def test_retention_deletes_the_old_keys(tmp_path: Path) -> None:
    state = PartitionState(0)
    m = state.cluster("c")
    key = "nr:00101-000000101"
    for k in range(4):
        m.apply(["pm", key, {"gp": 900, "t": 900.0 * (k + 1), "v": {"RRU.PrbTotDl": float(k)}, "s": False}])
        m.cell(key).set_predicted(900, 900 * (k + 1), {"RRU.PrbTotDl": float(k)})
    m.apply(["pmr", key, {"gp": 900, "t": 900.0, "tc": "nr:x", "v": {"HO.Att": 3.0}, "s": False}])
    store = CheckpointStore(tmp_path)
    store.save(state)
    assert sum(1 for k in _rows(tmp_path) if k[0] == "k" and k.split(SEP)[3] in "pxr") == 9
    m.prune(pm_retention_s=1800, mr_retention_s=3600)
    assert len(m.cell(key).periods[900]) == 4  # only cells that changed since the last checkpoint are pruned
    m.apply(["pm", key, {"gp": 900, "t": 4500.0, "v": {"RRU.PrbTotDl": 4.0}, "s": False}])
    m.prune(pm_retention_s=1800, mr_retention_s=3600)  # keeps period ends 2700, 3600, 4500
    store.save(state)
    kept = sorted((k.split(SEP)[3], int(k.split(SEP)[5])) for k in _rows(tmp_path)
                  if k[0] == "k" and k.split(SEP)[3] in "pxr")
    assert kept == [("p", 2700), ("p", 3600), ("p", 4500), ("x", 2700), ("x", 3600)]
    assert store.last_write.deletes == 5 and store.last_write.puts == 2  # the new period, the bookkeeping
    assert store.load(0).clusters["c"].to_dict() == m.to_dict()


def test_mr_ids_are_sealed_restored_and_still_absorb_duplicates(tmp_path: Path) -> None:
    state = PartitionState(0)
    m = state.cluster("c")
    key = "nr:00101-000000101"
    for i in range(300):  # hour 100
        m.apply(_mr(key, i))
    store = CheckpointStore(tmp_path)
    store.save(state)
    for i in range(300, 320):  # two hours later: hour 100 can be sealed
        m.apply(_mr(key, i, MR_AT + 2 * 3600.0))
    m.prune(pm_retention_s=86400, mr_retention_s=72 * 3600)
    mr = m.cell(key).mr
    assert 100 in mr.sealed and 100 not in mr.seen and mr.ids_seen() == {100: 300, 102: 20}
    store.save(state)
    rows = _rows(tmp_path)
    assert not [k for k in rows if f"{SEP}d{SEP}100{SEP}" in k]  # the open ids of hour 100 are gone
    loaded = store.load(0).clusters["c"]
    assert loaded.to_dict() == m.to_dict()
    count = loaded.cell(key).mr.count
    for i in (0, 150, 299, 305):  # redelivered, sealed and open hours alike
        loaded.apply(_mr(key, i, MR_AT + (2 * 3600.0 if i >= 300 else 0.0)))
    assert loaded.cell(key).mr.count == count and loaded.duplicates == 4
    loaded.apply(_mr(key, 10_000))  # a late new event of the sealed hour is counted
    assert loaded.cell(key).mr.count == count + 1
    # past the retention, the hours are forgotten and their keys deleted
    again = store.load(0)
    late = again.clusters["c"]
    late.apply(_mr(key, 400, MR_AT + 80 * 3600.0))
    late.prune(pm_retention_s=86400, mr_retention_s=72 * 3600)
    store.save(again)
    assert not [k for k in _rows(tmp_path) if f"{SEP}100{SEP}" in k or k.endswith(f"{SEP}100")]
    assert store.load(0).clusters["c"].cell(key).mr.ids_seen() == {180: 1}


def test_the_holding_is_saved_per_changed_key(tmp_path: Path) -> None:
    state = _state()
    store = CheckpointStore(tmp_path)
    store.save(state)
    other = "nr:00101-0000ffff2"
    state.unassigned.add(other, [("pm", other, {"gp": 900, "t": 1800.0, "v": {"A": 2.0}, "s": False})])
    assert [k for k, _ in take_changes(state).puts] == [f"u{SEP}{other}"]
    state.unassigned.pop(other)
    changes = take_changes(state)
    assert changes.puts == [(f"u{SEP}{other}", None)]
    store.write(changes)
    assert sorted(store.load(3).unassigned.held) == ["nr:00101-0000ffff1"]


def _writer(directory: str, cells: int, ready: Any) -> None:
    """A worker's checkpoints as fast as they go: every round changes every cell and the offset."""
    store = CheckpointStore(Path(directory))
    state = store.load(0)
    m = state.cluster("c")
    n = state.next_offset
    while True:
        n += 1
        for c in range(cells):
            m.apply(["pm", f"nr:00101-{c:09d}", {"gp": 900, "t": 900.0 * n, "v": {"RRC.ConnMean": float(n)},
                                                   "s": False}])
        state.next_offset = n
        store.save(state, {"round": n})
        ready.set()


def test_a_writer_killed_mid_checkpoint_never_leaves_state_and_offset_apart(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for attempt in range(4):
        ready = ctx.Event()
        child = ctx.Process(target=_writer, args=(str(tmp_path), 200, ready))
        child.start()
        assert ready.wait(30)
        time.sleep(0.05 + 0.04 * attempt)
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join(10)
        state = CheckpointStore(tmp_path, read_only=True).load(0)
        n = state.next_offset
        assert state.meta["round"] == n > 0
        cells = state.clusters["c"].cells
        assert len(cells) == 200
        # every cell has exactly the periods 1..n: the state is that of offset n, whole
        for cell in cells.values():
            assert sorted(cell.periods[900]) == [900 * k for k in range(1, n + 1)]
        # a writer resumes from the last commit: the reader's, or one it had not seen yet (the killed
        # writer's log index was behind its log; a writer's connection recovers it), whole too
        resumed = CheckpointStore(tmp_path).load(0)
        assert resumed.meta["round"] == resumed.next_offset in (n, n + 1)
        for cell in resumed.clusters["c"].cells.values():
            assert sorted(cell.periods[900]) == [900 * k for k in range(1, resumed.next_offset + 1)]


def test_json_checkpoints_of_earlier_versions_are_migrated_once(tmp_path: Path) -> None:
    state = _state()
    m = state.clusters["c1"]
    doc = {"partition": 3, "nextOffset": 42, "worker": "old", "savedAt": 1.0,
           "unassigned": state.unassigned.to_dict(), "clusters": {"c1": m.to_dict()}}
    # the old checkpoints listed each hour's event ids
    cells = doc["clusters"]["c1"]["cells"]
    for k, c in cells.items():
        c["mr"]["seen"] = {str(b): sorted(ids) for b, ids in m.cells[k].mr.seen.items()}
    (tmp_path / "partition-0003.json").write_bytes(orjson.dumps(doc))
    reader = CheckpointStore(tmp_path, read_only=True)
    assert reader.partitions() == [3] and reader.load(3).clusters["c1"].to_dict() == m.to_dict()
    assert not (tmp_path / DB_NAME).exists()  # a reader migrates nothing
    store = CheckpointStore(tmp_path)
    loaded = store.load(3)
    assert loaded.next_offset == 42 and loaded.meta == {"worker": "old", "savedAt": 1.0}
    assert loaded.clusters["c1"].to_dict() == m.to_dict()
    assert sorted(p.name for p in tmp_path.glob("partition-*")) == ["partition-0003.json.migrated"]
    key = sorted(m.cells)[0]
    loaded.clusters["c1"].apply(["mr", key, ["ev1", 3600.0, 41, 20, 30, [], None, None]])  # a duplicate
    assert loaded.clusters["c1"].duplicates == 1
    store.close()
    assert CheckpointStore(tmp_path).load(3).clusters["c1"].to_dict() == m.to_dict()


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted([path, *path.rglob("*")])}


def test_readers_create_nothing_and_see_each_commit_whole(tmp_path: Path) -> None:
    state = _state()
    store = CheckpointStore(tmp_path)
    store.save(state)
    reader = CheckpointStore(tmp_path, read_only=True)
    # beside a writer: its log exists, the reader takes a snapshot of the last commit
    m = state.clusters["c1"]
    m.apply(["pm", sorted(m.cells)[0], {"gp": 900, "t": 9000.0, "v": {"RRU.PrbTotDl": 1.0}, "s": False}])
    state.next_offset = 50
    store.save(state)
    seen = reader.load(3)
    assert seen.next_offset == 50 and seen.clusters["c1"].to_dict() == m.to_dict()
    store.close()  # the writer is gone: no log; a reader must not create one
    before = _tree(tmp_path)
    assert reader.load_all()["c1"].to_dict() == m.to_dict() and reader.partitions() == [3]
    assert _tree(tmp_path) == before
    with pytest.raises(PermissionError):
        reader.save(state)
    assert not CheckpointStore(tmp_path / "nowhere", read_only=True).load_all()
    assert not (tmp_path / "nowhere").exists()


def test_a_fresh_state_is_written_whole_replacing_the_partition(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save(_state())
    fresh = PartitionState(3, next_offset=7)
    fresh.cluster("other").cell("nr:00101-000000999")
    store.save(fresh)
    loaded = store.load(3)
    assert sorted(loaded.clusters) == ["other"] and loaded.next_offset == 7 and not loaded.unassigned.held


def test_cell_entries_round_trip_without_the_store() -> None:
    m, _ = _mirror(periods=2)
    cell = m.cells[sorted(m.cells)[0]]
    entries: list[Any] = []
    cell.all_entries(entries)
    copy = CellMirror(cell.cell_key)
    for sub, value in entries:
        assert value is not None
        copy.load_entry(list(sub), value if sub[0] == "D" else orjson.loads(value))
    assert copy.to_dict() == cell.to_dict()
    assert ClusterMirror.from_dict(m.to_dict()).to_dict() == m.to_dict()
