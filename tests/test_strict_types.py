"""JSON types at the edge: what ingest accepts is what the exported JSON Schema says (issue 9, part 4).

``twin.schemas.base.json_typed`` makes every integer, number, boolean and time of every topic schema
validate JSON input as its JSON Schema type, on the model path and on both fast paths (the
``TypedDict`` mirror of PM and CM, the msgspec decoder of MR events, which hands what it refuses to
the model). Here: the five records ingest used to coerce, each rejected with a reason naming the
field and the value; what stays accepted (an integer for a number, ``900.0`` for an integer, free-form
CM values, RFC 3339 spellings); that no scalar of any topic schema is left lax; and that ingest and
the schema files ``twin schema export`` writes agree, record by record, over a sample of every JSON
type at every typed place of every ingest topic. The property tests of ``tests/test_schemas_fast.py``
do the same for generated records.
"""

from __future__ import annotations

import copy
import functools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import orjson
import pytest
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from twin import topics
from twin.cli import app
from twin.config import IngestSettings
from twin.ingest import IngestDecoder, Rejection
from twin.schemas import CmSnapshot, MrEvent, PmCellRecord
from twin.schemas.base import RFC3339_PATTERN
from twin.schemas.fast import dict_adapter, struct_decoder

Json = Any
NOW = datetime(2030, 1, 1, tzinfo=UTC).timestamp()

PM: dict[str, Json] = {
    "schemaVersion": "1", "cellKey": "nr:00101-00000a01c", "measObjDn": "ManagedElement=1,NRCellDU=1",
    "measObjClass": "NRCellDU", "periodEnd": "2024-03-01T10:15:00Z", "granularityPeriodS": 900, "suspect": False,
    "source": {"format": "3GPP-32.435", "vendor": "ExampleVendor", "fileName": "A.xml", "jobId": "j1"},
    "values": {"RRU.PrbTotDl": 63.5, "DRB.UEThpDl": 48211.5},
}
PMR: dict[str, Json] = {**PM, "measObjClass": "NRCellRelation", "targetCellKey": "nr:00101-00000a01d",
                        "relationDn": "ManagedElement=1,NRCellCU=1,NRCellRelation=2"}
CM: dict[str, Json] = {
    "schemaVersion": "1", "dn": "ManagedElement=1,NRCellDU=1", "class": "NRCellDU", "cellKey": "nr:00101-00000a01c",
    "attributes": {"nRPCI": 17, "administrativeState": "UNLOCKED"}, "observedAt": "2024-03-01T10:15:00+01:00",
    "sourceSystem": "oss-1",
}
CMN: dict[str, Json] = {
    "schemaVersion": "1", "notificationId": "n1", "notificationType": "notifyMOIAttributeValueChanges",
    "eventTime": "2024-03-01T10:15:00Z", "systemDn": "SubNetwork=1", "href": "https://oss/1",
    "dn": "ManagedElement=1,NRCellDU=1", "class": "NRCellDU", "cellKey": "nr:00101-00000a01c",
    "attributeListValueChanges": {"nRPCI": 18}, "oldValues": {"nRPCI": 17},
}
MR: dict[str, Json] = {
    "schemaVersion": "1", "eventId": "0b9c2d3e-5f0a-4d8e-9a61-2f7b6c1d4e55", "eventTime": "2024-03-01T10:15:00+01:00",
    "ingestTime": "2024-03-01T09:15:01Z", "cellKey": "nr:00101-00000a01c", "servingDn": "ManagedElement=1,NRCellDU=1",
    "ueRef": "u1", "source": "REPLAY", "trigger": "A3", "rat": "NR",
    "serving": {"cellKey": "nr:00101-00000a01c", "rat": "NR", "pci": 7, "arfcn": 632628, "ssbIndex": 3,
                "rsrpDbm": -95.5, "rsrqDb": -11.0, "sinrDb": 12.0, "rsrpIdx": 62, "rsrqIdx": 65, "sinrIdx": 71},
    "neighbours": [{"pci": 8, "arfcn": 632628, "rsrpDbm": -101.0}],
    "ue": {"phrDb": 10.0, "timingAdvance": 12, "dlThroughputKbps": 5000.0, "ulThroughputKbps": 800.0, "cqi": 11},
    "location": {"lat": 53.35, "lon": -6.26, "accuracyM": 5.0, "method": "GNSS"},
}
BASE = {topics.PM_CELL: PM, topics.PM_RELATION: PMR, topics.CM_SNAPSHOT: CM, topics.CM_NOTIFICATIONS: CMN,
        topics.MR_UE: MR}


