"""Checkpoints of mirror state: incremental, in an embedded key-value store (SQLite in WAL mode).

Each partition of the re-keyed ingest topic has a row with the next offset to read and its
metadata, and its state as small keys, one per part that changes on its own: per cell its CM
(``h``), its MR aggregate (``m``), each PM period (``p/<gp>/<end>``), each period's relation values
(``r/...``) and prediction (``x/...``), its MR event ids (``d/<hour>/<first>`` while the hour is
open, ``D/<hour>`` once sealed into Bloom filters); per cluster its prediction bookkeeping (``b``),
its gap learners (``g``, bytes), its cell identity claims and conflicts (``i``) and each managed
object without a cell (``o/<dn>``); per held key its telemetry (``u/<key>``); per node whose records
wait for identity what its DNs resolve to (``i/<node>``, ``twin.mirror.identity``).
Keys are ``"\\x1f"``-joined (``k/<cluster>/<cell>/...``, ``c/<cluster>/...``, ``u/<key>``), in one
table, ``kv(p, k, v)``, beside ``partitions(p, next_offset, meta)``. The mirror notes what each
update changed (``CellMirror.changes``), so a checkpoint writes only the keys that changed since the
last one, and deletes those that the retention dropped.

**Atomic**: the keys of a partition and its next offset are written in one transaction, so a
restarted or replacement worker resumes exactly where the state ends (after ``kill -9`` too: SQLite
ignores a transaction whose commit did not reach the write-ahead log). **Durable**:
``synchronous=FULL``, the log is synced at each commit.

Saving is two steps so that a worker can keep its event loop free: :func:`take_changes` collects
the changed entries of a partition with its offset, encoded (synchronously, in time proportional to
what changed), :meth:`CheckpointStore.write` commits them (in another thread: SQLite releases the
interpreter lock while it writes and syncs).

Several workers of one consumer group share the store (each writes its own partitions; SQLite
serialises the short write transactions). Readers (``read_only``) never block a writer and see each
partition as of one commit (WAL snapshot isolation); they create and change nothing.

Checkpoints of earlier versions (``partition-NNNN.json``, one JSON document per partition) are
migrated on the first writable open and kept, renamed ``partition-NNNN.json.migrated``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

from twin.mirror.cell import SEALED, CellMirror, Entry
from twin.mirror.cluster import FIDELITY_STATE, GAP, RADIO, ClusterMirror
from twin.mirror.holding import Held, Holding
from twin.mirror.identity import IdentityIndex, NodeIdentity
from twin.sqlite_wal import connect_wal

__all__ = ["DB_NAME", "SEP", "Changes", "CheckpointStore", "CheckpointStoreError", "PartitionState", "take_changes"]

DB_NAME = "state.sqlite"
SEP = "\x1f"  # between the parts of a key (cluster ids, cell keys and DNs must not contain it)
_END = "\x20"  # the character after SEP: every key under ``prefix + SEP`` sorts below ``prefix + _END``
_LEGACY_GLOB = "partition-*.json"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS partitions (p INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL, meta BLOB NOT NULL)",
    # a rowid table: values of a few kB stay on their page (measured faster than WITHOUT ROWID)
    "CREATE TABLE IF NOT EXISTS kv (p INTEGER NOT NULL, k TEXT NOT NULL, v BLOB NOT NULL, UNIQUE (p, k))",
)
T = TypeVar("T")
_EMPTY = sqlite3.connect(":memory:", check_same_thread=False)
for _statement in _SCHEMA:
    _EMPTY.execute(_statement)


class CheckpointStoreError(RuntimeError):
    """The checkpoint store cannot be read: its file is not an SQLite database, is damaged, or holds
    entries this version does not know. Nothing is repaired or overwritten on the spot: the worker
    stops with this message, and the operator decides (a backup, or the folder moved aside)."""


def _unreadable(path: Path, exc: BaseException) -> CheckpointStoreError:
    return CheckpointStoreError(
        f"checkpoint store {path} cannot be read ({type(exc).__name__}: {exc}): it is damaged or was "
        f"not written by this version. Nothing was changed; restore a backup, or move the folder aside to "
        f"start again from what the topics still hold")


def _damaged_file(exc: sqlite3.DatabaseError) -> bool:
    """SQLite's "file is not a database" or "database disk image is malformed", not a transient
    ``OperationalError`` (locked, I/O, cannot open)."""
    return not isinstance(exc, sqlite3.OperationalError)


@dataclass(slots=True)
class PartitionState:
    """The clusters of one partition of the re-keyed topic, the telemetry it holds for cells the
    topology does not list (``twin.mirror.holding``), the next offset to read, and metadata saved
    with it (``meta``: who saved it, when, and what else the worker wants to find again)."""

    partition: int
    next_offset: int = 0
    clusters: dict[str, ClusterMirror] = field(default_factory=dict)
    unassigned: Holding = field(default_factory=Holding)
    meta: dict[str, Any] = field(default_factory=dict)
    # what the DNs of the nodes held here resolve to (``twin.mirror.identity``)
    identity: IdentityIndex = field(default_factory=IdentityIndex)
    # whether whoever applies records collects the clusters' identity notices (``ClusterMirror.announcing``)
    announcing: bool = field(default=False, compare=False, repr=False)
    # key prefixes of cells and clusters taken out since the last checkpoint (``drop_cell``, ``drop_cluster``)
    dropped: list[str] = field(default_factory=list, compare=False, repr=False)
    # whether the store holds this state up to the changes noted since (set by ``load`` and saves);
    # a state built otherwise is written whole by its first save
    synced: bool = field(default=False, compare=False, repr=False)

    def cluster(self, cluster_id: str) -> ClusterMirror:
        cluster = self.clusters.get(cluster_id)
        if cluster is None:
            cluster = self.clusters[cluster_id] = ClusterMirror(cluster_id, announcing=self.announcing)
        return cluster

    def drop_cell(self, cluster_id: str, cell_key: str) -> CellMirror:
        """Take a cell's mirror out of its cluster (the topology moved the cell elsewhere); its
        checkpoint entries are deleted with the next checkpoint."""
        cell = self.clusters[cluster_id].cells.pop(cell_key)
        self.dropped.append(_cell_prefix(cluster_id, cell_key))
        return cell

    def restore_cell(self, cluster_id: str, cell: CellMirror) -> None:
        """Undo ``drop_cell`` before the next checkpoint: the cell is back, its entries are kept."""
        self.cluster(cluster_id).cells[cell.cell_key] = cell
        self.dropped.remove(_cell_prefix(cluster_id, cell.cell_key))

    def drop_cluster(self, cluster_id: str) -> ClusterMirror:
        """Take a cluster out of the partition (the topology no longer has it), with its cells."""
        cluster = self.clusters.pop(cluster_id)
        self.dropped += ["c" + SEP + _check(cluster_id) + SEP, "k" + SEP + cluster_id + SEP]
        return cluster

    def announce(self) -> None:
        """Collect identity notices and refused records in this partition's clusters from now on."""
        self.announcing = True
        for cluster in self.clusters.values():
            cluster.announcing = True


