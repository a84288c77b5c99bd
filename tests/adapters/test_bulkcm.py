"""The bulk CM file adapter against a file-importing stand-in OSS (``tests/adapters/bulkcm_peer.py``).

Short poll intervals keep the module under a few seconds; the only deliberate wait is the
not-importing case, bounded by its 0.4 s apply timeout.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.bulkcm import BulkCmAdapter, import_file_name
from adapters.bulkcm.fileformat import (
    DEFAULT_ATTRIBUTE_MAP,
    QOFFSET_DB,
    BulkCmFormatError,
    check_structure,
    parse_bulkcm,
    parse_xml,
)
from tests.adapters.bulkcm_peer import BulkCmPeerOss, running_peer, wait_for
from twin.ports import AdapterUnavailable, CmAdapter, open_adapter
from twin.schemas import ChangeState, CmChangeRequest, rollback_of

ME = "SubNetwork=Emulator,ManagedElement=gnb-001"
CARRIER_2 = f"{ME},GNBDUFunction=1,NRSectorCarrier=2"
SEF_2 = f"{ME},SectorEquipmentFunction=2"
CBF_2 = f"{CARRIER_2},CommonBeamformingFunction=1"
RELATION_1_2 = f"{ME},GNBCUCPFunction=1,NRCellCU=1,NRCellRelation=2"
CELL = "nr:00101-000000102"


def change(dn: str, cls: str, attribute: str, to: Any, frm: Any = None, **kw: Any) -> CmChangeRequest:
    """A change request as the twin's guard sends it."""
    return CmChangeRequest.model_validate({
        "changeId": str(uuid.uuid4()), "requestedAt": datetime(2026, 1, 1, tzinfo=UTC), "requester": "test",
        "cellKey": CELL, "targetDn": dn, "class": cls, "attribute": attribute, "from": frm, "to": to, **kw,
    })


@pytest.fixture()
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "import", tmp_path / "export"


@pytest.fixture()
def peer(dirs: tuple[Path, Path]) -> Iterator[BulkCmPeerOss]:
    with running_peer(*dirs) as p:
        yield p


def adapter_for(dirs: tuple[Path, Path], **kw: Any) -> BulkCmAdapter:
    options: dict[str, Any] = {"poll_s": 0.01, "apply_timeout_s": 5.0, **kw}
    return BulkCmAdapter(import_dir=dirs[0], export_dir=dirs[1], **options)


def import_files(dirs: tuple[Path, Path]) -> list[str]:
    return sorted(p.name for p in dirs[0].iterdir()) if dirs[0].exists() else []


# --- the file --------------------------------------------------------------------------------------------


def test_change_file_round_trips_and_passes_the_structural_check(dirs: tuple[Path, Path]) -> None:
    adapter = adapter_for(dirs, sender_name="twin-a")
    req = change(SEF_2, "SectorEquipmentFunction", "digitalTilt", 55)
    data = adapter.change_file(req)
    root = parse_xml(data, "change.xml")
    assert check_structure(root) == []
    doc = parse_bulkcm(data, "change.xml", strict=True)
    assert doc.header["senderName"] == "twin-a" and doc.header["fileFormatVersion"].startswith("32.615")
    changed = {dn: mo for dn, mo in doc.objects.items() if mo.modifier is not None}
    assert list(changed) == [CBF_2]  # one object carries the modifier; its ancestors only give the path
    mo = changed[CBF_2]
    assert (mo.cls, mo.modifier, mo.attributes) == ("CommonBeamformingFunction", "update", {"digitalTilt": "55"})
    mapping = DEFAULT_ATTRIBUTE_MAP[("SectorEquipmentFunction", "digitalTilt")]
    assert mapping.codec.decode(mo.attributes["digitalTilt"]) == req.to
    # the namespaces are the 32.615 / 28.623 / 28.541 ones, attributes in their class's namespace
    nn = "http://www.3gpp.org/ftp/specs/archive/28_series/28.541#nrNrm"
    xn = "http://www.3gpp.org/ftp/specs/archive/28_series/28.623#genericNrm"
    assert root.find(f".//{{{xn}}}ManagedElement[@id='gnb-001']") is not None
    assert root.find(f".//{{{nn}}}CommonBeamformingFunction/{{{nn}}}attributes/{{{nn}}}digitalTilt") is not None


