"""Per-cell aggregates of UE measurement reports: counts, histograms on the 7-bit index grids,
serving and neighbour statistics. Updates are idempotent per ``eventId``.

The index grids are those of TS 38.133 used by the 28.552 distributions, so an MR histogram and a
``MR.NRScSSSINR.BinX`` / ``L1M.SS-RSRP.BinX`` PM distribution can be compared bin for bin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twin.records import MrBody

__all__ = [
    "HOUR", "N_BINS", "MrStats", "histogram_quantile", "rsrp_dbm_of_index", "rsrq_db_of_index", "sinr_db_of_index",
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
    # eventIds seen, bucketed by event hour so old ones can be forgotten after the retention.
    seen: dict[int, set[str]] = field(default_factory=dict)
    first_t: float | None = None
    last_t: float | None = None

    def apply(self, body: MrBody) -> bool:
        """Fold one normalised MR body (``twin.records.MrBody``) in; False if already counted."""
        event_id, t, rsrp, rsrq, sinr, neighbours, thp, cqi = body
        bucket = int(t) // HOUR
        ids = self.seen.get(bucket)
        if ids is None:
            ids = self.seen[bucket] = set()
        elif event_id in ids:
            return False
        ids.add(event_id)
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
        return {
            "count": self.count, "rsrp": self.rsrp, "rsrq": self.rsrq, "sinr": self.sinr, "cqi": self.cqi,
            "thp": [self.thp_n, self.thp_sum], "nb": self.neighbours,
            "seen": {str(b): sorted(ids) for b, ids in self.seen.items()},
            "first_t": self.first_t, "last_t": self.last_t,
        }

    def checkpoint_view(self) -> dict[str, Any]:
        """``to_dict`` over the live containers (see ``CellMirror.checkpoint_view``)."""
        return {
            "count": self.count, "rsrp": self.rsrp, "rsrq": self.rsrq, "sinr": self.sinr, "cqi": self.cqi,
            "thp": [self.thp_n, self.thp_sum], "nb": self.neighbours, "seen": self.seen,
            "first_t": self.first_t, "last_t": self.last_t,
        }

    def snapshot(self) -> MrStats:
        """A copy that later ``apply`` calls do not change."""
        return MrStats(
            count=self.count, rsrp=list(self.rsrp), rsrq=list(self.rsrq), sinr=list(self.sinr), cqi=list(self.cqi),
            thp_n=self.thp_n, thp_sum=self.thp_sum, neighbours={k: list(v) for k, v in self.neighbours.items()},
            seen={b: set(ids) for b, ids in self.seen.items()}, first_t=self.first_t, last_t=self.last_t,
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MrStats:
        thp_n, thp_sum = d["thp"]
        return cls(
            count=d["count"], rsrp=list(d["rsrp"]), rsrq=list(d["rsrq"]), sinr=list(d["sinr"]),
            cqi=list(d["cqi"]), thp_n=thp_n, thp_sum=thp_sum,
            neighbours={k: list(v) for k, v in d["nb"].items()},
            seen={int(b): set(ids) for b, ids in d["seen"].items()},
            first_t=d["first_t"], last_t=d["last_t"],
        )