@dataclass(slots=True)
class Changes:
    """What one checkpoint of a partition writes: its next offset and metadata, entries to put
    (``(key, encoded value)``; a value of None deletes the key), key prefixes to delete, and whether
    the partition is written whole (its other keys deleted)."""

    partition: int
    next_offset: int
    meta: dict[str, Any]
    puts: list[tuple[str, bytes | None]] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)
    full: bool = False
    cells: int = 0  # cells with changes

    def keys(self) -> int:
        return len(self.puts)


def _check(part: str) -> str:
    if SEP in part:
        raise ValueError(f"{part!r} contains the checkpoint key separator \\x1f")
    return part


def _cell_prefix(cluster_id: str, cell_key: str) -> str:
    """The prefix of every checkpoint key of one cell of one cluster."""
    return "k" + SEP + _check(cluster_id) + SEP + _check(cell_key) + SEP


def _entry_puts(tag: str, entries: Mapping[str, Any], changed: set[str], full: bool) -> list[tuple[str, bytes | None]]:
    """The store rows of ``entries`` (each with ``to_dict``) under ``tag``: all of them, or only the
    ``changed`` keys; a key no longer in ``entries`` is a deletion (``None``)."""
    keys = set(entries) if full else changed
    return [(tag + SEP + _check(k), None if entries.get(k) is None else orjson.dumps(entries[k].to_dict()))
            for k in keys]


