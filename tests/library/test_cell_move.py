"""Moving a cell's mirror into another cluster (``twin.mirror.cell_move``): merged into what the new
cluster has, once, whole after a round trip through the wire chunks, MR reports not counted twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twin.mirror.cell import CellMirror
from twin.mirror.cell_move import cell_from_entries, entries_of, merge_cell, move_chunks
from twin.mirror.mr_stats import HOUR
from twin.mirror.store import CheckpointStore, PartitionState

KEY = "nr:00101-000000a01"


def mr(event: str, t: float, rsrp: int = 60) -> Any:
    return (event, t, rsrp, 40, 70, [("nr:00101-000000a02", -101.5)], 52_000.0, 11, None)


def history(hours: int = 3, per_hour: int = 40) -> CellMirror:
    cell = CellMirror(KEY)
    for h in range(hours):
        for i in range(per_hour):
            cell.mr.apply(mr(f"h{h}-e{i}", h * HOUR + i, rsrp=50 + i % 20))
        for q in range(4):
            end = h * HOUR + (q + 1) * 900
            cell.apply_pm("pm", {"gp": 900, "t": float(end), "v": {"DRB.UEThpDl": 40_000.0 + end,
                                                                     "RRU.PrbTotDl": 50.0}, "s": q == 3})
            cell.set_predicted(900, end, {"DRB.UEThpDl": 39_000.0})
        cell.apply_cm("NRSectorCarrier", "ME=1,SC=1", {"configuredMaxTxPower": 40 + h}, h * HOUR + 1.0)
    cell.mr.seal()  # hours ended two hours before the newest report: Bloom filters
    return cell


def state(cell: CellMirror) -> dict[str, Any]:
    d = cell.to_dict()
    d.pop("mv", None)
    return d


def test_an_empty_target_takes_the_whole_history_once() -> None:
    source = history()
    assert source.mr.sealed and source.mr.seen  # both kinds of event ids are moved
    target = CellMirror(KEY)
    outcome = merge_cell(target, source)
    assert outcome.mr_reports == 120 and outcome.mr_counted_twice == 0 and outcome.periods == 12 * 2
    assert state(target) == state(source)
    again = merge_cell(target, source)
    assert (again.periods, again.cm_observations, again.mr_reports) == (0, 0, 0)
    assert state(target) == state(source)
    # the ids came along: a duplicate of a moved report is recognised in either kind of hour
    assert not target.mr.apply(mr("h0-e3", 3.0)) and not target.mr.apply(mr("h2-e3", 2 * HOUR + 3))


def test_reports_the_target_counted_as_well_are_reported_and_the_newer_telemetry_kept() -> None:
    source = history(hours=1, per_hour=10)
    target = CellMirror(KEY)
    for i in range(7, 15):  # redelivered e7..e9, then new reports
        target.mr.apply(mr(f"h0-e{i}", float(i)))
    target.apply_pm("pm", {"gp": 900, "t": 3600.0, "v": {"DRB.UEThpDl": 1.0}, "s": False})
    target.apply_cm("NRSectorCarrier", "ME=1,SC=1", {"configuredMaxTxPower": 30}, 5000.0)
    outcome = merge_cell(target, source)
    assert (outcome.mr_reports, outcome.mr_counted_twice) == (10, 3)
    assert target.mr.count == 18 and len(target.mr.seen[0]) == 15
    assert target.pm[900]["DRB.UEThpDl"][3600] == 1.0  # the target's value of a period both have
    assert target.pm[900]["DRB.UEThpDl"][900] == 40_900.0
    assert target.cm["NRSectorCarrier.configuredMaxTxPower"][0] == 30  # the newer observation
    assert target.cm_as_of(2.0)["NRSectorCarrier.configuredMaxTxPower"][0] == 40  # the moved history


def test_chunks_carry_the_whole_cell_and_merge_in_any_number() -> None:
    source = history(hours=4, per_hour=200)
    expected = state(source)
    chunks = move_chunks(source.snapshot(), max_bytes=4_000)
    assert len(chunks) >= 3 and all(c["key"] == KEY for c in chunks)
    target = CellMirror(KEY)
    for _ in range(2):  # a move sent twice (a crash before the old cluster's checkpoint)
        for chunk in chunks:
            merge_cell(target, cell_from_entries(KEY, entries_of(chunk)))
    assert state(target) == expected
    assert target.mr.count == 800


def test_what_changed_is_checkpointed() -> None:
    source, target = history(hours=1), CellMirror(KEY)
    merge_cell(target, source)
    entries: list[Any] = []
    target.take_changes(entries, [])
    restored = cell_from_entries(KEY, entries)
    assert state(restored) == state(source) and restored.moved_in == target.moved_in



def test_a_dropped_cell_leaves_the_checkpoint_and_a_restored_one_stays(tmp_path: Path) -> None:
    other = "nr:00101-000000a02"
    store = CheckpointStore(tmp_path)
    partition = PartitionState(0)
    partition.cluster("east").cells[KEY] = history(hours=1)
    partition.cluster("east").cells[other] = CellMirror(other)
    store.save(partition)
    saved = state(store.load(0).clusters["east"].cells[KEY])
    # released before its move was sent: it stays where it was, entries and all
    partition.restore_cell("east", partition.drop_cell("east", KEY))
    store.save(partition)
    assert state(store.load(0).clusters["east"].cells[KEY]) == saved
    partition.drop_cell("east", KEY)
    store.save(partition)
    assert sorted(store.load(0).clusters["east"].cells) == [other]
