"""MR de-duplication in bounded memory (``twin.mirror.dedup``): the false-duplicate rate measured
against its documented bound, no duplicate ever let through, and the memory per event id."""

from __future__ import annotations

import math
import uuid

import pytest

from twin.mirror.dedup import FALSE_DUPLICATE_RATE, HEADROOM, P_SEAL, Bloom, SealedIds, fingerprints
from twin.mirror.mr_stats import HOUR, MrStats


def _ids(n: int, seed: int) -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_OID, f"{seed}:{i}")) for i in range(n)]


def _false_positives(bloom: Bloom, trials: int, seed: int) -> int:
    """How many of ``trials`` ids never added the filter says it holds."""
    found = 0
    for start in range(0, trials, 200_000):
        ids = [f"new-{seed}-{i}" for i in range(start, min(trials, start + 200_000))]
        found += int(bloom.contains_many(fingerprints(ids)).sum())
    return found


@pytest.mark.parametrize("p", [1e-2, 1e-3])
def test_the_false_positive_rate_of_a_full_filter_is_within_its_bound(p: float) -> None:
    """A filter filled to its capacity answers ``True`` for a new id at a rate of at most ``p``
    (here measured with 300,000 new ids; the bound allows 4 standard deviations of sampling error)."""
    bloom = Bloom.sized(20_000, p)
    for i in _ids(20_000, 1):
        bloom.add(i)
    trials = 300_000
    measured = _false_positives(bloom, trials, 10**6)
    expected = p * trials
    assert measured <= expected + 4 * math.sqrt(expected), (measured, expected)
    assert measured >= expected / 4  # the filter is not accidentally oversized either


def test_the_production_rate_measured_on_a_full_and_on_a_sealed_filter() -> None:
    """At ``P_SEAL`` (1e-6): a sealed hour's filter (built with ``HEADROOM`` for late events) and the
    same filter filled to its capacity; 2,000,000 new ids each."""
    ids = _ids(8_000, 2)
    sealed = Bloom.of(ids, P_SEAL)
    assert sealed.n == 8_000 and sealed.capacity == math.ceil(8_000 * HEADROOM)
    assert sealed.contains_many(fingerprints(ids)).all()  # no false negative
    at_seal = _false_positives(sealed, 2_000_000, 5 * 10**6)
    for i in _ids(sealed.capacity - sealed.n, 3):
        sealed.add(i)
    at_capacity = _false_positives(sealed, 2_000_000, 9 * 10**6)
    # expected about 0.08 and 2 respectively: the bound 2e-6 allows 4 (plus sampling error)
    assert at_seal <= 2 and at_capacity <= FALSE_DUPLICATE_RATE * 2_000_000 + 4 * math.sqrt(4), (at_seal, at_capacity)


def test_one_lookup_agrees_with_the_vectorised_one() -> None:
    ids = _ids(500, 4)
    bloom = Bloom.of(ids[:250], 1e-2)
    many = bloom.contains_many(fingerprints(ids))
    assert [i in bloom for i in ids] == many.tolist()
    assert all(many[:250])


def test_late_events_beyond_capacity_get_a_further_filter_and_stay_exact_for_duplicates() -> None:
    ids = _ids(100, 5)
    sealed = SealedIds.seal(ids)
    late = _ids(400, 6)
    assert sum(sealed.add(i) for i in late) >= 399  # new ones (a false duplicate at most: rate 2e-6)
    assert len(sealed.filters) >= 2 and all(i in sealed for i in ids + late)
    assert not any(sealed.add(i) for i in ids + late)  # every duplicate is recognised
    copy = SealedIds.from_bytes(sealed.to_bytes())
    assert all(i in copy for i in ids + late) and len(copy) == len(sealed)


def test_mr_stats_absorb_duplicates_of_open_and_sealed_hours_and_count_new_late_events() -> None:
    mr = MrStats()

    def body(event_id: str, t: float) -> list[object]:
        return [event_id, t, 40, 20, 30, [], 1000.0, 5]

    hour0 = _ids(2_000, 7)
    for i, e in enumerate(hour0):
        assert mr.apply(body(e, 100 * HOUR + i))  # type: ignore[arg-type]
    for i, e in enumerate(_ids(10, 8)):
        mr.apply(body(e, 102 * HOUR + i))  # type: ignore[arg-type]
    mr.seal()
    assert list(mr.sealed) == [100] and list(mr.seen) == [102]
    assert not any(mr.apply(body(e, 100 * HOUR)) for e in hour0)  # type: ignore[arg-type]
    # new late events of the sealed hour: a false duplicate at most at FALSE_DUPLICATE_RATE
    late = _ids(20_000, 9)
    counted = sum(mr.apply(body(e, 100 * HOUR + 5)) for e in late)  # type: ignore[arg-type]
    assert counted >= len(late) - 1 and mr.count == 2_000 + 10 + counted
    assert mr.ids_seen() == {100: 2_000 + counted, 102: 10}


def test_memory_per_event_id() -> None:
    """About 4.5 bytes per id once sealed (``HEADROOM * 1.44 * log2(1 / P_SEAL) / 8``), against ~100
    bytes for an id string in a set."""
    n = 10_000
    sealed = SealedIds.seal(_ids(n, 10))
    per_id = sealed.nbytes() / n
    assert per_id == pytest.approx(HEADROOM * math.log2(1 / P_SEAL) / math.log(2) / 8, rel=0.01)
    assert 4.0 < per_id < 5.0
