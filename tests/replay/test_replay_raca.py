"""Raca CSV reader: the row -> MrEvent mapping, rejections with reasons, stable ids across inputs."""

from __future__ import annotations

import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from replay.model import Item, Notice, Outcome, Rejection
from replay.readers import raca
from replay.readers.files import Input
from twin import topics
from twin.schemas import MrEvent

HEADER = (
    "Timestamp,Longitude,Latitude,Speed,Operatorname,CellID,NetworkMode,RSRP,RSRQ,SNR,CQI,RSSI,"
    "DL_bitrate,UL_bitrate,State,PINGAVG,PINGMIN,PINGMAX,PINGSTDEV,PINGLOSS,CELLHEX,NODEHEX,LACHEX,"
    "RAWCELLID,NRxRSRP,NRxRSRQ"
)
# 5G NSA row with an NR leg (ECI 0xA4DF0B = eNB 0xA4DF, cell 11).
ROW_5G = (
    "2019.11.26_14.37.05,-8.394878,51.886015,1,B,11,5G,-102,-11,-1.0,12,-,250,30,D,"
    "-,-,-,-,-,B,A4DF,9CBA,10805003,-95,-11"
)
ROW_LTE = (
    "2019.11.26_14.37.03,-8.394878,51.886015,1,B,11,LTE,-79,-12,10.0,8,-61,1,3,D,"
    "-,-,-,-,-,B,A4DF,9CBA,10805003,-,-"
)


def read_text(text: str | bytes, name: str = "B_2019.11.26_14.37.00.csv") -> list[Outcome]:
    data = text.encode() if isinstance(text, str) else text
    return list(raca.read_file(Input(name, lambda: data)))


def test_row_mapping() -> None:
    outs = read_text("\n".join([HEADER, ROW_5G, ROW_LTE]) + "\n")
    assert all(isinstance(o, Item) for o in outs) and len(outs) == 2
    lte, nsa = (o.record for o in outs if isinstance(o, Item))  # sorted by time: 14.37.03 first
    assert isinstance(lte, MrEvent) and isinstance(nsa, MrEvent)
    assert lte.event_time == datetime(2019, 11, 26, 14, 37, 3, tzinfo=UTC)  # Irish winter time = UTC
    assert nsa.cell_key == "lte:27203-0a4df0b"
    assert nsa.serving.rsrp_dbm == -102 and nsa.serving.rsrq_db == -11 and nsa.serving.sinr_db == -1
    assert (nsa.serving.rsrp_idx, nsa.serving.rsrq_idx, nsa.serving.sinr_idx) == (39, 18, 45)
    assert nsa.ue is not None and nsa.ue.cqi == 12 and nsa.ue.dl_throughput_kbps == 250
    assert nsa.ue.ul_throughput_kbps == 30
    assert nsa.location is not None and (nsa.location.lat, nsa.location.lon) == (51.886015, -8.394878)
    [nr] = nsa.neighbours
    assert nr.rat == "NR" and nr.rsrp_dbm == -95 and nr.rsrq_db == -11
    assert nr.cell_key == "nr:27203-000a4df0b"  # co-sited NR cell: NCI == anchor ECI
    assert lte.neighbours == [] and nsa.source == "REPLAY" and nsa.trigger == "PERIODIC"
    assert lte.ue_ref == nsa.ue_ref and lte.event_id != nsa.event_id
    # Deterministic ids: the same file read again gives the same ids.
    again = [o.record for o in read_text("\n".join([HEADER, ROW_5G, ROW_LTE])) if isinstance(o, Item)]
    assert [e.event_id for e in again] == [lte.event_id, nsa.event_id]  # type: ignore[attr-defined]


def test_plmn_and_timezone_are_options() -> None:
    summer = ROW_LTE.replace("2019.11.26", "2019.07.01")
    opts = raca.RacaOptions(plmn="00101", nr_leg=False)
    [item] = list(raca.read_file(Input("f.csv", lambda: f"{HEADER}\n{summer}\n{ROW_5G}".encode()), opts))[:1]
    assert isinstance(item, Item) and isinstance(item.record, MrEvent)
    assert item.record.cell_key.startswith("lte:00101-")
    assert item.record.event_time == datetime(2019, 7, 1, 13, 37, 3, tzinfo=UTC)  # IST = UTC+1


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        (ROW_LTE.replace(",-79,", ",-200,"), "RSRP", "RSRP=-200 outside -157..-30 dBm"),
        (ROW_LTE.replace(",-79,", ",-,"), "RSRP", "RSRP is missing"),
        (ROW_LTE.replace(",-79,", ",strong,"), "RSRP", "RSRP='strong' is not a number"),
        (ROW_LTE.replace(",LTE,", ",HSPA+,"), "NetworkMode", "NetworkMode='HSPA+' is not LTE or 5G"),
        (
            ROW_LTE.replace("2019.11.26_14.37.03", "2019-11-26 14:37:03"),
            "Timestamp",
            "is not YYYY.MM.DD_HH.MM.SS",
        ),
        (ROW_LTE.replace("2019.11.26_14.37.03", "2019.02.30_14.37.03"), "Timestamp", "not a valid date"),
        (ROW_5G.replace(",-95,-11", ",-95,-3dB"), "NRxRSRQ", "NRxRSRQ='-3dB' is not a number"),
        (ROW_LTE.replace(",10805003,", ",0,"), "RAWCELLID", "is not a 28-bit ECI"),
        (ROW_LTE.replace(",8,-61,", ",16,-61,"), "CQI", "CQI=16 outside 0..15"),
        (ROW_LTE.replace(",1,3,D,", ",-5,3,D,"), "DL_bitrate", "DL_bitrate=-5 outside"),
        (ROW_LTE.replace("51.886015", "95.1"), "Latitude", "Latitude=95.1 outside -90..90"),
        (ROW_LTE + ",extra", None, "row has 27 fields, the header has 26"),
    ],
)
def test_bad_rows_are_rejected_with_reasons(row: str, field: str | None, reason: str) -> None:
    outs = read_text(f"{HEADER}\n{ROW_5G}\n{row}\n")
    rejected = [o for o in outs if isinstance(o, Rejection)]
    assert len(rejected) == 1 and len([o for o in outs if isinstance(o, Item)]) == 1
    assert reason in rejected[0].reason and rejected[0].field == field
    assert rejected[0].raw == row.encode() and rejected[0].where == "line 3"
    assert rejected[0].topic == topics.MR_UE


