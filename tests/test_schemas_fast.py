"""The hot-path dict validators accept and reject exactly what the pydantic models do.

``twin.schemas.fast.dict_adapter(Model)`` validates wire JSON into plain dicts through a
``TypedDict`` mirror of the model. It is what ``IngestDecoder`` runs on every record, while the
models are the published contract (JSON Schema export, replay). Hypothesis generates valid records
of every ingest topic model and mutates them (drop a field, wrong JSON type, odd value, out-of-range
number, bad enum value, bad cell key, naive time, extra field, NaN/inf, truncation, arbitrary values)
and checks both validators give the same verdict, at the same error locations.

A *retyped* record has one value of another JSON type than the exported JSON Schema declares for
its place (a string for a number, a number for a boolean, a boolean for a number, a number for a
time, ...): ``IngestDecoder`` must reject it with a reason naming that field, on every topic, and the
exported JSON Schema must reject it too (``twin.schemas.base.json_typed``; more in
``tests/test_strict_types.py``).

Known, deliberate differences, each pinned down by a test of its own:

* model validators do not run in the fast path (``CellMeas`` needs ``pci`` or ``cellKey``):
  ``IngestDecoder`` re-checks, so such an MR event is still rejected;
* the models also accept a field's Python name (``cell_key``) beside its wire alias
  (``populate_by_name``); the fast path, like the exported JSON Schema, accepts only the alias.

The file also covers the reasons ``IngestDecoder`` gives (each names the field and the value) and
the aggregation semantics of ``twin.measurements``.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import types
import typing
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonschema
import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from twin import topics
from twin.cells import CELL_KEY_PATTERN, is_cell_key, parse_cell_key
from twin.config import IngestSettings
from twin.ingest import IngestDecoder, Rejection
from twin.measurements import CATALOGUE, Method, aggregate, base_name, is_counter, method_of
from twin.mirror.cell import CellMirror
from twin.records import MR_FIELDS
from twin.schemas import (
    CmNotificationType,
    MeasObjClass,
    MrEvent,
    MrSource,
    PmCellRecord,
    Rat,
)
from twin.schemas.fast import dict_adapter, struct_decoder
from twin.schemas.mr import LocationMethod

Json = Any
Path_ = tuple[str | int, ...]

INGEST_MODELS: dict[str, type[BaseModel]] = {t: topics.SCHEMAS[t] for t in topics.INGEST_TOPICS}
NOW = datetime(2030, 1, 1, tzinfo=UTC).timestamp()  # after every generated time (they end in 2029)

# -- valid records -------------------------------------------------------------------------------

ZONES = [UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5, minutes=-30)),
         timezone(timedelta(hours=13, minutes=45))]
aware_times = st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2029, 12, 30),  # after the earliest
                           timezones=st.sampled_from(ZONES)).map(lambda d: d.isoformat())
cell_keys = st.from_regex(CELL_KEY_PATTERN, fullmatch=True)
short_text = st.text(min_size=1, max_size=24)
finite = st.floats(allow_nan=False, allow_infinity=False)
json_leaf = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | finite | st.text(max_size=12)
json_any = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
meas_names = st.sampled_from(sorted(CATALOGUE)) | st.sampled_from(
    ["L1M.SS-RSRP.Bin12", "DRB.UEThpDl.010003e8", "VS.Vendor.Counter"]) | st.text(min_size=1, max_size=30)


def _optional(draw: st.DrawFn, out: dict[str, Json], key: str, strategy: st.SearchStrategy[Json],
              nullable: bool = True) -> None:
    """Leave ``key`` out, set it to null (where the type allows None) or to a drawn value."""
    choice = draw(st.sampled_from(["absent", "null", "value"] if nullable else ["absent", "value"]))
    if choice == "null":
        out[key] = None
    elif choice == "value":
        out[key] = draw(strategy)


@st.composite
def pm_records(draw: st.DrawFn, relation: bool = False) -> dict[str, Json]:
    rec: dict[str, Json] = {
        "cellKey": draw(cell_keys),
        "measObjDn": draw(short_text),
        "measObjClass": draw(st.sampled_from([m.value for m in MeasObjClass])),
        "periodEnd": draw(aware_times),
        "granularityPeriodS": draw(st.integers(1, 86400)),
        "values": draw(st.dictionaries(meas_names, finite, max_size=6)),
    }
    _optional(draw, rec, "schemaVersion", st.just("1"), nullable=False)
    _optional(draw, rec, "suspect", st.booleans(), nullable=False)
    source: dict[str, Json] = {}
    for key in ("format", "vendor", "fileName", "streamId", "jobId"):
        _optional(draw, source, key, short_text)
    if draw(st.booleans()):
        source["vendorSpecific"] = draw(json_any)  # PmSource is open: vendors add fields
    _optional(draw, rec, "source", st.just(source), nullable=False)
    if relation:
        rec["targetCellKey"] = draw(cell_keys)
        rec["relationDn"] = draw(short_text)
    return rec


@st.composite
def cm_snapshots(draw: st.DrawFn) -> dict[str, Json]:
    rec: dict[str, Json] = {
        "dn": draw(short_text),
        "class": draw(short_text),
        "attributes": draw(st.dictionaries(st.text(max_size=12), json_any, max_size=4)),
        "observedAt": draw(aware_times),
    }
    _optional(draw, rec, "cellKey", cell_keys)
    _optional(draw, rec, "sourceSystem", st.text(max_size=20), nullable=False)
    _optional(draw, rec, "schemaVersion", st.just("1"), nullable=False)
    return rec


@st.composite
def cm_notifications(draw: st.DrawFn) -> dict[str, Json]:
    rec: dict[str, Json] = {
        "notificationId": draw(short_text),
        "notificationType": draw(st.sampled_from([t.value for t in CmNotificationType])),
        "eventTime": draw(aware_times),
        "dn": draw(short_text),
        "cellKey": draw(cell_keys),
    }
    for key in ("systemDn", "href", "class"):
        _optional(draw, rec, key, short_text)
    for key in ("attributeListValueChanges", "oldValues"):
        _optional(draw, rec, key, st.dictionaries(st.text(max_size=12), json_any, max_size=3), nullable=False)
    return rec


@st.composite
def cell_meas(draw: st.DrawFn, identified: bool = True) -> dict[str, Json]:
    meas: dict[str, Json] = {}
    if identified:
        ident = draw(st.sampled_from(["pci", "cellKey", "both"]))
        if ident in ("pci", "both"):
            meas["pci"] = draw(st.integers(0, 1007))
        if ident in ("cellKey", "both"):
            meas["cellKey"] = draw(cell_keys)
    _optional(draw, meas, "rat", st.sampled_from([r.value for r in Rat]))
    _optional(draw, meas, "arfcn", st.integers(0, 3_279_165))
    _optional(draw, meas, "ssbIndex", st.integers(0, 63))
    _optional(draw, meas, "rsrpDbm", st.floats(-157, -30))
    _optional(draw, meas, "rsrqDb", st.floats(-43.5, 20))
    _optional(draw, meas, "sinrDb", st.floats(-23.5, 40))
    for key in ("rsrpIdx", "rsrqIdx", "sinrIdx"):
        _optional(draw, meas, key, st.integers(0, 127))
    return meas


@st.composite
def mr_events(draw: st.DrawFn) -> dict[str, Json]:
    rec: dict[str, Json] = {
        "eventId": str(draw(st.uuids())),
        "eventTime": draw(aware_times),
        "cellKey": draw(cell_keys),
        "ueRef": draw(short_text),
        "source": draw(st.sampled_from([s.value for s in MrSource])),
        "serving": draw(cell_meas()),
    }
    _optional(draw, rec, "ingestTime", aware_times)
    _optional(draw, rec, "servingDn", short_text)
    _optional(draw, rec, "trigger", st.text(max_size=32))
    _optional(draw, rec, "rat", st.sampled_from([r.value for r in Rat]))
    _optional(draw, rec, "neighbours", st.lists(cell_meas(), max_size=4), nullable=False)
    ue: dict[str, Json] = {}
    _optional(draw, ue, "phrDb", finite)
    _optional(draw, ue, "timingAdvance", st.integers(0, 3846))
    _optional(draw, ue, "dlThroughputKbps", st.floats(0, 1e7))
    _optional(draw, ue, "ulThroughputKbps", st.floats(0, 1e7))
    _optional(draw, ue, "cqi", st.integers(0, 15))
    _optional(draw, rec, "ue", st.just(ue))
    location: dict[str, Json] = {"lat": draw(st.floats(-90, 90)), "lon": draw(st.floats(-180, 180))}
    _optional(draw, location, "accuracyM", st.floats(0, 1e5))
    _optional(draw, location, "method", st.sampled_from([m.value for m in LocationMethod]))
    _optional(draw, rec, "location", st.just(location))
    return rec


VALID: dict[str, Callable[[], st.SearchStrategy[dict[str, Json]]]] = {
    topics.PM_CELL: lambda: pm_records(),
    topics.PM_RELATION: lambda: pm_records(relation=True),
    topics.CM_SNAPSHOT: cm_snapshots,
    topics.CM_NOTIFICATIONS: cm_notifications,
    topics.MR_UE: mr_events,
}

# -- mutations -----------------------------------------------------------------------------------

TIME_FIELDS = {"periodEnd", "observedAt", "eventTime", "ingestTime"}
CELL_KEY_FIELDS = {"cellKey", "targetCellKey"}
ENUM_FIELDS = {"measObjClass", "notificationType", "source", "rat", "method"}
WRONG_TYPES: list[Json] = ["x", "", 0, -1, 1.5, True, False, None, [], {}, [1], {"a": 1}, "12", "1.5",
                           10**30, "2024-03-01T10:00:00Z"]
OUT_OF_RANGE: list[Json] = [-1, 0, -1e9, 1e9, 2**63, 2**64, 128, 1008, 86401, -157.5, -29.9, 40.5, -23.6,
                            20.5, -43.6, 91, -181, 64, 16, 1e308]
BAD_ENUMS = ["BOGUS", "", "nrcelldu", "NRCellDU ", "rrc_meas_report", "nr", "notifymoicreation", "Beam2"]
NEAR_MISS_KEYS = ["NR:00101-00000a01c", "nr:00101-00000A01C", "nr:0010-00000a01c", "nr:00101-00000a01c\n",
                  "nr:00101-00000a01c0a", "nr:00101-00000a", " nr:00101-00000a01c", "nr-00101-00000a01c",
                  "umts:00101-00000a01c", "nr:0010123-00000a01c", "nr:00101-00000a01g", ""]
NAIVE_TIMES = ["2024-03-01T10:15:00", "2024-03-01 10:15:00", "2024-03-01T10:15:00.123456", "2024-03-01"]
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]

# Values of each JSON type, with the look-alikes of other types: numeric, boolean and RFC 3339 strings,
# an epoch integer, numbers with a fraction (an integral float is an integer to JSON Schema).
VALUES_BY_JSON_TYPE: dict[str, list[Json]] = {
    "string": ["x", "", "900", "-101.4", "true", "2024-03-01T10:15:00Z"],
    "integer": [0, -1, 900, 1709284500],
    "number": [1.5, -101.4],
    "boolean": [True, False],
    "null": [None],
    "array": [[], [1]],
    "object": [{}, {"a": 1}],
}


@functools.cache
def exported_schema(topic: str) -> dict[str, Json]:
    """The topic's JSON Schema as ``twin schema export`` writes it (less its $id and $schema)."""
    schema: dict[str, Json] = INGEST_MODELS[topic].model_json_schema(by_alias=True)
    return schema