def decode(topic: str, doc: Json) -> Any:
    return IngestDecoder(IngestSettings(), now=lambda: NOW).decode(topic, None, json.dumps(doc).encode())


def changed(doc: dict[str, Json], path: tuple[str | int, ...], value: Json) -> dict[str, Json]:
    out = copy.deepcopy(doc)
    target: Any = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A JSON Schema validator per topic, from the files ``twin schema export`` writes."""
    out: Path = tmp_path_factory.mktemp("schemas")
    result = CliRunner().invoke(app, ["schema", "export", str(out)])
    assert result.exit_code == 0, result.output
    return {t: jsonschema.Draft202012Validator(json.loads((out / f"{t}.schema.json").read_text()))
            for t in topics.SCHEMAS}


def test_the_base_records_are_accepted_and_schema_valid(exported: dict[str, Any]) -> None:
    for topic, doc in BASE.items():
        assert not isinstance(decode(topic, doc), Rejection), topic
        assert exported[topic].is_valid(doc), topic


# -- the five records ingest used to coerce -------------------------------------------------------------

FIVE = [
    (topics.PM_CELL, ("granularityPeriodS",), "900",
     "field granularityPeriodS: Input should be a valid integer (value '900')"),
    (topics.PM_CELL, ("suspect",), "yes", "field suspect: Input should be a valid boolean (value 'yes')"),
    (topics.PM_CELL, ("values", "RRU.PrbTotDl"), True,
     "field values.RRU.PrbTotDl: Input should be a valid number (value True)"),
    (topics.MR_UE, ("serving", "rsrpDbm"), "-101.4",
     "field serving.rsrpDbm: Input should be a valid number (value '-101.4')"),
    (topics.MR_UE, ("eventTime",), 1709284500,
     "field eventTime: Input should be an RFC 3339 date-time string with a UTC offset (value 1709284500)"),
]


@pytest.mark.parametrize(("topic", "path", "value", "reason"), FIVE, ids=[".".join(map(str, c[1])) for c in FIVE])
def test_the_five_coerced_examples_are_rejected_naming_field_and_value(
        topic: str, path: tuple[str, ...], value: Json, reason: str, exported: dict[str, Any]) -> None:
    doc = changed(BASE[topic], path, value)
    raw = json.dumps(doc).encode()
    out = decode(topic, doc)
    assert out == Rejection(reason, "schema")
    assert not exported[topic].is_valid(doc)
    model = topics.SCHEMAS[topic]
    with pytest.raises(ValidationError):
        model.model_validate_json(raw)  # the model path
    if topic == topics.MR_UE:
        with pytest.raises(ValueError):  # msgspec.ValidationError: the fast path refuses it too
            struct_decoder(model).decode(raw)
    else:
        with pytest.raises(ValidationError):
            dict_adapter(model).validate_json(raw)


@pytest.mark.parametrize("token", ["Infinity", "1e999", "NaN"])
@pytest.mark.parametrize("path", [("ue", "dlThroughputKbps"), ("ue", "phrDb"), ("location", "accuracyM")])
def test_a_number_that_json_cannot_hold_is_rejected_naming_the_field(path: tuple[str, str], token: str) -> None:
    """A throughput of 1e999 (infinity once parsed) used to pass, having no upper bound, and crash the
    mirror (``round(inf)``); JSON has no such numbers, so both paths refuse them wherever a number is."""
    raw = json.dumps(changed(MR, path, 12345.0)).encode().replace(b"12345.0", token.encode())
    out = IngestDecoder(IngestSettings(), now=lambda: NOW).decode(topics.MR_UE, None, raw)
    assert isinstance(out, Rejection), out
    assert out.reason.startswith(f"field {'.'.join(path)}: "), out.reason
    with pytest.raises(ValueError):
        struct_decoder(topics.SCHEMAS[topics.MR_UE]).decode(raw)


@pytest.mark.parametrize("topic", topics.INGEST_TOPICS)
def test_an_epoch_is_not_a_time_on_any_ingest_topic(topic: str, exported: dict[str, Any]) -> None:
    field = {topics.CM_SNAPSHOT: "observedAt", topics.CM_NOTIFICATIONS: "eventTime", topics.MR_UE: "eventTime"}.get(
        topic, "periodEnd")
    for epoch in (1709284500, 1709284500.25, 1709284500000, "1709284500", "1709284500.25"):
        out = decode(topic, {**BASE[topic], field: epoch})
        assert out == Rejection(f"field {field}: Input should be an RFC 3339 date-time string with a UTC offset "
                                f"(value {epoch!r})", "schema")
        assert not exported[topic].is_valid({**BASE[topic], field: epoch})


# -- what stays accepted ------------------------------------------------------------------------------------


def test_an_integer_is_a_number_and_an_integral_number_an_integer(exported: dict[str, Any]) -> None:
    """JSON Schema's 'number' includes integers, and its 'integer' is any number without a fraction."""
    pm = {**PM, "granularityPeriodS": 900.0, "values": {"RRU.PrbTotDl": 63, "DRB.UEThpDl": -0}}
    out = decode(topics.PM_CELL, pm)
    assert not isinstance(out, Rejection) and out[2]["gp"] == 900 and type(out[2]["gp"]) is int
    assert out[2]["v"] == {"RRU.PrbTotDl": 63.0, "DRB.UEThpDl": 0.0}
    assert exported[topics.PM_CELL].is_valid(pm)
    out = decode(topics.PM_CELL, {**PM, "granularityPeriodS": 900.5})
    assert out == Rejection("field granularityPeriodS: Input should be a valid integer, got a number with a "
                            "fractional part (value 900.5)", "schema")
    # MR: msgspec refuses 7.0 for an integer, the model (whose verdict counts) takes it as 7
    mr = changed(changed(MR, ("serving", "pci"), 7.0), ("serving", "rsrpDbm"), -95)
    with pytest.raises(ValueError):
        struct_decoder(MrEvent).decode(json.dumps(mr).encode())
    assert decode(topics.MR_UE, mr) == decode(topics.MR_UE, changed(mr, ("serving", "pci"), 7))
    assert exported[topics.MR_UE].is_valid(mr)


