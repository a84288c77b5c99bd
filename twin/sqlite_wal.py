"""Open a SQLite file shared by processes (checkpoints, ledger, time series) in WAL mode, reliably.

SQLite answers "database is locked" at once, without waiting for the busy timeout, to one of two
connections that both switch a new file to WAL (its deadlock rule: both hold the read lock and want
the write lock). Two workers of one machine, or ``twin cm serve`` and the API, opening a new file at
the same moment hit it (seen as a failed partition assignment in the two-workers recovery test;
``tests/mirror/test_store_shared_open.py`` reproduces it). :func:`connect_wal` retries the opening
with backoff instead.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     db = connect_wal(pathlib.Path(d) / "x.sqlite", setup=lambda c: c.execute("CREATE TABLE t (k INTEGER)"))
...     db.execute("PRAGMA journal_mode").fetchone()[0]
'wal'
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

__all__ = ["connect_wal"]


def connect_wal(path: Path | str, synchronous: str = "FULL", timeout_s: float = 60.0, patience_s: float = 60.0,
                setup: Callable[[sqlite3.Connection], Any] | None = None,
                isolation_level: Literal["DEFERRED", "EXCLUSIVE", "IMMEDIATE"] | None = None) -> sqlite3.Connection:
    """A read-write connection to ``path`` in WAL mode with ``synchronous`` and a busy timeout of
    ``timeout_s``, ``setup`` (schema statements) run on it; an immediate "database is locked" is
    retried with backoff for up to ``patience_s``. ``isolation_level``: Python's transaction
    handling (``None``: autocommit, statements manage their own transactions)."""
    deadline = time.monotonic() + patience_s
    pause = 0.05
    while True:
        db = sqlite3.connect(path, isolation_level=isolation_level, check_same_thread=False, timeout=timeout_s)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={synchronous}")
            if setup is not None:
                setup(db)
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
