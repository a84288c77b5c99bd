"""The envelope packer (``streams.envelopes``) and truncated dead letters, as pure functions."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.envelopes import ENVELOPE_SUFFIX, envelope, envelope_prefix, pack, value_limit
from twin.schemas import DeadLetter


def greedy(sizes: list[int], overhead: int, max_bytes: int,
           max_records: int) -> tuple[list[tuple[int, int]], list[int]]:
    """The obvious record-by-record packer, as the reference."""
    spans: list[tuple[int, int]] = []
    oversized: list[int] = []
    start, used = 0, 0
    for i, size in enumerate(sizes):
        if overhead + size > max_bytes:
            if i > start:
                spans.append((start, i))
            oversized.append(i)
            start, used = i + 1, 0
            continue
        count = i - start
        cost = size + (1 if count else 0)
        if count and (overhead + used + cost > max_bytes or count >= max_records):
            spans.append((start, i))
            start, used = i, size
        else:
            used += cost
    if len(sizes) > start:
        spans.append((start, len(sizes)))
    return spans, oversized


@settings(max_examples=400, deadline=None)
@given(sizes=st.lists(st.integers(min_value=2, max_value=5000), max_size=300),
       overhead=st.integers(min_value=0, max_value=300),
       max_bytes=st.integers(min_value=1, max_value=20_000),
       max_records=st.integers(min_value=1, max_value=50))
def test_pack_covers_every_record_once_within_both_limits(sizes: list[int], overhead: int, max_bytes: int,
                                                          max_records: int) -> None:
    packing = pack(sizes, overhead, max_bytes, max_records)
    covered = [i for lo, hi in packing.spans for i in range(lo, hi)]
    assert sorted(covered + packing.oversized) == list(range(len(sizes)))  # each exactly once
    assert covered == sorted(covered)  # in order
    assert packing.oversized == [i for i, s in enumerate(sizes) if overhead + s > max_bytes]
    for lo, hi in packing.spans:
        assert 0 < hi - lo <= max_records
        assert overhead + sum(sizes[lo:hi]) + (hi - lo - 1) <= max_bytes
    assert (packing.spans, packing.oversized) == greedy(sizes, overhead, max_bytes, max_records)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.text(max_size=300), min_size=1, max_size=60),
       cluster=st.text(min_size=1, max_size=40), max_bytes=st.integers(min_value=200, max_value=4000))
def test_envelopes_are_the_json_of_their_records_and_their_size_is_predicted(
        values: list[str], cluster: str, max_bytes: int) -> None:
    records = [["pm", f"nr:00101-{i:09x}", {"v": v}] for i, v in enumerate(values)]
    parts = [orjson.dumps(r) for r in records]
    prefix = envelope_prefix(cluster)
    overhead = len(prefix) + len(ENVELOPE_SUFFIX)
    packing = pack([len(p) for p in parts], overhead, max_bytes, 7)
    for lo, hi in packing.spans:
        data = envelope(prefix, parts[lo:hi])
        assert data == orjson.dumps({"cl": cluster, "r": records[lo:hi]})
        assert len(data) <= max_bytes
        assert orjson.loads(data) == {"cl": cluster, "r": records[lo:hi]}


def test_pack_of_2000_large_pm_records_stays_under_the_kafka_default() -> None:
    body = {"gp": 900, "t": 1.7e9, "s": False, "dn": "ManagedElement=1,NRCellDU=1", "oc": "NRCellDU",
            "v": {f"DRB.UEThpDl.QCI{i}": 12345.678 + i for i in range(160)}}
    parts = [orjson.dumps(("pm", f"nr:00101-{i:09x}", body)) for i in range(2000)]
    assert 4000 < len(parts[0]) < 5000
    key = b"north"
    room = value_limit(1_048_588, key, [("twin-origin", b"0" * 32)])
    prefix = envelope_prefix("north")
    packing = pack([len(p) for p in parts], len(prefix) + 2, room, 2000)
    assert not packing.oversized and len(packing.spans) == 10  # 210 records of ~4.9 KB each
    for lo, hi in packing.spans:
        value = envelope(prefix, parts[lo:hi])
        # aiokafka's own bound of the one-record batch, which its max_request_size check uses
        assert DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, [("twin-origin", b"0" * 32)]) \
            <= 1_048_588


def test_value_limit_is_what_aiokafka_lets_through() -> None:
    for key, headers in ((None, []), (b"k" * 300, [("twin-origin", b"x" * 32)]), (b"", [("a", None)])):
        limit = value_limit(1_048_588, key, headers)  # type: ignore[arg-type]
        assert DefaultRecordBatchBuilder.estimate_size_in_bytes(key, b"v" * limit, headers) <= 1_048_588
        assert DefaultRecordBatchBuilder.estimate_size_in_bytes(key, b"v" * (limit + 5), headers) > 1_048_588


def test_pack_rejects_a_zero_record_limit() -> None:
    with pytest.raises(ValueError, match="max_records"):
        pack([1], 0, 10, 0)


def _letter(value: bytes, key: bytes | None = b"nr:00101-000000101", reason: str = "payload is not valid JSON"
            ) -> DeadLetter:
    return DeadLetter(reason=reason, error_class="json", topic="ran.pm.cell.v1", partition=3, offset=77,
                      key_b64=base64.b64encode(key).decode() if key is not None else None,
                      value_b64=base64.b64encode(value).decode(), rejected_at=datetime(2025, 1, 1, tzinfo=UTC))


@settings(max_examples=150, deadline=None)
@given(size=st.integers(min_value=0, max_value=200_000), max_bytes=st.integers(min_value=4096, max_value=150_000),
       key_size=st.integers(min_value=0, max_value=3000), reason_size=st.integers(min_value=1, max_value=5000))
def test_dead_letter_within_the_limit_is_whole_or_truncated_with_size_and_hash(
        size: int, max_bytes: int, key_size: int, reason_size: int) -> None:
    value = bytes(range(256)) * (size // 256) + b"\x07" * (size % 256)
    letter = _letter(value, key=b"k" * key_size, reason="r" * reason_size)
    data = letter.to_json_bytes_within(max_bytes)
    assert len(data) <= max_bytes
    back = DeadLetter.model_validate_json(data)
    if len(letter.to_json_bytes()) <= max_bytes:
        assert data == letter.to_json_bytes() and back.truncated is None and back.original_value == value
        return
    assert back.truncated is True and back.original_size == len(value)
    assert back.original_sha256 == hashlib.sha256(value).hexdigest()
    assert value.startswith(back.original_value)
    assert back.truncation_reason is not None and f"of {len(value):,} bytes" in back.truncation_reason
    assert len(back.reason) <= 1000 and back.error_class == "json" and back.offset == 77
    # nearly all the room goes to the value: at most the few bytes of base64 rounding are left over
    if len(back.original_value) < len(value):
        assert max_bytes - len(data) <= 8


def test_a_whole_dead_letter_is_unchanged_on_the_wire() -> None:
    letter = _letter(b"{not json")
    assert letter.to_json_bytes_within(1 << 20) == letter.to_json_bytes()
    assert b"truncated" not in letter.to_json_bytes()  # the new fields are absent, not null
