"""A checkpoint store that cannot be read (not an SQLite file, a damaged entry) stops the reader with
one clear message naming the file, and is left exactly as it was: never repaired or overwritten on
the spot, never a traceback from ``twin mirror show``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.mirror.test_store import _state
from twin.cli import app
from twin.mirror.store import DB_NAME, SEP, CheckpointStore, CheckpointStoreError


def test_a_file_that_is_not_a_store_is_named_and_left_alone(tmp_path: Path) -> None:
    junk = bytes(range(256)) * 64
    (tmp_path / DB_NAME).write_bytes(junk)
    for read_only in (True, False):
        with pytest.raises(CheckpointStoreError, match=rf"checkpoint store {tmp_path / DB_NAME} cannot be read "
                                                        r"\(DatabaseError: file is not a database\)"):
            CheckpointStore(tmp_path, read_only=read_only).load(0)
    assert (tmp_path / DB_NAME).read_bytes() == junk
    shown = CliRunner().invoke(app, ["mirror", "show", "--state-dir", str(tmp_path)])
    assert shown.exit_code == 1 and "Traceback" not in shown.output
    assert f"error: checkpoint store {tmp_path / DB_NAME} cannot be read" in shown.output
    assert (tmp_path / DB_NAME).read_bytes() == junk


def test_an_entry_that_does_not_decode_names_its_partition_and_key(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save(_state())
    store.close()
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        key = db.execute("SELECT k FROM kv WHERE p = 3 AND k LIKE 'k%' ORDER BY k LIMIT 1").fetchone()[0]
        db.execute("UPDATE kv SET v = ? WHERE p = 3 AND k = ?", (b"{not json", key))
    shown = key.replace(SEP, "/")
    with pytest.raises(CheckpointStoreError, match=f"partition 3, entry '{shown}': JSONDecodeError"):
        CheckpointStore(tmp_path).load(3)
    with pytest.raises(CheckpointStoreError, match="partition 3"):
        CheckpointStore(tmp_path, read_only=True).load_all()
