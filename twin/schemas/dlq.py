"""Dead-letter records (``ran.dlq.v1``): the rejected bytes, where they came from, and why.

A dead letter carries the whole original value unless that would make it larger than the Kafka
message limit; then it is *truncated*: ``valueB64`` holds only the first bytes of the value, and
``truncated``, ``originalSize``, ``originalSha256`` (of the whole value) and ``truncationReason``
say so. Those fields are optional (absent from a whole letter), so schema version "1" still reads
every letter written before them.

>>> from datetime import UTC, datetime
>>> letter = DeadLetter(reason="payload is not valid JSON", error_class="json", topic="ran.pm.cell.v1",
...                     value_b64=base64.b64encode(b"x" * 3000).decode(), rejected_at=datetime(2025, 1, 1, tzinfo=UTC))
>>> len(letter.to_json_bytes())
4180
>>> data = letter.to_json_bytes_within(1500)
>>> cut = DeadLetter.model_validate_json(data)
>>> len(data), cut.truncated, cut.original_size, len(cut.original_value), cut.original_sha256[:12]
(1498, True, 3000, 795, 'e1630f843370')
>>> cut.truncation_reason
'dead letter of 4,180 bytes does not fit the message limit of 1,500 bytes: value cut to its first 795 of 3,000 bytes'
"""

from __future__ import annotations

import base64
import hashlib
from typing import Literal

from pydantic import Field

from twin.schemas.base import UtcDateTime, WireModel

__all__ = ["DEAD_LETTER_KEY_MAX_BYTES", "DEAD_LETTER_REASON_MAX_CHARS", "DeadLetter"]

#: a truncated letter keeps at most this much of the reason ...
DEAD_LETTER_REASON_MAX_CHARS = 1000
#: ... and of the original key
DEAD_LETTER_KEY_MAX_BYTES = 1024


class DeadLetter(WireModel):
    schema_version: Literal["1"] = "1"
    reason: str = Field(min_length=1, description="what was wrong, naming the field and value")
    error_class: str = Field(description="short machine-readable category, e.g. 'json', 'schema'")
    topic: str
    partition: int | None = None
    offset: int | None = None
    key_b64: str | None = None
    value_b64: str = Field(description="the original record bytes, base64 (only the first of them when truncated)")
    rejected_at: UtcDateTime
    rejected_by: str = "twin.ingest"
    truncated: bool | None = Field(
        default=None, description="true when the letter would have exceeded the message limit: valueB64 "
        "holds a prefix of the original value (and keyB64 at most 1,024 bytes of the key)")
    original_size: int | None = Field(default=None, ge=0, description="bytes of the whole original value")
    original_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$",
                                        description="SHA-256 of the whole original value, hex")
    truncation_reason: str | None = Field(default=None, description="why and how much was cut")

    @property
    def original_value(self) -> bytes:
        """The original bytes; only their first ``len(...)`` of ``original_size`` when ``truncated``."""
        return base64.b64decode(self.value_b64)

    def to_json_bytes_within(self, max_bytes: int, message_limit: int | None = None) -> bytes:
        """The letter as JSON of at most ``max_bytes`` bytes: whole if it fits, else truncated (the
        value cut to the prefix that fits, the reason to 1,000 characters, the key to 1,024 bytes).
        ``message_limit`` is the limit the truncation reason names (``max_bytes`` if not given: the
        caller may have subtracted the key and record batch overhead from it). Only an absurdly
        small ``max_bytes`` (below about 3 KB) can leave it larger: the letter then keeps no value
        bytes at all."""
        whole = self.to_json_bytes()
        if len(whole) <= max_bytes:
            return whole
        limit = max_bytes if message_limit is None else message_limit
        original = self.original_value
        reason = self.reason
        if len(reason) > DEAD_LETTER_REASON_MAX_CHARS:
            reason = reason[:DEAD_LETTER_REASON_MAX_CHARS - 1] + "…"
        key_b64, key_note = self.key_b64, ""
        if key_b64 is not None:
            key = base64.b64decode(key_b64)
            if len(key) > DEAD_LETTER_KEY_MAX_BYTES:
                key_b64 = base64.b64encode(key[:DEAD_LETTER_KEY_MAX_BYTES]).decode()
                key_note = f"; key cut to its first {DEAD_LETTER_KEY_MAX_BYTES:,} of {len(key):,} bytes"
        base = self.model_copy(update={
            "reason": reason, "key_b64": key_b64, "truncated": True, "original_size": len(original),
            "original_sha256": hashlib.sha256(original).hexdigest(),
        })

        def cut(keep: int, value_b64: str) -> bytes:
            return base.model_copy(update={
                "value_b64": value_b64,
                "truncation_reason": f"dead letter of {len(whole):,} bytes does not fit the message limit of "
                                     f"{limit:,} bytes: value cut to its first {keep:,} of {len(original):,} "
                                     f"bytes{key_note}",
            }).to_json_bytes()

        # the letter without value bytes, its reason naming the largest figure ``keep`` can have: the
        # value gets what is left (base64: 4 characters for 3 bytes)
        keep = min(len(original), max(0, (max_bytes - len(cut(len(original), ""))) // 4 * 3))
        return cut(keep, base64.b64encode(original[:keep]).decode())
