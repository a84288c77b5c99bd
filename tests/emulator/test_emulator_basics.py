"""The emulator's interface, determinism, schema validity and scheduled events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from replay.emulator import NetworkEmulator, list_scenarios, load_scenario
from replay.emulator.emulator import default_start
from tests.emulator.util import START
from twin import topics
from twin.config import TwinSettings
from twin.schemas import CmSnapshot, MrEvent, PmCellRecord
from twin.sim.kpis import KPI_NAMES


def test_shipped_scenarios_load() -> None:
    names = list_scenarios()
    assert {"suburban-quiet", "urban-hotspots", "fault-midrun"} <= set(names)
    kinds = {ev.kind for n in names for ev in load_scenario(n).events}
    assert kinds == {"antenna_fault", "interference", "traffic_surge", "weather", "cm_change"}


def test_bad_scenario_is_named(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="nosuch"):
        load_scenario("nosuch")
    from replay.emulator.scenario import parse_scenario

    with pytest.raises(ValueError, match="gain_sigma"):
        parse_scenario({"truth": {"gain_sigma": 1}}, "x")


def test_interface_and_records_are_schema_valid() -> None:
    emu = NetworkEmulator("fault-midrun", seed=3, start=START, mr_per_cell=3)
    settings = TwinSettings.model_validate({"topology": emu.topology_config()})
    assert set(settings.topology.cluster_of()) == set(emu.cells)
    first = emu.initial_records()
    assert len(first) == 3 * len(emu.cells)
    for r in first:
        snap = CmSnapshot.model_validate_json(r.value)
        assert r.key == snap.dn.encode() and snap.observed_at == START
    recs = emu.step()
    assert emu.period_end == START + timedelta(seconds=900)
    pm = [PmCellRecord.model_validate_json(r.value) for r in recs if r.topic == topics.PM_CELL]
    mr = [MrEvent.model_validate_json(r.value) for r in recs if r.topic == topics.MR_UE]
    assert sorted(p.cell_key for p in pm) == emu.cells
    assert all(set(KPI_NAMES) - {"CARR.MeanTxPwr"} <= set(p.values) for p in pm)
    assert all(p.period_end == emu.period_end and p.granularity_period_s == 900 for p in pm)
    assert len(mr) == 3 * len(emu.cells)
    assert all(START <= m.event_time < emu.period_end for m in mr)


def test_deterministic_per_seed() -> None:
    def run(seed: int) -> list[bytes]:
        emu = NetworkEmulator("urban-hotspots", seed=seed, start=START, granularity_s=3600, mr_per_cell=2)
        out = [r.value for r in emu.initial_records()]
        for _ in range(3):
            out += [r.value for r in emu.step()]
        return out

    a, b, c = run(5), run(5), run(6)
    assert a == b
    assert a != c


def test_default_start_is_in_the_past() -> None:
    now = datetime(2024, 3, 5, 13, 7, tzinfo=UTC)
    assert default_start(now) == datetime(2024, 3, 3, tzinfo=UTC)
    emu = NetworkEmulator("suburban-quiet", mr_per_cell=0)
    assert emu.start + timedelta(days=1) < datetime.now(UTC)


def test_fault_event_drops_the_faulty_cells_kpis() -> None:
    emu = NetworkEmulator("fault-midrun", seed=1, start=START, granularity_s=3600, mr_per_cell=20)
    fault = load_scenario("fault-midrun").events[0]
    cell = emu.cells[int(fault.params["cell"])]
    conn, prb, marks = [], [], []
    for _ in range(16):
        s = emu.step_detail()
        pm = next(p for p in s.pm if p.cell_key == cell)
        conn.append(pm.values["RRC.ConnMean"])
        prb.append(pm.values["RRU.PrbTotDl"])
        marks.append([m.kind for m in s.events])
    # 11:00-12:00 vs 12:00-13:00: the fault starts at 12:00
    assert marks[11] == [] and marks[12] == ["antenna_fault"]
    assert conn[12] < 0.6 * conn[11], conn
    assert prb[12] < 0.6 * prb[11], prb
    # the cell's coverage shrinks: the UEs it still serves are the close ones, so its served
    # RSRP does not drop; the connected UEs and the load do
    (mark,) = emu.events_in((START + timedelta(hours=12), START + timedelta(hours=13)))
    assert mark.start == START + timedelta(hours=12) and mark.end is None


def test_records_carry_no_hidden_truth() -> None:
    emu = NetworkEmulator("urban-hotspots", seed=2, start=START, granularity_s=3600, mr_per_cell=2)
    recs = emu.initial_records()
    for _ in range(15):  # through the interferer and the OSS change
        recs += emu.step()
    forbidden = ("truth", "gain_db", "gainDb", "shadow", "building", "interferer", "hotspot", "azimuthError")
    for r in recs:
        text = r.value.decode()
        assert not any(f.lower() in text.lower() for f in forbidden), text[:200]
        assert not any(k.startswith("interferer") for k in orjson.loads(r.value).get("values", {}))
    assert {r.topic for r in recs} == {topics.CM_SNAPSHOT, topics.CM_NOTIFICATIONS, topics.PM_CELL, topics.MR_UE}
