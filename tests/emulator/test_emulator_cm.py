"""CM changes through ``adapters.emulator``: rejection with a reason, apply delay, effect on KPIs."""

from __future__ import annotations

import pytest

from adapters.emulator import EmulatorAdapter
from replay.emulator import NetworkEmulator
from tests.emulator.util import START, change
from twin import topics
from twin.ports import CmAdapter, open_adapter
from twin.schemas import ChangeState, CmNotification


def emulator() -> NetworkEmulator:
    return NetworkEmulator("fault-midrun", seed=2, start=START, granularity_s=3600, mr_per_cell=1)


def test_invalid_changes_are_rejected_with_the_reason() -> None:
    emu = emulator()
    adapter = EmulatorAdapter(emu.oss)
    assert isinstance(adapter, CmAdapter)
    cell = emu.cells[3]
    cases = [
        (change(emu, cell, "digitalTilt", 1200), ("digitalTilt", "1200")),
        (change(emu, cell, "configuredMaxTxPower", 0, cls="NRSectorCarrier"), ("configuredMaxTxPower", "0")),
        (change(emu, cell, "digitalTilt", 4.5), ("digitalTilt", "4.5", "integer")),
        (change(emu, cell, "lat", 1.0, cls="NRCellDU"), ("lat", "read-only")),
        (change(emu, cell, "digitalTilt", 40, cls="NRCellDU"), ("digitalTilt", "SectorEquipmentFunction")),
        (change(emu, cell, "fooBar", 1), ("fooBar",)),
    ]
    for req, words in cases:
        res = adapter.apply(req)
        assert res.state == ChangeState.REJECTED and res.transport.value == "EMULATOR"
        assert res.error is not None and all(w in res.error for w in words), res.error
    assert emu.step() and not any(r.topic == topics.CM_NOTIFICATIONS for r in emu.step())


def test_the_emulator_adapter_is_found_by_name_and_applies_a_change() -> None:
    emu = emulator()
    adapter = open_adapter("emulator", endpoint=emu.oss)  # entry point group twin.adapters
    assert type(adapter) is EmulatorAdapter and isinstance(adapter, CmAdapter)
    emu.initial_records()
    emu.step()
    cell = emu.cells[2]
    dn = emu.dn(cell, "SectorEquipmentFunction")
    before = adapter.read(dn)["digitalTilt"]
    res = adapter.apply(change(emu, cell, "digitalTilt", before + 10))
    assert res.state == ChangeState.APPLIED, res.error
    notes = [r for r in emu.step_detail().cm if isinstance(r, CmNotification)]
    assert [(n.cell_key, n.attribute_list_value_changes) for n in notes] == [(cell, {"digitalTilt": before + 10})]
    assert adapter.read(dn)["digitalTilt"] == before + 10


def test_an_adapter_that_is_not_installed_is_named_in_the_error() -> None:
    with pytest.raises(LookupError) as err:
        open_adapter("netconf-nokia", endpoint=None)
    message = str(err.value)
    assert "'netconf-nokia'" in message and "twin.adapters" in message
    assert "installed: bulkcm, emulator, netconf, provmns" in message  # what is there instead


def test_valid_change_applies_from_the_next_period_and_shows_in_kpis() -> None:
    changed, baseline = emulator(), emulator()
    adapter = EmulatorAdapter(changed.oss)
    cell = changed.cells[4]
    for emu in (changed, baseline):
        emu.initial_records()
        emu.step()
    req = change(changed, cell, "digitalTilt", 150)
    res = adapter.apply(req)
    assert res.state == ChangeState.APPLIED and res.applied_at == changed.period_end
    assert adapter.apply(req) == res  # same changeId: applied at most once
    dn = changed.dn(cell, "SectorEquipmentFunction")
    assert adapter.read(dn)["digitalTilt"] == 150  # committed: the running configuration shows it
    assert changed.public_sector(cell).elec_tilt_deg != 15.0  # not effective before the period boundary
    assert adapter.verify(req).state == ChangeState.APPLIED
    dry = adapter.apply(change(changed, cell, "digitalTilt", 100, dryRun=True))
    assert dry.state == ChangeState.ACCEPTED
    out, ref = changed.step_detail(), baseline.step_detail()
    notes = [r for r in out.cm if isinstance(r, CmNotification)]
    assert [(n.cell_key, n.attribute_list_value_changes) for n in notes] == [(cell, {"digitalTilt": 150})]
    assert notes[0].event_time == res.applied_at
    assert adapter.read(dn)["digitalTilt"] == 150
    kpi = {p.cell_key: p.values for p in out.pm}
    kpi_ref = {p.cell_key: p.values for p in ref.pm}
    assert abs(kpi[cell]["RRC.ConnMean"] - kpi_ref[cell]["RRC.ConnMean"]) > 0.1 * kpi_ref[cell]["RRC.ConnMean"]
    assert changed.public_sector(cell).elec_tilt_deg == 15.0


def test_external_oss_change_is_published() -> None:
    emu = NetworkEmulator("urban-hotspots", seed=0, start=START, granularity_s=3600, mr_per_cell=0)
    seen = []
    for _ in range(15):
        seen += [r for r in emu.step() if r.topic == topics.CM_NOTIFICATIONS]
    (note,) = [CmNotification.model_validate_json(r.value) for r in seen]
    assert note.attribute_list_value_changes == {"digitalTilt": 40} and note.cell_key == emu.cells[4]
