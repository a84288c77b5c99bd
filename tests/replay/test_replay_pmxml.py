"""PM XML reader against both real files (never copied into the repo) and against broken input."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from replay.model import Item, Notice, Outcome, Rejection
from replay.readers import pmxml
from replay.readers.dn import DnResolver
from replay.readers.files import Input
from tests.replay.test_replay_cli import twin
from twin import topics
from twin.schemas import PmCellRecord, PmRelationRecord

KEYSIGHT = "D20241211.0934+0000-0936+0000_Keysight_GNB-1.xml"
ERICSSON = "A20230515.0700_0100-0715_0100_GNODEB-0.xml"


def outcomes(path: Path, resolver: DnResolver | None = None) -> list[Outcome]:
    opts = pmxml.PmXmlOptions(resolver=resolver) if resolver else None
    return [o for s in pmxml.read([path], opts) for o in s]


def split(outs: list[Outcome]) -> tuple[list[Item], list[Rejection], list[Notice]]:
    return (
        [o for o in outs if isinstance(o, Item)],
        [o for o in outs if isinstance(o, Rejection)],
        [o for o in outs if isinstance(o, Notice)],
    )


def cells_of(items: list[Item]) -> list[PmCellRecord]:
    return [i.record for i in items if type(i.record) is PmCellRecord]


def relations_of(items: list[Item]) -> list[PmRelationRecord]:
    return [i.record for i in items if isinstance(i.record, PmRelationRecord)]


def meas_values_in(path: Path) -> int:
    return len(re.findall(rb"<measValue\b", path.read_bytes()))


def from_bytes(name: str, data: bytes) -> list[Outcome]:
    return list(pmxml.read_file(Input(name, lambda: data)))


def test_keysight_28532_file(pm_files_dir: Path) -> None:
    path = pm_files_dir / KEYSIGHT
    items, rejected, notices = split(outcomes(path))
    # The stylesheet-before-declaration quirk is tolerated and reported.
    assert len(notices) == 1 and "xml-stylesheet" in notices[0].message
    cells, relations = cells_of(items), relations_of(items)
    assert len(cells) + len(relations) == len(items)
    assert {i.topic for i in items} == {topics.PM_CELL, topics.PM_RELATION}
    # 2 periods x (NRCellDU=1, NRCellCU=1, GNBCUUPFunction=1, ManagedElement) and NRCellRelation=0..4.
    assert len(cells) == 8 and len(relations) == 10
    assert all(isinstance(r, PmCellRecord) for r in cells)
    assert all(isinstance(r, PmRelationRecord) for r in relations)
    names = {n for r in cells for n in r.values}
    for name in ("DRB.UEThpDl", "RRU.PrbTotDl", "RRC.ConnMean", "DRB.UEThpDl.01", "DRB.UEThpDl.010003e8"):
        assert name in names
    assert "MM.HoExeInterReq" in {n for r in relations for n in r.values}
    assert {r.granularity_period_s for r in cells} == {60}
    assert {r.period_end for r in cells} == {
        datetime(2024, 12, 11, 9, 34, 23, tzinfo=UTC),
        datetime(2024, 12, 11, 9, 35, 23, tzinfo=UTC),
    }
    du = next(r for r in cells if r.meas_obj_class == "NRCellDU")
    cu = next(r for r in cells if r.meas_obj_class == "NRCellCU")
    assert du.cell_key == cu.cell_key  # two DNs, one cell
    assert du.meas_obj_dn.startswith("DC=Keysight.com,SubNetwork=Morrisville,ManagedElement=GNB-1,")
    assert du.source.format == "3GPP-28.532" and du.source.vendor == "Keysight"
    assert {r.cell_key for r in relations} == {cu.cell_key}  # keyed by the source cell
    assert len({r.target_cell_key for r in relations}) == 5
    # The 14 measValue blocks with an empty measObjLdn are rejected with a reason, not dropped.
    assert len(rejected) == 14
    assert all("measObjLdn is empty" in r.reason and r.field == "measObjLdn" for r in rejected)
    assert all(b"<" in r.raw and b"measValue" in r.raw for r in rejected)
    assert sum(i.units for i in items) + sum(r.units for r in rejected) == meas_values_in(path) == 166


def test_ericsson_32435_file(pm_files_dir: Path) -> None:
    path = pm_files_dir / ERICSSON
    items, rejected, notices = split(outcomes(path))
    assert not notices
    records = cells_of(items)
    assert len(records) == len(items)
    assert all(isinstance(r, PmCellRecord) for r in records) and len(records) == 45
    # '+0100' offsets: 07:15 local is 06:15 UTC.
    assert {r.period_end for r in records} == {datetime(2023, 5, 15, 6, 15, tzinfo=UTC)}
    assert {r.granularity_period_s for r in records} == {900}
    assert {r.source.vendor for r in records} == {"Ericsson AB"}
    assert {r.source.format for r in records} == {"3GPP-32.435"}
    classes = Counter(r.meas_obj_class.value for r in records)
    assert classes["NRCellDU"] == 16 and classes["EUtranCellFDD"] == 10 and classes["NRSectorCarrier"] == 4
    assert not any(r.suspect for r in records)  # its two suspect values are on rejected energy objects
    assert {r.cell_key[:4] for r in records if r.meas_obj_class == "EUtranCellFDD"} == {"lte:"}
    # Vector (PDF) counters are flattened to name.<index>.
    assert any(re.fullmatch(r"pmCounterNumber\d+\.\d+", n) for r in records for n in r.values)
    # Transport/equipment objects are rejected with a reason naming the class.
    reasons = Counter(r.reason.split("object class ")[1].split("'")[1] for r in rejected)
    assert {"VlanPort", "BbProcessingResource", "ENodeBFunction"} <= set(reasons)
    assert all(r.error_class == "unsupported" for r in rejected)
    assert sum(i.units for i in items) + sum(r.units for r in rejected) == meas_values_in(path)


def test_gzipped_file_reads_the_same(pm_files_dir: Path, tmp_path: Path) -> None:
    gz = tmp_path / (KEYSIGHT + ".gz")
    gz.write_bytes(gzip.compress((pm_files_dir / KEYSIGHT).read_bytes()))
    plain = cells_of(split(outcomes(pm_files_dir / KEYSIGHT))[0])
    zipped = cells_of(split(outcomes(gz))[0])
    assert {r.source.file_name for r in zipped} == {KEYSIGHT + ".gz"}
    for r in zipped:
        r.source.file_name = KEYSIGHT
    assert plain == zipped and plain


def test_dn_map_overrides_the_derivation(pm_files_dir: Path) -> None:
    resolver = DnResolver(
        plmn="00101",
        mapping={
            "ManagedElement=GNB-1,GNBDUFunction=1,NRCellDU=1": "nr:00101-00000a01c",
            "ManagedElement=GNB-1,GNBCUCPFunction=1,NRCellCU=1": "nr:00101-00000a01c",
            "ManagedElement=GNB-1,GNBCUCPFunction=1,NRCellCU=1,NRCellRelation=2": "nr:00101-00000a02c",
        },
    )
    items = [o for o in outcomes(pm_files_dir / KEYSIGHT, resolver) if isinstance(o, Item)]
    du = [i for i in items if getattr(i.record, "meas_obj_class", None) == "NRCellDU"]
    assert {i.key for i in du} == {"nr:00101-00000a01c"}
    rel2 = [r for r in relations_of(items) if r.meas_obj_dn.endswith("NRCellRelation=2")]
    assert rel2 and all(
        isinstance(r, PmRelationRecord)
        and r.target_cell_key == "nr:00101-00000a02c"
        and r.cell_key == "nr:00101-00000a01c"
        for r in rel2
    )


SAMPLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<measCollecFile xmlns="http://www.3gpp.org/ftp/specs/archive/32_series/32.435#measCollec">
  <fileHeader fileFormatVersion="32.435 V10.0" vendorName="ExampleVendor" dnPrefix="SubNetwork=Europe">
    <fileSender localDn="ManagedElement=gnb-001" elementType="gNB"/>
    <measCollec beginTime="2024-03-01T10:00:00+00:00"/>
  </fileHeader>
  <measData>
    <managedElement localDn="ManagedElement=gnb-001"/>
    <measInfo measInfoId="NRCellDU">
      <job jobId="twin-15min"/>
      <granPeriod duration="PT15M" endTime="2024-03-01T10:15:00Z"/>
      GRAN_AND_TYPES
    </measInfo>
  </measData>
</measCollecFile>
"""