def test_structural_check_names_the_problems() -> None:
    bad = (b'<bulkCmConfigDataFile xmlns="http://www.3gpp.org/ftp/specs/archive/32_series/32.615#configData" '
           b'xmlns:nn="http://www.3gpp.org/ftp/specs/archive/28_series/28.541#nrNrm"><fileHeader/>'
           b'<configData dnPrefix=""><nn:NRSectorCarrier modifier="replace"/></configData></bulkCmConfigDataFile>')
    problems = check_structure(parse_xml(bad, "bad.xml"))
    assert any("fileFormatVersion" in p for p in problems)
    assert any("fileFooter" in p for p in problems)
    assert any("modifier 'replace'" in p for p in problems)
    assert any("invalid id" in p for p in problems)


def test_reader_refuses_a_doctype_and_entities() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            b'<bulkCmConfigDataFile xmlns="http://www.3gpp.org/ftp/specs/archive/32_series/32.615#configData">'
            b'&b;</bulkCmConfigDataFile>')
    with pytest.raises(BulkCmFormatError, match="DOCTYPE"):
        parse_xml(bomb, "bomb.xml")


ids = st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd"), whitelist_characters="-_."),
              min_size=1, max_size=12)


@st.composite
def valid_changes(draw: st.DrawFn) -> tuple[str, str, str, Any]:
    """(twin DN, twin class, attribute, value) the default map accepts."""
    me = f"SubNetwork={draw(ids)},ManagedElement={draw(ids)}"
    which = draw(st.sampled_from(["power", "tilt_sef", "tilt_cbf", "cio"]))
    if which == "power":
        return (f"{me},GNBDUFunction={draw(ids)},NRSectorCarrier={draw(ids)}", "NRSectorCarrier",
                "configuredMaxTxPower", draw(st.integers(0, 2**31 - 1)))
    tilt = draw(st.integers(-900, 900))
    if which == "tilt_sef":
        return f"{me},SectorEquipmentFunction={draw(ids)}", "SectorEquipmentFunction", "digitalTilt", tilt
    if which == "tilt_cbf":
        return (f"{me},GNBDUFunction=1,NRSectorCarrier={draw(ids)},CommonBeamformingFunction={draw(ids)}",
                "CommonBeamformingFunction", "digitalTilt", tilt)
    return (f"{me},GNBCUCPFunction=1,NRCellCU={draw(ids)},NRCellRelation={draw(ids)}", "NRCellRelation",
            "cellIndividualOffset", draw(st.sampled_from(QOFFSET_DB)))


@settings(max_examples=150, deadline=None)
@given(valid_changes())
def test_any_valid_change_round_trips_through_write_and_parse(case: tuple[str, str, str, Any]) -> None:
    dn, cls, attribute, value = case
    adapter = BulkCmAdapter(import_dir="/nonexistent/i", export_dir="/nonexistent/e")
    data = adapter.change_file(change(dn, cls, attribute, value))
    doc = parse_bulkcm(data, "x.xml", strict=True)
    mapping = DEFAULT_ATTRIBUTE_MAP[(cls, attribute)]
    [(file_dn, mo)] = [(d, m) for d, m in doc.objects.items() if m.modifier == "update"]
    assert file_dn == mapping.file_dn(dn) and mo.cls == mapping.file_class
    assert mapping.codec.decode(mo.attributes[mapping.file_attribute]) == value


# --- apply / verify / read / restore against the stand-in OSS ------------------------------------------------

MAPPED = [
    pytest.param(CARRIER_2, "NRSectorCarrier", "configuredMaxTxPower", 20000, 15849, id="power"),
    pytest.param(SEF_2, "SectorEquipmentFunction", "digitalTilt", 40, 65, id="tilt-emulator-class"),
    pytest.param(CBF_2, "CommonBeamformingFunction", "digitalTilt", 40, -20, id="tilt-nrm-class"),
    pytest.param(RELATION_1_2, "NRCellRelation", "cellIndividualOffset", 0, 4, id="cio"),
]


