"""Fast validators derived from the pydantic models, for the ingest hot path.

Two kinds, both generated from the models so the wire contract has one source of truth:

- ``dict_adapter(Model)``: pydantic-core validating into plain dicts (a ``TypedDict`` mirror),
  same verdicts as the model; used for PM and CM.
- ``struct_decoder(Model)``: a msgspec decoder into ``Struct``s with the model's attribute names,
  about twice as fast again, so it accepts a *subset* of what the model accepts; whatever it refuses
  goes to the model, whose verdict counts. Used for MR events, the highest-volume topic
  (``tests/test_schemas_fast.py`` checks the subset property and that both routes normalise alike),
  there built without the string patterns (``patterns=False``), which ``twin.ingest`` checks itself
  at less cost than msgspec's ``re`` call per field.

JSON types follow the one rule of ``twin.schemas.base`` (``json_typed``: no string or boolean for a
number, no number for a boolean, RFC 3339 strings for times), which ``WireModel`` applies to the
models: ``dict_adapter`` applies the same rewrite to the ``TypedDict`` mirror
(``json_typed_adapter``), and msgspec's own strict decoding is that rule or narrower (it also
refuses ``900.0`` for an integer, which the model then accepts, as JSON Schema does).

Building a model instance (and its nested models) costs about seven times more than validating the
same JSON into plain dicts with pydantic-core. In the ``TypedDict`` mirror, field constraints,
aliases, JSON types and ``extra="forbid"`` carry over; defaults do not (read optional keys with
``.get``), enums are checked as a ``Literal`` of their values (a lookup in pydantic-core, cheaper
than an enum) and come back as those values, times keep their UTC offset (use ``.timestamp()``),
only the wire (alias) names are accepted (the models also take Python field names), and model
validators do not run: the caller re-checks them.
``tests/test_schemas_fast.py`` proves both paths accept and reject the same wire input.

>>> from twin.schemas import MrEvent
>>> adapter = dict_adapter(MrEvent)
>>> raw = b'{"schemaVersion": "1", "eventId": "0b9c2d3e-5f0a-4d8e-9a61-2f7b6c1d4e55",'
>>> raw += b' "eventTime": "2024-03-01T10:15:00+01:00", "cellKey": "nr:00101-00000a01c",'
>>> raw += b' "ueRef": "u1", "source": "REPLAY", "serving": {"pci": 7, "rsrpDbm": -95.5}}'
>>> event = adapter.validate_json(raw)
>>> event["eventTime"].timestamp(), event["source"], event["serving"]["rsrpDbm"]
(1709284500.0, 'REPLAY', -95.5)
>>> fast = struct_decoder(MrEvent).decode(raw)
>>> fast.event_time.timestamp(), fast.serving.rsrp_dbm, fast.neighbours
(1709284500.0, -95.5, [])
"""

from __future__ import annotations

import enum
import functools
import re
import sys
import types
import typing
from datetime import datetime
from typing import Annotated, Any, NotRequired, Union, get_args, get_origin

import msgspec
from pydantic import AwareDatetime, BaseModel, ConfigDict, TypeAdapter
from pydantic.fields import FieldInfo
from typing_extensions import TypedDict

from twin.schemas.base import UTC_NORMALISER, json_typed_adapter

__all__ = ["dict_adapter", "python_pattern", "struct_decoder", "struct_of", "typed_dict_of"]