def sample(body: str, gran: str = '<granPeriod duration="PT15M" endTime="2024-03-01T10:15:00Z"/>') -> bytes:
    return SAMPLE.replace(
        b'<granPeriod duration="PT15M" endTime="2024-03-01T10:15:00Z"/>', gran.encode()
    ).replace(b"GRAN_AND_TYPES", body.encode())


def test_sample_in_the_spec_form_and_legacy_measTypes_form() -> None:
    body = (
        '<measType p="1">RRU.PrbTotDl</measType><measType p="2">DRB.UEThpDl</measType>'
        '<measValue measObjLdn="GNBDUFunction=1,NRCellDU=1"><r p="1">63</r><r p="2">48211.5</r>'
        "<suspect>true</suspect></measValue>"
    )
    items, rejected, _ = split(from_bytes("a.xml", sample(body)))
    assert not rejected and len(items) == 1
    [rec] = cells_of(items)
    assert isinstance(rec, PmCellRecord)
    assert rec.values == {"RRU.PrbTotDl": 63.0, "DRB.UEThpDl": 48211.5} and rec.suspect
    assert rec.granularity_period_s == 900 and rec.source.job_id == "twin-15min"
    # The ManagedElement RDN missing from measObjLdn is taken from <managedElement localDn>.
    assert rec.meas_obj_dn == "SubNetwork=Europe,ManagedElement=gnb-001,GNBDUFunction=1,NRCellDU=1"
    legacy = (
        "<measTypes>RRU.PrbTotDl DRB.UEThpDl</measTypes>"
        '<measValue measObjLdn="ManagedElement=gnb-001,GNBDUFunction=1,NRCellDU=1">'
        "<measResults>63 48211.5</measResults></measValue>"
    )
    items2, rejected2, _ = split(from_bytes("b.xml", sample(legacy)))
    assert not rejected2 and cells_of(items2)[0].values == rec.values and items2[0].key == items[0].key
    # An empty <r> is 'no value reported': skipped, and counted in a notice.
    empty = body.replace('<r p="2">48211.5</r>', '<r p="2"></r>')
    items3, _, notices3 = split(from_bytes("c.xml", sample(empty)))
    assert cells_of(items3)[0].values == {"RRU.PrbTotDl": 63.0}
    assert any("1 empty <r> values" in n.message for n in notices3)


