"""Where each cell was heard, and how strongly: a geolocated SS-RSRP map from UE reports.

A UE measurement report with a position (MDT, GNSS) gives the SS-RSRP of its serving cell and of
the neighbours it heard at one place. At one place the path, the building and the shadowing
between a cell and the UE stay what they were, so the change of a cell's RSRP *at the same place*
is the change of the cell itself (its gain, its azimuth, the cluster's path loss), free of what the
twin does not know about the place. Aggregates cannot do that: after a cell loses 15 dB, the UEs
that still report it are those where it was strongest, and its mean RSRP falls by less
(``docs/gap.md``, "Radio evidence"). The resync's fit reads these per-place changes
(``twin.resync.fit``).

The same holds for what a UE hears besides its serving cell: its SS-RSRP minus its SS-SINR is the
interference plus noise at the place (dBm per resource element; SS-SINR is measured on the
synchronisation blocks, which every cell sends at full power, so the cells' load does not move
it). Its change at a place is interference the cells' own changes do not explain: an external
interferer. The map keeps that level too, under ``interference_key(cell)`` of the serving cell.

The map keeps, per measured key (a cell, or a cell's interference level), square bins of
``BIN_M`` metres: the reports of the last ``RECENT_S`` seconds one by one (a resync compares the
periods since its episode began with what came before), older ones folded into a per-bin mean
that forgets with a time constant of ``MEMORY_S`` (folded a quarter hour at a time). Only reports
located to ``MAX_ACCURACY_M`` or better are kept; a key keeps at most ``MAX_BINS`` bins (the least
recently heard go first) and the map at most ``MAX_RECENT`` recent reports, so its memory is
bounded whatever arrives.

>>> m = RadioMap()
>>> for t, rsrp in ((1000.0, -90.0), (2000.0, -91.0), (9000.0, -105.0)):
...     m.add(t, "nr:a", 45.0, 7.0, rsrp)
>>> change = m.changes(8100.0, 9000.0)["nr:a"]
>>> change.delta_db.tolist(), change.before_n.tolist(), change.after_n.tolist()
([-14.5], [2.0], [1])
>>> back = RadioMap()
>>> for sub, value in m.take_entries(full=True):
...     back.load_entry(list(sub), value)
>>> back == m
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import orjson

__all__ = [
    "BIN_M",
    "INTERFERENCE_SUFFIX",
    "MAX_ACCURACY_M",
    "MAX_BINS",
    "MAX_RECENT",
    "MEMORY_S",
    "RADIATION_ATTRIBUTES",
    "RECENT_S",
    "RadioChange",
    "RadioMap",
    "bin_of",
    "interfered_cell",
    "interference_key",
    "is_radiation_attribute",
]

#: bin edge (m): about a GNSS fix, so a bin is one place (a 50 m bin mixes places and, after a
#: loss, keeps only where the cell was strongest: -12.5 dB measured for a -15 dB fault)
BIN_M = 5.0
#: reports located less precisely than this (m) are not mapped
MAX_ACCURACY_M = 10.0
#: reports kept one by one (s): the evidence window of a resync
RECENT_S = 2 * 3600.0
#: time constant (s) of the folded per-bin means
MEMORY_S = 2 * 86400.0
#: bins per measured cell, and recent reports per map
MAX_BINS = 4096
MAX_RECENT = 200_000
_M_PER_DEG = 111_320.0
_BUCKET_S = 900.0
_NONE = (0.0, 0.0)
FloatArray = npt.NDArray[np.float64]


#: CM attributes (``twin.sim.cm``'s names, any ``Class.`` prefix stripped) that change what a cell
#: radiates where: a change of one of them clears the cell's map (``RadioMap.forget``)
RADIATION_ATTRIBUTES = frozenset({
    "configuredMaxTxPower", "digitalTilt", "retTiltValue", "mechanicalTilt", "azimuth", "antennaHeight",
    "beamVertWidth", "beamHorizWidth", "antennaMaxGain", "arfcnDL", "administrativeState", "lat", "lon",
})


def is_radiation_attribute(name: str) -> bool:
    """Whether the CM attribute ``name`` (as the mirror keeps it, any ``Class.`` prefix) is one of
    ``RADIATION_ATTRIBUTES``.

    >>> is_radiation_attribute("NRSectorCarrier.configuredMaxTxPower"), is_radiation_attribute("cellIndividualOffset")
    (True, False)
    """
    head, _, tail = name.partition(".")
    return (tail if tail and head[:1].isupper() else name) in RADIATION_ATTRIBUTES


#: the map key of a serving cell's interference-plus-noise level: the cell key and this suffix
INTERFERENCE_SUFFIX = "#in"


def interference_key(cell: str) -> str:
    """The map key under which ``cell``'s interference-plus-noise level is kept.

    >>> interference_key("nr:a"), interfered_cell(interference_key("nr:a")), interfered_cell("nr:a")
    ('nr:a#in', 'nr:a', None)
    """
    return cell + INTERFERENCE_SUFFIX


def interfered_cell(key: str) -> str | None:
    """The serving cell of an interference level's map key; None for a cell's own SS-RSRP key."""
    return key[: -len(INTERFERENCE_SUFFIX)] if key.endswith(INTERFERENCE_SUFFIX) else None


def bin_of(lat: float, lon: float, bin_m: float = BIN_M) -> tuple[int, int]:
    """The bin of a position (equirectangular, ``bin_m`` square).

    >>> bin_of(45.0, 7.0) == bin_of(45.0 + 1e-6, 7.0), bin_of(45.0, 7.0) == bin_of(45.0 + 1e-4, 7.0)
    (True, False)
    """
    y = lat * _M_PER_DEG
    return math.floor(y / bin_m), math.floor(lon * _M_PER_DEG * math.cos(math.radians(lat)) / bin_m)


@dataclass(frozen=True)
class RadioChange:
    """One measured key's per-place change: for every bin heard both before and in the window,
    the mean position of the window's reports (``lat``, ``lon``, degrees), the change of the mean
    level (``delta_db``, window minus before: SS-RSRP, or interference plus noise) and the reports
    behind each side. Arrays [bins]."""

    lat: FloatArray
    lon: FloatArray
    delta_db: FloatArray
    before_n: FloatArray
    after_n: npt.NDArray[np.int64]


@dataclass
class RadioMap:
    """Geolocated SS-RSRP per measured cell (module docstring). Checkpointed incrementally
    (``take_entries``): the folded bins when a fold changed them, and the recent reports in
    quarter-hour buckets, each written while it fills and deleted once folded."""

    bin_m: float = BIN_M
    # recent reports by quarter hour of their time: bucket -> [(time, measured cell, lat, lon, RSRP dBm)]
    recent: dict[int, list[tuple[float, str, float, float, float]]] = field(default_factory=dict)
    # folded: cell -> bin -> [weight, weighted RSRP sum, time of the last fold]
    bins: dict[str, dict[tuple[int, int], list[float]]] = field(default_factory=dict)
    newest: float = float("-inf")
    # checkpoint bookkeeping (not state): buckets changed or dropped, bins changed, since the last take
    dirty: set[int] = field(default_factory=set, compare=False, repr=False)
    dropped: set[int] = field(default_factory=set, compare=False, repr=False)
    bins_dirty: bool = field(default=False, compare=False, repr=False)
    added: int = field(default=0, compare=False, repr=False)  # reports added: the size is checked every 1,000

    def add(self, t: float, cell: str, lat: float, lon: float, rsrp_dbm: float) -> None:
        """One report of ``cell`` at ``(lat, lon)`` at time ``t`` (epoch s)."""
        if not (math.isfinite(t) and math.isfinite(lat) and math.isfinite(lon) and math.isfinite(rsrp_dbm)):
            return
        bucket = int(t // _BUCKET_S)
        reports = self.recent.get(bucket)
        if reports is None:
            reports = self.recent[bucket] = []
        reports.append((t, cell, lat, lon, rsrp_dbm))
        self.dirty.add(bucket)
        if t > self.newest:
            self.newest = t
            if min(self.recent) < (self.newest - RECENT_S) // _BUCKET_S:
                self.fold()  # a whole quarter hour left the window: once per quarter hour
        elif len(reports) == 1 and bucket < (self.newest - RECENT_S) // _BUCKET_S:
            self.fold()  # a late report of a quarter hour already folded
        self.added += 1
        if self.added % 1000 == 0 and self.size() > MAX_RECENT:
            self.fold()

    def forget(self, cell: str, before: float) -> None:
        """Drop what ``cell`` was heard at before ``before`` (epoch s), and the interference every
        cell's UEs heard then: its radiation changed (power, tilt, azimuth, antenna: a CM change),
        so its levels no longer describe it, and the interference it sends moved at every place it
        reaches (a resync would read that as an external interferer)."""

        def gone(key: str) -> bool:
            return key == cell or key.endswith(INTERFERENCE_SUFFIX)

        for key in [k for k in self.bins if gone(k)]:
            del self.bins[key]
            self.bins_dirty = True
        for bucket, reports in list(self.recent.items()):
            kept = [r for r in reports if not gone(r[1]) or r[0] >= before]
            if len(kept) == len(reports):
                continue
            if kept:
                self.recent[bucket] = kept
                self.dirty.add(bucket)
            else:
                del self.recent[bucket]
                self.dirty.discard(bucket)
                self.dropped.add(bucket)

    def size(self) -> int:
        """Recent reports held."""
        return sum(len(v) for v in self.recent.values())

    def fold(self) -> None:
        """Fold the quarter hours older than ``RECENT_S`` (and the oldest beyond ``MAX_RECENT``
        reports) into the bins."""
        horizon = (self.newest - RECENT_S) // _BUCKET_S
        size = self.size()
        for bucket in sorted(self.recent):
            if bucket >= horizon and size <= MAX_RECENT:
                break
            old = self.recent.pop(bucket)
            size -= len(old)
            self.dirty.discard(bucket)
            self.dropped.add(bucket)
            self.bins_dirty = True
            for t, cell, lat, lon, rsrp in old:
                per = self.bins.setdefault(cell, {})
                key = bin_of(lat, lon, self.bin_m)
                acc = per.get(key)
                if acc is None:
                    if len(per) >= MAX_BINS:
                        _evict(per)
                    per[key] = [1.0, rsrp, t]
                    continue
                decay = math.exp(-max(t - acc[2], 0.0) / MEMORY_S)
                acc[0] = acc[0] * decay + 1.0
                acc[1] = acc[1] * decay + rsrp
                acc[2] = max(acc[2], t)

    def changes(self, since: float, until: float, after_from: float | None = None) -> dict[str, RadioChange]:
        """Per measured cell, the change at each place between the reports in ``(since, until]``
        and everything up to ``since`` (folded bins and earlier recent reports); with
        ``after_from``, only the reports in ``(after_from, until]`` are compared (a later period
        against the same before)."""
        start = since if after_from is None else max(since, after_from)
        after: dict[str, dict[tuple[int, int], list[float]]] = {}
        early: dict[str, dict[tuple[int, int], list[float]]] = {}  # recent reports up to ``since``
        for reports in self.recent.values():
            for t, cell, lat, lon, rsrp in reports:
                if t > until or since < t <= start:
                    continue
                key = bin_of(lat, lon, self.bin_m)
                if t <= since:
                    acc = early.setdefault(cell, {}).setdefault(key, [0.0, 0.0])
                else:
                    acc = after.setdefault(cell, {}).setdefault(key, [0.0, 0.0, 0.0, 0.0])
                    acc[2] += lat
                    acc[3] += lon
                acc[0] += 1.0
                acc[1] += rsrp
        out: dict[str, RadioChange] = {}
        for cell, per in after.items():
            folded, recent = self.bins.get(cell, {}), early.get(cell, {})
            rows = []
            for k, a in sorted(per.items()):
                f, r = folded.get(k, _NONE), recent.get(k, _NONE)
                n = f[0] + r[0]
                if n > 0:
                    rows.append((a[2] / a[0], a[3] / a[0], a[1] / a[0] - (f[1] + r[1]) / n, n, a[0]))
            if rows:
                arr = np.array(rows, dtype=np.float64)
                out[cell] = RadioChange(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4].astype(np.int64))
        return out

    # -- checkpoint ----------------------------------------------------------------------------
    def take_entries(self, full: bool = False) -> list[tuple[tuple[str, ...], bytes | None]]:
        """The entries changed since the last call (all with ``full``): ``("b",)`` the bins and
        the map's settings, ``("q", bucket)`` a quarter hour of recent reports (None: deleted)."""
        out: list[tuple[tuple[str, ...], bytes | None]] = []
        if full or self.bins_dirty:
            out.append((("b",), orjson.dumps({"v": 1, "binM": self.bin_m,
                                              "bins": {c: [[k[0], k[1], *v] for k, v in per.items()]
                                                       for c, per in self.bins.items()}})))
        for bucket in sorted(self.recent if full else self.dirty):
            out.append((("q", str(bucket)), orjson.dumps(self.recent[bucket])))
        if not full:
            out += [(("q", str(bucket)), None) for bucket in sorted(self.dropped)]
        self.dirty, self.dropped, self.bins_dirty = set(), set(), False
        return out

    def load_entry(self, sub: list[str], value: bytes) -> None:
        """Read back one entry of ``take_entries``; ``ValueError`` on anything else."""
        try:
            d = orjson.loads(value)
            if sub[0] == "b":
                if d.get("v") != 1:
                    raise ValueError(f"radio map version {d.get('v')!r} is not 1")
                self.bin_m = float(d["binM"])
                self.bins = {str(c): {(int(b[0]), int(b[1])): [float(b[2]), float(b[3]), float(b[4])] for b in rows}
                             for c, rows in d["bins"].items()}
            elif sub[0] == "q":
                reports = [(float(t), str(c), float(a), float(o), float(r)) for t, c, a, o, r in d]
                self.recent[int(sub[1])] = reports
                self.newest = max([self.newest, *(r[0] for r in reports)])
            else:
                raise ValueError(f"unknown radio map entry {sub!r}")
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"not a radio map entry {sub!r}: {exc}") from exc

    def copy(self) -> RadioMap:
        return RadioMap(self.bin_m, {b: list(v) for b, v in self.recent.items()},
                        {c: {k: list(v) for k, v in per.items()} for c, per in self.bins.items()}, self.newest)


def _evict(per: dict[tuple[int, int], list[float]]) -> None:
    """Drop the least recently heard tenth of a cell's bins (amortised: not one per new bin)."""
    order = sorted(per, key=lambda k: per[k][2])
    for key in order[: max(1, len(order) // 10)]:
        del per[key]
