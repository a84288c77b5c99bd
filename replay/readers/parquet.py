"""Parquet of the project's own topic schemas: the JSONL envelope as columns.

Columns: ``topic`` (string), ``key`` (string, nullable), ``event_time`` (timestamp[us, UTC],
nullable; informational, for filtering with other tools) and ``record`` (the record's camelCase JSON
as a string). Keeping the record as JSON makes one file hold every topic without a union schema,
and the record is validated by the same code path as JSONL.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from replay.model import Item, Outcomes, Rejection
from replay.readers.files import DEFAULT_MAX_INPUT_BYTES, Input, expand, guarded
from replay.readers.jsonl import UNKNOWN_TOPIC, decode_envelope

__all__ = ["SCHEMA", "SUFFIXES", "read", "read_file", "write"]

SUFFIXES = (".parquet",)
SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string(), nullable=False),
        pa.field("key", pa.string()),
        pa.field("event_time", pa.timestamp("us", tz="UTC")),
        pa.field("record", pa.string(), nullable=False),
    ]
)
REQUIRED = ("topic", "record")


def read_file(inp: Input, batch_rows: int = 10_000) -> Outcomes:
    """Outcomes of one Parquet file, in row order."""
    data = inp.read()
    try:
        pf = pq.ParquetFile(io.BytesIO(data))
        names = pf.schema_arrow.names
    except (pa.ArrowException, OSError) as exc:
        yield Rejection(
            inp.name, "file", f"not a Parquet file: {exc}", "parquet", data[:900_000], UNKNOWN_TOPIC
        )
        return
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        reason = f"Parquet file lacks column(s) {', '.join(missing)} (needs topic, record)"
        yield Rejection(
            inp.name,
            "file",
            reason,
            "schema",
            data[:900_000],
            UNKNOWN_TOPIC,
            missing[0],
            units=pf.metadata.num_rows,
        )
        return
    cols = [c for c in ("topic", "key", "record") if c in names]
    row = 0
    for batch in pf.iter_batches(batch_size=batch_rows, columns=cols):
        table = batch.to_pydict()
        keys = table.get("key", [None] * batch.num_rows)
        for topic, key, record in zip(table["topic"], keys, table["record"], strict=True):
            row += 1
            where = f"row {row}"
            # the row as the rejection keeps it; a struct column may hold what JSON cannot (bytes): its repr
            raw = orjson.dumps({"topic": topic, "key": key, "record": record}, default=repr)
            try:
                body = orjson.loads(record) if isinstance(record, str) else record
            except orjson.JSONDecodeError as exc:
                yield Rejection(
                    inp.name, where, f"record is not JSON: {exc}", "json", raw, topic or UNKNOWN_TOPIC
                )
                continue
            env = {"topic": topic, "record": body} | ({"key": key} if key is not None else {})
            yield decode_envelope(inp.name, where, env, raw)


def read(sources: Sequence[Path], max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES) -> list[Outcomes]:
    return [guarded(inp, read_file(inp), UNKNOWN_TOPIC) for inp in expand(sources, SUFFIXES, max_input_bytes)]


def write(path: Path, items: Iterable[Item], row_group_rows: int = 50_000) -> int:
    """Write items as Parquet (zstd); return the count written."""
    count = 0
    buf: dict[str, list[object]] = {n: [] for n in SCHEMA.names}
    with pq.ParquetWriter(path, SCHEMA, compression="zstd") as writer:

        def flush() -> None:
            if buf["topic"]:
                writer.write_table(pa.table(buf, schema=SCHEMA))
                for values in buf.values():
                    values.clear()

        for item in items:
            buf["topic"].append(item.topic)
            buf["key"].append(item.key)
            buf["event_time"].append(item.event_time)
            buf["record"].append(item.record.model_dump_json(by_alias=True, exclude_none=True))
            count += 1
            if len(buf["topic"]) >= row_group_rows:
                flush()
        flush()
    return count
