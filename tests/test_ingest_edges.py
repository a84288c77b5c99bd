"""Ingest edges found by an audit: a time whose UTC overflows is a rejection naming the field (not an
``OverflowError`` that crashed the re-keying stage on every redelivery), and an LTE serving cell's
reporting indices (TS 36.133's grids) reach the mirror on NR's grid (TS 38.133), which its RSRP and
RSRQ histograms use."""

from __future__ import annotations

import json
from typing import Any

import pytest

from twin import topics
from twin.config import IngestSettings
from twin.ingest import IngestDecoder, Rejection
from twin.mirror.mr_stats import rsrp_dbm_of_index, rsrq_db_of_index

MR: dict[str, Any] = {
    "eventId": "0b9c2d3e-5f0a-4d8e-9a61-2f7b6c1d4e55", "eventTime": "2024-03-01T10:15:00Z",
    "cellKey": "lte:27203-0000101", "ueRef": "u1", "source": "REPLAY",
    "serving": {"cellKey": "lte:27203-0000101", "rat": "LTE", "rsrpDbm": -100.0, "rsrqDb": -10.0},
}


def _decode(record: dict[str, Any]) -> Any:
    decoder = IngestDecoder(IngestSettings(), now=lambda: 1.8e9)
    one = decoder.decode(topics.MR_UE, None, json.dumps(record).encode())
    many = decoder.decode_many(topics.MR_UE, [type("R", (), {"key": None, "value": json.dumps(record).encode()})()])
    assert many == [one]  # the batch path and the single one agree
    return one


@pytest.mark.parametrize("field", ["eventTime", "ingestTime"])
def test_a_time_outside_the_utc_years_is_a_rejection_naming_it(field: str) -> None:
    out = _decode({**MR, "eventId": "not-a-uuid", field: "0001-01-01T00:00:00+05:00"})
    assert isinstance(out, Rejection) and out.error_class == "schema", out
    assert f"field {field}" in out.reason and "0001-01-01T00:00:00+05:00" in out.reason


def test_an_lte_serving_cells_indices_reach_the_mirror_on_the_nr_grid() -> None:
    from_dbm = _decode(MR)
    reported = _decode({**MR, "serving": {**MR["serving"], "rsrpIdx": 41, "rsrqIdx": 20}})  # TS 36.133: -100, -10
    for out in (from_dbm, reported):
        assert not isinstance(out, Rejection), out
        _event, _at, rsrp, rsrq, *_ = out[2]
        assert rsrp_dbm_of_index(rsrp) == pytest.approx(-100.0, abs=0.5)
        assert rsrq_db_of_index(rsrq) == pytest.approx(-10.0, abs=0.25)
    nr = _decode({**MR, "serving": {"pci": 7, "rsrpIdx": 41, "rsrqIdx": 20}})  # no RAT: NR's grid, as reported
    assert nr[2][2:4] == (41, 20)


@pytest.mark.parametrize(("topic", "record", "field"), [
    (topics.MR_UE, {**MR, "eventTime": "1970-01-01T00:00:00Z"}, "eventTime"),
    (topics.PM_CELL, {"cellKey": "nr:00101-00000a01c", "measObjDn": "ManagedElement=1,NRCellDU=1",
                      "measObjClass": "NRCellDU", "periodEnd": "1999-12-31T23:45:00Z", "granularityPeriodS": 900,
                      "values": {"RRU.PrbTotDl": 63.0}}, "periodEnd"),
])
def test_an_event_time_before_the_earliest_is_rejected_naming_it(topic: str, record: dict[str, Any],
                                                                  field: str) -> None:
    decoder = IngestDecoder(IngestSettings(), now=lambda: 1.8e9)
    out = decoder.decode(topic, None, json.dumps(record).encode())
    assert isinstance(out, Rejection) and out.error_class == "past_timestamp", out
    assert f"field {field}" in out.reason and "earliest_event_time_s 946684800" in out.reason
    lenient = IngestDecoder(IngestSettings(earliest_event_time_s=-1e12), now=lambda: 1.8e9)
    assert not isinstance(lenient.decode(topic, None, json.dumps(record).encode()), Rejection)