@pytest.mark.parametrize(("dn", "cls", "attribute", "before", "after"), MAPPED)
def test_apply_verify_read_restore(peer: BulkCmPeerOss, dirs: tuple[Path, Path], dn: str, cls: str,
                                   attribute: str, before: Any, after: Any) -> None:
    adapter = adapter_for(dirs)
    assert adapter.read(dn)[attribute] == before
    req = change(dn, cls, attribute, after, frm=before)
    applied = adapter.apply(req)
    assert applied.state == ChangeState.APPLIED, applied.error
    assert applied.observed_value == after and applied.applied_at is not None
    assert adapter.read(dn)[attribute] == after
    assert adapter.verify(req).state == ChangeState.APPLIED
    assert import_files(dirs) == [import_file_name(req.change_id)]
    back = adapter.restore(req)
    assert back.state == ChangeState.ROLLED_BACK and back.observed_value == before, back.error
    assert back.change_id == req.change_id
    assert adapter.read(dn)[attribute] == before
    failed = adapter.verify(req)  # the value is the old one again
    assert failed.state == ChangeState.FAILED and repr(after) in (failed.error or "")
    assert adapter.restore(req).state == ChangeState.ROLLED_BACK  # a repeat writes nothing new
    assert import_files(dirs) == sorted([import_file_name(req.change_id), import_file_name(rollback_of(req).change_id)])
    assert peer.errors == []


def test_cio_keeps_the_other_members(peer: BulkCmPeerOss, dirs: tuple[Path, Path]) -> None:
    peer.tree[RELATION_1_2].attributes["cellIndividualOffset"]["rsrqOffsetSSB"] = "dB3"
    peer.write_export()
    result = adapter_for(dirs).apply(change(RELATION_1_2, "NRCellRelation", "cellIndividualOffset", -6))
    assert result.state == ChangeState.APPLIED, result.error
    cio = peer.value(RELATION_1_2, "cellIndividualOffset")
    assert cio["rsrpOffsetSSB"] == "dB-6" and cio["rsrqOffsetSSB"] == "dB3"


def test_read_gives_twin_names_and_passes_the_rest_through(peer: BulkCmPeerOss, dirs: tuple[Path, Path]) -> None:
    adapter = adapter_for(dirs)
    carrier = adapter.read(CARRIER_2)
    assert carrier["configuredMaxTxPower"] == 20000 and carrier["txDirection"] == "DL_AND_UL"
    assert adapter.read(SEF_2) == {"digitalTilt": 40}
    with pytest.raises(KeyError, match="NRSectorCarrier=99"):
        adapter.read(f"{ME},GNBDUFunction=1,NRSectorCarrier=99")


def test_value_out_of_the_oss_range_is_rejected_by_the_oss(peer: BulkCmPeerOss, dirs: tuple[Path, Path]) -> None:
    adapter = adapter_for(dirs)
    result = adapter.apply(change(CARRIER_2, "NRSectorCarrier", "configuredMaxTxPower", 500_000))
    assert result.state == ChangeState.REJECTED
    assert "configuredMaxTxPower" in (result.error or "") and "500000" in (result.error or "")
    assert "NRSectorCarrier=2" in (result.error or "")
    assert adapter.read(CARRIER_2)["configuredMaxTxPower"] == 20000


def test_unknown_dn_is_rejected_by_the_oss(peer: BulkCmPeerOss, dirs: tuple[Path, Path]) -> None:
    result = adapter_for(dirs).apply(change(f"{ME},GNBDUFunction=1,NRSectorCarrier=9", "NRSectorCarrier",
                                            "configuredMaxTxPower", 10000))
    assert result.state == ChangeState.REJECTED and "NRSectorCarrier=9: unknown managed object" in (result.error or "")


@pytest.mark.parametrize(("cls", "attribute", "to", "words"), [
    ("SectorEquipmentFunction", "digitalTilt", 1200, ["digitalTilt", "1200", "-900..900"]),
    ("NRSectorCarrier", "configuredMaxTxPower", "high", ["configuredMaxTxPower", "'high'", "not an integer"]),
    ("NRCellRelation", "cellIndividualOffset", 7, ["cellIndividualOffset", "7", "QOffsetRange"]),
    ("SectorEquipmentFunction", "azimuth", 120, ["azimuth", "120", "attribute map"]),
    ("NRCellDU", "cellIndividualOffset", 2, ["NRCellDU", "cellIndividualOffset", "attribute map"]),
])
def test_invalid_or_unmapped_is_rejected_without_a_file(dirs: tuple[Path, Path], cls: str, attribute: str, to: Any,
                                                        words: list[str]) -> None:
    dn = {"SectorEquipmentFunction": SEF_2, "NRSectorCarrier": CARRIER_2, "NRCellRelation": RELATION_1_2,
          "NRCellDU": f"{ME},GNBDUFunction=1,NRCellDU=2"}[cls]
    result = adapter_for(dirs).apply(change(dn, cls, attribute, to))
    assert result.state == ChangeState.REJECTED
    for word in words:
        assert word in (result.error or ""), (word, result.error)
    assert import_files(dirs) == []