def test_a_counter_given_twice_with_another_value_keeps_the_first_and_says_so() -> None:
    """The same object, period and job in two measValues (here of two measInfos): a counter the
    second gives again with another value used to replace the first silently."""
    first = ('<measType p="1">RRU.PrbTotDl</measType><measType p="2">DRB.UEThpDl</measType>'
             '<measValue measObjLdn="GNBDUFunction=1,NRCellDU=1"><r p="1">63</r><r p="2">48211.5</r></measValue>')
    again = ('</measInfo><measInfo measInfoId="again"><job jobId="twin-15min"/>'
             '<granPeriod duration="PT15M" endTime="2024-03-01T10:15:00Z"/>'
             '<measType p="1">RRU.PrbTotDl</measType><measType p="2">DRB.UEThpDl</measType>'
             '<measType p="3">RRU.PrbTotUl</measType>'
             '<measValue measObjLdn="GNBDUFunction=1,NRCellDU=1"><r p="1">70</r><r p="2">48211.5</r><r p="3">12</r>'
             '</measValue>')
    items, rejected, notices = split(from_bytes("dup.xml", sample(first + again)))
    [rec] = cells_of(items)
    assert not rejected and rec.values == {"RRU.PrbTotDl": 63.0, "DRB.UEThpDl": 48211.5, "RRU.PrbTotUl": 12.0}
    assert rec.suspect  # the file contradicts itself on this object and period
    [notice] = [n.message for n in notices if "conflicting duplicates" in n.message]
    assert notice.startswith("1 values dropped as conflicting duplicates") and "RRU.PrbTotDl=70.0" in notice
    assert "gave as 63.0 before" in notice
    # the same value twice is no conflict
    items2, _, notices2 = split(from_bytes("same.xml", sample(first + again.replace(">70<", ">63<"))))
    assert not cells_of(items2)[0].suspect and not any("conflicting" in n.message for n in notices2)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"<measCollecFile><measData>", "not well-formed XML"),
        (b"", "not well-formed XML"),
        (b"\xff\xfe garbage", "not well-formed XML"),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>', "DTD or entities is refused"),
        (b'<?xml version="1.0"?><bulkCmConfigDataFile/>', "is not measCollecFile"),
    ],
)
def test_broken_files_are_rejected_whole_with_a_reason(data: bytes, reason: str) -> None:
    outs = from_bytes("bad.xml", data)
    assert len(outs) == 1 and isinstance(outs[0], Rejection)
    assert reason in outs[0].reason and outs[0].raw == data and outs[0].units == 1


