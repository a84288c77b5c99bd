"""Moving a cell's mirror into another cluster, when the topology no longer lists the cell where its
checkpoint has it.

The topology config says which cluster simulates a cell. An operator who moves a cell to another
cluster (or drops it) restarts the workers with the new config; their checkpoints still have the
cell in its old cluster, which would go on simulating and predicting it from its last CM beside the
cluster that now owns it. The mirror stage moves the cell's history instead: its CM with the
history of each attribute, its PM, relation and prediction periods, its MR aggregate and event ids,
merged into whatever the new cluster already has of the cell (telemetry routed there since the
restart). Merging is idempotent, so a move repeated after a crash changes nothing:

- PM, relation and prediction values are upserts by (name, period end); the target's value wins
  where both have one (they are the same report);
- CM observations are replayed into the target's history (``CellMirror.apply_cm``), which places
  each one by its observation time, whatever the order;
- the MR aggregate (counts and histograms, which cannot be taken apart again) is added once: the
  target remembers the fingerprint of each aggregate it took (``CellMirror.moved_in``). Reports the
  target counted as well (redelivered to it before the move arrived) are found by their event ids
  and reported as counted twice (``MergeOutcome.mr_counted_twice``); the event ids of both are
  kept, so later duplicates are recognised.

A move between two workers travels through the re-keyed topic in chunks of whole checkpoint
entries (``move_chunks``), each merged on its own; the MR aggregate and its ids stay in one chunk.

>>> from twin.mirror.cell import CellMirror
>>> old = CellMirror("nr:00101-000000a01")
>>> old.apply_pm("pm", {"gp": 900, "t": 900.0, "v": {"DRB.UEThpDl": 41000.0}, "s": False})
>>> old.apply_cm("NRSectorCarrier", "dn:a", {"configuredMaxTxPower": 40}, 100.0)
>>> old.apply_cm("NRSectorCarrier", "dn:a", {"configuredMaxTxPower": 43}, 200.0)
>>> new = CellMirror("nr:00101-000000a01")
>>> new.apply_pm("pm", {"gp": 900, "t": 1800.0, "v": {"DRB.UEThpDl": 39000.0}, "s": False})
>>> merge_cell(new, old)
MergeOutcome(periods=1, cm_observations=2, mr_reports=0, mr_counted_twice=0)
>>> sorted(new.pm[900]["DRB.UEThpDl"].items())
[(900, 41000.0), (1800, 39000.0)]
>>> new.cm_as_of(150.0)["NRSectorCarrier.configuredMaxTxPower"][0]
40
>>> merge_cell(new, old)  # again: nothing changes
MergeOutcome(periods=0, cm_observations=0, mr_reports=0, mr_counted_twice=0)
>>> merge_cell(new, CellMirror("nr:00101-000000a02"))
Traceback (most recent call last):
ValueError: cannot merge the mirror of cell nr:00101-000000a02 into that of nr:00101-000000a01
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from twin.mirror.cell import HEAD, IDS, MR, PM, PRED, REL, SEALED, CellMirror, Entry, PmSeries, _since
from twin.mirror.dedup import SealedIds
from twin.mirror.mr_stats import MrStats

__all__ = ["MergeOutcome", "cell_from_entries", "entries_of", "merge_cell", "move_chunks"]


@dataclass(frozen=True, slots=True)
class MergeOutcome:
    """What :func:`merge_cell` took from the source: PM, relation and prediction periods (each
    (kind, gp, end) once), CM observations that changed the target's history, MR reports added to
    the target's aggregate, and of those the reports the target had counted already."""

    periods: int
    cm_observations: int
    mr_reports: int
    mr_counted_twice: int


