"""Envelopes of the re-keyed topic, bounded by bytes as well as by record count.

An envelope is one Kafka message ``{"cl": <cluster>, "r": [<record>, ...]}`` holding consecutive
normalised records of one cluster: its cluster's prefix, the records encoded (``orjson``) as one
array or one by one and joined by commas, and ``]}``, byte for byte what
``orjson.dumps({"cl": cluster, "r": records})`` gives. :func:`pack` cuts a cluster's records into
envelopes that stay within a byte budget (:func:`value_limit`: what a one-record Kafka batch may
carry under the broker's ``message.max.bytes``) and a record count; a record that does not fit
into an envelope on its own is returned apart (the worker dead-letters it).

>>> parts = [orjson.dumps(r) for r in (["pm", "a", {}], ["pm", "b", {}], ["mr", "c", [1]])]
>>> [len(p) for p in parts]
[13, 13, 14]
>>> prefix = envelope_prefix("north")
>>> packing = pack([len(p) for p in parts], overhead=len(prefix) + len(ENVELOPE_SUFFIX), max_bytes=50,
...                max_records=10)
>>> packing
Packing(spans=[(0, 2), (2, 3)], oversized=[])
>>> envelope(prefix, parts[0:2])
b'{"cl":"north","r":[["pm","a",{}],["pm","b",{}]]}'
>>> envelope_of_array(prefix, orjson.dumps([["pm", "a", {}], ["pm", "b", {}]])) == envelope(prefix, parts[0:2])
True
>>> pack([10, 90, 10], overhead=20, max_bytes=50, max_records=10)
Packing(spans=[(0, 1), (2, 3)], oversized=[1])
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat
from operator import add

import orjson
from aiokafka.record.default_records import DefaultRecordBatchBuilder

__all__ = [
    "ENVELOPE_SUFFIX",
    "MAX_VALUE_LENGTH_VARINT",
    "ORIGIN_HEADER",
    "Packing",
    "envelope",
    "envelope_of_array",
    "envelope_prefix",
    "pack",
    "value_limit",
]

ENVELOPE_SUFFIX = b"]}"
#: header of an envelope a worker sent to a partition its own mirror stage holds (applied locally
#: already: ``streams.mirror_stage`` skips it when it reads it back)
ORIGIN_HEADER = "twin-origin"
#: bytes of the varint that carries a value's length in a v2 record (values < 32 GiB)
MAX_VALUE_LENGTH_VARINT = 5


def value_limit(max_message_bytes: int, key: bytes | None,
                headers: Iterable[tuple[str, bytes]] = ()) -> int:
    """The largest value that a Kafka message with this key and headers may carry so that, alone in
    its record batch, it stays within ``max_message_bytes`` (the broker's ``message.max.bytes``,
    which applies to the whole v2 record batch: a 61-byte header, up to 21 bytes of record framing,
    key, headers). This is aiokafka's own upper-bound estimate, the one its ``max_request_size``
    check uses, so a value within the limit passes the client and the broker alike."""
    fixed = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, b"", list(headers))
    return max_message_bytes - fixed - (MAX_VALUE_LENGTH_VARINT - 1)


def envelope_prefix(cluster: str) -> bytes:
    return b'{"cl":' + orjson.dumps(cluster) + b',"r":['


def envelope(prefix: bytes, parts: Sequence[bytes]) -> bytes:
    """An envelope from its cluster's prefix and its records, each already encoded (one copy of
    the records, not two: prefix and suffix go onto the first and the last record)."""
    if len(parts) < 2:
        return prefix + (parts[0] if parts else b"") + ENVELOPE_SUFFIX
    return b",".join([prefix + parts[0], *parts[1:-1], parts[-1] + ENVELOPE_SUFFIX])


def envelope_of_array(prefix: bytes, array: bytes) -> bytes:
    """An envelope from its cluster's prefix and its records encoded together as one JSON array
    (``orjson.dumps(records)``): ``len(prefix) + len(array)`` bytes."""
    return prefix[:-1] + array + ENVELOPE_SUFFIX[1:]


@dataclass(frozen=True, slots=True)
class Packing:
    """``spans``: ``(start, end)`` index ranges of consecutive records, one envelope each, in order;
    ``oversized``: indexes of the records too large for an envelope of their own. Every index is in
    exactly one of them."""

    spans: list[tuple[int, int]]
    oversized: list[int]


def pack(sizes: Sequence[int], overhead: int, max_bytes: int, max_records: int) -> Packing:
    """Cut records of the given encoded sizes into envelopes of at most ``max_records`` records and
    ``max_bytes`` bytes, where an envelope of records ``i..j`` takes ``overhead`` bytes (prefix and
    suffix) plus their sizes plus one comma between each two. Greedy and in order: each envelope
    takes as many of the next records as fit. Linear in C (sums and bisection), not per record in
    Python, unless some record is oversized."""
    if max_records < 1:
        raise ValueError("max_records must be at least 1")
    n = len(sizes)
    if n == 0:
        return Packing([], [])
    room = max_bytes - overhead  # for the records and their commas
    if n <= max_records and sum(sizes) + n - 1 <= room:
        return Packing([(0, n)], [])
    if max(sizes) <= room:
        return Packing(_spans(sizes, 0, n, room, max_records), [])
    spans: list[tuple[int, int]] = []
    oversized: list[int] = []
    start = 0
    for i, size in enumerate(sizes):
        if size > room:
            spans += _spans(sizes, start, i, room, max_records)
            oversized.append(i)
            start = i + 1
    spans += _spans(sizes, start, n, room, max_records)
    return Packing(spans, oversized)


def _spans(sizes: Sequence[int], lo: int, hi: int, room: int, max_records: int) -> list[tuple[int, int]]:
    """Greedy spans of ``sizes[lo:hi]``, each of which fits ``room`` alone."""
    if lo >= hi:
        return []
    # cum[k] = the records lo..lo+k-1 with one comma each; records i..j-1 take cum[j] - cum[i] - 1
    cum = list(accumulate(map(add, sizes[lo:hi], repeat(1)), initial=0))
    n = hi - lo
    spans = []
    i = 0
    while i < n:
        j = min(bisect_right(cum, cum[i] + room + 1, i + 1) - 1, i + max_records, n)
        spans.append((lo + i, lo + j))
        i = j
    return spans