def take_changes(state: PartitionState, extra: dict[str, Any] | None = None, full: bool | None = None) -> Changes:
    """The entries of ``state`` changed since its last checkpoint, with its next offset and metadata
    (``state.meta`` updated by ``extra``), encoded (so later updates do not change them); the
    changes are forgotten. ``full`` (default: when the state was not loaded from or saved to a store): every
    entry, replacing whatever the store holds for the partition."""
    full = not state.synced if full is None else full
    out = Changes(state.partition, state.next_offset, {**state.meta, **(extra or {})}, full=full)
    out.ranges += state.dropped  # before the puts: a cell dropped and then recreated keeps its new entries
    state.dropped = []
    puts = out.puts
    for cid, cluster in state.clusters.items():
        entries: list[Entry] = []
        cells: dict[str, tuple[list[Entry], list[tuple[str, ...]]]] = {}
        cluster.take_changes(entries, cells, full)
        head = "c" + SEP + _check(cid) + SEP
        puts += [(head + SEP.join(sub), value) for sub, value in entries]
        for key, (cell_entries, ranges) in cells.items():
            prefix = _cell_prefix(cid, key)
            puts += [(prefix + SEP.join(sub), value) for sub, value in cell_entries]
            out.ranges += [prefix + SEP.join(sub) + SEP for sub in ranges]
        out.cells += len(cells)
    holding, index = state.unassigned, state.identity
    puts += _entry_puts("u", holding.held, holding.changed, full)
    puts += _entry_puts("i", index.nodes, index.changed, full)
    holding.changed, index.changed = set(), set()
    state.synced = True
    return out


def _decode_partition(partition: int, offset_row: tuple[int, bytes] | None,
                      rows: Iterator[tuple[str, bytes]]) -> PartitionState:
    state = PartitionState(partition, synced=True)
    if offset_row is not None:
        state.next_offset = int(offset_row[0])
        state.meta = orjson.loads(offset_row[1])
    loads = orjson.loads
    last: tuple[str, str] | None = None
    cell: CellMirror | None = None
    for key, value in rows:
        try:
            parts = key.split(SEP)
            kind = parts[0]
            if kind == "k":
                if last is None or last[0] != parts[1] or last[1] != parts[2]:
                    cell = state.cluster(parts[1]).cell(parts[2])
                    last = (parts[1], parts[2])
                assert cell is not None
                cell.load_entry(parts[3:], value if parts[3] == SEALED else loads(value))
            elif kind == "c":
                raw = parts[2] in (GAP, FIDELITY_STATE, RADIO)  # bytes, not JSON
                state.cluster(parts[1]).load_entry(parts[2:], value if raw else loads(value))
            elif kind == "u":
                state.unassigned.held[parts[1]] = Held.from_dict(parts[1], loads(value))
            elif kind == "i":
                state.identity.nodes[parts[1]] = NodeIdentity.from_dict(loads(value))
            else:
                raise ValueError(f"unknown checkpoint key {key!r} in partition {partition}")
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"partition {partition}, entry {key.replace(SEP, '/')!r}: {type(exc).__name__}: "
                             f"{exc}") from exc
    return state


def _decode_legacy(partition: int, data: bytes) -> PartitionState:
    doc = orjson.loads(data)
    meta = {k: v for k, v in doc.items() if k not in ("partition", "nextOffset", "clusters", "unassigned")}
    return PartitionState(
        partition=partition,
        next_offset=int(doc["nextOffset"]),
        clusters={cid: ClusterMirror.from_dict(c) for cid, c in doc["clusters"].items()},
        unassigned=Holding.from_dict(doc.get("unassigned", {})),
        meta=meta,
    )


@dataclass(slots=True)
class WriteStats:
    """What the last :meth:`CheckpointStore.write` did."""

    partitions: int = 0
    puts: int = 0
    deletes: int = 0
    ranges: int = 0
    bytes: int = 0
    seconds: float = 0.0