def merge_cell(target: CellMirror, source: CellMirror) -> MergeOutcome:
    """Merge ``source`` (the cell's mirror in its old cluster, or a chunk of it) into ``target`` (the
    same cell's mirror in its new cluster); ``target`` notes what changed for its next checkpoint."""
    if target.cell_key != source.cell_key:
        raise ValueError(f"cannot merge the mirror of cell {source.cell_key} into that of {target.cell_key}")
    periods: set[tuple[str, int, int]] = set()
    for gp, ends in source.periods.items():
        mine = target.periods.setdefault(gp, {})
        for end, suspect in ends.items():
            if end not in mine:
                mine[end] = suspect
                periods.add((PM, gp, end))
    _merge_series(target.pm, source.pm, PM, periods)
    for other, series in source.relations.items():
        _merge_series(target.relations.setdefault(other, {}), series, REL, periods)
    _merge_series(target.predicted, source.predicted, PRED, periods)
    target.changes.update(periods)
    if not source.unknown <= target.unknown:
        target.unknown |= source.unknown
        target.changes.add(HEAD)
    observations = _merge_cm(target, source)
    reports, twice = _merge_mr(target, source.mr)
    return MergeOutcome(len(periods), observations, reports, twice)


def _merge_series(target: PmSeries, source: PmSeries, kind: str, changed: set[tuple[str, int, int]]) -> None:
    for gp, names in source.items():
        mine = target.setdefault(gp, {})
        for name, values in names.items():
            per_name = mine.setdefault(name, {})
            for end, value in values.items():
                if end not in per_name:
                    per_name[end] = value
                    changed.add((kind, gp, end))


def _merge_cm(target: CellMirror, source: CellMirror) -> int:
    """Replay the source's CM observations (each run's first and last, oldest first) into the
    target's; the number that changed the target's CM."""
    changed = 0
    for name, current in source.cm.items():
        runs = [*source.cm_before.get(name, ()), [_since(current), current[1], current[0], current[2]]]
        seen: list[tuple[float, Any, str]] = []
        for since, last, value, dn in runs:
            seen.append((since, value, dn))
            if last != since:
                seen.append((last, value, dn))
        for t, value, dn in sorted(seen, key=lambda o: o[0]):
            before = (list(target.cm.get(name, ())), [list(r) for r in target.cm_before.get(name, ())])
            target.apply_cm(None, dn, {name: value}, t)
            if (target.cm.get(name), target.cm_before.get(name, [])) != before:
                changed += 1
    return changed


def _fingerprint(mr: MrStats) -> str:
    return hashlib.sha256(mr.encoded()).hexdigest()[:32]


def _merge_mr(target: CellMirror, mr: MrStats) -> tuple[int, int]:
    """Add the source's MR aggregate to the target's once (by its fingerprint) and take its event
    ids (a union: idempotent); (reports added, of them reports whose ids the target had already)."""
    mine = target.mr
    added = 0
    if mr.count:
        token = _fingerprint(mr)
        if token not in target.moved_in:
            _add_aggregate(mine, mr)
            target.moved_in.append(token)
            target.changes.update((MR, HEAD))
            added = mr.count
    twice = 0
    for bucket, ids in mr.seen.items():
        open_ids, sealed = mine.seen.get(bucket), mine.sealed.get(bucket)
        if sealed is not None:
            twice += sum(not sealed.add(i) for i in ids)
            mine.sealed_changed.add(bucket)
        elif open_ids is not None:
            before = len(open_ids)
            open_ids.update(dict.fromkeys(ids))
            twice += before + len(ids) - len(open_ids)
        else:
            mine.seen[bucket] = dict(ids)
    for bucket, filters in mr.sealed.items():
        open_ids, sealed = mine.seen.pop(bucket, None), mine.sealed.get(bucket)
        copy = SealedIds.from_bytes(filters.to_bytes())
        if open_ids is not None:  # the target's ids of that hour join the source's filters
            twice += sum(not copy.add(i) for i in open_ids)
            mine.saved.pop(bucket, None)
            mine.sealed[bucket] = copy
        elif sealed is not None:
            have = {f.to_bytes() for f in sealed.filters}
            sealed.filters += [f for f in copy.filters if f.to_bytes() not in have]
        else:
            mine.sealed[bucket] = copy
        mine.sealed_changed.add(bucket)
    # only an aggregate added now can count a report twice (ids of a repeated move are known already)
    return added, min(twice, added)


