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
