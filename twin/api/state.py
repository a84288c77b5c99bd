"""What the API serves: a worker's checkpointed state, its stats files, the CM ledger, the alert journal.

The API process never writes the mirror: it opens it read-only (``Twin.from_state``), as ``twin
mirror show`` does, and reads it again when the checkpoint database changed (at most once a
second). ``twin.Twin`` is not thread-safe and FastAPI runs endpoints in a thread pool, so every use
of the twin holds :attr:`ApiState.lock`.

The CM ledger is checked when ``twin api`` starts (:meth:`ApiState.check_ledger`); a ledger that
cannot be opened or read later (a file replaced by one that is not SQLite, a schema changed under
the API, a PostgreSQL server gone) raises :class:`LedgerUnavailable`, which the API answers with a
503 naming the problem while everything else, ``/metrics`` included, goes on answering.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog

from twin.alert_log import AlertState, fold
from twin.api import journal
from twin.config import TwinSettings
from twin.digital_twin import Twin
from twin.ledger import Ledger, open_ledger, sqlite_file
from twin.mirror.store import DB_NAME, CheckpointStoreError

__all__ = ["ApiState", "LedgerUnavailable", "MirrorUnavailable", "Readiness"]

log = structlog.get_logger("twin.api")


class MirrorUnavailable(RuntimeError):
    """The worker's checkpoints cannot be read (``twin.mirror.store.CheckpointStoreError``): the API
    answers 503 with the store's message, and readiness says it."""


class LedgerUnavailable(RuntimeError):
    """The CM ledger at ``url`` cannot be opened or read: ``problem`` says why (one line).

    >>> str(LedgerUnavailable("foo://bar", ValueError("no such scheme")))
    'CM ledger foo://bar cannot be used: no such scheme'
    """

    def __init__(self, url: str, problem: BaseException | str) -> None:
        self.url = url
        self.problem = " ".join(str(problem).split()) or type(problem).__name__
        super().__init__(f"CM ledger {url} cannot be used: {self.problem}")


def _psycopg_error(exc: BaseException, *names: str) -> bool:
    """``exc`` is one of psycopg's ``names`` (psycopg is only imported once a PostgreSQL ledger was opened)."""
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, tuple(getattr(psycopg, n) for n in names))


def _cannot_open(exc: BaseException) -> bool:
    """An error of ``open_ledger`` that means the configured ledger is unusable (not a bug here): a
    bad URL, a path that is no file, a file that is not SQLite, no psycopg, no PostgreSQL server."""
    return isinstance(exc, ValueError | OSError | ImportError | sqlite3.Error) or _psycopg_error(exc, "Error")


def _broken(exc: BaseException) -> bool:
    """An error of an opened ledger's storage (its file, schema or connection), not of the request:
    SQLite's "file is not a database", "no such table", "database is locked", a lost connection."""
    return (isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError
            or _psycopg_error(exc, "OperationalError", "InterfaceError"))


@dataclass
class Readiness:
    """Readiness of the served worker: ``ready`` with the ``reasons`` why not, and what was read."""

    ready: bool
    reasons: list[str] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)


def _checkpoint_dir(base: Path, group: str) -> Path:
    """The checkpoint folder under ``base``: ``base`` itself, ``base/<group>``, or the one folder of
    ``base`` that holds checkpoints (a worker's ``state_dir`` given without its config)."""
    if (base / DB_NAME).exists() or not base.is_dir():
        return base
    if (base / group).is_dir():
        return base / group
    found = [d for d in base.iterdir() if (d / DB_NAME).exists()]
    return found[0] if len(found) == 1 else base


def _has_checkpoints(directory: Path) -> bool:
    """Whether a worker opened its checkpoint store in ``directory``: the database, or checkpoints
    of earlier versions (``partition-NNNN.json``, read without a database)."""
    return (directory / DB_NAME).exists() or any(directory.glob("partition-*.json"))