def _resolve(root: dict[str, Json], node: Json) -> Json:
    while isinstance(node, dict) and "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def declared_types(topic: str, path: Path_) -> frozenset[str] | None:
    """The JSON types the exported schema allows at ``path``; None where it allows anything (free-form
    CM attributes and change values, vendor extras)."""
    root = exported_schema(topic)
    node: Json = root
    for step in path:
        node = _resolve(root, node)
        if isinstance(node, dict) and "anyOf" in node:  # X | None: step into X
            node = next(_resolve(root, b) for b in node["anyOf"] if b.get("type") != "null")
        if not isinstance(node, dict):
            return None
        if isinstance(step, int):
            node = node.get("items")
        else:
            node = node.get("properties", {}).get(step, node.get("additionalProperties"))
        if not isinstance(node, dict):  # None, or additionalProperties: true
            return None
    return _types(root, node)


def _types(root: dict[str, Json], node: Json) -> frozenset[str] | None:
    node = _resolve(root, node)
    if "anyOf" in node:
        parts = [_types(root, b) for b in node["anyOf"]]
        return None if any(p is None for p in parts) else frozenset().union(*(p for p in parts if p))
    return frozenset([node["type"]]) if "type" in node else None


def wrong_values(declared: frozenset[str]) -> list[Json]:
    """Values whose JSON type the declared types do not include ('number' includes 'integer')."""
    allowed = declared | ({"integer"} if "number" in declared else set())
    return [v for t, values in VALUES_BY_JSON_TYPE.items() if t not in allowed for v in values]