def _add_aggregate(mine: MrStats, mr: MrStats) -> None:
    mine.count += mr.count
    for counts, other in ((mine.rsrp, mr.rsrp), (mine.rsrq, mr.rsrq), (mine.sinr, mr.sinr), (mine.cqi, mr.cqi)):
        for i, n in enumerate(other):
            counts[i] += n
    mine.thp_n += mr.thp_n
    mine.thp_sum += mr.thp_sum
    for ident, (reports, with_rsrp, rsrp_sum) in mr.neighbours.items():
        acc = mine.neighbours.setdefault(ident, [0, 0, 0])
        acc[0] += reports
        acc[1] += with_rsrp
        acc[2] += rsrp_sum
    for t in (mr.first_t, mr.last_t):
        if t is not None:
            mine.first_t = t if mine.first_t is None else min(mine.first_t, t)
            mine.last_t = t if mine.last_t is None else max(mine.last_t, t)


def cell_from_entries(cell_key: str, entries: list[Entry]) -> CellMirror:
    """A cell's mirror (or the part of it a chunk carries) from its checkpoint entries."""
    cell = CellMirror(cell_key)
    for sub, value in entries:
        if value is not None:
            cell.load_entry(list(sub), value if sub[0] == SEALED else orjson.loads(value))
    cell.changes = set()
    return cell


def move_chunks(cell: CellMirror, max_bytes: int) -> list[dict[str, Any]]:
    """The cell's checkpoint entries (all of them; the cell's checkpoint bookkeeping is reset) as JSON
    objects ``{"key": cell key, "e": [[sub-key, base64 value], ...]}`` of about ``max_bytes`` bytes
    at most, the CM and the MR aggregate first (an open hour's event ids are split as need be; only a
    sealed hour's filters larger than ``max_bytes`` make a chunk larger)."""
    entries: list[Entry] = []
    cell.all_entries(entries)
    order = {HEAD: 0, MR: 1, IDS: 2, SEALED: 3}
    entries.sort(key=lambda e: order.get(e[0][0], 4))
    chunks: list[list[list[Any]]] = [[]]
    size = 0
    for entry in _split_ids(entries, max_bytes // 2):
        wire = _wire(entry)
        if chunks[-1] and size + _size(wire) > max_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(wire)
        size += _size(wire)
    return [{"key": cell.cell_key, "e": chunk} for chunk in chunks if chunk]


def _split_ids(entries: list[Entry], max_bytes: int) -> list[Entry]:
    """``entries`` with each open hour's ids entry larger than ``max_bytes`` cut into several (a
    cell reads them back in any number of pieces)."""
    out: list[Entry] = []
    for sub, value in entries:
        if sub[0] != IDS or value is None or len(value) <= max_bytes:
            out.append((sub, value))
            continue
        ids = orjson.loads(value)
        per = max(1, len(ids) * max_bytes // len(value))
        first = int(sub[2])
        for i in range(0, len(ids), per):
            out.append(((IDS, sub[1], f"{first + i:010d}"), orjson.dumps(ids[i:i + per])))
    return out


def entries_of(chunk: dict[str, Any]) -> list[Entry]:
    """The entries of one :func:`move_chunks` chunk."""
    return [(tuple(sub), base64.b64decode(value)) for sub, value in chunk["e"]]


def _wire(entry: Entry) -> list[Any]:
    sub, value = entry
    return [list(sub), base64.b64encode(value or b"").decode()]


def _size(wire: list[Any]) -> int:
    return len(wire[1]) + sum(len(s) + 3 for s in wire[0]) + 8
