"""Shared pieces of the wire schemas: camelCase JSON, JSON types as the schema says, UTC times, cell keys.

**JSON types at the edge: one rule, here.** What ingest accepts must be what the exported JSON Schema
(``twin schema export``, ``model_json_schema(by_alias=True)``) says, and pydantic's default (lax)
mode accepts more: ``"900"`` for an integer, ``"yes"`` or ``1`` for a boolean, ``true`` for a number,
an epoch number (or a string of one) for a time. ``json_typed`` below rewrites a generated pydantic
core schema so that, for JSON input, every integer, number, boolean and time validates as its JSON
Schema type:

* ``integer``: a JSON number without a fractional part (``900``, also ``900.0``, which JSON Schema
  counts as an integer), never a string or a boolean;
* ``number``: a JSON number, integers included, never a string or a boolean;
* ``boolean``: ``true`` or ``false`` only;
* a time (``string``, ``format: date-time``): an RFC 3339 date-time string with a UTC offset (``Z``
  or ``+hh:mm``; naive times stay rejected), never a number or a string of digits. Its pattern,
  ``RFC3339_PATTERN``, is exported with the schema, so a JSON Schema validator checks it without a
  format checker. The pattern also admits the two ISO 8601 spellings the fast MR decoder (msgspec)
  parses, a space for the ``T`` and a ``+hhmm`` offset, so that what the fast decoder accepts stays
  a subset of what the model accepts.

Field constraints, strings, enums and literals are unchanged (pydantic already takes no number for a
string); free-form values (``Any``: CM ``attributes``, change values, vendor extras) stay free-form.

``WireModel`` applies ``json_typed`` to the schema of every model (``__get_pydantic_core_schema__``),
and ``twin.schemas.fast`` applies it (``json_typed_adapter``) to the ``TypedDict`` mirror that PM and
CM records are validated with; the msgspec decoder used for MR events is as strict by construction
(or stricter: no ``900.0`` for an integer) and hands whatever it refuses to the model, whose verdict
counts. So no field can forget the rule, and the paths cannot drift. ``tests/test_strict_types.py`` checks
that no number, boolean or time of a topic schema is left lax, that ingest rejects retyped records
naming the field, and that it agrees with the exported JSON Schema.

Why a rewrite of the generated schema rather than ``strict=True`` on ``WireModel`` or strict type
aliases per field: pydantic's strict mode applies to Python input too, where it would refuse an enum
member given as its string, a ``datetime`` given as an ISO string, a NumPy integer or ``900.0`` for
an integer; code and tests build records that way (``model_validate`` of JSON-decoded dicts,
emulator values) and serialise them with the right JSON types anyway. The rewrite makes only JSON
input strict (a ``json-or-python`` schema whose Python branch is the field as declared), i.e.
exactly what crosses the wire. Per-field aliases would also need every field to use them, and
pydantic applies the constraints of an optional field (``int | None = Field(ge=0)``) through a Python
validator when the inner type is such a wrapper; the rewrite runs after the constraints are in
place, keeps them in pydantic-core's own scalar schemas and adds no Python call to validation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    TypeAdapter,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema
from pydantic_core import core_schema as cs

from twin.cells import CELL_KEY_PATTERN

__all__ = [
    "RFC3339_PATTERN", "UTC_NORMALISER", "UUID_PATTERN", "CellKey", "OpenWireModel", "UtcDateTime", "Uuid", "WireModel",
    "json_typed", "json_typed_adapter",
]

RFC3339_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:?[0-9]{2})$"
"""The shape of a time on the wire: RFC 3339 with a UTC offset (and see the module docstring)."""

_TIME_MESSAGE = "Input should be an RFC 3339 date-time string with a UTC offset"


_SCALARS = frozenset({"int", "float", "bool", "datetime"})
# keys of a core schema whose values are not validation schemas to rewrite: serialisation schemas (whose
# {'type': 'int'} means something else), a default value, literal values, metadata, classes, configuration
_NOT_SCHEMAS = frozenset({"serialization", "return_schema", "default", "expected", "members", "metadata", "cls",
                          "config"})


def json_typed(schema: CoreSchema) -> CoreSchema:
    """A copy of a pydantic core schema in which every int, float, bool and datetime schema validates
    JSON input as its JSON Schema type (see the module docstring) and Python input as declared."""
    out: CoreSchema = _rewrite(schema)
    return out


def _rewrite(node: Any) -> Any:
    if isinstance(node, dict):
        kind = node.get("type")
        if not isinstance(kind, str):  # a mapping of names to schemas (fields, one may be named 'type')
            return {k: _rewrite(v) for k, v in node.items()}
        if kind == "json-or-python":  # already rewritten (a nested model's schema), or pydantic's own
            return node
        if kind in _SCALARS:
            return cs.json_or_python_schema(json_schema=_strict_json(node), python_schema=node,
                                            metadata={"pydantic_js_functions": [_declared_json_schema]})
        return {k: v if k in _NOT_SCHEMAS else _rewrite(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite(v) for v in node]
    if isinstance(node, tuple):
        return tuple(_rewrite(v) for v in node)
    return node


def _strict_json(schema: Any) -> CoreSchema:
    kind = schema["type"]
    if kind == "float":  # JSON has no NaN or infinity (1e999 overflows to one): refused, not stored
        return {**schema, "strict": True, "allow_inf_nan": False}
    if kind == "bool":
        return {**schema, "strict": True}
    if kind == "int":
        # A JSON number without a fraction (JSON Schema's 'integer'): an integer, or a float that the
        # declared (lax) int schema then converts or refuses ('got a number with a fractional part').
        number = cs.union_schema([cs.int_schema(strict=True), cs.float_schema(strict=True, allow_inf_nan=False)],
                                 custom_error_type="int_type")  # pydantic's 'Input should be a valid integer'
        return cs.chain_schema([number, schema])
    # a time: the pattern (and only a string) first, then the declared datetime schema parses it
    text = cs.custom_error_schema(cs.str_schema(strict=True, pattern=RFC3339_PATTERN), "rfc3339_datetime",
                                  custom_error_message=_TIME_MESSAGE)
    return cs.chain_schema([text, schema])


def _declared_json_schema(schema: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
    """The exported JSON Schema of a rewritten scalar: its declared type and constraints (the Python
    branch, as declared; pydantic would describe the JSON branch, a validation chain, by its first
    step only), plus the pattern of a time, which the JSON branch enforces."""
    declared = schema["python_schema"]
    out = handler(declared)
    if declared["type"] == "datetime":
        out = {**out, "pattern": RFC3339_PATTERN}
    return out


def json_typed_adapter(tp: Any) -> TypeAdapter[Any]:
    """A ``TypeAdapter`` validating as ``TypeAdapter(tp)`` does, with the JSON types of ``json_typed``;
    ``twin.schemas.fast`` builds the adapters of the ``TypedDict`` mirrors with it."""
    # The complete schema of tp, rewritten, given to pydantic as the schema of a stand-in type (a
    # type's own __get_pydantic_core_schema__ may return a schema with definitions, which nested
    # TypedDicts used twice come with; an annotation's may not).
    schema = json_typed(TypeAdapter(tp).core_schema)

    class JsonTyped:
        @classmethod
        def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
            return schema

    JsonTyped.__name__ = JsonTyped.__qualname__ = f"JsonTyped[{getattr(tp, '__name__', tp)}]"
    adapter: TypeAdapter[Any] = TypeAdapter(JsonTyped)
    return adapter


def _as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a time whose UTC falls outside years 1..9999 is a ``ValueError`` (the field's
    validation error), not an ``OverflowError`` that a decoder would not expect (a poison record).

    >>> _as_utc(datetime.fromisoformat("0001-01-01T00:00:00+05:00"))
    Traceback (most recent call last):
    ...
    ValueError: 0001-01-01T00:00:00+05:00 is outside the years a UTC time can hold (1..9999)
    """
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is outside the years a UTC time can hold (1..9999)") from None