@pytest.mark.parametrize("topic", [topics.CM_SNAPSHOT, topics.CM_NOTIFICATIONS])
def test_free_form_cm_values_stay_free_form(topic: str, exported: dict[str, Any]) -> None:
    field = "attributes" if topic == topics.CM_SNAPSHOT else "attributeListValueChanges"
    anything = {"asString": "900", "asBool": "yes", "flag": True, "epoch": 1709284500, "n": 1.5, "none": None,
                "list": [1, "2", False], "nested": {"t": 1709284500, "s": "-101.4"}}
    doc = {**BASE[topic], field: anything}
    out = decode(topic, doc)
    assert not isinstance(out, Rejection) and out[2]["a"] == anything
    assert exported[topic].is_valid(doc)


TIMES_OK = ["2024-03-01T10:15:00Z", "2024-03-01T10:15:00+01:00", "2024-03-01T10:15:00.123456-05:30",
            "2024-03-01t10:15:00z", "2024-03-01 10:15:00Z", "2024-03-01T10:15:00+0100", "2024-03-01T10:15:00.5Z"]
TIMES_BAD = ["2024-03-01T10:15:00", "2024-03-01", "2024-03-01T10:15Z", "2024-03-01_10:15:00Z", "1709284500",
             "2024-03-01T10:15:00+01", "2024-03-01T10:15:00 Z", "２０２４-03-01T10:15:00Z", ""]


def test_times_are_rfc3339_strings_with_an_offset(exported: dict[str, Any]) -> None:
    """Both ingest paths and the exported schema (``RFC3339_PATTERN``) agree on the spellings; the two
    ISO 8601 ones (space, +hhmm) are accepted because the fast MR decoder parses them."""
    for time in TIMES_OK:
        for topic, field in ((topics.PM_CELL, "periodEnd"), (topics.MR_UE, "eventTime")):
            doc = {**BASE[topic], field: time}
            assert not isinstance(decode(topic, doc), Rejection), (time, topic)
            assert exported[topic].is_valid(doc), time
        struct_decoder(MrEvent).decode(json.dumps({**MR, "eventTime": time}).encode())  # the fast MR path
    for time in TIMES_BAD:
        for topic, field in ((topics.PM_CELL, "periodEnd"), (topics.MR_UE, "eventTime")):
            doc = {**BASE[topic], field: time}
            out = decode(topic, doc)
            assert out == Rejection(f"field {field}: Input should be an RFC 3339 date-time string with a UTC "
                                    f"offset (value {time!r})", "schema"), out
            assert not exported[topic].is_valid(doc), time
    assert exported[topics.PM_CELL].schema["properties"]["periodEnd"] == {
        "format": "date-time", "pattern": RFC3339_PATTERN, "title": "Periodend", "type": "string"}