class CheckpointStore:
    """Partition checkpoints under ``directory`` (shared by the workers of one consumer group).

    ``read_only`` opens the checkpoints of a worker that may be running: nothing is created or
    written, no lock that could hold up the worker is taken, and each partition is read as of one
    commit.

    >>> CheckpointStore(Path("/nonexistent/twin-state"), read_only=True).load_all()
    {}
    """

    def __init__(self, directory: Path, read_only: bool = False) -> None:
        self.directory = directory
        self.read_only = read_only
        self.path = directory / DB_NAME
        self.last_write = WriteStats()
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        if not read_only:
            directory.mkdir(parents=True, exist_ok=True)

    # -- connections -----------------------------------------------------------------------
    def _writer(self) -> sqlite3.Connection:
        """The read-write connection (opened, and earlier checkpoints migrated, on first use)."""
        if self._db is None:
            try:
                self._db = connect_wal(self.path, setup=lambda db: [db.execute(statement) for statement in _SCHEMA])
            except sqlite3.DatabaseError as exc:
                if not _damaged_file(exc):
                    raise
                raise _unreadable(self.path, exc) from exc
            self._migrate()
        return self._db

    def close(self) -> None:
        """Close the connection (a later call opens it again)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in one read transaction (one consistent view of the store); a damaged store, or
        entries this version cannot decode, raise :class:`CheckpointStoreError`."""
        try:
            return self._read_once(fn)
        except CheckpointStoreError:
            raise
        except sqlite3.DatabaseError as exc:
            if not _damaged_file(exc):
                raise
            raise _unreadable(self.path, exc) from exc
        except (ValueError, KeyError, TypeError, IndexError) as exc:  # an entry that does not decode
            raise _unreadable(self.path, exc) from exc

    def _read_once(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if not self.read_only:
            with self._lock:
                db = self._writer()
                db.execute("BEGIN")
                try:
                    return fn(db)
                finally:
                    db.execute("COMMIT")
        for _ in range(5):
            wal = Path(f"{self.path}-wal")
            # No log: no writer has the store open, everything is in the database file, which a
            # read-only connection opened as immutable reads without creating the -wal and -shm
            # files. A writer that starts meanwhile is noticed afterwards, and the read repeated.
            quiet = not wal.exists()
            before = _stat(self.path) if quiet else None
            uri = f"file:{self.path}?mode=ro" + ("&immutable=1" if quiet else "")
            db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=60.0)
            try:
                db.execute("BEGIN")
                try:
                    result = fn(db)
                except sqlite3.OperationalError as exc:  # a store whose writer has not made its tables yet
                    if "no such table" not in str(exc):
                        raise
                    return fn(_EMPTY)
                db.execute("COMMIT")
            finally:
                db.close()
            if not quiet or (not wal.exists() and _stat(self.path) == before):
                return result
            time.sleep(0.05)
        raise RuntimeError(f"could not read a consistent view of {self.path}: it kept changing")

    # -- writing ---------------------------------------------------------------------------
    def save(self, state: PartitionState, extra: dict[str, Any] | None = None) -> None:
        """Checkpoint ``state`` now: what changed since its last checkpoint (all of it, the first
        time), its next offset and metadata (``state.meta`` updated by ``extra``), in one transaction."""
        self.write(take_changes(state, extra))

    def write(self, *changes: Changes) -> None:
        """Commit checkpoints (from :func:`take_changes`) in one durable transaction: each partition's
        keys move together with its next offset."""
        if self.read_only:
            raise PermissionError(f"checkpoint store {self.directory} is open read-only")
        started = time.perf_counter()
        stats = WriteStats(partitions=len(changes))
        encoded = [_encoded(ch, stats) for ch in changes]
        with self._lock:
            _commit(self._writer(), encoded)
        stats.seconds = time.perf_counter() - started
        self.last_write = stats

    # -- reading ---------------------------------------------------------------------------
    def _has_db(self) -> bool:
        return self.path.exists()

    def _legacy(self) -> dict[int, Path]:
        if not self.directory.is_dir():
            return {}
        return {int(p.stem.split("-")[1]): p for p in self.directory.glob(_LEGACY_GLOB)}

    def load(self, partition: int) -> PartitionState:
        """The checkpoint of ``partition`` (an empty state at offset 0 if there is none)."""
        if self._has_db() or not self.read_only:
            state = self._read(lambda db: self._load(db, partition))
            if state is not None:
                return state
        legacy = self._legacy().get(partition)
        if legacy is not None:  # not migrated yet (read-only)
            return _decode_legacy(partition, legacy.read_bytes())
        return PartitionState(partition, synced=True)

    @staticmethod
    def _load(db: sqlite3.Connection, partition: int) -> PartitionState | None:
        row = db.execute("SELECT next_offset, meta FROM partitions WHERE p = ?", (partition,)).fetchone()
        if row is None:
            return None
        return _decode_partition(partition, row, db.execute("SELECT k, v FROM kv WHERE p = ?", (partition,)))

    def partitions(self) -> list[int]:
        found: set[int] = set(self._legacy())
        if self._has_db() or not self.read_only:
            found.update(self._read(lambda db: [r[0] for r in db.execute("SELECT p FROM partitions")]))
        return sorted(found)

    def load_states(self) -> list[PartitionState]:
        """Every partition's checkpoint (each as of one commit; all in one read when possible)."""
        legacy = self._legacy()
        states: dict[int, PartitionState] = {}
        if self._has_db() or not self.read_only:
            def read(db: sqlite3.Connection) -> None:
                for (p,) in db.execute("SELECT p FROM partitions").fetchall():
                    state = self._load(db, p)
                    if state is not None:
                        states[p] = state
            self._read(read)
        for p, path in legacy.items():
            if p not in states:
                states[p] = _decode_legacy(p, path.read_bytes())
        return [states[p] for p in sorted(states)]

    def load_unassigned(self) -> Holding:
        """The telemetry held for cells outside the topology, merged across partitions."""
        merged = Holding(max_keys=1 << 62)
        for state in self.load_states():
            merged.held.update(state.unassigned.held)
        return merged

    def load_all(self) -> dict[str, ClusterMirror]:
        """Every cluster checkpointed in this directory, merged across partitions."""
        clusters: dict[str, ClusterMirror] = {}
        for state in self.load_states():
            clusters.update(state.clusters)
        return clusters

    # -- migration -------------------------------------------------------------------------
    def _migrate(self) -> None:
        """Write checkpoints of earlier versions (one JSON file per partition) into the store, once;
        the files are kept, renamed ``*.json.migrated``. A partition the store already holds is not
        migrated again (a crash between the commit and the rename; another worker migrating)."""
        assert self._db is not None
        for partition, path in sorted(self._legacy().items()):
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # another worker of the group migrated it meanwhile
                continue
            known = self._db.execute("SELECT 1 FROM partitions WHERE p = ?", (partition,)).fetchone()
            if known is None:
                _commit(self._db, [_encoded(take_changes(_decode_legacy(partition, data), full=True), WriteStats())],
                        only_new=True)
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, path.with_name(path.name + ".migrated"))


