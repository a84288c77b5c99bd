"""PM XML variants that operators' files carry (issue 14 §1), on files written here in their layouts.

Relations nested under frequency relations, compressed and indexed vector counters, vectors with empty
elements, compact and offset-less times, name/value count mismatches, .gz twins. The files are built by
``pm_file`` below in the shape of Ericsson/3GPP 32.435 files; none is copied from anyone's data.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from replay.model import Item, Notice, Outcome, Rejection
from replay.publisher import ReplayReport
from replay.readers import Format, ReaderOptions, open_sources, pmxml
from replay.readers.dn import DnError, DnResolver
from replay.readers.files import Input
from replay.readers.vector_rules import RuleError, VectorRules
from twin import topics
from twin.schemas import PmCellRecord, PmRelationRecord

ERICSSON = "Ericsson AB"
END = '<granPeriod duration="PT900S" endTime="2026-07-31T10:15:00+02:00"/>'


def info(counters: list[str], values: list[tuple[str, list[str]]], gran: str = END, info_id: str = "x") -> str:
    """One measInfo in the 32.435 ``measType p=`` / ``r p=`` form."""
    types = "".join(f'<measType p="{i}">{c}</measType>' for i, c in enumerate(counters, start=1))
    mvs = "".join(
        f'<measValue measObjLdn="{ldn}">'
        + "".join(f'<r p="{i}">{v}</r>' for i, v in enumerate(vals, start=1))
        + "</measValue>"
        for ldn, vals in values
    )
    return f'<measInfo measInfoId="{info_id}"><job jobId="1"/>{gran}{types}{mvs}</measInfo>'


def pm_file(*infos: str, vendor: str = ERICSSON, prefix: str = "SubNetwork=ONRM,MeContext=site1") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<measCollecFile xmlns="http://www.3gpp.org/ftp/specs/archive/32_series/32.435#measCollec">'
        f'<fileHeader fileFormatVersion="32.435 V10.0" vendorName="{vendor}" dnPrefix="{prefix}">'
        '<fileSender elementType="RadioNode"/><measCollec beginTime="2026-07-31T10:00:00+02:00"/></fileHeader>'
        '<measData><managedElement localDn="ManagedElement=site1"/>'
        + "".join(infos)
        + '</measData><fileFooter><measCollec endTime="2026-07-31T10:15:00+02:00"/></fileFooter></measCollecFile>'
    ).encode()


def read(data: bytes, name: str = "f.xml", options: pmxml.PmXmlOptions | None = None) -> list[Outcome]:
    return list(pmxml.read_file(Input(name, lambda: data), options))


def split(outs: list[Outcome]) -> tuple[list[Item], list[Rejection], list[Notice]]:
    return (
        [o for o in outs if isinstance(o, Item)],
        [o for o in outs if isinstance(o, Rejection)],
        [o for o in outs if isinstance(o, Notice)],
    )


def record(items: list[Item], dn_end: str) -> PmCellRecord:
    [rec] = [i.record for i in items if isinstance(i.record, PmCellRecord) and i.record.meas_obj_dn.endswith(dn_end)]
    return rec


LTE_CELL = "ManagedElement=site1,ENodeBFunction=1,EUtranCellFDD=cellA"
NR_CELL = "ManagedElement=site1,GNBCUCPFunction=1,NRCellCU=7"


# --- relations under a frequency relation ---------------------------------------------------------


def test_relations_are_keyed_to_their_source_cell_whatever_the_nesting() -> None:
    data = pm_file(
        info(["pmHoExeAttLteIntraF"], [(LTE_CELL, ["11"])], info_id="EUtranCellFDD"),
        info(
            ["pmHoExeAttLteIntraF", "pmHoExeSuccLteIntraF"],
            [
                (f"{LTE_CELL},EUtranFreqRelation=1,EUtranCellRelation=24001-77-3", ["5", "4"]),
                (f"{LTE_CELL},EUtranFreqRelation=2,EUtranCellRelation=24001-77-3", ["6", "6"]),
            ],
            info_id="EUtranCellRelation",
        ),
        info(["pmEndcHoAtt"], [(f"{LTE_CELL},GUtranFreqRelation=630000,GUtranCellRelation=9", ["2"])]),
        info(["pmHoAtt"], [(f"{NR_CELL},NRFreqRelation=630000,NRCellRelation=3", ["8"])]),
        info(["pmIratHoAtt"], [(f"{NR_CELL},EUtranFreqRelation=6300,EUtranCellRelation=4", ["1"])]),
        info(["pmIratHoAtt"], [(f"{LTE_CELL},UtranFreqRelation=10700,UtranCellRelation=5", ["1"])]),
    )
    items, rejected, _ = split(read(data))
    cell = record(items, "EUtranCellFDD=cellA")
    rels = [i.record for i in items if isinstance(i.record, PmRelationRecord)]
    assert len(rels) == 5 and {i.topic for i in items if isinstance(i.record, PmRelationRecord)} == {topics.PM_RELATION}
    lte = [r for r in rels if "EUtranFreqRelation=" in r.relation_dn and "EUtranCellFDD" in r.relation_dn]
    assert len(lte) == 2 and {r.cell_key for r in lte} == {cell.cell_key}
    assert {r.meas_obj_class for r in lte} == {"EUtranCellRelation"}
    # One relation id under two frequency relations: two relations, two targets, both LTE.
    assert len({r.target_cell_key for r in lte}) == 2 and all(r.target_cell_key.startswith("lte:") for r in lte)
    assert {r.values["pmHoExeAttLteIntraF"] for r in lte} == {5.0, 6.0}
    endc = next(r for r in rels if "GUtranCellRelation" in r.relation_dn)
    assert endc.cell_key == cell.cell_key and endc.meas_obj_class == "NRCellRelation"
    assert endc.target_cell_key.startswith("nr:")  # an LTE -> NR relation targets an NR cell
    nr_cell_key = DnResolver().cell(f"SubNetwork=ONRM,MeContext=site1,{NR_CELL}")[1]
    nr = next(r for r in rels if "NRFreqRelation" in r.relation_dn)
    assert nr.cell_key == nr_cell_key and nr.target_cell_key.startswith("nr:")
    to_lte = next(r for r in rels if "NRCellCU" in r.relation_dn and "EUtranCellRelation" in r.relation_dn)
    assert to_lte.cell_key == nr_cell_key and to_lte.target_cell_key.startswith("lte:")
    # A relation to a 3G cell: rejected, naming why (the twin keys no UTRAN cell).
    [utran] = rejected
    assert "UtranCellRelation targets a 2G/3G cell" in utran.reason and utran.error_class == "unsupported"


def test_a_dn_map_names_the_target_of_a_nested_relation() -> None:
    rel = f"{LTE_CELL},EUtranFreqRelation=1,EUtranCellRelation=9"
    resolver = DnResolver(mapping={rel: "lte:00101-00abc01"})
    data = pm_file(info(["pmHoAtt"], [(rel, ["3"])]))
    [item] = split(read(data, options=pmxml.PmXmlOptions(resolver=resolver)))[0]
    assert isinstance(item.record, PmRelationRecord) and item.record.target_cell_key == "lte:00101-00abc01"


def test_relation_dns_without_a_source_cell_are_refused() -> None:
    with pytest.raises(DnError, match="no NR or LTE cell RDN above it"):
        DnResolver().relation("ManagedElement=a,ENodeBFunction=1,EUtranCellRelation=1")
    with pytest.raises(DnError, match="GeranCellRelation targets a 2G/3G cell"):
        DnResolver().relation(f"{LTE_CELL},GeranFreqGroupRelation=1,GeranCellRelation=1")


# --- compressed and indexed vectors -----------------------------------------------------------------


def test_compressed_and_indexed_vectors_are_decoded_by_the_rules() -> None:
    counters = ["pmUeThpDlCompr", "pmErabEstabSuccQci", "pmErabRelArp", "pmRadioTbsPdf", "pmCqiDistr", "pmBadQci"]
    sixteen = ",".join(str(i) for i in range(16))
    values = ["2,0,78,1,79", "3,1,10,5,20,9,30", sixteen, "0,4,0,2", "1,7,2", "3,1,5"]
    items, rejected, notices = split(read(pm_file(info(counters, [(LTE_CELL, values)]))))
    assert not rejected
    rec = record(items, "cellA")
    v = rec.values
    # count,index,value pairs: bin 0 = 78, bin 1 = 79 (not .0 = the pair count, .4 = 79).
    compr = {k: v[k] for k in v if k.startswith("pmUeThpDlCompr")}
    assert compr == {"pmUeThpDlCompr.0": 78.0, "pmUeThpDlCompr.1": 79.0}
    assert {k: v[k] for k in v if k.startswith("pmErabEstabSuccQci")} == {
        "pmErabEstabSuccQci.1": 10.0, "pmErabEstabSuccQci.5": 20.0, "pmErabEstabSuccQci.9": 30.0,
    }
    # Ericsson ARP counters come as 16 plain bins (ARP 0..15), as in the real Ericsson file.
    assert [v[f"pmErabRelArp.{i}"] for i in range(16)] == [float(i) for i in range(16)]
    assert [v[f"pmRadioTbsPdf.{i}"] for i in range(4)] == [0.0, 4.0, 0.0, 2.0]  # no rule: bins
    assert [v[f"pmCqiDistr.{i}"] for i in range(3)] == [1.0, 7.0, 2.0]  # fits pairs, but named a PDF
    # '3,1,5' cannot be 3 pairs: kept as text, never as bins, and the file says so.
    assert not any(k.startswith("pmBadQci") for k in v)
    assert rec.source.model_dump().get("rawValues") == {"pmBadQci": "3,1,5"}
    [note] = [n for n in notices if "ambiguous" in n.message]
    assert note.message.startswith("1 vector values not published as bins")
    assert "pmBadQci='3,1,5'" in note.message and "count 3 needs 7 elements" in note.message


def test_vectors_whose_layout_no_rule_knows_are_kept_raw() -> None:
    counters = ["pmErabEstabSuccQci", "pmHoTimeSpread", "pmZeroQci"]
    values = ["2,1,5,2,6", "2,0,4,3,8", "0"]
    items, _, notices = split(read(pm_file(info(counters, [(LTE_CELL, values)]), vendor="OtherVendor")))
    rec = record(items, "cellA")
    # Another vendor's QCI vector: layout unknown; a vector that reads both ways: not guessed.
    assert rec.source.model_dump()["rawValues"] == {"pmErabEstabSuccQci": "2,1,5,2,6", "pmHoTimeSpread": "2,0,4,3,8"}
    assert rec.values == {"pmZeroQci": 0.0}  # a scalar is a scalar for a vendor without a pairs rule
    [note] = [n for n in notices if "ambiguous" in n.message]
    assert note.message.startswith("2 vector values")


def test_a_rules_file_decides_and_bad_rules_files_are_refused(tmp_path: Path) -> None:
    toml = tmp_path / "rules.toml"
    toml.write_text(
        'defaults = true\n[[rule]]\ncounter = "pmHoTimeSpread"\nlayout = "pairs"\n'
        '[[rule]]\ncounter = "pmErab.*Qci"\nvendor = "(?i)othervendor"\nlayout = "bins"\n'
    )
    rules = VectorRules.from_file(toml)
    data = pm_file(info(["pmErabEstabSuccQci", "pmHoTimeSpread"], [(LTE_CELL, ["2,1,5,2,6", "2,0,4,3,8"])]),
                   vendor="OtherVendor")
    rec = record(split(read(data, options=pmxml.PmXmlOptions(rules=rules)))[0], "cellA")
    assert rec.values == {
        "pmErabEstabSuccQci.0": 2.0, "pmErabEstabSuccQci.1": 1.0, "pmErabEstabSuccQci.2": 5.0,
        "pmErabEstabSuccQci.3": 2.0, "pmErabEstabSuccQci.4": 6.0, "pmHoTimeSpread.0": 4.0, "pmHoTimeSpread.3": 8.0,
    }
    as_json = tmp_path / "rules.json"
    as_json.write_text(json.dumps({"defaults": False, "rule": [{"counter": ".*", "layout": "raw"}]}))
    assert [r.layout.value for r in VectorRules.from_file(as_json).rules] == ["raw"]
    for text, message in [
        ('[[rule]]\ncounter = "x"\nlayout = "zip"\n', "layout='zip' is not one of bins, pairs, raw"),
        ('[[rule]]\ncounter = "("\nlayout = "bins"\n', "is not a regular expression"),
        ('[[rule]]\nlayout = "bins"\n', "needs counter"),
        ('[[rule]]\ncounter = "x"\nlayout = "bins"\nfull = 16\n', "full=16 needs layout"),
        ('rules = []\n', "unknown key(s) ['rules']"),
        ("counter = \n", "not valid TOML"),
    ]:
        toml.write_text(text)
        with pytest.raises(RuleError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            VectorRules.from_file(toml)


# --- empty elements and value-level problems ---------------------------------------------------------


def test_empty_vector_elements_are_skipped_with_a_notice_and_the_right_reason() -> None:
    counters = ["pmEmpty", "pmPartPdf", "pmOk", "pmText", "pmInf"]
    data = pm_file(
        info(counters, [(LTE_CELL, [", , , , ", " ,3, ,5", "9", "abc", "inf"])]),
        # An object class the twin does not model, with an empty vector: rejected for its class.
        info(["pmVlan"], [("ManagedElement=site1,Transport=1,VlanPort=1", [", , , , "])]),
        # Every value of this object is bad: the object is rejected with the value's own reason.
        info(["pmText"], [(f"{LTE_CELL.replace('cellA', 'cellB')}", ["x1"])]),
    )
    items, rejected, notices = split(read(data))
    rec = record(items, "cellA")
    assert rec.values == {"pmPartPdf.1": 3.0, "pmPartPdf.3": 5.0, "pmOk": 9.0}
    vlan = next(r for r in rejected if "VlanPort" in r.reason)
    assert "object class 'VlanPort' is not one the twin models" in vlan.reason and "not a number" not in vlan.reason
    bad = next(r for r in rejected if "cellB" in r.raw.decode())
    assert bad.reason == "pmText='x1' is not a number" and bad.field == "pmText" and bad.error_class == "parse"
    messages = [n.message for n in notices]
    assert "1 empty <r> values (no value reported) skipped" in messages
    assert any(m.startswith("2 empty elements of vector values skipped") and "pmPartPdf" in m for m in messages)
    assert any(m.startswith("1 values dropped as not a number") and "pmText='abc'" in m for m in messages)
    assert any(m.startswith("1 values dropped as not a finite number") and "pmInf='inf'" in m for m in messages)


# --- time forms ---------------------------------------------------------------------------------------


def test_compact_and_offset_less_times() -> None:
    compact = '<granPeriod duration="PT15M" endTime="202607311004+0300"/>'
    [item] = split(read(pm_file(info(["a"], [(LTE_CELL, ["1"])], gran=compact))))[0]
    assert item.event_time == datetime(2026, 7, 31, 7, 4, tzinfo=UTC)
    naive = '<granPeriod duration="PT15M" endTime="2000-03-01T15:00:00"/>'
    data = pm_file(info(["a"], [(LTE_CELL, ["1"])], gran=naive))
    [rej] = split(read(data))[1]
    assert "endTime='2000-03-01T15:00:00' has no UTC offset: pass --timezone" in rej.reason
    assert rej.field == "granPeriod"
    opts = pmxml.PmXmlOptions(timezone=ZoneInfo("America/New_York"))
    [item] = split(read(data, options=opts))[0]
    assert item.event_time == datetime(2000, 3, 1, 20, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a valid compact time"):
        pmxml.parse_time("202613311004+0300", "endTime")


# --- name/value count mismatch --------------------------------------------------------------------------


def test_measTypes_and_measResults_of_different_lengths_are_rejected() -> None:
    body = (
        '<measInfo><granPeriod duration="PT15M" endTime="2026-07-31T10:15:00Z"/>'
        "<measTypes>c1 c2 c3 c4 c5</measTypes>"
        f'<measValue measObjLdn="{LTE_CELL}"><measResults>1 2 3 4</measResults></measValue>'
        f'<measValue measObjLdn="{LTE_CELL.replace("cellA", "cellB")}"><measResults>1 2 3 4 5</measResults></measValue>'
        "</measInfo>"
    )
    items, rejected, _ = split(read(pm_file(body)))
    [rej] = rejected
    assert rej.reason == "measResults has 4 values but measTypes names 5 counters: they cannot be paired"
    assert rej.field == "measResults" and b"cellA" in rej.raw
    assert record(items, "cellB").values == {f"c{i}": float(i) for i in range(1, 6)}


# --- operations ------------------------------------------------------------------------------------------


def test_a_gz_copy_beside_its_file_is_read_once(tmp_path: Path) -> None:
    data = pm_file(info(["a"], [(LTE_CELL, ["1"])]))
    (tmp_path / "x.xml").write_bytes(data)
    (tmp_path / "x.xml.gz").write_bytes(gzip.compress(data))
    outs = [o for s in open_sources(Format.pm_xml, [tmp_path]) for o in s]
    items, rejected, notices = split(outs)
    assert len(items) == 1 and not rejected
    assert any("x.xml.gz left out: the same content as x.xml" in n.message for n in notices)
    # A .gz of the same name with other content: dead-lettered whole, with its bytes, not published twice.
    other = pm_file(info(["a"], [(LTE_CELL, ["2"])]))
    (tmp_path / "x.xml.gz").write_bytes(gzip.compress(other))
    items, rejected, _ = split([o for s in open_sources(Format.pm_xml, [tmp_path]) for o in s])
    assert len(items) == 1 and items[0].record.values == {"a": 1.0}  # type: ignore[attr-defined]
    [rej] = rejected
    assert rej.error_class == "duplicate" and "different content" in rej.reason and rej.raw == other


def test_the_summary_keeps_each_kind_of_reason() -> None:
    report = ReplayReport(dry_run=True, speed=0)
    data = pm_file(
        info(["a"], [("ManagedElement=site1,Transport=1,VlanPort=1", ["1"]), ("ManagedElement=site1,X=1,Y=2", ["1"])]),
        info(["a"], [("NRCellDU", ["1"]), ("", ["1"])]),
    )
    report.rejected = split(read(data))[1]
    kinds = [(r["field"], r["rows"], r["example"]) for r in report.reasons()]
    assert len(kinds) == 3
    assert kinds[0][:2] == ("measObjLdn", 2) and "is not one the twin models" in kinds[0][2]
    assert {k[2].split(": ", 1)[-1] for k in kinds[1:]} == {
        "RDN 'NRCellDU' is not Class=id", "the measured object is unknown",
    }


def test_reader_options_carry_the_timezone_and_rules_to_pm_xml(tmp_path: Path) -> None:
    naive = '<granPeriod duration="PT15M" endTime="2000-03-01T15:00:00"/>'
    (tmp_path / "n.xml").write_bytes(pm_file(info(["a"], [(LTE_CELL, ["1"])], gran=naive)))
    outs = [o for s in open_sources(Format.pm_xml, [tmp_path], ReaderOptions(timezone="UTC")) for o in s]
    assert [o.event_time for o in outs if isinstance(o, Item)] == [datetime(2000, 3, 1, 15, tzinfo=UTC)]
    bad = tmp_path / "r.json"
    bad.write_text("[1]")
    with pytest.raises(RuleError, match="must be a table/object"):
        open_sources(Format.pm_xml, [tmp_path], ReaderOptions(vector_rules=bad))
