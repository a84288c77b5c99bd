"""JSONL and Parquet of the project's own schemas: write, read back equal; malformed input is rejected."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from replay.model import Item, Outcome, Rejection, event_time_of, key_of
from replay.readers import jsonl, parquet
from tests.replay.util import T0, mr
from twin import topics
from twin.schemas import CmSnapshot, DeadLetter, PmCellRecord, PmRelationRecord, TopologyCell, WireModel


def sample_items() -> list[Item]:
    records: list[tuple[str, WireModel]] = [
        (topics.MR_UE, mr("nr:00101-00000a01c", 1.5)),
        (
            topics.PM_CELL,
            PmCellRecord(
                cell_key="nr:00101-00000a01c",
                meas_obj_dn="ManagedElement=g,GNBDUFunction=1,NRCellDU=1",
                meas_obj_class="NRCellDU",
                period_end=T0,
                granularity_period_s=900,
                values={"DRB.UEThpDl": 48211.5, "RRU.PrbTotDl": 63},
            ),
        ),
        (
            topics.PM_RELATION,
            PmRelationRecord(
                cell_key="nr:00101-00000a01c",
                target_cell_key="nr:00101-00000a02c",
                relation_dn="ManagedElement=g,GNBCUCPFunction=1,NRCellCU=1,NRCellRelation=7",
                meas_obj_dn="ManagedElement=g,GNBCUCPFunction=1,NRCellCU=1,NRCellRelation=7",
                meas_obj_class="NRCellRelation",
                period_end=T0,
                granularity_period_s=900,
                values={"MM.HoExeInterReq": 412},
            ),
        ),
        (
            topics.CM_SNAPSHOT,
            CmSnapshot.model_validate(
                {
                    "dn": "ManagedElement=g,GNBDUFunction=1,NRCellDU=1",
                    "class": "NRCellDU",
                    "attributes": {"nRPCI": 17, "arfcnDL": 632628},
                    "observedAt": "2024-03-01T09:00:00+01:00",
                }
            ),
        ),
        (topics.TOPOLOGY, TopologyCell(cell_key="nr:00101-00000a01c", pci=17, lat=45.0, lon=9.0)),
        (
            topics.DLQ,
            DeadLetter(
                reason="x",
                error_class="json",
                topic=topics.MR_UE,
                value_b64=base64.b64encode(b"\x00\xff").decode(),
                rejected_at=T0,
            ),
        ),
    ]
    return [Item(t, key_of(t, r), event_time_of(r), r) for t, r in records]


def items_of(outs: list[Outcome]) -> list[Item]:
    return [o for o in outs if isinstance(o, Item)]


@pytest.mark.parametrize("name", ["capture.jsonl", "capture.jsonl.gz", "capture.parquet"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    module = parquet if name.endswith(".parquet") else jsonl
    written = sample_items()
    assert module.write(path, written) == len(written)
    [stream] = module.read([tmp_path])
    back = list(stream)
    assert not [o for o in back if isinstance(o, Rejection)]
    assert [(i.topic, i.key, i.event_time, i.record) for i in items_of(back)] == [
        (i.topic, i.key, i.event_time, i.record) for i in written
    ]
    snapshot = next(i for i in items_of(back) if i.topic == topics.CM_SNAPSHOT)
    assert snapshot.key == "ManagedElement=g,GNBDUFunction=1,NRCellDU=1"  # CM snapshots are keyed by DN
    assert snapshot.event_time == datetime(2024, 3, 1, 8, tzinfo=UTC)


def test_malformed_jsonl_lines_are_rejected_with_reasons(tmp_path: Path) -> None:
    good = jsonl.envelope(topics.MR_UE, mr("nr:00101-00000a01c", 0))
    lines = [
        b'{"topic": "ran.mr.ue.v1", "record": {"cellKey": "nr:1-abc"',  # truncated JSON
        b'["not", "an", "object"]',
        b'{"topic": "ran.nope.v9", "record": {}}',
        b'{"topic": "ran.mr.ue.v1"}',
        b'{"topic": "ran.mr.ue.v1", "record": {"eventId": "x"}}',
        b'{"topic": "ran.mr.ue.v1", "key": 7, "record": ' + jsonl.orjson.dumps(good["record"]) + b"}",
        jsonl.orjson.dumps(good),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n\n")
    [stream] = jsonl.read([path])
    outs = list(stream)
    rejected = [o for o in outs if isinstance(o, Rejection)]
    assert len(items_of(outs)) == 1 and len(rejected) == 6
    reasons = [r.reason for r in rejected]
    assert reasons[0].startswith("not JSON") and "JSON list" in reasons[1]
    assert "topic='ran.nope.v9'" in reasons[2] and "no 'record'" in reasons[3]
    assert reasons[4].startswith("record.eventId='x'") and "key=7" in reasons[5]
    assert [r.raw for r in rejected] == lines[:6] and [r.where for r in rejected][:2] == ["line 1", "line 2"]
    assert rejected[4].topic == topics.MR_UE and rejected[0].topic == "unknown"


def test_malformed_parquet_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "garbage.parquet").write_bytes(b"PAR1 this is not parquet")
    pq.write_table(pa.table({"topic": ["ran.mr.ue.v1"], "value": ["{}"]}), tmp_path / "nocol.parquet")
    pq.write_table(
        pa.table({"topic": ["ran.mr.ue.v1", "ran.mr.ue.v1"], "record": ["{oops", '{"a": 1}']}),
        tmp_path / "rows.parquet",
    )
    outs = {
        p.name: list(s) for p, s in zip(sorted(tmp_path.iterdir()), parquet.read([tmp_path]), strict=True)
    }
    [garbage] = outs["garbage.parquet"]
    assert isinstance(garbage, Rejection) and "not a Parquet file" in garbage.reason
    [nocol] = outs["nocol.parquet"]
    assert isinstance(nocol, Rejection) and "lacks column(s) record" in nocol.reason and nocol.units == 1
    bad_json, bad_schema = outs["rows.parquet"]
    assert isinstance(bad_json, Rejection) and "record is not JSON" in bad_json.reason
    assert isinstance(bad_schema, Rejection) and bad_schema.reason.startswith("record.")
    assert bad_schema.where == "row 2"


PM_RECORD = {"cellKey": "nr:00101-00000a01c", "measObjDn": "ManagedElement=1,NRCellDU=1", "measObjClass": "NRCellDU",
             "periodEnd": "2024-03-01T10:15:00Z", "granularityPeriodS": 900, "suspect": False,
             "values": {"RRU.PrbTotDl": 63.5}}
COERCIBLE = [  # what Python-mode validation would coerce, the Kafka edge and the JSON Schema refuse
    (topics.PM_CELL, ("granularityPeriodS",), "900",
     "record.granularityPeriodS='900': Input should be a valid integer"),
    (topics.PM_CELL, ("suspect",), "yes", "record.suspect='yes': Input should be a valid boolean"),
    (topics.PM_CELL, ("values", "RRU.PrbTotDl"), True,
     "record.values.RRU.PrbTotDl='True': Input should be a valid number"),
    (topics.MR_UE, ("serving", "rsrpDbm"), "-101.4", "record.serving.rsrpDbm='-101.4': Input should be a valid number"),
    (topics.MR_UE, ("serving", "pci"), True, "record.serving.pci='True': Input should be a valid integer"),
    (topics.MR_UE, ("eventTime",), 1709284500,
     "record.eventTime='1709284500': Input should be an RFC 3339 date-time string with a UTC offset"),
]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("topic, path, value, reason", COERCIBLE)
def test_a_record_that_python_mode_would_coerce_is_rejected_naming_field_and_value(
        tmp_path: Path, fmt: str, topic: str, path: tuple[str, ...], value: object, reason: str) -> None:
    """Replay files carry the topics' JSON, so they are held to the Kafka edge's JSON types: a string
    is not a number, a number not a boolean or a time (before, "-101.4" passed and was published as a
    number). The valid record beside it still goes through."""
    base = jsonl.envelope(topics.MR_UE, mr("nr:00101-00000a01c", 0))["record"] if topic == topics.MR_UE \
        else PM_RECORD
    bad = jsonl.orjson.loads(jsonl.orjson.dumps(base))
    target = bad
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    rows = [(topic, bad), (topic, base)]
    if fmt == "jsonl":
        (tmp_path / "in.jsonl").write_bytes(b"".join(jsonl.orjson.dumps({"topic": t, "record": r}) + b"\n"
                                                     for t, r in rows))
        [stream] = jsonl.read([tmp_path])
    else:
        pq.write_table(pa.table({"topic": [t for t, _ in rows],
                                 "record": [jsonl.orjson.dumps(r).decode() for _, r in rows]}), tmp_path / "in.parquet")
        [stream] = parquet.read([tmp_path])
    rejected, accepted = list(stream)
    assert isinstance(rejected, Rejection) and rejected.reason.startswith(reason), rejected
    assert rejected.field == ".".join(path) and rejected.topic == topic
    assert isinstance(accepted, Item) and accepted.topic == topic


def test_a_parquet_record_column_holding_bytes_is_rejected(tmp_path: Path) -> None:
    pq.write_table(pa.table({"topic": [topics.PM_CELL], "record": [{"cellKey": b"\x00\xff"}]}), tmp_path / "s.parquet")
    [stream] = parquet.read([tmp_path])
    [out] = list(stream)
    assert isinstance(out, Rejection) and out.reason.startswith("record is not JSON data") and out.field == "record"
