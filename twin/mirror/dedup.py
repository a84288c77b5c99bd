"""Bounded memory for MR de-duplication: exact event ids while an hour is recent, a Bloom filter after.

MR events are de-duplicated by ``eventId`` within their cell and *event* hour (a redelivered event
has the same id, cell and time, so it lands in the same hour bucket, and is only ever compared with
that bucket). A bucket is **open** while its hour is recent: its ids are kept exactly (a ``dict``
used as an ordered set, so the hot path is one lookup and one insert, and a checkpoint writes only
the ids added since the previous one). Once the cell's newest event is more than
:data:`SEAL_AFTER_S` past the end of the hour, the bucket is **sealed**: its ids are replaced by a
Bloom filter sized for them (:class:`Bloom`), and dropped with the retention
(``ingest.mr_dedup_retention_s``).

What this guarantees:

- **No duplicate is ever counted twice.** A Bloom filter has no false negatives, so an event already
  counted is recognised in an open bucket (exact) and in a sealed one (filter).
- **False duplicates** (a new event taken for one already seen, and not counted) happen only for an
  event arriving more than :data:`SEAL_AFTER_S` after its hour ended (late data, replays), at a rate
  of at most :data:`FALSE_DUPLICATE_RATE` per such event (``2 * P_SEAL``: the first filter of a
  bucket is built at ``P_SEAL`` for the ids it holds plus :data:`HEADROOM`; if late events overfill
  it, a further filter of twice the capacity at half the rate is added, and the rates sum to less
  than ``2 * P_SEAL``). Events of open buckets are never false duplicates.
- **Memory**: an open bucket costs about 100-140 bytes per id (the id string and its slot); a sealed
  one ``HEADROOM * 1.44 * log2(1 / P_SEAL) / 8`` = 4.5 bytes per id (at ``P_SEAL = 1e-6``): 72 hours
  of a cell's MR at ``R`` events per hour take about ``2 * R * 120 + 70 * R * 4.5`` bytes, against
  ``72 * R * 120`` bytes when every id was kept (a 10x reduction, bounded by the filters' size
  rather than by the ids' length).

>>> bloom = Bloom.sized(1000, 1e-6)
>>> bloom.m, bloom.k
(28756, 20)
>>> bloom.add("a"), bloom.add("a"), "a" in bloom, "b" in bloom
(True, False, True, False)
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Iterable

import numpy as np

__all__ = ["FALSE_DUPLICATE_RATE", "HEADROOM", "P_SEAL", "SEAL_AFTER_S", "Bloom", "SealedIds", "fingerprints"]

#: false-positive rate a sealed bucket's first filter is built for (at its capacity)
P_SEAL = 1e-6
#: bound on the rate of false duplicates among events that reach a sealed bucket
FALSE_DUPLICATE_RATE = 2 * P_SEAL
#: capacity of a sealed bucket's first filter, relative to the ids it is built from (late events)
HEADROOM = 1.25
#: an hour's bucket is sealed once the cell's newest event is this far past the hour's end
SEAL_AFTER_S = 3600
_MIN_CAPACITY = 16
_M64 = (1 << 64) - 1
_HEAD = struct.Struct("<QIII")  # m, k, n, capacity


def fingerprints(ids: Iterable[str]) -> np.ndarray:
    """Two 64-bit hashes per id (``blake2b``, stable across processes and versions), shape (n, 2)."""
    digests = b"".join(hashlib.blake2b(i.encode(), digest_size=16).digest() for i in ids)
    return np.frombuffer(digests, dtype="<u8").reshape(-1, 2)


def _pair(event_id: str) -> tuple[int, int]:
    d = hashlib.blake2b(event_id.encode(), digest_size=16).digest()
    return int.from_bytes(d[:8], "little"), int.from_bytes(d[8:], "little") | 1


class Bloom:
    """A Bloom filter of ``m`` bits and ``k`` hashes (double hashing of a 128-bit ``blake2b``:
    bit ``i`` of an id is ``(h1 + i * h2) mod 2**64 mod m``), holding ``n`` ids, built for
    ``capacity`` ids at a false-positive rate ``p`` (``m = -capacity ln p / ln² 2``,
    ``k = round(m / capacity ln 2)``)."""

    __slots__ = ("bits", "capacity", "k", "m", "n")

    def __init__(self, m: int, k: int, bits: bytearray, n: int = 0, capacity: int = 0) -> None:
        self.m, self.k, self.bits, self.n, self.capacity = m, k, bits, n, capacity

    @classmethod
    def sized(cls, capacity: int, p: float) -> Bloom:
        capacity = max(capacity, _MIN_CAPACITY)
        m = math.ceil(-capacity * math.log(p) / math.log(2) ** 2)
        k = max(1, round(m / capacity * math.log(2)))
        return cls(m, k, bytearray((m + 7) // 8), 0, capacity)

    @classmethod
    def of(cls, ids: Iterable[str], p: float, headroom: float = HEADROOM) -> Bloom:
        """A filter holding ``ids`` (all distinct), with room for ``headroom`` times as many."""
        pairs = fingerprints(ids)
        bloom = cls.sized(math.ceil(len(pairs) * headroom), p)
        if len(pairs):
            steps = np.arange(bloom.k, dtype=np.uint64)
            with np.errstate(over="ignore"):
                positions = (pairs[:, :1] + steps * (pairs[:, 1:] | np.uint64(1))) % np.uint64(bloom.m)
            flags = np.zeros(bloom.m, dtype=bool)
            flags[positions.ravel()] = True
            bloom.bits = bytearray(np.packbits(flags, bitorder="little").tobytes())
            bloom.n = len(pairs)
        return bloom

    def _positions(self, event_id: str) -> list[int]:
        h1, h2 = _pair(event_id)
        m = self.m
        return [((h1 + i * h2) & _M64) % m for i in range(self.k)]

    def __contains__(self, event_id: object) -> bool:
        if not isinstance(event_id, str):
            return False
        bits = self.bits
        return all(bits[pos >> 3] >> (pos & 7) & 1 for pos in self._positions(event_id))

    def add(self, event_id: str) -> bool:
        """Add ``event_id``; False if it was (or seemed to be) in the filter already."""
        bits = self.bits
        new = False
        for pos in self._positions(event_id):
            byte, bit = pos >> 3, 1 << (pos & 7)
            if not bits[byte] & bit:
                bits[byte] |= bit
                new = True
        if new:
            self.n += 1
        return new

    def contains_many(self, pairs: np.ndarray) -> np.ndarray:
        """Membership of many ids at once, given their :func:`fingerprints` (for measurements)."""
        steps = np.arange(self.k, dtype=np.uint64)
        with np.errstate(over="ignore"):
            positions = (pairs[:, :1] + steps * (pairs[:, 1:] | np.uint64(1))) % np.uint64(self.m)
        flags = np.unpackbits(np.frombuffer(bytes(self.bits), dtype=np.uint8), bitorder="little")
        return np.asarray(flags[positions].all(axis=1))

    def to_bytes(self) -> bytes:
        return _HEAD.pack(self.m, self.k, self.n, self.capacity) + bytes(self.bits)

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> Bloom:
        m, k, n, capacity = _HEAD.unpack_from(data)
        return cls(m, k, bytearray(data[_HEAD.size:]), n, capacity)

    def nbytes(self) -> int:
        return len(self.bits)


class SealedIds:
    """The ids of one sealed hour: Bloom filters, the newest taking late arrivals (a new one, of twice
    the capacity at half the false-positive rate, when it is full)."""

    __slots__ = ("filters",)

    def __init__(self, filters: list[Bloom]) -> None:
        self.filters = filters

    @classmethod
    def seal(cls, ids: Iterable[str], p: float = P_SEAL) -> SealedIds:
        return cls([Bloom.of(ids, p)])

    def __contains__(self, event_id: object) -> bool:
        return any(event_id in f for f in self.filters)

    def add(self, event_id: str) -> bool:
        """Add ``event_id``; False if it was (or seemed to be) among the ids already."""
        if event_id in self:
            return False
        last = self.filters[-1]
        if last.n >= last.capacity:
            p = P_SEAL / 2 ** len(self.filters)
            last = Bloom.sized(last.capacity * 2, p)
            self.filters.append(last)
        last.add(event_id)
        return True

    def __len__(self) -> int:
        return sum(f.n for f in self.filters)

    def to_bytes(self) -> bytes:
        parts = [f.to_bytes() for f in self.filters]
        return struct.pack("<I", len(parts)) + b"".join(struct.pack("<I", len(p)) + p for p in parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> SealedIds:
        view = memoryview(data)
        (count,) = struct.unpack_from("<I", view)
        at, filters = 4, []
        for _ in range(count):
            (size,) = struct.unpack_from("<I", view, at)
            filters.append(Bloom.from_bytes(view[at + 4:at + 4 + size]))
            at += 4 + size
        return cls(filters)

    def nbytes(self) -> int:
        return sum(f.nbytes() for f in self.filters)