class ApiState:
    """The state one API serves.

    ``state_dir``: the worker's checkpoint folder (``<state_dir>/<group_id>``; the worker's
    ``state_dir`` is accepted too); ``stats_files``: the worker's ``--stats-file`` outputs, read for
    readiness (broker reachable, partitions assigned, lag); ``max_lag``: records behind the log end
    above which the worker is not ready; ``stale_s``: a stats file older than this means the worker
    is not running.
    """

    def __init__(self, settings: TwinSettings, state_dir: Path | None = None,
                 stats_files: Sequence[Path] = (), ledger_url: str | None = None, max_lag: int = 10_000,
                 stale_s: float = 10.0) -> None:
        self.settings = settings
        group = settings.kafka.group_id
        self._base = state_dir if state_dir is not None else settings.state_dir / group
        self.directory = _checkpoint_dir(self._base, group)
        self.stats_files = list(stats_files)
        self.ledger_url = ledger_url or settings.cm.ledger_url(settings.state_dir)
        self.max_lag = max_lag
        self.stale_s = stale_s
        self.lock = threading.RLock()
        self._twin: Twin | None = None
        self._stamp: tuple[float, ...] = ()
        self._checked = 0.0
        self._mirror_logged = ""  # the last unreadable-store problem logged (once each)
        self._ledger: Ledger | None = None
        self._ledger_logged: tuple[str, float] = ("", 0.0)  # logged once a minute, not once a request
        self._log_ledger = True

    # -- the mirror -----------------------------------------------------------------------------------
    def _db_stamp(self) -> tuple[float, ...]:
        out = []
        for name in (DB_NAME, DB_NAME + "-wal"):
            try:
                out.append((self.directory / name).stat().st_mtime)
            except FileNotFoundError:
                out.append(0.0)
        return tuple(out)

    def twin(self) -> Twin | None:
        """The twin on the worker's checkpoints (refreshed when they changed), None before the
        worker wrote any. Call with :attr:`lock` held."""
        with self.lock:
            now = time.monotonic()
            if self._twin is not None and now - self._checked < 1.0:
                return self._twin
            self._checked = now
            stamp = self._db_stamp()
            if self._twin is not None and stamp == self._stamp:
                return self._twin
            try:
                if self._twin is None:
                    # the worker makes its checkpoint folder at start-up, and its checkpoint database
                    # once it opens its store for the partitions it was assigned: until then there is
                    # no mirror to serve (503, not ready), not an empty one
                    self.directory = _checkpoint_dir(self._base, self.settings.kafka.group_id)
                    if not _has_checkpoints(self.directory):
                        return None
                    self._twin = Twin.from_state(self.directory, self.settings)
                else:
                    self._twin.refresh()
                self._stamp = stamp
            except FileNotFoundError:
                return None
            except CheckpointStoreError as exc:
                self._twin = None
                if self._mirror_logged != str(exc):
                    self._mirror_logged = str(exc)
                    log.error("api.mirror_unreadable", problem=str(exc))
                raise MirrorUnavailable(str(exc)) from exc
            return self._twin

    @contextmanager
    def locked_twin(self) -> Iterator[Twin | None]:
        with self.lock:
            yield self.twin()

    # -- the ledger -----------------------------------------------------------------------------------
    def ledger(self, create: bool = False) -> Ledger | None:
        """The CM ledger; None while it does not exist (a SQLite file nobody created yet), unless
        ``create``. :class:`LedgerUnavailable` when it cannot be opened."""
        with self.lock:
            if self._ledger is None:
                url = self.ledger_url
                path = sqlite_file(url)
                if not create and path is not None and not path.exists():
                    return None
                try:
                    self._ledger = open_ledger(url)
                except Exception as exc:
                    if not _cannot_open(exc):
                        raise
                    raise self._unavailable(exc) from exc
            return self._ledger

    def _unavailable(self, exc: BaseException) -> LedgerUnavailable:
        out = LedgerUnavailable(self.ledger_url, exc)
        now = time.monotonic()
        if self._log_ledger and (self._ledger_logged[0] != str(out) or now - self._ledger_logged[1] > 60.0):
            self._ledger_logged = (str(out), now)
            log.warning("api.ledger_unavailable", ledger=self.ledger_url, problem=out.problem,
                        error_class=type(exc).__name__)
        return out

    @contextmanager
    def ledger_errors(self) -> Iterator[None]:
        """Around a use of the ledger: a failure of its storage (file, schema, connection) is raised
        as :class:`LedgerUnavailable`, and the connection is dropped so the next use opens the ledger
        again (a ledger put right is used again without a restart). Other errors pass unchanged."""
        try:
            yield
        except LedgerUnavailable:
            raise
        except Exception as exc:
            if not _broken(exc):
                raise
            with self.lock:
                self._ledger = None  # not closed: another request may still hold it
            raise self._unavailable(exc) from exc

    def check_ledger(self) -> None:
        """Open the ledger, when it exists, and read it once (``twin api`` at start-up):
        :class:`LedgerUnavailable` when it cannot be used. A SQLite ledger nobody created yet is fine."""
        with self.lock:
            self._log_ledger = False  # the caller reports it
            try:
                with self.ledger_errors():
                    led = self.ledger()
                    if led is not None:
                        led.control("kill_switch", False)
            finally:
                self._log_ledger = True

    # -- alerts -----------------------------------------------------------------------------------------
    def alerts(self) -> list[AlertState]:
        """The journaled alerts folded per id (``twin.alert_log.fold``): the checkpoint folder's
        journal and, when ``twin cm serve`` was given the worker's ``state_dir``, that one's."""
        folders = [self.directory]
        if self.directory.parent / journal.FILE != self.directory / journal.FILE and \
                (self.directory.parent / journal.FILE).exists():
            folders.append(self.directory.parent)
        raw = [a for d in folders for a in journal.read(d)[0]]
        return fold(raw)

    # -- readiness --------------------------------------------------------------------------------------
    def readiness(self) -> Readiness:
        """Ready when every stats file is fresh and says ready (broker reachable, partitions
        assigned) and the summed lag is at most ``max_lag``; and the checkpoints are readable."""
        reasons: list[str] = []
        workers = []
        if not self.stats_files:
            reasons.append("no worker stats file to read (twin api --stats-file, written by twin run --stats-file)")
        total_lag = 0
        for path in self.stats_files:
            try:
                stats = dict(orjson.loads(path.read_bytes()))
            except (FileNotFoundError, orjson.JSONDecodeError):
                reasons.append(f"{path}: the worker has not written its stats yet")
                continue
            age = time.time() - float(stats.get("at") or 0.0)
            lag = sum(int(v) for v in (stats.get("lag") or {}).values())
            total_lag += lag
            workers.append({"statsFile": str(path), "ageSeconds": round(age, 1), "ready": bool(stats.get("ready")),
                            "brokerReachable": stats.get("brokerReachable"), "lag": stats.get("lag") or {},
                            "notReadyReason": stats.get("notReadyReason")})
            if age > self.stale_s:
                reasons.append(f"{path}: written {age:.0f} s ago (the worker is not running?)")
            elif stats.get("brokerReachable") is False:
                reasons.append(f"broker unreachable: {stats.get('notReadyReason')}")
            elif not stats.get("ready"):
                reasons.append(f"worker not ready: {stats.get('notReadyReason')}")
        if total_lag > self.max_lag:
            reasons.append(f"the worker lags: {total_lag} records behind (more than {self.max_lag})")
        try:
            if self.twin() is None:
                reasons.append(f"no checkpoints in {self.directory} yet")
        except MirrorUnavailable as exc:
            reasons.append(str(exc))
        return Readiness(not reasons, reasons, workers)