def test_dry_run_is_accepted_and_writes_nothing(peer: BulkCmPeerOss, dirs: tuple[Path, Path]) -> None:
    result = adapter_for(dirs).apply(change(CARRIER_2, "NRSectorCarrier", "configuredMaxTxPower", 10000, dry_run=True))
    assert result.state == ChangeState.ACCEPTED and import_files(dirs) == []


def test_reject_everything_switch(peer: BulkCmPeerOss, dirs: tuple[Path, Path]) -> None:
    peer.reject_all = True
    result = adapter_for(dirs).apply(change(CARRIER_2, "NRSectorCarrier", "configuredMaxTxPower", 10000))
    assert result.state == ChangeState.REJECTED and "suspended" in (result.error or "")


# --- failures ----------------------------------------------------------------------------------------------------


def test_oss_not_importing_fails_within_the_timeout_and_read_gives_the_real_value(
        peer: BulkCmPeerOss, dirs: tuple[Path, Path]) -> None:
    peer.importing = False
    adapter = adapter_for(dirs, apply_timeout_s=0.4)
    req = change(CARRIER_2, "NRSectorCarrier", "configuredMaxTxPower", 12000)
    t0 = time.monotonic()
    result = adapter.apply(req)
    elapsed = time.monotonic() - t0
    assert result.state == ChangeState.FAILED and 0.4 <= elapsed < 1.5
    assert "not confirmed by the export within 0.4 s; value unknown" in (result.error or "")
    assert adapter.read(CARRIER_2)["configuredMaxTxPower"] == 20000  # the real value, not the requested one
    assert adapter.apply(req) == result  # a repeat returns the first result
    # the OSS catches up later: the file that waited is imported once, and the export shows it
    peer.importing = True
    assert wait_for(lambda: adapter.read(CARRIER_2)["configuredMaxTxPower"] == 12000)
    assert adapter.verify(req).state == ChangeState.APPLIED
    assert import_files(dirs) == [import_file_name(req.change_id)]


def test_truncated_export_is_unavailable_not_a_crash(peer: BulkCmPeerOss, dirs: tuple[Path, Path]) -> None:
    adapter = adapter_for(dirs, apply_timeout_s=0.3)
    peer.truncate_exports = True
    bad = peer.write_export()
    with pytest.raises(AdapterUnavailable) as info:
        adapter.read(CARRIER_2)
    assert bad.name in str(info.value) and "not well-formed XML" in str(info.value)
    req = change(CARRIER_2, "NRSectorCarrier", "configuredMaxTxPower", 11000)
    verified = adapter.verify(req)
    assert verified.state == ChangeState.FAILED and bad.name in (verified.error or "")
    applied = adapter.apply(req)  # imported, but every export it writes is cut: value unknown
    assert applied.state == ChangeState.FAILED and "value unknown" in (applied.error or "")
    peer.truncate_exports = False
    peer.write_export()
    assert adapter.read(CARRIER_2)["configuredMaxTxPower"] == 11000


def test_partial_and_temp_exports_are_ignored(peer: BulkCmPeerOss, dirs: tuple[Path, Path]) -> None:
    (dirs[1] / ".export-zzz.xml.tmp").write_bytes(b"<bulkCm")
    (dirs[1] / "export-zzz.xml.part").write_bytes(b"<bulkCm")
    assert adapter_for(dirs).read(CARRIER_2)["configuredMaxTxPower"] == 20000


def test_no_export_at_all_is_unavailable(dirs: tuple[Path, Path]) -> None:
    dirs[1].mkdir(parents=True)
    with pytest.raises(AdapterUnavailable, match="holds no export"):
        adapter_for(dirs).read(CARRIER_2)


# --- at most once -------------------------------------------------------------------------------------------------


