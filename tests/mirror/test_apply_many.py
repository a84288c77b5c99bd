"""``ClusterMirror.apply_many`` and ``IngestDecoder.decode_many`` on their MR fast paths give what
one record at a time gives: the same mirror, counters and verdicts."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import orjson

from twin import topics
from twin.config import IngestSettings
from twin.ingest import IngestDecoder
from twin.mirror.cluster import ClusterMirror
from twin.synthetic import SyntheticNetwork

_Message = namedtuple("_Message", "key value")


def _events(n: int) -> list[_Message]:
    net = SyntheticNetwork(cells=7, seed=3)
    return [_Message(e.cell_key.encode(), e.to_json_bytes()) for e in net.mr_events(0, n)]


def _one_by_one(records: list[Any]) -> ClusterMirror:
    mirror = ClusterMirror("c")
    for r in records:
        mirror.apply(r)
    return mirror


def test_apply_many_is_apply_one_by_one() -> None:
    decoder = IngestDecoder(IngestSettings(), now=lambda: 1.8e9)
    mr = decoder.decode_many(topics.MR_UE, _events(300))
    pm = decoder.decode(topics.PM_CELL, None, orjson.dumps({
        "cellKey": mr[0][1], "measObjDn": "ManagedElement=1,NRCellDU=1", "measObjClass": "NRCellDU",
        "periodEnd": "2024-03-01T10:15:00Z", "granularityPeriodS": 900, "values": {"RRU.PrbTotDl": 63}}))
    records: list[Any] = [*mr[:100], pm, *mr[100:], *mr[:50]]  # 50 duplicates, a PM record between
    wire = orjson.loads(orjson.dumps(records))  # as they come back from the re-keyed topic
    for batch in (records, wire):
        expected = _one_by_one(batch)
        mirror = ClusterMirror("c")
        mirror.apply_many(batch)
        assert mirror == expected
        assert (mirror.applied, mirror.duplicates, mirror.touched) == (expected.applied, expected.duplicates, True)
        assert (mirror.applied, mirror.duplicates) == (301, 50)
        assert {k: c.changes for k, c in mirror.cells.items()} == {k: c.changes for k, c in expected.cells.items()}


def test_apply_many_of_nothing_touches_nothing() -> None:
    mirror = ClusterMirror("c")
    mirror.apply_many([])
    assert not mirror.touched and mirror.applied == 0


def test_decode_many_is_decode_one_by_one() -> None:
    good = _events(20)
    retyped = good[0].value.replace(b'"eventId":', b'"eventId":1,"x":', 1)
    batch = [*good[:5], _Message(b"k", None), _Message(b"k", b"{}"), _Message(b"k", b"\xff\xfe"),
             _Message(b"k", b"x" * (IngestSettings().max_payload_bytes + 1)), _Message(b"k", retyped), *good[5:]]
    decoder = IngestDecoder(IngestSettings(), now=lambda: 1.8e9)
    many = decoder.decode_many(topics.MR_UE, batch)
    assert many == [decoder.decode(topics.MR_UE, m.key, m.value) for m in batch]
    assert [type(x).__name__ for x in many[5:10]] == ["Rejection"] * 5
