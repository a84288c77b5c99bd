"""JSON Lines of the project's own topic schemas: the replay format and a capture format.

One line per record, an *envelope* naming the topic::

    {"topic": "ran.mr.ue.v1", "key": "lte:27203-0a81b02", "record": {...camelCase record...}}

``key`` is optional (the reader derives the key telemetry.md §7 prescribes from the record);
``record`` is validated against the topic's schema (``twin.topics.SCHEMAS``) with the JSON types of
the Kafka edge (``twin.schemas.base.json_typed``: no string for a number, no number for a boolean or
a time). Files may be gzipped (``.jsonl.gz``). Lines are replayed in file order; a file should be in
event-time order (the writer keeps the order it is given, and the reader reports records that step
back in time).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from replay.model import Item, Notice, Outcomes, Rejection, event_time_of, key_of
from replay.readers.files import DEFAULT_MAX_INPUT_BYTES, Input, expand, guarded
from twin import topics
from twin.schemas import WireModel

__all__ = ["SUFFIXES", "UNKNOWN_TOPIC", "decode_envelope", "envelope", "read", "read_file", "write"]

SUFFIXES = (".jsonl", ".ndjson")
UNKNOWN_TOPIC = "unknown"


def decode_envelope(source: str, where: str, env: Any, raw: bytes) -> Item | Rejection:
    """Validate one envelope (already JSON-decoded) into an ``Item``, or say what is wrong with it."""

    def reject(reason: str, error_class: str, fld: str | None, topic: str = UNKNOWN_TOPIC) -> Rejection:
        return Rejection(source, where, reason, error_class, raw, topic, fld)

    if not isinstance(env, dict):
        return reject(
            f"line is a JSON {type(env).__name__}, not an object with topic and record", "schema", None
        )
    topic = env.get("topic")
    model = topics.SCHEMAS.get(topic) if isinstance(topic, str) else None
    if model is None:
        return reject(f"topic={topic!r} is not a topic of twin.topics.SCHEMAS", "schema", "topic")
    assert isinstance(topic, str)
    if "record" not in env:
        return reject("envelope has no 'record'", "schema", "record", topic)
    try:
        # JSON mode, as the Kafka edge validates: a string is not a number, a number not a boolean or a
        # time (Python mode would coerce "-101.4" and publish it as a number)
        record = model.model_validate_json(orjson.dumps(env["record"]))
    except orjson.JSONEncodeError as exc:  # a Parquet struct column may hold what JSON cannot (bytes)
        return reject(f"record is not JSON data: {exc}", "json", "record", topic)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        return reject(f"record.{loc}={str(err.get('input'))[:80]!r}: {err['msg']}", "schema", loc, topic)
    key = env.get("key")
    if key is not None and not isinstance(key, str):
        return reject(f"key={key!r} is not a string", "schema", "key", topic)
    return Item(topic, key if key is not None else key_of(topic, record), event_time_of(record), record, 1, source,
                where)


def envelope(topic: str, record: WireModel, key: str | None = None) -> dict[str, Any]:
    """The envelope of one record, as written by both writers."""
    out: dict[str, Any] = {"topic": topic}
    if key is not None:
        out["key"] = key
    out["record"] = record.model_dump(mode="json", by_alias=True, exclude_none=True)
    return out


def read_file(inp: Input) -> Outcomes:
    """Outcomes of one JSONL file, in line order."""
    backwards = 0
    last: datetime | None = None
    for line_no, raw in enumerate(inp.read().split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        where = f"line {line_no}"
        try:
            env = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield Rejection(inp.name, where, f"not JSON: {exc}", "json", raw, UNKNOWN_TOPIC)
            continue
        out = decode_envelope(inp.name, where, env, raw)
        if isinstance(out, Item) and out.event_time is not None:
            if last is not None and out.event_time < last:
                backwards += 1
            last = out.event_time
        yield out
    if backwards:
        yield Notice(
            inp.name, f"{backwards} records are earlier than the record before them (file order kept)"
        )


def read(sources: Sequence[Path], max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES) -> list[Outcomes]:
    return [guarded(inp, read_file(inp), UNKNOWN_TOPIC) for inp in expand(sources, SUFFIXES, max_input_bytes)]


def write(path: Path, items: Iterable[Item]) -> int:
    """Write items as JSONL (gzipped when the name ends in ``.gz``); return the count written."""
    count = 0
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wb") as fh:
        for item in items:
            fh.write(orjson.dumps(envelope(item.topic, item.record, item.key)) + b"\n")
            count += 1
    return count