def test_python_input_is_validated_as_declared() -> None:
    """The rule is for JSON, what crosses the wire: code building records from Python values (enum
    values as strings, datetimes, NumPy numbers) is unaffected, and serialises the JSON types."""
    record = PmCellRecord.model_validate({
        **PM, "periodEnd": datetime(2024, 3, 1, 10, 15, tzinfo=UTC), "granularityPeriodS": np.int64(900),
        "values": {"RRU.PrbTotDl": np.float32(63.5)},
    })
    assert orjson.loads(record.to_json_bytes())["granularityPeriodS"] == 900
    snap = CmSnapshot.model_validate({**CM, "observedAt": "2024-03-01T10:15:00+01:00"})
    assert snap.observed_at == datetime(2024, 3, 1, 9, 15, tzinfo=UTC)


# -- no scalar left lax ---------------------------------------------------------------------------------------

SCALARS = {"int", "float", "bool", "datetime"}


def _lax_scalars(node: Json, where: str = "") -> list[str]:
    """Places in a core schema where an int, float, bool or datetime is validated as declared for JSON
    input too (outside the JSON branch of a json_typed rewrite), or where a numeric constraint was left
    to a Python validator."""
    found: list[str] = []
    if isinstance(node, dict):
        kind = node.get("type")
        if not isinstance(kind, str):  # a mapping of field names to fields (one may be named 'type')
            return [f for name, value in node.items() for f in _lax_scalars(value, f"{where}/{name}")]
        if kind == "json-or-python":
            json_branch = node["json_schema"]
            strict = json_branch.get("strict") is True or json_branch["type"] == "chain"
            return [] if strict else [f"{where} (json branch not strict)"]
        if kind in SCALARS:
            return [where]
        function = node.get("function", {}).get("function") if isinstance(node.get("function"), dict) else None
        if isinstance(function, functools.partial) and "_validators" in function.func.__module__:
            found.append(f"{where} (constraint in a Python validator: {function.func.__name__})")
        for key, value in node.items():
            if key not in ("serialization", "metadata", "default", "cls", "config"):
                found += _lax_scalars(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _lax_scalars(value, f"{where}/{i}")
    return found


@pytest.mark.parametrize("topic", list(topics.SCHEMAS))
def test_no_scalar_of_a_topic_schema_is_lax_for_json(topic: str) -> None:
    model: type[BaseModel] = topics.SCHEMAS[topic]
    assert _lax_scalars(model.__pydantic_core_schema__) == []
    if topic in topics.INGEST_TOPICS:
        assert _lax_scalars(dict_adapter(model).core_schema) == []


# -- ingest and the exported schema agree, place by place -------------------------------------------------------

SAMPLE: list[Json] = ["x", "", "900", "-101.4", "true", "yes", "2024-03-01T10:15:00Z", "1709284500",
                      0, -1, 7, 900, 1709284500, 1.5, -101.4, 63.0, True, False, None, [], [1], {}, {"a": 1}]


def _places(doc: Json, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out: list[tuple[str | int, ...]] = []
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        out.append((*prefix, key))
        out += _places(value, (*prefix, key))
    return out


@pytest.mark.parametrize("topic", topics.INGEST_TOPICS)
def test_accepted_by_ingest_is_valid_against_the_exported_schema(topic: str, exported: dict[str, Any]) -> None:
    """Every value of ``SAMPLE`` (every JSON type, with look-alikes) at every place of a full record:
    ingest accepts the record exactly when the exported schema says it is valid. Left out: an MR cell
    measurement with neither pci nor cellKey (a model validator the JSON Schema does not state); the
    other rule outside the schema, a negative cumulative counter, does not occur with these values."""
    base = BASE[topic]
    checked, mismatches = 0, []
    for place in _places(base):
        for value in SAMPLE:
            doc = changed(base, place, value)
            out = decode(topic, doc)
            accepted = not isinstance(out, Rejection)
            if not accepted:
                assert out.error_class == "schema", (place, value, out)
                if "needs pci or cellKey" in out.reason:  # the one model rule JSON Schema does not state
                    continue
            valid = exported[topic].is_valid(doc)
            checked += 1
            if accepted != valid:
                mismatches.append((place, value, out))
    assert not mismatches, mismatches[:10]
    assert checked > 100