def test_unavailable_sentinel_is_missing_and_non_utf8_is_rejected() -> None:
    unavailable = ROW_5G.replace(",-95,-11", ",-95,2147483647")
    bad = ROW_LTE.encode().replace(b",B,11,", b",\xff\xfe,11,")
    outs = read_text(f"{HEADER}\n{unavailable}\n".encode() + bad + b"\r\n\n")
    items = [o for o in outs if isinstance(o, Item)]
    rejected = [o for o in outs if isinstance(o, Rejection)]
    assert len(items) == 1 and items[0].record.neighbours[0].rsrq_db is None  # type: ignore[attr-defined]
    assert len(rejected) == 1 and "not UTF-8" in rejected[0].reason and rejected[0].raw == bad


def test_unavailable_sentinel_in_float_form_is_missing_too() -> None:
    # as the real dataset writes it in the NR columns (e.g. Download/Driving/B_2020.01.16_09.56.56.csv)
    outs = read_text(f"{HEADER}\n{ROW_5G.replace(',-95,-11', ',-100.0,2147483647.0')}\n")
    assert [type(o) for o in outs] == [Item]
    nr = outs[0].record.neighbours[0]  # type: ignore[union-attr]
    assert nr.rsrp_dbm == -100.0 and nr.rsrq_db is None


def test_an_nr_leg_value_out_of_range_is_dropped_the_row_kept_and_counted() -> None:
    rows = [
        ROW_5G.replace(",-95,-11", ",-99.0,-204.0"),  # RSRQ placeholder: the NR RSRP stays
        ROW_5G.replace(",-95,-11", ",-99.0,-204.0").replace("14.37.05", "14.37.06"),
        ROW_5G.replace(",-95,-11", ",-205,-225").replace("14.37.05", "14.37.07"),  # nothing left of the leg
        ROW_5G.replace("14.37.05", "14.37.08"),
    ]
    outs = read_text(HEADER + "\n" + "\n".join(rows) + "\n")
    items = [o for o in outs if isinstance(o, Item)]
    notices = [o for o in outs if isinstance(o, Notice)]
    assert len(items) == 4 and not [o for o in outs if isinstance(o, Rejection)]
    legs = [i.record.neighbours for i in items]  # type: ignore[attr-defined]
    assert [(n.rsrp_dbm, n.rsrq_db) for n in legs[0]] == [(-99.0, None)]
    assert legs[2] == [] and legs[3][0].rsrq_db == -11
    assert all(i.record.serving.rsrp_dbm == -102 for i in items)  # type: ignore[attr-defined]
    assert len(notices) == 1 and notices[0].message.startswith("4 NR-leg values outside their range dropped")
    assert "NRxRSRQ=-204 outside -43.5..20 dB x2" in notices[0].message
    assert "NRxRSRP=-205 outside -157..-30 dBm x1" in notices[0].message


def test_file_without_the_raca_header_is_rejected_whole() -> None:
    outs = read_text("a,b,c\n1,2,3\n4,5,6\n")
    assert len(outs) == 1 and isinstance(outs[0], Rejection)
    assert outs[0].units == 2 and "header lacks column(s) Timestamp" in outs[0].reason


def test_rows_of_a_file_come_out_in_time_order() -> None:
    later = ROW_LTE.replace("14.37.03", "14.38.00")
    outs = read_text("\n".join([HEADER, later, ROW_5G, ROW_LTE]))
    times = [o.event_time for o in outs if isinstance(o, Item) and o.event_time is not None]
    assert times == sorted(times) and len(times) == 3


def test_same_ids_from_zip_folder_and_single_file(raca_zip: Path, raca_dir: Path) -> None:
    with zipfile.ZipFile(raca_zip) as zf:
        member = next(m for m in sorted(zf.namelist()) if m.endswith(".csv") and not m.startswith("__MACOSX"))
    single = raca_dir / member
    from_zip = next(iter(raca.read([raca_zip])))  # first file of the zip in sorted order
    from_dir = next(iter(raca.read([raca_dir])))
    from_file = next(iter(raca.read([single])))
    ids = [
        [getattr(o.record, "event_id") for o in s if isinstance(o, Item)][:50]  # noqa: B009
        for s in (from_zip, from_dir, from_file)
    ]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 50
    assert all(str(uuid.UUID(str(i))) == str(i) for i in ids[0])