@pytest.mark.parametrize(
    ("body", "gran", "reason", "field"),
    [
        (
            '<measType p="1">A.b</measType><measValue measObjLdn="NRCellDU=1"><r p="1">abc</r></measValue>',
            None,
            "A.b='abc' is not a number",
            "A.b",
        ),
        (
            '<measType p="1">A.b</measType><measValue measObjLdn="NRCellDU=1"><r p="1">NaN</r></measValue>',
            None,
            "not a finite number",
            "A.b",
        ),
        (
            '<measType p="1">A.b</measType><measValue measObjLdn="NRCellDU=1"><r p="2">1</r></measValue>',
            None,
            "no matching measType",
            "r",
        ),
        (
            '<measType p="1">A.b</measType><measValue measObjLdn="NRCellDU=1"><r p="1">1</r></measValue>',
            '<granPeriod duration="15 minutes" endTime="2024-03-01T10:15:00Z"/>',
            "not an ISO 8601 duration",
            "granPeriod",
        ),
        (
            '<measType p="1">A.b</measType><measValue measObjLdn="NRCellDU=1"><r p="1">1</r></measValue>',
            '<granPeriod duration="PT900S" endTime="2024-03-01T10:15:00"/>',
            "has no UTC offset",
            "granPeriod",
        ),
        (
            '<measType p="1">A.b</measType><measValue measObjLdn="NRCellDU"><r p="1">1</r></measValue>',
            None,
            "is not Class=id",
            "measObjLdn",
        ),
    ],
)
def test_bad_meas_values_are_rejected_with_reasons(
    body: str, gran: str | None, reason: str, field: str
) -> None:
    good = '<measValue measObjLdn="NRCellDU=2"><r p="1">5</r></measValue>'
    data = sample(body + good, gran) if gran else sample(body + good)
    items, rejected, _ = split(from_bytes("x.xml", data))
    assert len(rejected) == (2 if gran else 1)
    assert reason in rejected[0].reason and rejected[0].field == field
    assert rejected[0].raw.count(b"measValue") == 2  # a self-contained fragment: measInfo + this value
    assert len(items) == (0 if gran else 1)


def test_a_record_the_ingest_would_refuse_is_rejected_by_the_replay_naming_its_file(tmp_path: Path) -> None:
    """A cumulative counter below zero passes the record's schema but not the worker's ingest: the
    replay used to publish it (counted as published, dead-lettered later by the worker without its
    file). Now the replay rejects it with the ingest's reason and its file and place."""
    body = ('<measType p="1">RRU.PrbTotDl</measType><measType p="2">MM.HoExeInterReq</measType>'
            '<measValue measObjLdn="GNBDUFunction=1,NRCellDU=1"><r p="1">63</r><r p="2">-4</r></measValue>'
            '<measValue measObjLdn="GNBDUFunction=1,NRCellDU=2"><r p="1">41</r><r p="2">7</r></measValue>')
    (tmp_path / "neg.xml").write_bytes(sample(body))
    proc = twin("replay", str(tmp_path / "neg.xml"), "-f", "pm-xml", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["rowsRead"], out["rowsPublished"], out["rowsRejected"]) == (2, 1, 1)
    [rej] = out["rejected"]
    assert rej["source"] == "neg.xml" and rej["where"].endswith("NRCellDU=1 period ending 2024-03-01T10:15:00+00:00")
    assert rej["reason"] == ("the ingest would refuse it: field values.MM.HoExeInterReq: cumulative counter is "
                             "negative (value -4.0)")
