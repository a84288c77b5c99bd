"""Per-cell aggregates of UE measurement reports: counts, histograms on the 7-bit index grids,
serving and neighbour statistics. Updates are idempotent per ``eventId`` (``twin.mirror.dedup``: exact
ids for recent hours, Bloom filters for older ones, so the memory stays small).

The index grids are those of TS 38.133 used by the 28.552 distributions, so an MR histogram and a
``MR.NRScSSSINR.BinX`` / ``L1M.SS-RSRP.BinX`` PM distribution can be compared bin for bin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from twin.mirror.dedup import SEAL_AFTER_S, SealedIds
from twin.records import MrBody

__all__ = [
    "HOUR", "N_BINS", "MrStats", "SealBudget", "histogram_quantile", "rsrp_dbm_of_index", "rsrq_db_of_index",
    "sinr_db_of_index",
]

N_BINS = 128
HOUR = 3600


def _zeros(n: int = N_BINS) -> list[int]:
    return [0] * n


def rsrp_dbm_of_index(idx: float) -> float:
    return idx - 157.0


def rsrq_db_of_index(idx: float) -> float:
    return idx / 2.0 - 43.5


def sinr_db_of_index(idx: float) -> float:
    return idx / 2.0 - 23.5


def histogram_quantile(hist: list[int], q: float) -> float | None:
    """The bin index below which a fraction ``q`` of the reports lie.

    >>> histogram_quantile([0, 2, 0, 2], 0.5), histogram_quantile([0, 0], 0.5)
    (1.0, None)
    """
    total = sum(hist)
    if total == 0:
        return None
    target = q * total
    running = 0
    for idx, n in enumerate(hist):
        running += n
        if running >= target:
            return float(idx)
    return float(len(hist) - 1)


class SealBudget:
    """How many more event ids may be sealed into Bloom filters in this checkpoint (sealing hashes
    every id once; the budget spreads that work when many cells cross an hour together)."""

    __slots__ = ("ids",)

    def __init__(self, ids: int) -> None:
        self.ids = ids


@dataclass(slots=True)
class MrStats:
    count: int = 0
    rsrp: list[int] = field(default_factory=_zeros)
    rsrq: list[int] = field(default_factory=_zeros)
    sinr: list[int] = field(default_factory=_zeros)
    cqi: list[int] = field(default_factory=lambda: _zeros(16))
    # Sums are kept as integers (kbit/s, 0.01 dB) so they do not depend on the order of arrival.
    thp_n: int = 0
    thp_sum: int = 0
    # neighbour id (cellKey or 'pci:<pci>:<arfcn>') -> [reports, reports with RSRP, RSRP sum in 0.01 dB]
    neighbours: dict[str, list[int]] = field(default_factory=dict)
    # eventIds of recent event hours (open buckets): hour -> ids, in arrival order (a dict as an
    # ordered set); older hours are sealed into Bloom filters (``twin.mirror.dedup``).
    seen: dict[int, dict[str, None]] = field(default_factory=dict)
    first_t: float | None = None
    last_t: float | None = None
    sealed: dict[int, SealedIds] = field(default_factory=dict)
    # checkpoint bookkeeping (not state): ids of each open bucket already written, sealed buckets
    # changed and buckets dropped since the last checkpoint
    saved: dict[int, int] = field(default_factory=dict, compare=False, repr=False)
    sealed_changed: set[int] = field(default_factory=set, compare=False, repr=False)
    dropped: set[int] = field(default_factory=set, compare=False, repr=False)
    # the hour of the newest event when the ids were last pruned and sealed; whether the sealing
    # budget ran out before every hour due was sealed
    pruned_hour: int | None = field(default=None, compare=False, repr=False)
    seal_pending: bool = field(default=False, compare=False, repr=False)

    def apply(self, body: MrBody) -> bool:
        """Fold one normalised MR body (``twin.records.MrBody``) in; False if already counted."""
        event_id, t, rsrp, rsrq, sinr, neighbours, thp, cqi = body[:8]  # [8]: the position (RadioMap)
        bucket = int(t) // HOUR
        ids = self.seen.get(bucket)
        if ids is None:
            sealed = self.sealed.get(bucket)
            if sealed is None:
                self.seen[bucket] = {event_id: None}
            elif sealed.add(event_id):  # a late event of a sealed hour (rare)
                self.sealed_changed.add(bucket)
            else:
                return False
        elif event_id in ids:
            return False
        else:
            ids[event_id] = None
        self.count += 1
        if rsrp is not None:
            self.rsrp[rsrp] += 1
        if rsrq is not None:
            self.rsrq[rsrq] += 1
        if sinr is not None:
            self.sinr[sinr] += 1
        if cqi is not None:
            self.cqi[cqi] += 1
        if thp is not None:
            self.thp_n += 1
            self.thp_sum += round(thp)
        for ident, nb_rsrp in neighbours:
            acc = self.neighbours.get(ident)
            if acc is None:
                acc = self.neighbours[ident] = [0, 0, 0]
            acc[0] += 1
            if nb_rsrp is not None:
                acc[1] += 1
                acc[2] += round(nb_rsrp * 100)
        if self.first_t is None or t < self.first_t:
            self.first_t = t
        if self.last_t is None or t > self.last_t:
            self.last_t = t
        return True

    def forget_before(self, t: float) -> None:
        """Drop eventIds of hours entirely older than ``t`` (duplicates that old can no longer arrive)."""
        limit = int(t) // HOUR
        for bucket in [b for b in self.seen if b < limit]:
            del self.seen[bucket]
            self.saved.pop(bucket, None)
            self.dropped.add(bucket)
        for bucket in [b for b in self.sealed if b < limit]:
            del self.sealed[bucket]
            self.sealed_changed.discard(bucket)
            self.dropped.add(bucket)

    def seal(self, budget: SealBudget | None = None) -> None:
        """Replace the ids of hours that ended ``SEAL_AFTER_S`` before the newest event by Bloom
        filters (``twin.mirror.dedup``), as far as the ``budget`` goes."""
        if self.last_t is None:
            return
        self.pruned_hour = int(self.last_t) // HOUR
        self.seal_pending = False
        limit = (int(self.last_t) - SEAL_AFTER_S) // HOUR  # hours ending at or before last_t - SEAL_AFTER_S
        for bucket in sorted(b for b in self.seen if b < limit):
            ids = self.seen[bucket]
            if budget is not None:
                if budget.ids <= 0:
                    self.seal_pending = True
                    return
                budget.ids -= len(ids)
            self.sealed[bucket] = SealedIds.seal(ids)
            del self.seen[bucket]
            self.saved.pop(bucket, None)
            self.sealed_changed.add(bucket)

    def ids_seen(self) -> dict[int, int]:
        """Distinct event ids per event hour, open or sealed (what ``to_dict`` shows)."""
        counts = {b: len(ids) for b, ids in self.seen.items()}
        counts.update((b, len(s)) for b, s in self.sealed.items())
        return dict(sorted(counts.items()))

    def encoded(self) -> bytes:
        """The counts, without the event ids, as JSON (a checkpoint entry)."""
        return orjson.dumps({
            "count": self.count, "rsrp": self.rsrp, "rsrq": self.rsrq, "sinr": self.sinr, "cqi": self.cqi,
            "thp": [self.thp_n, self.thp_sum], "nb": self.neighbours, "first_t": self.first_t, "last_t": self.last_t,
        })

    def set_aggregate(self, d: dict[str, Any]) -> None:
        self.count = d["count"]
        self.rsrp, self.rsrq, self.sinr, self.cqi = d["rsrp"], d["rsrq"], d["sinr"], d["cqi"]
        self.thp_n, self.thp_sum = d["thp"]
        self.neighbours = d["nb"]
        self.first_t, self.last_t = d["first_t"], d["last_t"]

    def summary(self) -> dict[str, Any]:
        def q(hist: list[int], conv: Any) -> dict[str, float | None]:
            out = {}
            for name, p in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9)):
                idx = histogram_quantile(hist, p)
                out[name] = None if idx is None else conv(idx)
            return out

        mean_thp = self.thp_sum / self.thp_n if self.thp_n else None
        top = sorted(self.neighbours.items(), key=lambda kv: -kv[1][0])[:8]
        return {
            "reports": self.count,
            "rsrpDbm": q(self.rsrp, rsrp_dbm_of_index),
            "rsrqDb": q(self.rsrq, rsrq_db_of_index),
            "sinrDb": q(self.sinr, sinr_db_of_index),
            "dlThroughputKbpsMean": mean_thp,
            "neighbours": {
                k: {"reports": int(v[0]), "rsrpDbmMean": (v[2] / v[1] / 100) if v[1] else None} for k, v in top
            },
        }

    def to_dict(self) -> dict[str, Any]:
        """The aggregate and, under ``seen``, the number of distinct event ids per event hour (not the
        ids: whether an hour is still exact or already sealed does not change what was counted)."""
        return {
            "count": self.count, "rsrp": self.rsrp, "rsrq": self.rsrq, "sinr": self.sinr, "cqi": self.cqi,
            "thp": [self.thp_n, self.thp_sum], "nb": self.neighbours,
            "seen": {str(b): n for b, n in self.ids_seen().items()},
            "first_t": self.first_t, "last_t": self.last_t,
        }

    def snapshot(self) -> MrStats:
        """A copy that later ``apply`` calls do not change."""
        return MrStats(
            count=self.count, rsrp=list(self.rsrp), rsrq=list(self.rsrq), sinr=list(self.sinr), cqi=list(self.cqi),
            thp_n=self.thp_n, thp_sum=self.thp_sum, neighbours={k: list(v) for k, v in self.neighbours.items()},
            seen={b: dict(ids) for b, ids in self.seen.items()}, first_t=self.first_t, last_t=self.last_t,
            sealed={b: SealedIds.from_bytes(s.to_bytes()) for b, s in self.sealed.items()},
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MrStats:
        """From ``to_dict``, or from a JSON checkpoint of earlier versions (whose ``seen`` lists the
        ids of each hour: they become open buckets). ``to_dict``'s counts carry no ids: an hour given
        by its count alone is not restored."""
        thp_n, thp_sum = d["thp"]
        return cls(
            count=d["count"], rsrp=list(d["rsrp"]), rsrq=list(d["rsrq"]), sinr=list(d["sinr"]),
            cqi=list(d["cqi"]), thp_n=thp_n, thp_sum=thp_sum,
            neighbours={k: list(v) for k, v in d["nb"].items()},
            seen={int(b): dict.fromkeys(ids) for b, ids in d["seen"].items() if isinstance(ids, list)},
            first_t=d["first_t"], last_t=d["last_t"],
        )
