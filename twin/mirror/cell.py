"""The mirror of one cell: CM attributes with observation times, PM values per measurement and
granularity period, MR aggregates, freshness and gaps.

PM values are upserts keyed by (measurement, granularity period, period end), so a redelivered
record changes nothing; counters and gauges are only combined at read time, through
``twin.measurements.aggregate``, which never sums a gauge.

Every update also notes what it changed in ``changes`` (a few tags per record: the PM period, the
MR aggregate, the CM), so that a checkpoint writes only those parts (``twin.mirror.store``):
``take_changes`` turns the tags into checkpoint entries, small keys such as one PM period of the
cell, and ``load_entry`` reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from typing import Any, cast

import orjson

from twin.measurements import aggregate, method_of
from twin.mirror import cm_history
from twin.mirror.dedup import SealedIds
from twin.mirror.mr_stats import HOUR, MrStats, SealBudget
from twin.records import PmBody, PmRelationBody

__all__ = ["CM_HISTORY_MAX", "HEAD", "IDS", "MR", "PERIOD_KINDS", "PM", "PRED", "REL", "SEALED", "CellMirror",
           "Entry", "PmSeries"]

# gp -> name -> period end (epoch s) -> value
PmSeries = dict[int, dict[str, dict[int, float]]]
#: replaced values kept per CM attribute, whatever the retention (a cell reporting no PM)
CM_HISTORY_MAX = 64

# Checkpoint entries of a cell, by the first part of their sub-key:
HEAD = "h"  # ("h",): CM, replaced CM values, unknown PM names
MR = "m"  # ("m",): the MR aggregate (counts and histograms)
PM = "p"  # ("p", gp, end): one PM period: {"s": suspect flag, "v": {name: value}}
REL = "r"  # ("r", gp, end): the NRCellRelation values of one period: {target: {name: value}}
PRED = "x"  # ("x", gp, end): the twin's prediction of one period: {kpi: value}
IDS = "d"  # ("d", hour, first): MR event ids of an open hour, from the ``first``-th on
SEALED = "D"  # ("D", hour): the Bloom filters of a sealed hour (bytes)
PERIOD_KINDS = (PM, REL, PRED)
#: (sub-key, encoded value): a value of None deletes the entry
Entry = tuple[tuple[str, ...], bytes | None]

# Whether a PM name is one the twin knows (``method_of``), asked once per name and cell: cached, as
# a large network's new cells would otherwise ask it for every value of their first records.
_KNOWN: dict[str, bool] = {}
_KNOWN_MAX = 100_000


def _known(name: str) -> bool:
    known = _KNOWN.get(name)
    if known is None:
        known = method_of(name) is not None
        if len(_KNOWN) < _KNOWN_MAX:
            _KNOWN[name] = known
    return known


@dataclass(slots=True)
class CellMirror:
    cell_key: str
    # "Class.attribute" -> [value, observedAt (epoch s, the latest observation), dn, since (epoch s,
    # the first observation of this value)]
    cm: dict[str, list[Any]] = field(default_factory=dict)
    # "Class.attribute" -> the values it had before its current one, oldest first, as runs
    # ``[since, last observed, value, dn]`` (``twin.mirror.cm_history``); only attributes whose
    # value changed have an entry (what ``cm_as_of`` reads)
    cm_before: dict[str, list[list[Any]]] = field(default_factory=dict)
    pm: PmSeries = field(default_factory=dict)
    # gp -> period end -> suspect flag; the set of periods that reported anything
    periods: dict[int, dict[int, bool]] = field(default_factory=dict)
    # target cell -> gp -> name -> end -> value (NRCellRelation KPIs)
    relations: dict[str, PmSeries] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    mr: MrStats = field(default_factory=MrStats)
    # the twin's predictions beside the PM values: gp -> KPI name -> period end -> value
    predicted: PmSeries = field(default_factory=dict)
    # the MR aggregates merged in from this cell's mirror in another cluster, when the topology moved
    # the cell (``twin.mirror.cell_move``): their fingerprints, so that a move repeated after a crash
    # does not count them twice
    moved_in: list[str] = field(default_factory=list)
    # what changed since the last checkpoint: HEAD, MR, or (PM | REL | PRED, gp, end) (not state)
    changes: set[Any] = field(default_factory=set, compare=False, repr=False)

    # -- updates ---------------------------------------------------------------------------
    def apply_pm(self, kind: str, r: PmBody | PmRelationBody) -> None:
        gp: int = r["gp"]
        end = round(r["t"])
        series = self.pm.setdefault(gp, {}) if kind == "pm" else (
            self.relations.setdefault(cast(PmRelationBody, r)["tc"], {}).setdefault(gp, {})
        )
        for name, value in r["v"].items():
            per_name = series.get(name)
            if per_name is None:
                per_name = series[name] = {}
                if not _known(name):
                    self.unknown.add(name)
                    self.changes.add(HEAD)
            per_name[end] = value
        if kind == "pm":
            self.periods.setdefault(gp, {})[end] = bool(r["s"])
            self.changes.add((PM, gp, end))
        else:
            self.changes.add((REL, gp, end))

    def withdraw_pm(self, gp: int, end: int, target: str | None = None) -> tuple[dict[str, float], bool | None]:
        """Remove and return one period's PM values (of the relation to ``target`` when given) and
        its suspect flag: a record applied here that turned out to be another cell's
        (``ClusterMirror``: a derived key that CM gives another node)."""
        if target is None:
            series = self.pm.get(gp, {})
            suspect = self.periods.get(gp, {}).pop(end, None)
            self.changes.add((PM, gp, end))
        else:
            series = self.relations.get(target, {}).get(gp, {})
            suspect = None
            self.changes.add((REL, gp, end))
        values = {}
        for name, per_name in list(series.items()):
            if end in per_name:
                values[name] = per_name.pop(end)
                if not per_name:  # as a checkpoint reads back: no empty series
                    del series[name]
        return values, suspect

    def set_predicted(self, gp: int, end: int, values: dict[str, float]) -> None:
        """Store the twin's prediction of one period (an upsert: re-predicting changes nothing)."""
        series = self.predicted.setdefault(gp, {})
        for name, value in values.items():
            series.setdefault(name, {})[end] = value
        self.changes.add((PRED, gp, end))

    def apply_cm(self, cls: str | None, dn: str, attributes: dict[str, Any], t: float) -> None:
        """Latest observation wins for ``cm``; every observation, in whatever order it arrives, also
        places its value in the attribute's history (``twin.mirror.cm_history``), which ``cm_as_of``
        reads."""
        prefix = f"{cls}." if cls else ""
        self.changes.add(HEAD)
        for attr, value in attributes.items():
            name = prefix + attr
            current = self.cm.get(name)
            if current is None:
                self.cm[name] = [value, t, dn, t]
            elif t >= current[1]:  # the usual case: a newer observation
                if current[0] == value and current[2] == dn:
                    self.cm[name] = [value, t, dn, _since(current)]
                else:
                    self.cm_before.setdefault(name, []).append([_since(current), current[1], current[0], current[2]])
                    self.cm[name] = [value, t, dn, t]
            else:  # an older observation arriving late
                runs = [*self.cm_before.get(name, ()), [_since(current), current[1], current[0], current[2]]]
                cm_history.observe(runs, t, value, dn)
                last = runs[-1]
                self.cm[name] = [last[2], last[1], last[3], last[0]]
                if len(runs) > 1:
                    self.cm_before[name] = runs[:-1]
                else:
                    self.cm_before.pop(name, None)

    def delete_dn(self, dn: str) -> None:
        """Forget the attributes of the instance ``dn``, with their history."""
        for name in [n for n, v in self.cm.items() if v[2] == dn]:
            del self.cm[name]
            self.cm_before.pop(name, None)
            self.changes.add(HEAD)

    def cm_as_of(self, t: float | None) -> dict[str, list[Any]]:
        """The CM in effect at event time ``t`` (epoch s), in the form of ``cm``; ``None``: the latest.

        An attribute takes the value observed last at or before ``t``; before its first observation
        it takes the earliest value known (a CM snapshot taken after the PM it explains still
        describes the network then, as long as nothing changed). The answer does not depend on the
        order the observations arrived in. Attributes deleted since are absent.

        >>> c = CellMirror("nr:a")
        >>> c.apply_cm("NRCellDU", "dn", {"digitalTilt": 60}, 300.0)  # the change arrives first
        >>> c.apply_cm("NRCellDU", "dn", {"digitalTilt": 40}, 100.0)  # then the older snapshot
        >>> c.apply_cm("NRCellDU", "dn", {"digitalTilt": 40}, 200.0)
        >>> [c.cm_as_of(t)["NRCellDU.digitalTilt"][0] for t in (50.0, 299.0, 300.0, None)]
        [40, 40, 60, 60]
        """
        if t is None or not self.cm_before:
            return self.cm
        out = self.cm
        for name, before in self.cm_before.items():
            current = self.cm.get(name)
            if current is None or t >= _since(current):
                continue
            run = cm_history.value_at(before, t)
            if out is self.cm:
                out = dict(self.cm)
            out[name] = [run[2], run[1], run[3], run[0]]
        return out

    def prune(self, pm_retention_s: int, mr_retention_s: int, seal: SealBudget | None = None,
              quick: bool = False) -> None:
        """Forget PM periods (values, relations, predictions) and MR ids older than the retention,
        relative to the newest data, and CM values replaced before the oldest period kept (at most
        ``CM_HISTORY_MAX`` per attribute); seal the MR ids of past hours into Bloom filters (as far
        as the ``seal`` budget goes, if one is given).

        ``quick`` (at a checkpoint, for a cell that changed since the last one): only what its
        changes can have made prunable: PM and CM history when a period or the CM changed, MR ids
        when the newest MR event entered another hour (or sealing was left for later)."""
        mr = self.mr
        if mr.last_t is not None and (not quick or mr.seal_pending or int(mr.last_t) // HOUR != mr.pruned_hour):
            mr.forget_before(mr.last_t - mr_retention_s)
            mr.seal(seal)
        if quick and not any(type(tag) is tuple or tag == HEAD for tag in self.changes):
            return
        limits = []
        for gp, by_end in self.periods.items():
            if not by_end:
                continue
            limit = max(by_end) - pm_retention_s
            limits.append(limit)
            if min(by_end) >= limit:  # the usual case: nothing to forget (PM ends are periods' ends)
                continue
            for end in [e for e in by_end if e < limit]:
                del by_end[end]
                self.changes.add((PM, gp, end))
            for kind, series in ((PM, self.pm.get(gp, {})), (PRED, self.predicted.get(gp, {})),
                                 *((REL, s.get(gp, {})) for s in self.relations.values())):
                for name, per_name in list(series.items()):
                    for end in [e for e in per_name if e < limit]:
                        del per_name[end]
                        self.changes.add((kind, gp, end))
                    if not per_name:  # as a checkpoint reads back: no empty series
                        del series[name]
            for target in list(self.relations):
                by_gp = self.relations[target]
                if gp in by_gp and not by_gp[gp]:
                    del by_gp[gp]
                if not by_gp:
                    del self.relations[target]
        oldest = min(limits, default=None)
        for name in list(self.cm_before):
            current = self.cm.get(name)
            before = self.cm_before[name]
            if current is None:
                del self.cm_before[name]
                self.changes.add(HEAD)
                continue
            runs = [*before[-CM_HISTORY_MAX:], [_since(current), current[1], current[0], current[2]]]
            if oldest is not None:
                runs = cm_history.prune(runs, oldest)
            if len(runs) - 1 == len(before):
                continue
            self.changes.add(HEAD)
            if len(runs) > 1:
                self.cm_before[name] = runs[:-1]
            else:
                del self.cm_before[name]

    # -- reads -----------------------------------------------------------------------------
    def gaps(self, gp: int) -> list[int]:
        """Period ends missing between the first and the last reported period of ``gp``: between two
        reported ends ``gp`` x n apart (n rounded to the nearest, half up), the n - 1 periods on the
        grid of the earlier one. A period end shifted off the grid (a clock step: 1800, 2705) is no
        gap, a period skipped after it is one, once.

        >>> c = CellMirror("nr:a")
        >>> for t in (900, 1805, 2705, 4505):
        ...     c.apply_pm("pm", {"gp": 900, "t": t, "v": {}, "s": False})
        >>> c.gaps(900)
        [3605]
        """
        ends = self.periods.get(gp)
        if not ends:
            return []
        out: list[int] = []
        previous: int | None = None
        for end in sorted(ends):
            if previous is not None:
                skipped = (2 * (end - previous) + gp) // (2 * gp) - 1
                out.extend(range(previous + gp, previous + gp * skipped + 1, gp))
            previous = end
        return out

    def window(self, gp: int, name: str, periods: int) -> float | None:
        """The last ``periods`` values of ``name`` combined by its collection method."""
        per_name = self.pm.get(gp, {}).get(name)
        if not per_name:
            return None
        ends = sorted(per_name)[-periods:]
        return aggregate(method_of(name), [per_name[e] for e in ends])

    def latest_period(self, gp: int) -> int | None:
        ends = self.periods.get(gp)
        return max(ends) if ends else None

    def view(self, window_periods: int = 4) -> dict[str, Any]:
        pm_view: dict[str, Any] = {}
        for gp, names in sorted(self.pm.items()):
            last = self.latest_period(gp)
            rows = {}
            for name, per_end in sorted(names.items()):
                if not per_end:
                    continue
                end = max(per_end)
                method = method_of(name)
                rows[name] = {
                    "latest": per_end[end],
                    "latestPeriodEnd": end,
                    "method": method.value if method else "unknown",
                    f"window{window_periods}": self.window(gp, name, window_periods),
                }
            gaps = self.gaps(gp)
            pm_view[str(gp)] = {
                "periods": len(self.periods.get(gp, {})),
                "lastPeriodEnd": last,
                "missingPeriods": len(gaps),
                "missingPeriodEnds": gaps[:20],
                "suspectPeriods": sum(1 for s in self.periods.get(gp, {}).values() if s),
                "measurements": rows,
            }
        return {
            "cellKey": self.cell_key,
            "cm": {name: {"value": v[0], "observedAt": v[1], "dn": v[2], "since": _since(v)}
                   for name, v in sorted(self.cm.items())},
            "pm": pm_view,
            "relations": {
                target: {str(gp): {n: max(v.items())[1] for n, v in names.items() if v}
                         for gp, names in series.items()}
                for target, series in sorted(self.relations.items())
            },
            "unknownMeasurements": sorted(self.unknown),
            "mr": self.mr.summary(),
            "freshness": self.freshness(),
        }

    def freshness(self) -> dict[str, float | None]:
        """Newest event time of each kind of telemetry (epoch s); age is computed by the reader."""
        pm_last = [max(e) for e in self.periods.values() if e]
        return {
            "pmLastPeriodEnd": max(pm_last) if pm_last else None,
            "cmLastObservedAt": max((v[1] for v in self.cm.values()), default=None),
            "mrLastEventTime": self.mr.last_t,
        }

    # -- checkpoint form -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "cm": self.cm,
            "cmr": self.cm_before,
            "pm": _series_out(self.pm),
            "periods": {str(gp): {str(e): s for e, s in ends.items()} for gp, ends in self.periods.items()},
            "rel": {t: _series_out(s) for t, s in self.relations.items()},
            "unknown": sorted(self.unknown),
            "mr": self.mr.to_dict(),
            "pred": _series_out(self.predicted),
            **({"mv": self.moved_in} if self.moved_in else {}),
        }

    # -- checkpoint entries ------------------------------------------------------------------
    def take_changes(self, out: list[Entry], ranges: list[tuple[str, ...]]) -> None:
        """Append the entries changed since the last call to ``out`` (encoded right away: no copy to
        make, and the cell may change while they are written), sub-key prefixes to delete to
        ``ranges``, and forget the changes."""
        changes, self.changes = self.changes, set()
        for tag in changes:
            if tag == HEAD:
                out.append(((HEAD,), self._head()))
            elif tag == MR:
                out.append(((MR,), self.mr.encoded()))
            else:
                kind, gp, end = tag
                out.append(((kind, str(gp), str(end)), self._period(kind, gp, end)))
        self._take_ids(out, ranges)

    def all_entries(self, out: list[Entry]) -> None:
        """Append every entry of the cell (a full checkpoint) and forget the changes."""
        self.changes = set()
        out.append(((HEAD,), self._head()))
        out.append(((MR,), self.mr.encoded()))
        for kind, gps in ((PM, {gp: set(ends) for gp, ends in self.periods.items()}),
                          (PRED, _ends(self.predicted)),
                          (REL, _ends_many(self.relations.values()))):
            for gp, ends in gps.items():
                for end in sorted(ends):
                    value = self._period(kind, gp, end)
                    if value is not None:
                        out.append(((kind, str(gp), str(end)), value))
        mr = self.mr
        mr.saved, mr.sealed_changed, mr.dropped = {}, set(mr.sealed), set()
        self._take_ids(out, [])

    def _take_ids(self, out: list[Entry], ranges: list[tuple[str, ...]]) -> None:
        """The MR event ids added to open hours since the last checkpoint (a chunk per hour, keyed by
        the position of its first id), sealed hours that changed, hours dropped."""
        mr = self.mr
        saved_of = mr.saved
        for bucket, ids in mr.seen.items():
            saved = saved_of.get(bucket, 0)
            if len(ids) > saved:
                new = list(islice(ids, saved, None)) if saved else list(ids)
                out.append(((IDS, str(bucket), f"{saved:010d}"), orjson.dumps(new)))
                saved_of[bucket] = len(ids)
        if mr.sealed_changed or mr.dropped:
            for bucket in mr.sealed_changed:
                out.append(((SEALED, str(bucket)), mr.sealed[bucket].to_bytes()))
                ranges.append((IDS, str(bucket)))
            for bucket in mr.dropped:
                out.append(((SEALED, str(bucket)), None))
                ranges.append((IDS, str(bucket)))
            mr.sealed_changed, mr.dropped = set(), set()

    def _head(self) -> bytes:
        head: dict[str, Any] = {"cm": self.cm, "cmr": self.cm_before, "unknown": sorted(self.unknown)}
        if self.moved_in:
            head["mv"] = self.moved_in
        return orjson.dumps(head)

    def _period(self, kind: str, gp: int, end: int) -> bytes | None:
        """The encoded entry ``(kind, gp, end)``, None if the cell has nothing there."""
        if kind == PM:
            values = {n: per[end] for n, per in self.pm.get(gp, {}).items() if end in per}
            suspect = self.periods.get(gp, {}).get(end)
            return orjson.dumps({"s": suspect, "v": values}) if values or suspect is not None else None
        if kind == PRED:
            values = {n: per[end] for n, per in self.predicted.get(gp, {}).items() if end in per}
            return orjson.dumps(values) if values else None
        rel = {}
        for target, series in self.relations.items():
            values = {n: per[end] for n, per in series.get(gp, {}).items() if end in per}
            if values:
                rel[target] = values
        return orjson.dumps(rel) if rel else None

    def load_entry(self, sub: list[str], value: Any) -> None:
        """Read back one entry written by ``take_changes`` / ``all_entries`` (``value`` decoded)."""
        kind = sub[0]
        if kind == PM:
            gp, end = int(sub[1]), int(sub[2])
            if value["s"] is not None:
                self.periods.setdefault(gp, {})[end] = bool(value["s"])
            _put(self.pm.setdefault(gp, {}), end, value["v"])
        elif kind == PRED:
            gp, end = int(sub[1]), int(sub[2])
            _put(self.predicted.setdefault(gp, {}), end, value)
        elif kind == REL:
            gp, end = int(sub[1]), int(sub[2])
            for target, values in value.items():
                _put(self.relations.setdefault(target, {}).setdefault(gp, {}), end, values)
        elif kind == MR:
            self.mr.set_aggregate(value)
        elif kind == IDS:
            bucket = int(sub[1])
            ids = self.mr.seen.setdefault(bucket, {})
            ids.update(dict.fromkeys(value))
            self.mr.saved[bucket] = len(ids)
        elif kind == SEALED:
            self.mr.sealed[int(sub[1])] = SealedIds.from_bytes(value)
        elif kind == HEAD:
            self.cm = {k: list(v) for k, v in value["cm"].items()}
            self.cm_before = {k: [list(r) for r in runs] for k, runs in value["cmr"].items()}
            self.unknown = set(value["unknown"])
            self.moved_in = list(value.get("mv", ()))
        else:
            raise ValueError(f"unknown checkpoint entry {sub!r} of cell {self.cell_key}")

    def snapshot(self) -> CellMirror:
        """A copy that later updates of this cell do not change. CM entries are replaced, never
        changed in place, so their lists are shared."""
        return CellMirror(
            cell_key=self.cell_key,
            cm=dict(self.cm),
            cm_before={name: list(before) for name, before in self.cm_before.items()},
            pm=_series_copy(self.pm),
            periods={gp: dict(ends) for gp, ends in self.periods.items()},
            relations={t: _series_copy(s) for t, s in self.relations.items()},
            unknown=set(self.unknown),
            mr=self.mr.snapshot(),
            predicted=_series_copy(self.predicted),
            moved_in=list(self.moved_in),
        )

    @classmethod
    def from_dict(cls, cell_key: str, d: dict[str, Any]) -> CellMirror:
        return cls(
            cell_key=cell_key,
            cm={k: list(v) for k, v in d["cm"].items()},
            cm_before={k: [list(e) for e in v] for k, v in d.get("cmr", {}).items()},
            pm=_series_in(d["pm"]),
            periods={int(gp): {int(e): bool(s) for e, s in ends.items()} for gp, ends in d["periods"].items()},
            relations={t: _series_in(s) for t, s in d["rel"].items()},
            unknown=set(d["unknown"]),
            mr=MrStats.from_dict(d["mr"]),
            predicted=_series_in(d.get("pred", {})),
            moved_in=list(d.get("mv", ())),
        )


def _put(series: dict[str, dict[int, float]], end: int, values: dict[str, float]) -> None:
    for name, value in values.items():
        per = series.get(name)
        if per is None:
            per = series[name] = {}
        per[end] = value


def _ends(series: PmSeries) -> dict[int, set[int]]:
    return {gp: {e for per in names.values() for e in per} for gp, names in series.items()}


def _ends_many(many: Any) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for series in many:
        for gp, ends in _ends(series).items():
            out.setdefault(gp, set()).update(ends)
    return out


def _series_copy(series: PmSeries) -> PmSeries:
    return {gp: {n: dict(per) for n, per in names.items()} for gp, names in series.items()}


def _series_out(series: PmSeries) -> dict[str, Any]:
    return {str(gp): {n: {str(e): v for e, v in per.items()} for n, per in names.items()}
            for gp, names in series.items()}


def _series_in(d: dict[str, Any]) -> PmSeries:
    return {int(gp): {n: {int(e): float(v) for e, v in per.items()} for n, per in names.items()}
            for gp, names in d.items()}


def _since(entry: list[Any]) -> float:
    """When the current value of a ``cm`` entry was first observed (older checkpoints: its latest)."""
    return float(entry[3]) if len(entry) > 3 else float(entry[1])