UTC_NORMALISER = AfterValidator(_as_utc)
UtcDateTime = Annotated[AwareDatetime, UTC_NORMALISER]
"""A timezone-aware time, normalised to UTC; naive times are rejected rather than guessed, and on
the wire it is an RFC 3339 string (never an epoch number)."""

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
Uuid = Annotated[str, Field(pattern=UUID_PATTERN, json_schema_extra={"format": "uuid"})]
"""A UUID in its canonical 8-4-4-4-12 text form (kept as text: it is an identifier, not a number)."""

CellKey = Annotated[str, Field(pattern=CELL_KEY_PATTERN, examples=["nr:00101-00000a01c"])]


class WireModel(BaseModel):
    """Base of every topic schema: camelCase on the wire, unknown fields rejected, JSON input of the
    JSON types the exported schema names (``json_typed``)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
        ser_json_timedelta="float",
    )

    @classmethod
    def __get_pydantic_core_schema__(cls, source: type[BaseModel], handler: GetCoreSchemaHandler, /) -> CoreSchema:
        # The schema pydantic generates, through json_typed; a nested model's schema comes rewritten
        # already (json_typed leaves it as it is).
        return json_typed(handler(source))

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


class OpenWireModel(WireModel):
    """For nested objects whose producers legitimately add vendor fields."""

    model_config = ConfigDict(extra="allow")
