"""What the API serves: a worker's checkpointed state, its stats files, the CM ledger, the alert journal.

The API process never writes the mirror: it opens it read-only (``Twin.from_state``), as ``twin
mirror show`` does, and reads it again when the checkpoint database changed (at most once a
second). ``twin.Twin`` is not thread-safe and FastAPI runs endpoints in a thread pool, so every use
of the twin holds :attr:`ApiState.lock`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from twin.alert_log import AlertState, fold
from twin.api import journal
from twin.config import TwinSettings
from twin.digital_twin import Twin
from twin.ledger import Ledger, open_ledger
from twin.mirror.store import DB_NAME

__all__ = ["ApiState", "Readiness"]


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
        base = state_dir if state_dir is not None else settings.state_dir / group
        self.directory = _checkpoint_dir(base, group)
        self.stats_files = list(stats_files)
        self.ledger_url = ledger_url or settings.cm.ledger_url(settings.state_dir)
        self.max_lag = max_lag
        self.stale_s = stale_s
        self.lock = threading.RLock()
        self._twin: Twin | None = None
        self._stamp: tuple[float, ...] = ()
        self._checked = 0.0
        self._ledger: Ledger | None = None

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
                    self._twin = Twin.from_state(self.directory, self.settings)
                else:
                    self._twin.refresh()
                self._stamp = stamp
            except FileNotFoundError:
                return None
            return self._twin

    @contextmanager
    def locked_twin(self) -> Iterator[Twin | None]:
        with self.lock:
            yield self.twin()

    # -- the ledger -----------------------------------------------------------------------------------
    def ledger(self, create: bool = False) -> Ledger | None:
        """The CM ledger; None while it does not exist (a SQLite file nobody created yet), unless ``create``."""
        with self.lock:
            if self._ledger is None:
                url = self.ledger_url
                if not create and "://" not in url and url != ":memory:" and not Path(url).exists():
                    return None
                self._ledger = open_ledger(url)
            return self._ledger

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
        if self.twin() is None:
            reasons.append(f"no checkpoints in {self.directory} yet")
        return Readiness(not reasons, reasons, workers)
