"""Nokia OMeS reader on files written here in the layout of the format's public samples (no Nokia file copied)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from replay.model import Item, Notice, Outcome, Rejection
from replay.readers import Format, omes, open_sources, pmxml
from replay.readers.dn import DnResolver
from replay.readers.files import Input
from tests.replay.test_replay_cli import twin
from twin import topics
from twin.schemas import PmCellRecord, PmRelationRecord


def result(dn: str, mtype: str, counters: dict[str, str], wrapper: str = "PMTarget") -> str:
    body = "".join(f"<{k}>{v}</{k}>" for k, v in counters.items())
    return (
        f'<PMMOResult><MO dimension="network_element"><DN>{dn}</DN></MO>'
        f'<{wrapper} measurementType="{mtype}">{body}</{wrapper}></PMMOResult>'
    )


def omes_file(*setups: tuple[str, str, list[str]]) -> bytes:
    parts = "".join(
        f'<PMSetup startTime="{start}" interval="{interval}">{"".join(results)}</PMSetup>'
        for start, interval, results in setups
    )
    return f'<?xml version="1.0"?>\n<OMeS>{parts}</OMeS>'.encode()


def read(data: bytes, options: pmxml.PmXmlOptions | None = None) -> list[Outcome]:
    return list(omes.read_file(Input("PM.BTS-1.xml", lambda: data), options))


LNCEL = "PLMN-PLMN/MRBTS-101/LNBTS-101/LNCEL-2"
NRCELL = "PLMN-PLMN/MRBTS-101/NRBTS-101/NRCELL-7"


def test_cells_relations_and_nodes_of_one_file() -> None:
    data = omes_file(
        (
            "2026-07-31T10:00:00.000+02:00",
            "15",
            [
                result(LNCEL, "LTE_Cell_Avail", {"M8020C3": "900", "M8020C6": "0"}),
                result(LNCEL, "LTE_EUTRA_Load", {"M8011C24": "12.5"}, wrapper="NE-WBTS_1.0"),
                result(f"{LNCEL}/LNREL-5", "LTE_Neighb_Cell_HO", {"M8015C2": "4"}),
                result(NRCELL, "NR_Cell_Avail", {"M55110C00001": "3"}),
                result("PLMN-PLMN/MRBTS-101", "SBTS_Energy", {"M40002C0": "5268"}),
                '<PMMOResult><MO><baseId>NE-MRBTS-102</baseId><localMoid>DN:NE-LNBTS-102/LNCEL-1</localMoid></MO>'
                '<PMTarget measurementType="LTE_S1AP"><M8000C29>1</M8000C29></PMTarget></PMMOResult>',
            ],
        ),
        ("2026-07-31T10:15:00.000+02:00", "15", [result(LNCEL, "LTE_Cell_Avail", {"M8020C3": "899"})]),
    )
    outs = read(data)
    items = [o for o in outs if isinstance(o, Item)]
    assert not [o for o in outs if isinstance(o, Rejection)]
    cells = [i.record for i in items if type(i.record) is PmCellRecord]
    rels = [i.record for i in items if isinstance(i.record, PmRelationRecord)]
    assert len(cells) == 5 and len(rels) == 1
    first = [c for c in cells if c.meas_obj_dn == LNCEL and c.period_end == datetime(2026, 7, 31, 8, 15, tzinfo=UTC)]
    # The two measurement types of one cell and period are one record; counter ids are kept.
    assert len(first) == 1 and first[0].values == {"M8020C3": 900.0, "M8020C6": 0.0, "M8011C24": 12.5}
    assert first[0].granularity_period_s == 900 and first[0].meas_obj_class == "EUtranCellFDD"
    assert first[0].source.format == "Nokia-OMeS" and first[0].source.vendor == "Nokia"
    resolver = DnResolver()
    assert first[0].cell_key == resolver.cell("ManagedElement=101,ENodeBFunction=101,EUtranCellFDD=2")[1]
    [rel] = rels
    assert rel.cell_key == first[0].cell_key and rel.meas_obj_class == "EUtranCellRelation"
    assert rel.target_cell_key.startswith("lte:") and rel.values == {"M8015C2": 4.0}
    nr = next(c for c in cells if c.meas_obj_dn == NRCELL)
    assert nr.meas_obj_class == "NRCellDU" and nr.cell_key == resolver.cell("ManagedElement=101,NRCellDU=7")[1]
    node = next(c for c in cells if c.meas_obj_dn == "PLMN-PLMN/MRBTS-101")
    assert node.meas_obj_class == "ManagedElement" and node.values == {"M40002C0": 5268.0}
    assert any(c.meas_obj_dn == "MRBTS-102/LNBTS-102/LNCEL-1" for c in cells)  # baseId + localMoid form
    times = [i.event_time for i in items if i.event_time is not None]
    assert len(times) == len(items) and times == sorted(times)


def test_rejections_and_value_notices() -> None:
    data = omes_file(
        (
            "2011-02-20T15:00:00.000-06:00:00",
            "60",
            [
                result("PLMN-PLMN/RNC-1902/WBTS-201/WCEL-2015", "RNC_Cell", {"M1017C11": "1"}),
                '<PMMOResult><MO><DN>PLMN-PLMN/MRBTS-1/LNBTS-1/LNCEL-1</DN></MO><MO><DN>PLMN-PLMN/MCC-334/MNC-3</DN>'
                '</MO><PMTarget measurementType="X"><M1C1>1</M1C1></PMTarget></PMMOResult>',
                result(LNCEL, "LTE", {"M1C1": "", "M1C2": "abc", "M1C3": "7"}),
                result(NRCELL, "NR", {"M2C1": "NaN"}),
            ],
        ),
        ("2026-07-31T10:00:00", "15", [result(LNCEL, "LTE", {"M1C1": "1"})]),
        ("2026-07-31T10:00:00Z", "0", [result(LNCEL, "LTE", {"M1C1": "1"})]),
    )
    outs = read(data)
    rejected = [o for o in outs if isinstance(o, Rejection)]
    reasons = [r.reason for r in rejected]
    assert len(rejected) == 5
    assert "object class 'WCEL' is not one the twin models" in reasons[0] and rejected[0].error_class == "unsupported"
    assert reasons[1] == "PMMOResult has 2 MO elements: one object per result is modelled"
    assert reasons[2] == f"M2C1='NaN' on {NRCELL} is not a finite number" and rejected[2].field == "M2C1"
    assert "has no UTC offset: pass --timezone" in reasons[3]
    assert "interval='0' is not a whole number of minutes" in reasons[4]
    assert all(b"<PMMOResult>" in r.raw for r in rejected)
    [item] = [o for o in outs if isinstance(o, Item)]
    assert item.record.values == {"M1C3": 7.0}  # type: ignore[attr-defined]
    assert item.event_time == datetime(2011, 2, 20, 22, 0, tzinfo=UTC)  # -06:00:00 offset, end of the hour
    notes = [o.message for o in outs if isinstance(o, Notice)]
    assert "1 empty counter values (no value reported) skipped" in notes
    assert any(n.startswith("1 values dropped") and "M1C2='abc'" in n for n in notes)


def test_a_3gpp_file_is_not_omes_and_the_cli_reads_omes(tmp_path: Path) -> None:
    [rej] = read(b'<?xml version="1.0"?><measCollecFile/>')
    assert isinstance(rej, Rejection) and "is not OMeS (for 3GPP files use --format pm-xml)" in rej.reason
    data = omes_file(("2026-07-31T10:00:00.000+02:00", "15", [result(LNCEL, "LTE", {"M8020C3": "900"})]))
    [rej] = [o for s in open_sources(Format.pm_xml, [_write(tmp_path / "a.xml", data)]) for o in s]
    assert isinstance(rej, Rejection) and "use --format omes" in rej.reason
    proc = twin("replay", str(tmp_path), "-f", "omes", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["published"] == {topics.PM_CELL: 1} and out["rowsRead"] == 1


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
