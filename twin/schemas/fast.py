"""Dict-returning validators derived from the pydantic models, for the ingest hot path.

Building a model instance (and its nested models) costs about seven times more than validating the
same JSON into plain dicts with pydantic-core. The hot path therefore validates with a
``TypedDict`` mirror of each model, generated here from the model itself, so the wire contract
has one source of truth. Field constraints, aliases and ``extra="forbid"`` carry over; defaults
do not (read optional keys with ``.get``), enums come back as their values, times keep their
UTC offset (use ``.timestamp()``), only the wire (alias) names are accepted (the models also take
Python field names), and model validators do not run: the caller re-checks them.
``tests/test_schemas_fast.py`` proves both paths accept and reject the same wire input.

>>> from twin.schemas import MrEvent
>>> adapter = dict_adapter(MrEvent)
>>> raw = b'{"schemaVersion": "1", "eventId": "0b9c2d3e-5f0a-4d8e-9a61-2f7b6c1d4e55",'
>>> raw += b' "eventTime": "2024-03-01T10:15:00+01:00", "cellKey": "nr:00101-00000a01c",'
>>> raw += b' "ueRef": "u1", "source": "REPLAY", "serving": {"pci": 7, "rsrpDbm": -95.5}}'
>>> event = adapter.validate_json(raw)
>>> event["eventTime"].timestamp(), event["source"], event["serving"]["rsrpDbm"]
(1709284500.0, 'REPLAY', -95.5)
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Annotated, Any, NotRequired, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, TypeAdapter
from typing_extensions import TypedDict

from twin.schemas.base import UTC_NORMALISER


def _convert(tp: Any) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return typed_dict_of(tp)
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
    """A cached ``TypeAdapter`` that validates wire JSON for ``model`` into plain dicts."""
    return TypeAdapter(typed_dict_of(model))