def check_retype_rejected(topic: str, path: Path_, value: Json, raw: bytes) -> None:
    """A retyped record is rejected by ingest naming the field (and the value), and by the schema."""
    out = IngestDecoder(IngestSettings(max_payload_bytes=1 << 30), now=lambda: NOW).decode(topic, None, raw)
    where = ".".join(str(p) for p in path)
    assert isinstance(out, Rejection), f"{topic}: accepted {value!r} at {where}: {raw!r}"
    assert out.error_class == "schema", out
    assert f"field {where}: " in out.reason, (where, out.reason)
    if not isinstance(value, dict | list):
        assert f"(value {value!r})" in out.reason, (value, out.reason)
    assert not schema_validator(topic).is_valid(json.loads(raw)), f"schema accepts {value!r} at {where}"


@functools.cache
def schema_validator(topic: str) -> Any:
    return jsonschema.Draft202012Validator(exported_schema(topic))


def _python_names() -> set[str]:
    """Python field names that differ from their wire alias, in any model reachable from the topics."""
    names: set[str] = set()
    seen: set[type[BaseModel]] = set()

    def walk(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, info in model.model_fields.items():
            if info.alias and info.alias != name:
                names.add(name)
            for arg in _type_args(info.annotation):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    walk(arg)

    for model in INGEST_MODELS.values():
        walk(model)
    return names


def _type_args(tp: Any) -> list[Any]:
    out = [tp]
    for arg in getattr(tp, "__args__", ()):
        out += _type_args(arg)
    return out


PYTHON_NAMES = _python_names()
extra_keys = st.text(min_size=1, max_size=12).filter(lambda k: k not in PYTHON_NAMES)


def _paths(node: Json, prefix: Path_ = ()) -> list[Path_]:
    out: list[Path_] = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((*prefix, i))
            out += _paths(v, (*prefix, i))
    return out


def _parent(doc: Json, path: Path_) -> Json:
    for step in path[:-1]:
        doc = doc[step]
    return doc


class Sentinel(str):
    """A string that ``_dump`` writes as a bare JSON token (NaN, Infinity, 1e999)."""


def _dump(doc: Json) -> bytes:
    text = json.dumps(doc, default=lambda o: f"@@{o}@@", ensure_ascii=False)
    for token in NON_FINITE:
        text = text.replace(f'"@@{token}@@"', token)
    return text.encode()


def _sentinels(doc: Json) -> Json:
    if isinstance(doc, Sentinel):
        return _Raw(str(doc))
    if isinstance(doc, dict):
        return {k: _sentinels(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_sentinels(v) for v in doc]
    return doc


class _Raw:
    def __init__(self, token: str) -> None:
        self.token = token

    def __str__(self) -> str:
        return self.token


def encode(doc: Json) -> bytes:
    return _dump(_sentinels(doc))


MUTATIONS = ["drop", "retype", "oddvalue", "range", "enum", "cellkey", "naive", "extra", "nonfinite", "any"]


@st.composite
def mutate(draw: st.DrawFn, topic: str, doc: dict[str, Json], kind: str | None = None) -> tuple[str, Path_, Json]:
    """One mutation of a copy of ``doc`` (a record of ``topic``): its kind, the path it touched and the
    new document. 'retype' puts a value of a JSON type the exported schema does not allow there;
    'oddvalue' any of ``WRONG_TYPES`` (often a wrong type, sometimes an edge value of the right one)."""
    doc = copy.deepcopy(doc)
    paths = _paths(doc)
    kind = kind or draw(st.sampled_from(MUTATIONS))
    path: Path_
    if kind == "drop":
        path = draw(st.sampled_from([p for p in paths if isinstance(p[-1], str)]))
        del _parent(doc, path)[path[-1]]
    elif kind == "retype":
        typed = {p: t for p in paths if (t := declared_types(topic, p)) is not None}
        path = draw(st.sampled_from(sorted(typed, key=repr)))
        _parent(doc, path)[path[-1]] = draw(st.sampled_from(wrong_values(typed[path])))
    elif kind in ("oddvalue", "any"):
        path = draw(st.sampled_from(paths))
        _parent(doc, path)[path[-1]] = draw(st.sampled_from(WRONG_TYPES) if kind == "oddvalue" else json_any)
    elif kind == "range":
        numeric = [p for p in paths if type(_parent(doc, p)[p[-1]]) in (int, float)]
        path = draw(st.sampled_from(numeric or paths))
        _parent(doc, path)[path[-1]] = draw(st.sampled_from(OUT_OF_RANGE))
    elif kind == "enum":
        enums = [p for p in paths if p[-1] in ENUM_FIELDS]
        path = draw(st.sampled_from(enums or paths))
        _parent(doc, path)[path[-1]] = draw(st.sampled_from(BAD_ENUMS))
    elif kind == "cellkey":
        keys = [p for p in paths if p[-1] in CELL_KEY_FIELDS]
        path = draw(st.sampled_from(keys or paths))
        bad = draw(st.sampled_from(NEAR_MISS_KEYS) | st.text(max_size=24).filter(lambda s: not is_cell_key(s)))
        _parent(doc, path)[path[-1]] = bad
    elif kind == "naive":
        times = [p for p in paths if p[-1] in TIME_FIELDS]
        path = draw(st.sampled_from(times or paths))
        _parent(doc, path)[path[-1]] = draw(st.sampled_from(NAIVE_TIMES))
    elif kind == "extra":
        holders: list[Path_] = [(), *(p for p in paths if isinstance(_parent(doc, p)[p[-1]], dict))]
        holder = draw(st.sampled_from(holders))
        target: Any = doc
        for step in holder:
            target = target[step]
        key = draw(extra_keys)
        target[key] = draw(json_any)
        path = (*holder, key)
    elif kind == "nonfinite":  # a NaN/inf where a number is, preferring PM values
        pm_values = [p for p in paths if len(p) == 2 and p[0] == "values"]
        numeric = [p for p in paths if type(_parent(doc, p)[p[-1]]) in (int, float)]
        path = draw(st.sampled_from(pm_values or numeric or paths))
        _parent(doc, path)[path[-1]] = Sentinel(draw(st.sampled_from(NON_FINITE)))
    else:
        raise ValueError(kind)
    return kind, path, doc


@st.composite
def mutated(draw: st.DrawFn, topic: str) -> tuple[list[str], bytes]:
    doc = draw(VALID[topic]())
    kinds: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        if not isinstance(doc, dict) or not _paths(doc):
            break
        kind, _path, doc = draw(mutate(topic, doc))
        kinds.append(kind)
    raw = encode(doc)
    if draw(st.integers(0, 9)) == 0:  # now and then: truncated or binary-damaged bytes
        cut = draw(st.integers(0, max(0, len(raw) - 1)))
        raw = raw[:cut] + draw(st.sampled_from([b"", b"\xff", b"\x00", b"\xc3"]))
        kinds.append("truncate")
    return kinds, raw


# -- verdicts ------------------------------------------------------------------------------------


def verdict(validate: Callable[[bytes], Any], raw: bytes) -> tuple[bool, set[tuple[str | int, ...]]]:
    """(accepted, locations of the errors), leaving out the CellMeas 'pci or cellKey' model validator
    whose check the fast path leaves to ``IngestDecoder``."""
    try:
        validate(raw)
    except ValidationError as exc:
        return False, {tuple(e["loc"]) for e in exc.errors() if not _identification_error(e)}
    return True, set()


def _identification_error(err: Any) -> bool:
    return bool(err["type"] == "value_error" and "needs pci or cellKey" in err["msg"])


def check_same_verdict(topic: str, raw: bytes, note: object) -> None:
    model = INGEST_MODELS[topic]
    model_ok, model_locs = verdict(model.model_validate_json, raw)
    fast_ok, fast_locs = verdict(dict_adapter(model).validate_json, raw)
    decoded = IngestDecoder(IngestSettings(max_payload_bytes=1 << 30), now=lambda: NOW).decode(topic, None, raw)
    if fast_ok and not model_ok and not model_locs:
        # Only the one model validator the fast path does not run failed; IngestDecoder must catch it.
        assert isinstance(decoded, Rejection), f"{note}: decoder accepted an MR without pci/cellKey: {raw!r}"
        assert decoded.error_class == "schema" and "needs pci or cellKey" in decoded.reason, decoded
        return
    assert model_ok == fast_ok, f"{note}: model {model_ok} {model_locs}, fast {fast_ok} {fast_locs}: {raw!r}"
    assert model_locs == fast_locs, f"{note}: errors at model {model_locs} vs fast {fast_locs}: {raw!r}"
    if not isinstance(decoded, Rejection):
        assert model_ok, f"{note}: decoder accepted what the model rejects: {raw!r}"
        orjson.dumps(decoded)  # what the decoder accepts, the pipeline can carry (envelopes, checkpoints)


# -- the properties ------------------------------------------------------------------------------

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("topic", topics.INGEST_TOPICS)
@PROPERTY
@given(data=st.data())
def test_valid_records_pass_both_validators(topic: str, data: st.DataObject) -> None:
    doc = data.draw(VALID[topic]())
    raw = encode(doc)
    model = INGEST_MODELS[topic]
    record = model.model_validate_json(raw)  # the generator itself must produce valid records
    fast = dict_adapter(model).validate_json(raw)
    # Same content: the model's wire dump and the dict agree on every key the input carried.
    dumped = record.model_dump(mode="json", by_alias=True)
    for key in doc:
        assert key in fast and key in dumped
    decoded = IngestDecoder(IngestSettings(max_payload_bytes=1 << 30), now=lambda: NOW).decode(topic, None, raw)
    if isinstance(decoded, Rejection):  # the only extra rule for an in-the-past valid record
        assert decoded.error_class == "negative_counter", decoded


@pytest.mark.parametrize("topic", topics.INGEST_TOPICS)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_records_get_the_same_verdict(topic: str, data: st.DataObject) -> None:
    kinds, raw = data.draw(mutated(topic))
    check_same_verdict(topic, raw, (topic, kinds))


@pytest.mark.parametrize("topic", topics.INGEST_TOPICS)
@PROPERTY
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_garbage_bytes_get_the_same_verdict(topic: str, raw: bytes) -> None:
    check_same_verdict(topic, raw, (topic, "garbage"))


TOP_ENUMS = {"measObjClass", "notificationType"}


def _aliases(model: type[BaseModel]) -> tuple[set[str], set[str]]:
    """(all wire keys, required wire keys) of a model."""
    keys = {info.alias or name for name, info in model.model_fields.items()}
    required = {info.alias or name for name, info in model.model_fields.items() if info.is_required()}
    return keys, required


def _declared_number(model: type[BaseModel], path: Path_) -> bool:
    """Whether the schema declares a number (int or float) at ``path`` of a ``model`` record."""
    tp: Any = model
    for step in path:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = {info.alias or name: info.annotation for name, info in tp.model_fields.items()}
            if step not in fields:
                return False
            tp = fields[step]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
        else:
            return False
    tp = _unwrap(tp)
    return tp in (int, float)


def _unwrap(tp: Any) -> Any:
    """``X`` of ``Annotated[X, ...]`` and of ``X | None``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _must_be_invalid(topic: str, kind: str, path: Path_) -> bool:
    """Mutations that make any record invalid when they hit a top-level field."""
    keys, required = _aliases(INGEST_MODELS[topic])
    top = len(path) == 1
    enums = TOP_ENUMS | ({"source"} if topic == topics.MR_UE else set())
    return {
        "drop": top and path[0] in required,
        "retype": True,  # anywhere: a value of a JSON type the schema does not allow there
        "enum": top and path[0] in enums,
        "cellkey": top and path[0] in CELL_KEY_FIELDS,
        "naive": top and path[0] in TIME_FIELDS,
        "extra": top and path[0] not in keys,
        # JSON has no NaN or infinity: refused wherever the schema declares a number (an open vendor
        # field of any type keeps what it is given; the re-keying encoder writes it as null)
        "nonfinite": _declared_number(INGEST_MODELS[topic], path),
    }.get(kind, False)


@pytest.mark.parametrize("topic", topics.INGEST_TOPICS)
@pytest.mark.parametrize("kind", MUTATIONS)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_mutation_kind_is_exercised(topic: str, kind: str, data: st.DataObject) -> None:
    """Every mutation kind, forced, on every topic; those that hit a top-level field make it invalid, and
    a retyped record anywhere (rejected by ingest naming the field)."""
    doc = data.draw(VALID[topic]())
    _kind, path, bad = data.draw(mutate(topic, doc, kind))
    raw = encode(bad)
    check_same_verdict(topic, raw, (topic, kind, path))
    if _must_be_invalid(topic, kind, path):
        assert not verdict(dict_adapter(INGEST_MODELS[topic]).validate_json, raw)[0], (kind, path, raw)
    if kind == "retype":
        check_retype_rejected(topic, path, _parent(bad, path)[path[-1]], raw)


@pytest.mark.parametrize("topic", topics.INGEST_TOPICS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_retyped_records_are_rejected_naming_the_field(topic: str, data: st.DataObject) -> None:
    """Strings are not numbers, numbers are not booleans, booleans are not numbers, numbers are not
    times, ...: wherever the exported schema declares a JSON type, another type is rejected by ingest
    (naming the field and the value) and by the exported schema, and the model and the fast path
    agree; the record before the change is valid against the exported schema."""
    doc = data.draw(VALID[topic]())
    assert schema_validator(topic).is_valid(json.loads(encode(doc))), doc
    _kind, path, bad = data.draw(mutate(topic, doc, "retype"))
    raw = encode(bad)
    check_same_verdict(topic, raw, (topic, "retype", path))
    check_retype_rejected(topic, path, _parent(bad, path)[path[-1]], raw)


@given(doc=mr_events(), where=st.sampled_from(["serving", "neighbour"]), data=st.data())
@PROPERTY
def test_unidentified_cell_measurement_is_rejected_by_the_decoder(doc: dict[str, Json], where: str,
                                                                  data: st.DataObject) -> None:
    """The CellMeas model validator does not run in the fast path; IngestDecoder re-checks it."""
    anonymous = data.draw(cell_meas(identified=False))
    if where == "serving":
        doc["serving"] = anonymous
    else:
        doc["neighbours"] = [*doc.get("neighbours", []), anonymous]
    raw = encode(doc)
    with pytest.raises(ValidationError, match="needs pci or cellKey"):
        MrEvent.model_validate_json(raw)
    dict_adapter(MrEvent).validate_json(raw)  # known difference: accepted here ...
    out = IngestDecoder(IngestSettings(), now=lambda: NOW).decode(topics.MR_UE, None, raw)
    assert isinstance(out, Rejection)  # ... and rejected by the decoder, naming where
    assert out.error_class == "schema"
    expected = "field serving" if where == "serving" else f"field neighbours.{len(doc['neighbours']) - 1}"
    assert out.reason.startswith(expected), out.reason


def test_python_field_names_are_not_wire_names() -> None:
    """Known difference: the model takes ``cell_key`` too (populate_by_name); the fast path and the
    exported JSON Schema take only the wire alias, so ingest rejects such a record."""
    rec = {"cell_key": "nr:00101-00000a01c", "measObjDn": "ManagedElement=1,NRCellDU=1",
           "measObjClass": "NRCellDU", "periodEnd": "2024-03-01T10:15:00Z", "granularityPeriodS": 900,
           "values": {}}
    raw = json.dumps(rec).encode()
    assert PmCellRecord.model_validate_json(raw).cell_key == "nr:00101-00000a01c"
    with pytest.raises(ValidationError):
        PmCellRecord.model_validate_json(raw, by_name=False)
    with pytest.raises(ValidationError) as fast_err:
        dict_adapter(PmCellRecord).validate_json(raw)
    assert {e["loc"] for e in fast_err.value.errors()} == {("cellKey",), ("cell_key",)}
    assert "cell_key" in PYTHON_NAMES and "class_" in PYTHON_NAMES


# -- IngestDecoder reasons -----------------------------------------------------------------------

PM_OK: dict[str, Json] = {
    "cellKey": "nr:00101-00000a01c", "measObjDn": "ManagedElement=1,NRCellDU=1", "measObjClass": "NRCellDU",
    "periodEnd": "2024-03-01T10:15:00Z", "granularityPeriodS": 900,
    "values": {"RRU.PrbTotDl": 63.0, "MM.HoExeInterReq": 4.0, "VS.Vendor.Counter": -7.0, "CARR.MeanTxPwr": -3.0},
}
MR_OK: dict[str, Json] = {
    "eventId": "0b9c2d3e-5f0a-4d8e-9a61-2f7b6c1d4e55", "eventTime": "2024-03-01T10:15:00+01:00",
    "cellKey": "nr:00101-00000a01c", "ueRef": "u1", "source": "REPLAY",
    "serving": {"pci": 7, "rsrpDbm": -95.5, "sinrDb": 12.0},
    "neighbours": [{"pci": 8, "arfcn": 632628, "rsrpDbm": -101.0}, {"cellKey": "nr:00101-00000a01d"}],
    "ue": {"cqi": 11, "dlThroughputKbps": 5000.0},
}
T_PM = datetime(2024, 3, 1, 10, 15, tzinfo=UTC).timestamp()


def _decoder(now: float = NOW, **kw: Any) -> IngestDecoder:
    return IngestDecoder(IngestSettings(**kw), now=lambda: now)


def _pm(**changes: Json) -> bytes:
    rec = {**PM_OK, **changes}
    return json.dumps({k: v for k, v in rec.items() if v is not DROP}).encode()


DROP = object()


@pytest.mark.parametrize(("raw", "error_class", "must_name"), [
    (_pm(granularityPeriodS="fifteen"), "schema", ["granularityPeriodS", "'fifteen'"]),
    (_pm(granularityPeriodS=86401), "schema", ["granularityPeriodS", "86401"]),
    (_pm(measObjClass="NRCellXYZ"), "schema", ["measObjClass", "'NRCellXYZ'"]),
    (_pm(cellKey="cell-1"), "schema", ["cellKey", "'cell-1'"]),
    (_pm(periodEnd="2024-03-01T10:15:00"), "schema", ["periodEnd", "'2024-03-01T10:15:00'"]),
    (_pm(periodEnd=DROP), "schema", ["periodEnd", "Field required"]),
    (_pm(colour="blue"), "schema", ["colour", "'blue'"]),
    (_pm(values={"RRU.PrbTotDl": "high"}), "schema", ["values.RRU.PrbTotDl", "'high'"]),
    (_pm(values={"MM.HoExeInterReq": -4}), "negative_counter", ["values.MM.HoExeInterReq", "-4"]),
    (_pm(values={"L1M.SS-RSRP.Bin12": -1}), "negative_counter", ["values.L1M.SS-RSRP.Bin12", "-1"]),
    (_pm(periodEnd="2031-01-01T00:00:00Z"), "future_timestamp", ["periodEnd", "1924992000"]),
    (_pm().replace(b"63.0", b"NaN"), "schema", ["values.RRU.PrbTotDl", "nan"]),
    (b"{not json", "json", ["not valid JSON"]),
    (_pm()[:-7], "json", ["not valid JSON"]),
    (b'{"cellKey": "\xff\xfe"}', "encoding", ["UTF-8", "byte 13", "xff"]),
    (b"[1, 2]", "schema", ["(record)", "list"]),
])
def test_decoder_reason_names_field_and_value(raw: bytes, error_class: str, must_name: list[str]) -> None:
    out = _decoder().decode(topics.PM_CELL, b"k", raw)
    assert isinstance(out, Rejection), out
    assert out.error_class == error_class, out
    for part in must_name:
        assert part in out.reason, (part, out.reason)


def test_decoder_rejections_outside_the_schema() -> None:
    decoder = _decoder(max_payload_bytes=2048)
    big = _pm(measObjDn="x" * 3000)
    out = decoder.decode(topics.PM_CELL, None, big)
    assert isinstance(out, Rejection) and out.error_class == "oversized"
    assert str(len(big)) in out.reason and "max_payload_bytes=2048" in out.reason
    below = _pm(measObjDn="x" * 1000)
    assert len(below) <= 2048
    decoded = decoder.decode(topics.PM_CELL, None, below)  # below the limit: decoded normally
    assert not isinstance(decoded, Rejection), decoded
    assert decoded == _decoder().decode(topics.PM_CELL, None, below)  # as a decoder with the default limit does
    out = decoder.decode(topics.MR_UE, b"k", None)
    assert isinstance(out, Rejection) and out.error_class == "empty"
    out = decoder.decode("ran.something.v1", None, _pm())
    assert isinstance(out, Rejection) and out.error_class == "topic" and "'ran.something.v1'" in out.reason
    # A null value on the compacted CM snapshot topic is a tombstone: the DN (the key) is deleted.
    assert decoder.decode(topics.CM_SNAPSHOT, b"ManagedElement=1", None) == ("cmdel", None,
                                                                             {"dn": "ManagedElement=1"})
    out = decoder.decode(topics.CM_SNAPSHOT, b"\xff", None)
    assert isinstance(out, Rejection) and out.error_class == "encoding"


def test_decoder_reports_at_most_three_errors_and_counts_the_rest() -> None:
    raw = json.dumps({"cellKey": 1, "measObjDn": 2, "measObjClass": 3, "periodEnd": 4.5e20,
                      "granularityPeriodS": "x", "values": 6}).encode()
    out = _decoder().decode(topics.PM_CELL, None, raw)
    assert isinstance(out, Rejection)
    assert out.reason.count("field ") == 3 and out.reason.endswith("and 3 more"), out.reason


@pytest.mark.parametrize(("topic", "field"), [(topics.CM_SNAPSHOT, "attributes"),
                                              (topics.CM_NOTIFICATIONS, "attributeListValueChanges")])
def test_decoder_rejects_integers_the_pipeline_cannot_carry(topic: str, field: str) -> None:
    """Free-form CM values are JSON of any shape; an integer orjson cannot encode would crash the worker
    on every redelivery of the batch, so it is dead-lettered at the edge instead."""
    base: dict[str, Json] = {
        "dn": "ManagedElement=1,NRCellDU=1", "class": "NRCellDU", "cellKey": "nr:00101-00000a01c",
        "observedAt": "2024-03-01T10:15:00Z", "eventTime": "2024-03-01T10:15:00Z", "notificationId": "n1",
        "notificationType": "notifyMOIAttributeValueChanges", "attributes": {},
    }
    keys = set(_aliases(INGEST_MODELS[topic])[0])
    doc = {k: v for k, v in base.items() if k in keys}
    for bad, where in [({"big": 2**64}, "big"), ({"a": [1, {"b": -(2**63) - 1}]}, "a.1.b"),
                       ({"x": {"y": 10**30}}, "x.y")]:
        raw = json.dumps({**doc, field: bad}).encode()
        out = _decoder().decode(topic, None, raw)
        assert isinstance(out, Rejection) and out.error_class == "schema", out
        assert out.reason.startswith(f"field {field}.{where}: integer outside the 64-bit range (value "), out.reason
    edge = {"max": 2**64 - 1, "min": -(2**63), "nested": [{"f": 1.5e300, "s": "x", "b": True, "n": None}]}
    out = _decoder().decode(topic, None, json.dumps({**doc, field: edge}).encode())
    assert not isinstance(out, Rejection) and out[2]["a"] == edge
    assert orjson.loads(orjson.dumps(out))[2]["a"] == edge


def test_future_skew_boundary() -> None:
    skew = 600.0
    for offset, ok in ((0.0, True), (skew, True), (skew + 1.0, False)):
        decoder = _decoder(now=T_PM - offset, max_future_skew_s=skew)
        out = decoder.decode(topics.PM_CELL, None, _pm())
        assert isinstance(out, Rejection) != ok, (offset, out)


def test_decoder_normalises_pm_and_keeps_unknown_and_negative_gauges() -> None:
    out = _decoder().decode(topics.PM_CELL, None, _pm(suspect=True))
    assert out == ("pm", "nr:00101-00000a01c", {
        "gp": 900, "t": T_PM, "v": PM_OK["values"], "s": True, "dn": PM_OK["measObjDn"], "oc": "NRCellDU",
    })
    rel = _decoder().decode(topics.PM_RELATION, None, _pm(targetCellKey="nr:00101-00000a01d",
                                                          relationDn="NRCellRelation=2", measObjClass="NRCellRelation"))
    assert not isinstance(rel, Rejection) and rel[0] == "pmr" and rel[2]["tc"] == "nr:00101-00000a01d"


def test_decoder_normalises_mr_to_indices() -> None:
    out = _decoder().decode(topics.MR_UE, None, json.dumps(MR_OK).encode())
    assert not isinstance(out, Rejection)
    kind, cell, body = out
    assert (kind, cell) == ("mr", "nr:00101-00000a01c")
    fields = dict(zip(MR_FIELDS, body, strict=True))
    assert fields["t"] == datetime(2024, 3, 1, 9, 15, tzinfo=UTC).timestamp()  # +01:00 honoured
    assert fields["rsrpIdx"] == round(-95.5 + 157) and fields["sinrIdx"] == round((12.0 + 23.5) * 2)
    assert fields["rsrqIdx"] is None
    assert fields["neighbours"] == [("pci:8:632628", -101.0), ("nr:00101-00000a01d", None)]
    assert (fields["cqi"], fields["dlThroughputKbps"]) == (11, 5000.0)
    raw_idx = {**MR_OK, "serving": {"pci": 7, "rsrpDbm": -95.5, "rsrpIdx": 3}}
    out = _decoder().decode(topics.MR_UE, None, json.dumps(raw_idx).encode())
    assert not isinstance(out, Rejection) and out[2][MR_FIELDS.index("rsrpIdx")] == 3  # the reported index wins


def test_decoder_mr_and_cm_reasons() -> None:
    mr = {**MR_OK, "eventId": "not-a-uuid"}
    out = _decoder().decode(topics.MR_UE, None, json.dumps(mr).encode())
    assert isinstance(out, Rejection) and "eventId" in out.reason and "'not-a-uuid'" in out.reason
    mr = {**MR_OK, "serving": {"pci": 1008}}
    out = _decoder().decode(topics.MR_UE, None, json.dumps(mr).encode())
    assert isinstance(out, Rejection) and "serving.pci" in out.reason and "1008" in out.reason
    mr = {**MR_OK, "source": "CARRIER_PIGEON"}
    out = _decoder().decode(topics.MR_UE, None, json.dumps(mr).encode())
    assert isinstance(out, Rejection) and "source" in out.reason and "'CARRIER_PIGEON'" in out.reason
    cmn = {"notificationId": "n1", "notificationType": "notifyMOIExplosion", "eventTime": "2024-03-01T10:15:00Z",
           "dn": "ManagedElement=1", "cellKey": "nr:00101-00000a01c"}
    out = _decoder().decode(topics.CM_NOTIFICATIONS, None, json.dumps(cmn).encode())
    assert isinstance(out, Rejection) and "notificationType" in out.reason and "notifyMOIExplosion" in out.reason
    cm = {"dn": "ManagedElement=1", "class": "ManagedElement", "attributes": {}, "observedAt": "2031-05-01T00:00:00Z"}
    out = _decoder().decode(topics.CM_SNAPSHOT, None, json.dumps(cm).encode())
    assert isinstance(out, Rejection) and out.error_class == "future_timestamp" and "observedAt" in out.reason


# -- twin.measurements and twin.cells -----------------------------------------------------------------


def test_collection_methods_of_names() -> None:
    assert method_of("RRU.PrbTotDl") is Method.SI_MEAN
    assert method_of("RRU.MaxPrbUsedDl") is Method.SI_MAX
    assert method_of("PEE.MinPower") is Method.SI_MIN
    assert method_of("DRB.UEThpDl") is Method.DER
    assert method_of("MM.HoExeInterReq") is Method.CC
    # Subcounters (bins, QCI/5QI, S-NSSAI suffixes) inherit their base's method.
    assert method_of("L1M.SS-RSRP.Bin12") is Method.CC
    assert method_of("DRB.UEThpDl.010003e8") is Method.DER
    assert method_of("HO.IntraSys.TooEarly.Cause3") is Method.CC
    assert base_name("HO.IntraSys.TooEarly.Cause3") == "HO.IntraSys.TooEarly"
    assert method_of("VS.Vendor.Counter") is None and not is_counter("VS.Vendor.Counter")
    assert method_of("RRU") is None
    for name, method in CATALOGUE.items():
        assert is_counter(name) == (method is Method.CC)
        assert base_name(name) == name


@given(values=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=20))
def test_aggregate_never_sums_a_gauge(values: list[float]) -> None:
    assert aggregate(Method.CC, values) == pytest.approx(math.fsum(values), abs=1e-6)
    for method in (Method.SI_MEAN, Method.DER, None):
        mean = aggregate(method, values)
        assert min(values) - 1e-6 <= mean <= max(values) + 1e-6
        assert mean == pytest.approx(math.fsum(values) / len(values), abs=1e-6)
    assert aggregate(Method.SI_MAX, values) == max(values)
    assert aggregate(Method.SI_MIN, values) == min(values)
    with pytest.raises(ValueError):
        aggregate(Method.CC, [])


@given(periods=st.lists(st.tuples(st.floats(0, 100), st.integers(0, 1000)), min_size=1, max_size=12),
       window=st.integers(1, 6))
def test_cell_window_combines_periods_by_method(periods: list[tuple[float, int]], window: int) -> None:
    cell = CellMirror("nr:00101-00000a01c")
    for i, (load, handovers) in enumerate(periods):
        cell.apply_pm("pm", {"gp": 900, "t": T_PM + 900 * i, "s": False,
                             "v": {"RRU.PrbTotDl": load, "MM.HoExeInterReq": float(handovers),
                                   "VS.Vendor.Counter": 1.0}})
    last = periods[-window:]
    assert cell.window(900, "RRU.PrbTotDl", window) == pytest.approx(sum(p[0] for p in last) / len(last))
    assert cell.window(900, "MM.HoExeInterReq", window) == sum(p[1] for p in last)
    assert cell.unknown == {"VS.Vendor.Counter"}
    assert cell.gaps(900) == []
    assert cell.window(60, "RRU.PrbTotDl", window) is None


def test_gaps_are_missing_periods() -> None:
    cell = CellMirror("nr:00101-00000a01c")
    for i in (0, 1, 4, 6):
        cell.apply_pm("pm", {"gp": 900, "t": T_PM + 900 * i, "s": i == 6, "v": {"RRU.PrbTotDl": 1.0}})
    assert cell.gaps(900) == [round(T_PM) + 900 * i for i in (2, 3, 5)]
    assert cell.view()["pm"]["900"]["suspectPeriods"] == 1


def test_cell_keys_match_the_schema_pattern() -> None:
    """``is_cell_key`` (topology config) and the schema pattern (pydantic) agree on edge cases."""
    from pydantic import TypeAdapter

    from twin.schemas.base import CellKey

    adapter: TypeAdapter[str] = TypeAdapter(CellKey)
    for key in ["nr:00101-00000a01c", "lte:001001-01a2b3c", *NEAR_MISS_KEYS]:
        try:
            adapter.validate_python(key)
            schema_ok = True
        except ValidationError:
            schema_ok = False
        assert is_cell_key(key) == schema_ok, repr(key)
    with pytest.raises(ValueError, match="not a canonical key"):
        parse_cell_key("nr:00101-00000a01c\n")


@given(key=cell_keys)
def test_generated_cell_keys_parse(key: str) -> None:
    rat, plmn, ident = parse_cell_key(key)
    assert f"{rat}:{plmn}-{ident}" == key


def test_encode_writes_bare_non_finite_tokens() -> None:
    raw = encode({"values": {"a": Sentinel("NaN"), "b": Sentinel("-Infinity")}, "u": str(uuid.UUID(int=1))})
    assert b'"a": NaN' in raw and b'"b": -Infinity' in raw


# -- the msgspec accept path of MR events ------------------------------------------------------------


def _decode_via_model(raw: bytes) -> Any:
    """IngestDecoder with its msgspec fast path switched off: every MR goes through the model."""
    decoder = IngestDecoder(IngestSettings(max_payload_bytes=1 << 30), now=lambda: NOW)

    def refuse(_: bytes) -> Any:
        raise msgspec.ValidationError("fast path off")

    decoder._mr_fast = refuse  # type: ignore[method-assign]
    return decoder.decode(topics.MR_UE, None, raw)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_msgspec_path_accepts_a_subset_of_the_model_and_normalises_the_same(data: st.DataObject) -> None:
    choice = data.draw(st.integers(0, 2))
    if choice == 0:
        raw = encode(data.draw(VALID[topics.MR_UE]()))
    elif choice == 1:
        _kinds, raw = data.draw(mutated(topics.MR_UE))
    else:  # a valid record with bytes spliced into a string: bad UTF-8, encoded surrogates, escapes
        raw = encode(data.draw(VALID[topics.MR_UE]()))
        junk = data.draw(st.sampled_from([b"\xed\xa0\x80", b"\xff", b"\xc3", b"\\ud800", b"\\u0000", b"\n"]))
        raw = raw.replace(b'"ueRef": "', b'"ueRef": "' + junk, 1)
        assert junk in raw
    try:
        struct_decoder(MrEvent).decode(raw)
        fast_ok = True
    except (msgspec.MsgspecError, ValueError):  # msgspec raises UnicodeDecodeError for bad UTF-8
        fast_ok = False
    model_ok, model_locs = verdict(MrEvent.model_validate_json, raw)
    fast = IngestDecoder(IngestSettings(max_payload_bytes=1 << 30), now=lambda: NOW).decode(topics.MR_UE, None, raw)
    if fast_ok and not model_ok:
        # The one model check msgspec does not make is the CellMeas 'pci or cellKey' validator, and
        # the decoder makes it itself; anything else msgspec accepts, the model must accept.
        assert not model_locs, f"msgspec accepted what the model rejects at {model_locs}: {raw!r}"
        assert isinstance(fast, Rejection) and "needs pci or cellKey" in fast.reason, fast
    slow = _decode_via_model(raw)
    assert isinstance(fast, Rejection) == isinstance(slow, Rejection), (fast, slow, raw)
    if not isinstance(fast, Rejection):
        assert fast == slow, raw


def test_msgspec_patterns_do_not_accept_a_trailing_newline() -> None:
    good = encode(_sample_mr())
    bad = good.replace(b'"nr:00101-000001001"', b'"nr:00101-000001001\\n"')
    assert bad != good
    struct_decoder(MrEvent).decode(good)
    with pytest.raises(msgspec.ValidationError, match="cellKey"):
        struct_decoder(MrEvent).decode(bad)


NEAR_MISS_UUIDS = ["0b9c2d3e-5f0a-4d8e-9a61-2f7b6c1d4e55\n", "0b9c2d3e5f0a4d8e9a612f7b6c1d4e55",
                   "{0b9c2d3e-5f0a-4d8e-9a61-2f7b6c1d4e55}", "0b9c2d3e-5f0a-4d8e-9a61-2f7b6c1d4e5g",
                   "0b9c2d3e-5f0a-4d8e-9a61-2f7b6c1d4e5", " 0b9c2d3e-5f0a-4d8e-9a61-2f7b6c1d4e55", ""]


@pytest.mark.parametrize("path, bad", [
    *((("eventId",), v) for v in NEAR_MISS_UUIDS),
    *((where, k) for where in [("cellKey",), ("serving", "cellKey"), ("neighbours", 0, "cellKey")]
      for k in NEAR_MISS_KEYS),
])
def test_the_patterns_the_fast_decoder_leaves_out_are_checked_before_and_after_a_key_is_known(
        path: tuple[str | int, ...], bad: str) -> None:
    """The MR fast path decodes without the string patterns (``struct_decoder(MrEvent, patterns=False)``)
    and checks them itself: a cell key against those it has seen valid. A near miss is refused, by a
    fresh decoder and by one that has just accepted the same record with the right value, and the
    reason names the field."""
    good = _sample_mr()
    good["neighbours"] = [{"cellKey": "nr:00101-000002001", "rsrpDbm": -101.0}]
    doc = copy.deepcopy(good)
    _parent(doc, path)[path[-1]] = bad
    field = ".".join(map(str, path))
    fresh, warm = (IngestDecoder(IngestSettings(), now=lambda: NOW) for _ in range(2))
    assert not isinstance(warm.decode(topics.MR_UE, None, orjson.dumps(good)), Rejection)
    for decoder in (fresh, warm):
        out = decoder.decode(topics.MR_UE, None, orjson.dumps(doc))
        assert isinstance(out, Rejection) and out.reason.startswith(f"field {field}: "), (out, field)
        many = decoder.decode_many(topics.MR_UE, [types.SimpleNamespace(key=None, value=orjson.dumps(doc))])
        assert many == [out]


def _patterned_fields(info: Any, path: tuple[str, ...] = ()) -> set[str]:
    """The wire paths of string fields with a pattern in a msgspec type (``[]``: any list item)."""
    import msgspec.inspect as mi

    if isinstance(info, mi.StructType):
        return set().union(*(_patterned_fields(f.type, (*path, f.encode_name)) for f in info.fields))
    if isinstance(info, mi.UnionType):
        return set().union(*(_patterned_fields(t, path) for t in info.types))
    if isinstance(info, mi.ListType):
        return _patterned_fields(info.item_type, (*path, "[]"))
    return {".".join(path)} if isinstance(info, mi.StrType) and info.pattern else set()


def test_the_mr_fast_path_checks_every_pattern_the_schema_has() -> None:
    """``IngestDecoder._mr`` checks these four patterns itself; a pattern added to the MR schema
    elsewhere would pass the pattern-free decoder unchecked, so this list must grow with the check."""
    import msgspec.inspect as mi

    assert _patterned_fields(mi.type_info(struct_decoder(MrEvent).type)) == {
        "eventId", "cellKey", "serving.cellKey", "neighbours.[].cellKey"}
    assert _patterned_fields(mi.type_info(struct_decoder(MrEvent, patterns=False).type)) == set()


def test_the_remembered_cell_keys_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import twin.ingest

    monkeypatch.setattr(twin.ingest, "MAX_REMEMBERED_CELL_KEYS", 4)
    decoder = IngestDecoder(IngestSettings(), now=lambda: NOW)
    doc = _sample_mr()
    for i in range(10):
        doc["cellKey"] = f"nr:00101-00000{i}001"
        out = decoder.decode(topics.MR_UE, None, orjson.dumps(doc))
        assert not isinstance(out, Rejection) and out[1] == doc["cellKey"]
        assert 0 < len(decoder._valid_cell_keys) <= 4
    doc["cellKey"] = "nr:00101-000009001\n"  # forgotten or not, a near miss stays refused
    assert isinstance(decoder.decode(topics.MR_UE, None, orjson.dumps(doc)), Rejection)


def _sample_mr() -> dict[str, Json]:
    from twin.synthetic import SyntheticNetwork

    event = next(iter(SyntheticNetwork(cells=3).mr_events(0, 1)))
    doc: dict[str, Json] = orjson.loads(event.to_json_bytes())
    return doc


@settings(max_examples=300, deadline=None)
@given(rsrp=st.floats(-157, -30), rsrq=st.floats(-43.5, 20), sinr=st.floats(-23.5, 40))
def test_inline_mr_indices_equal_the_schema_helpers(rsrp: float, rsrq: float, sinr: float) -> None:
    from twin.schemas.mr import rsrp_index, rsrq_index, sinr_index

    doc = _sample_mr()
    doc["serving"] = {"pci": 1, "rsrpDbm": rsrp, "rsrqDb": rsrq, "sinrDb": sinr}
    out = IngestDecoder(IngestSettings(), now=lambda: NOW).decode(topics.MR_UE, None, orjson.dumps(doc))
    assert not isinstance(out, Rejection), out
    body = dict(zip(MR_FIELDS, out[2], strict=True))
    assert (body["rsrpIdx"], body["rsrqIdx"], body["sinrIdx"]) == (rsrp_index(rsrp), rsrq_index(rsrq), sinr_index(sinr))