def _convert(tp: Any) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return typed_dict_of(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        # The same JSON values, validated as a Literal: a lookup in pydantic-core, where an enum with
        # use_enum_values costs about 150 ns more per field (a time's RFC 3339 check costs about that).
        return typing.Literal[tuple(member.value for member in tp)]
    origin = get_origin(tp)
    if origin is None:
        return tp
    args = get_args(tp)
    if origin is Annotated:
        return _annotate(_convert(args[0]), tp.__metadata__)
    if origin in (Union, types.UnionType):
        return Union[tuple(_convert(a) for a in args)]  # noqa: UP007
    if origin is list:
        return list[_convert(args[0])]  # type: ignore[misc]
    if origin is dict:
        return dict[args[0], _convert(args[1])]  # type: ignore[valid-type,misc]
    if origin is typing.Literal:
        return tp
    return tp


def _annotate(tp: Any, metadata: Any) -> Any:
    # Converting aware times to UTC is a Python call per field; hot-path callers take .timestamp(),
    # which is the same instant whatever the offset, so the conversion is skipped there.
    kept = [m for m in metadata if m is not UTC_NORMALISER]
    return Annotated[(tp, *kept)] if kept else tp


@functools.cache
def typed_dict_of(model: type[BaseModel]) -> Any:
    """A ``TypedDict`` with the model's wire (alias) keys, field constraints and extra policy."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        tp = _convert(info.annotation)
        tp = _annotate(tp, info.metadata)
        fields[key] = tp if info.is_required() else NotRequired[tp]
    make_typed_dict: Any = TypedDict  # built at run time from the model, so no static name
    td = make_typed_dict(f"{model.__name__}Dict", fields)
    td.__pydantic_config__ = ConfigDict(extra=model.model_config.get("extra") or "ignore", use_enum_values=True)
    return td


@functools.cache
def dict_adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    """A cached ``TypeAdapter`` that validates wire JSON for ``model`` into plain dicts, with the JSON
    types of ``twin.schemas.base.json_typed`` (the rule ``WireModel`` applies to the model itself)."""
    return json_typed_adapter(typed_dict_of(model))


# --- msgspec structs: the fastest accept path for the highest-volume topic ---------------------------

def python_pattern(pattern: str) -> str:
    """A pydantic (Rust regex) field pattern as Python's ``re`` must spell it to mean the same:
    Python lets a final ``$`` match before a trailing newline, the Rust regex does not.

    >>> python_pattern(r"^[0-9]{3}$")
    '^[0-9]{3}\\\\Z'
    """
    return re.sub(r"\$$", r"\\Z", pattern)


def _constraints(metadata: Any, patterns: bool = True) -> dict[str, Any]:
    """msgspec.Meta keywords from pydantic / annotated-types metadata (nested FieldInfo flattened)."""
    out: dict[str, Any] = {}
    for m in metadata:
        if isinstance(m, FieldInfo):
            out.update(_constraints(m.metadata, patterns))
            continue
        for name in ("ge", "le", "gt", "lt", "min_length", "max_length", "pattern"):
            value = getattr(m, name, None)
            if value is not None:
                out[name] = value
    if "pattern" in out:
        if patterns:
            out["pattern"] = python_pattern(out["pattern"])
        else:
            del out["pattern"]
    return out


def _struct_type(tp: Any, metadata: Any = (), patterns: bool = True) -> Any:
    constraints = _constraints(metadata, patterns)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return struct_of(tp, patterns)
    if tp is AwareDatetime:
        return Annotated[datetime, msgspec.Meta(tz=True)]
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Annotated:
        return _struct_type(args[0], (*tp.__metadata__, *metadata), patterns)
    if origin in (Union, types.UnionType):
        return Union[tuple(a if a is type(None) else _struct_type(a, metadata, patterns)  # noqa: UP007
                           for a in args)]
    if origin is list:
        inner: Any = list[_struct_type(args[0], (), patterns)]  # type: ignore[misc]
        return Annotated[inner, msgspec.Meta(**constraints)] if constraints else inner
    if origin is dict:
        return dict[_struct_type(args[0], (), patterns), _struct_type(args[1], (), patterns)]  # type: ignore[misc]
    if tp is float:  # finite only, as the model's JSON branch (NaN fails any bound, infinity these)
        constraints = {"ge": -sys.float_info.max, "le": sys.float_info.max, **constraints}
    return Annotated[tp, msgspec.Meta(**constraints)] if constraints else tp


@functools.cache
def struct_of(model: type[BaseModel], patterns: bool = True) -> Any:
    """A msgspec ``Struct`` with the model's Python attribute names, wire names, defaults and
    constraints, for a decoder that accepts a subset of what the model accepts: strict types (no
    string-to-number coercion), no model validators. Whatever it rejects must go to the model,
    whose verdict is the one that counts.

    ``patterns=False`` leaves out the string patterns (msgspec runs each through Python's ``re`` per
    field, about as costly as the rest of the decode together): the caller must then check them
    itself, as ``twin.ingest`` does for MR events, for the decoder alone is no longer a subset."""
    fields = []
    for name, info in model.model_fields.items():
        tp = _struct_type(info.annotation, info.metadata, patterns)
        if info.is_required():
            spec = msgspec.field(name=info.alias or name)
        elif info.default_factory is not None:
            factory: Any = info.default_factory  # pydantic's factories here take no arguments
            spec = msgspec.field(name=info.alias or name, default_factory=factory)
        else:
            spec = msgspec.field(name=info.alias or name, default=info.default)
        fields.append((name, tp, spec))
    forbid = model.model_config.get("extra") == "forbid"
    suffix = "Struct" if patterns else "UncheckedStruct"
    return msgspec.defstruct(f"{model.__name__}{suffix}", fields, forbid_unknown_fields=forbid, kw_only=True)


@functools.cache
def struct_decoder(model: type[BaseModel], patterns: bool = True) -> msgspec.json.Decoder[Any]:
    """A cached msgspec JSON decoder for ``struct_of(model, patterns)``."""
    # strict=True (msgspec's default, stated): JSON types as twin.schemas.base.json_typed has them,
    # or narrower; the model judges what this refuses.
    return msgspec.json.Decoder(struct_of(model, patterns), strict=True)
