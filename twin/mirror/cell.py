"""The mirror of one cell: CM attributes with observation times, PM values per measurement and
granularity period, MR aggregates, freshness and gaps.

PM values are upserts keyed by (measurement, granularity period, period end), so a redelivered
record changes nothing; counters and gauges are only combined at read time, through
``twin.measurements.aggregate``, which never sums a gauge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from twin.measurements import aggregate, method_of
from twin.mirror import cm_history
from twin.mirror.mr_stats import MrStats
from twin.records import PmBody, PmRelationBody

__all__ = ["CM_HISTORY_MAX", "CellMirror", "PmSeries"]

# gp -> name -> period end (epoch s) -> value
PmSeries = dict[int, dict[str, dict[int, float]]]
#: replaced values kept per CM attribute, whatever the retention (a cell reporting no PM)
CM_HISTORY_MAX = 64


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
                if method_of(name) is None:
                    self.unknown.add(name)
            per_name[end] = value
        if kind == "pm":
            self.periods.setdefault(gp, {})[end] = bool(r["s"])

    def set_predicted(self, gp: int, end: int, values: dict[str, float]) -> None:
        """Store the twin's prediction of one period (an upsert: re-predicting changes nothing)."""
        series = self.predicted.setdefault(gp, {})
        for name, value in values.items():
            series.setdefault(name, {})[end] = value

    def apply_cm(self, cls: str | None, dn: str, attributes: dict[str, Any], t: float) -> None:
        """Latest observation wins for ``cm``; every observation, in whatever order it arrives, also
        places its value in the attribute's history (``twin.mirror.cm_history``), which ``cm_as_of``
        reads."""
        prefix = f"{cls}." if cls else ""
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

    def prune(self, pm_retention_s: int, mr_retention_s: int) -> None:
        """Forget PM periods and MR ids older than the retention, relative to the newest data, and
        CM values replaced before the oldest period kept (at most ``CM_HISTORY_MAX`` per attribute)."""
        limits = []
        for gp, by_end in self.periods.items():
            if not by_end:
                continue
            limit = max(by_end) - pm_retention_s
            limits.append(limit)
            for end in [e for e in by_end if e < limit]:
                del by_end[end]
            for per_name in (*self.pm.get(gp, {}).values(), *self.predicted.get(gp, {}).values()):
                for end in [e for e in per_name if e < limit]:
                    del per_name[end]
        oldest = min(limits, default=None)
        for name in list(self.cm_before):
            current = self.cm.get(name)
            if current is None:
                del self.cm_before[name]
                continue
            runs = [*self.cm_before[name][-CM_HISTORY_MAX:], [_since(current), current[1], current[0], current[2]]]
            if oldest is not None:
                runs = cm_history.prune(runs, oldest)
            if len(runs) > 1:
                self.cm_before[name] = runs[:-1]
            else:
                del self.cm_before[name]
        if self.mr.last_t is not None:
            self.mr.forget_before(self.mr.last_t - mr_retention_s)

    # -- reads -----------------------------------------------------------------------------
    def gaps(self, gp: int) -> list[int]:
        """Period ends missing between the first and the last reported period of ``gp``."""
        ends = self.periods.get(gp)
        if not ends:
            return []
        first, last = min(ends), max(ends)
        return [t for t in range(first, last + 1, gp) if t not in ends]

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
        }

    def checkpoint_view(self) -> dict[str, Any]:
        """``to_dict`` without the copies: the live containers (integer keys, sets), for encoding
        right away with ``twin.mirror.store.encode`` (same JSON as ``to_dict``, up to set order)."""
        return {"cm": self.cm, "cmr": self.cm_before, "pm": self.pm, "periods": self.periods, "rel": self.relations,
                "unknown": self.unknown, "mr": self.mr.checkpoint_view(), "pred": self.predicted}

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
        )


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