_Encoded = tuple[Changes, list[tuple[int, str, bytes]], list[tuple[int, str]], bytes]


def _encoded(ch: Changes, stats: WriteStats) -> _Encoded:
    puts: list[tuple[int, str, bytes]] = []
    deletes: list[tuple[int, str]] = []
    for key, value in ch.puts:
        if value is None:
            deletes.append((ch.partition, key))
        else:
            stats.bytes += len(value)
            puts.append((ch.partition, key, value))
    stats.puts += len(puts)
    stats.deletes += len(deletes)
    stats.ranges += len(ch.ranges)
    return ch, puts, deletes, orjson.dumps(ch.meta)


def _commit(db: sqlite3.Connection, encoded: list[_Encoded], only_new: bool = False) -> None:
    """One transaction: each partition's keys and its next offset together. ``only_new``: skip a
    partition the store holds already (checked inside the transaction)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for ch, puts, deletes, meta in encoded:
            if only_new and db.execute("SELECT 1 FROM partitions WHERE p = ?", (ch.partition,)).fetchone():
                continue
            if ch.full:
                db.execute("DELETE FROM kv WHERE p = ?", (ch.partition,))
            for prefix in ch.ranges:
                db.execute("DELETE FROM kv WHERE p = ? AND k >= ? AND k < ?",
                           (ch.partition, prefix, prefix[:-1] + _END))
            db.executemany("DELETE FROM kv WHERE p = ? AND k = ?", deletes)
            db.executemany("INSERT OR REPLACE INTO kv (p, k, v) VALUES (?, ?, ?)", puts)
            db.execute("INSERT OR REPLACE INTO partitions (p, next_offset, meta) VALUES (?, ?, ?)",
                       (ch.partition, ch.next_offset, meta))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size