def test_repeat_change_id_writes_one_file(peer: BulkCmPeerOss, dirs: tuple[Path, Path]) -> None:
    adapter = adapter_for(dirs)
    req = change(CARRIER_2, "NRSectorCarrier", "configuredMaxTxPower", 15000)
    first = adapter.apply(req)
    assert first.state == ChangeState.APPLIED
    assert adapter.apply(req) == first
    restarted = adapter_for(dirs)  # a new process: no memory of the first result
    again = restarted.apply(req)
    assert again.state == ChangeState.APPLIED and again.observed_value == 15000
    assert import_files(dirs) == [import_file_name(req.change_id)]
    assert peer.imported == [import_file_name(req.change_id)]


def test_restart_while_the_change_waits_does_not_write_again(peer: BulkCmPeerOss, dirs: tuple[Path, Path]) -> None:
    peer.importing = False
    req = change(SEF_2, "SectorEquipmentFunction", "digitalTilt", 70)
    assert adapter_for(dirs, apply_timeout_s=0.1).apply(req).state == ChangeState.FAILED
    peer.importing = True
    result = adapter_for(dirs).apply(req)  # restarted adapter, same changeId
    assert result.state == ChangeState.APPLIED and result.observed_value == 70
    assert "already written" in (result.device_response or "")
    assert import_files(dirs) == [import_file_name(req.change_id)]


def test_export_already_holding_the_value_is_applied_without_a_file(peer: BulkCmPeerOss,
                                                                     dirs: tuple[Path, Path]) -> None:
    result = adapter_for(dirs).apply(change(CARRIER_2, "NRSectorCarrier", "configuredMaxTxPower", 20000))
    assert result.state == ChangeState.APPLIED and import_files(dirs) == []


# --- the port -------------------------------------------------------------------------------------------------------


def test_open_adapter_finds_it(dirs: tuple[Path, Path]) -> None:
    adapter = open_adapter("bulkcm", import_dir=str(dirs[0]), export_dir=str(dirs[1]), poll_s=0.5)
    assert isinstance(adapter, BulkCmAdapter) and isinstance(adapter, CmAdapter)
    assert adapter.transport.value == "BULKCM"


def test_never_raises_when_the_folders_are_unusable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    adapter = BulkCmAdapter(import_dir=blocker / "i", export_dir=blocker / "e", poll_s=0.01, apply_timeout_s=0.05)
    req = change(CARRIER_2, "NRSectorCarrier", "configuredMaxTxPower", 10000, frm=20000)
    assert adapter.apply(req).state == ChangeState.FAILED
    assert adapter.verify(req).state == ChangeState.FAILED
    assert adapter.restore(req).state == ChangeState.FAILED


def test_restarted_adapter_after_a_roll_back_fails_fast_instead_of_waiting(peer: BulkCmPeerOss,
                                                                           dirs: tuple[Path, Path]) -> None:
    req = change(CARRIER_2, "NRSectorCarrier", "configuredMaxTxPower", 16000, frm=20000)
    adapter = adapter_for(dirs)
    assert adapter.apply(req).state == ChangeState.APPLIED
    assert adapter.restore(req).state == ChangeState.ROLLED_BACK
    t0 = time.monotonic()
    again = adapter_for(dirs, apply_timeout_s=5.0).apply(req)  # a new process retries the old change
    assert time.monotonic() - t0 < 2.0
    assert again.state == ChangeState.FAILED and again.observed_value == 20000
    assert "was imported but" in (again.error or "")
    assert len(import_files(dirs)) == 2  # the change and its roll back, nothing written again


def test_footer_offset_and_dn_prefix(dirs: tuple[Path, Path]) -> None:
    adapter = adapter_for(dirs, timezone="Europe/Paris", dn_prefix="SubNetwork=Emulator")
    data = adapter.change_file(change(CARRIER_2, "NRSectorCarrier", "configuredMaxTxPower", 100))
    doc = parse_bulkcm(data, "x.xml", strict=True)
    assert doc.dn_prefix == "SubNetwork=Emulator"
    assert "ManagedElement=gnb-001,GNBDUFunction=1,NRSectorCarrier=2" in doc.objects
    root = parse_xml(data, "x.xml")
    footer = root[-1].get("dateTime") or ""
    assert footer.endswith(("+01:00", "+02:00"))
