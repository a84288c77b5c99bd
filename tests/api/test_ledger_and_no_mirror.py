"""A CM ledger the API cannot use, and a worker that has not checkpointed yet.

``twin api`` refuses a ledger it cannot open or read at start-up (exit 2, one line naming the
setting and its value). A ledger that becomes unusable while the API runs answers 503 naming the
problem on the ledger's endpoints, while ``/metrics`` still answers (the ledger's series left out,
``twin_cm_ledger_up 0``). Before the worker opened its checkpoint store (its folder may already
exist, the database not yet) the API says "no mirror yet" (503), not an empty twin. Real SQLite
ledgers and checkpoint stores, the real app through Starlette's ``TestClient``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from twin.api.app import create_app
from twin.api.auth import generate_tokens, load_tokens
from twin.api.state import ApiState, LedgerUnavailable
from twin.cli import _load_plugins, app
from twin.config import TwinSettings
from twin.ledger import open_ledger
from twin.ledger.decisions import set_kill_switch
from twin.mirror.store import DB_NAME, CheckpointStore, PartitionState

GROUP = "twin-worker"
NOT_SQLITE = b"this is a text file, not a SQLite database\n" * 200
UNREACHABLE = "192.0.2.1"  # TEST-NET-1: binding it fails, so a ledger check that let a bad ledger through
# ends in "--host ... cannot assign" (exit 2 as well, another message) instead of serving forever


def client_for(tmp: Path, state: ApiState) -> tuple[TestClient, dict[str, str]]:
    tokens = generate_tokens(tmp / "tokens.toml")
    api = create_app(state, load_tokens(tmp / "tokens.toml", environ={}))
    return TestClient(api), {role: f"Bearer {token}" for role, token in tokens.items()}


def settings_for(tmp: Path, **extra: object) -> TwinSettings:
    return TwinSettings.model_validate({"state_dir": str(tmp / "state"), **extra})


# -- start-up ----------------------------------------------------------------------------------------


@pytest.fixture()
def cli() -> Iterator[CliRunner]:
    """The CLI; ``twin api`` configures logging onto the runner's stderr, closed afterwards: the
    logging set-up before is put back."""
    _load_plugins(["api"])
    saved = structlog.get_config()
    yield CliRunner()
    structlog.configure(**saved)


def start_api(cli: CliRunner, tmp: Path, *args: str) -> tuple[int, str]:
    generate_tokens(tmp / "tokens.toml")
    result = cli.invoke(app, ["api", "--tokens", str(tmp / "tokens.toml"), "--state-dir", str(tmp / "state"),
                              "--host", UNREACHABLE, "--port", "0", *args])
    return result.exit_code, result.stderr


def test_twin_api_refuses_a_ledger_it_cannot_use_at_start_up(cli: CliRunner, tmp_path: Path) -> None:
    code, err = start_api(cli, tmp_path, "--ledger", "foo://bar")
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith("error: --ledger 'foo://bar': ") and "postgresql://" in err

    text = tmp_path / "notes.txt"
    text.write_bytes(NOT_SQLITE)
    code, err = start_api(cli, tmp_path, "--ledger", str(text))
    assert code == 2
    assert err.strip() == f"error: --ledger {str(text)!r}: file is not a database"
    assert text.read_bytes() == NOT_SQLITE  # nothing written into it

    # the same from the settings file, named as the setting
    config = tmp_path / "twin.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[cm]\nledger = "{text}"\n')
    code, err = start_api(cli, tmp_path, "--config", str(config))
    assert code == 2
    assert err.strip() == f"error: [cm] ledger {str(text)!r}: file is not a database"


def test_twin_api_starts_with_a_usable_or_not_yet_created_ledger(cli: CliRunner, tmp_path: Path) -> None:
    """A ledger nobody created yet (nothing proposed) and a real one pass the check: the command
    goes on to bind its socket (which fails on the TEST-NET address, not on the ledger)."""
    missing = tmp_path / "ledgers" / "cm-ledger.sqlite"
    code, err = start_api(cli, tmp_path, "--ledger", str(missing))
    assert code == 2 and f"error: --host {UNREACHABLE}" in err and "ledger" not in err
    assert not missing.exists()  # the check creates nothing

    real = tmp_path / "cm-ledger.sqlite"
    set_kill_switch(open_ledger(real), True, by="noc", at=datetime(2024, 3, 1, tzinfo=UTC))
    code, err = start_api(cli, tmp_path, "--ledger", str(real))
    assert code == 2 and f"error: --host {UNREACHABLE}" in err and "ledger" not in err


# -- while running -----------------------------------------------------------------------------------


def assert_ledger_503(r: object, url: str, problem: str) -> None:
    from httpx import Response

    assert isinstance(r, Response)
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"] == f"CM ledger {url} cannot be used: {problem}"
    assert body["field"] is None and body["detail"] == {"ledger": url, "problem": problem}


def test_a_bad_ledger_url_answers_503_and_metrics_still_answer(tmp_path: Path) -> None:
    state = ApiState(settings_for(tmp_path), tmp_path / "state", [], "foo://bar")
    with pytest.raises(LedgerUnavailable, match="foo://bar"):
        state.check_ledger()
    client, auth = client_for(tmp_path, state)
    problem = "ledger URL 'foo://bar': use postgresql://..., sqlite:///path, a file path or :memory:"
    with client:
        for path in ("/api/v1/changes", "/api/v1/changes/abc", "/api/v1/kill-switch"):
            assert_ledger_503(client.get(path, headers={"Authorization": auth["viewer"]}), "foo://bar", problem)
        for path in ("/api/v1/changes/abc/approve", "/api/v1/changes/abc/reject"):
            assert_ledger_503(client.post(path, headers={"Authorization": auth["operator"]}), "foo://bar", problem)
        put = client.put("/api/v1/kill-switch", json={"on": True}, headers={"Authorization": auth["operator"]})
        assert_ledger_503(put, "foo://bar", problem)
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert "twin_cm_ledger_up 0.0" in metrics.text
        assert "twin_cm_kill_switch 1.0" not in metrics.text and "twin_cm_kill_switch 0.0" not in metrics.text
        assert client.get("/api/v1/health").status_code == 200


def test_a_ledger_that_breaks_while_running_answers_503_until_put_right(tmp_path: Path) -> None:
    """The ledger path holds nothing when the API starts (fine: nothing proposed yet); then a file
    that is not SQLite appears there; then a real ledger replaces it: 503 while broken, served again
    without a restart. Then a real ledger whose schema is changed under the running API (a query
    fails, not the open): 503 on what reads that table, the rest of the ledger still served."""
    path = tmp_path / "cm-ledger.sqlite"
    url = str(path)
    state = ApiState(settings_for(tmp_path), tmp_path / "state", [], url)
    state.check_ledger()  # no ledger yet: fine
    client, auth = client_for(tmp_path, state)
    viewer = {"Authorization": auth["viewer"]}
    with client:
        assert client.get("/api/v1/changes", headers=viewer).json() == {"changes": []}
        assert client.get("/api/v1/kill-switch", headers=viewer).json() == {"on": False, "history": []}
        assert "twin_cm_ledger_up 1.0" in client.get("/metrics").text

        path.write_bytes(NOT_SQLITE)
        assert_ledger_503(client.get("/api/v1/changes", headers=viewer), url, "file is not a database")
        assert_ledger_503(client.get("/api/v1/kill-switch", headers=viewer), url, "file is not a database")
        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and "twin_cm_ledger_up 0.0" in metrics.text
        assert path.read_bytes() == NOT_SQLITE

        path.unlink()
        led = open_ledger(path)
        set_kill_switch(led, True, by="noc-ann", at=datetime(2024, 3, 1, tzinfo=UTC))
        led.close()
        r = client.get("/api/v1/kill-switch", headers=viewer)
        assert r.status_code == 200 and r.json()["on"] is True
        metrics = client.get("/metrics").text
        assert "twin_cm_ledger_up 1.0" in metrics and "twin_cm_kill_switch 1.0" in metrics

        # the controls table swapped for one of another shape by someone else, under the open connection
        other = sqlite3.connect(path)
        other.executescript("ALTER TABLE cm_controls RENAME TO cm_controls_kept; CREATE TABLE cm_controls (x);")
        other.close()
        for _ in range(2):  # the first use fails on the old connection, the second on a new one
            assert_ledger_503(client.get("/api/v1/kill-switch", headers=viewer), url, "no such column: value")
            metrics_r = client.get("/metrics")
            assert metrics_r.status_code == 200 and "twin_cm_ledger_up 0.0" in metrics_r.text
            assert "twin_cm_kill_switch 1.0" not in metrics_r.text
        assert client.get("/api/v1/changes", headers=viewer).json() == {"changes": []}  # its tables are fine
        with pytest.raises(LedgerUnavailable, match="no such column: value"):
            state.check_ledger()

        other = sqlite3.connect(path)
        other.executescript("DROP TABLE cm_controls; ALTER TABLE cm_controls_kept RENAME TO cm_controls;")
        other.close()
        r = client.get("/api/v1/kill-switch", headers=viewer)
        assert r.status_code == 200 and r.json()["on"] is True
        assert "twin_cm_ledger_up 1.0" in client.get("/metrics").text


def test_the_event_stream_goes_on_without_the_ledger(tmp_path: Path) -> None:
    (tmp_path / "cm-ledger.sqlite").write_bytes(NOT_SQLITE)
    state = ApiState(settings_for(tmp_path), tmp_path / "state", [], str(tmp_path / "cm-ledger.sqlite"))
    client, auth = client_for(tmp_path, state)
    with client, client.stream("GET", "/api/v1/events", params={"timeout": 1.5},
                               headers={"Authorization": auth["viewer"]}) as r:
        assert r.status_code == 200
        assert b"retry: 2000" in b"".join(r.iter_bytes())


# -- before the first checkpoint ---------------------------------------------------------------------

TOPOLOGY = {"topology": {"clusters": [{"id": "north", "cells": ["nr:00101-000000101"]}]}}


def test_no_mirror_until_the_worker_opened_its_checkpoints(tmp_path: Path) -> None:
    """The worker makes its checkpoint folder at start-up, and the database once it opens its store
    for the partitions it was assigned: in between the API says "no mirror yet" (503, not ready),
    even with a topology that names clusters, instead of an empty twin; then it serves them."""
    settings = settings_for(tmp_path, **TOPOLOGY)
    directory = tmp_path / "state" / GROUP
    store = CheckpointStore(directory)  # what the worker does at start-up: the folder, no database
    assert directory.is_dir() and not (directory / DB_NAME).exists()
    state = ApiState(settings, tmp_path / "state", [])  # the worker's state_dir, as twin api takes it
    client, auth = client_for(tmp_path, state)
    viewer = {"Authorization": auth["viewer"]}
    with client:
        for path in ("/api/v1/clusters", "/api/v1/clusters/north", "/api/v1/clusters/x", "/api/v1/cells"):
            r = client.get(path, headers=viewer)
            assert r.status_code == 503, (path, r.text)
            assert r.json()["error"] == f"no mirror yet: the worker has not checkpointed into {directory}"
        ready = client.get("/api/v1/ready")
        assert ready.status_code == 503
        assert f"no checkpoints in {directory} yet" in ready.json()["reasons"]
        assert client.get("/metrics").status_code == 200

        assert store.partitions() == []  # the worker opens its store (assigned partitions, none saved yet)
        assert (directory / DB_NAME).exists()
        assert client.get("/api/v1/clusters/north", headers=viewer).status_code == 200
        r = client.get("/api/v1/clusters/x", headers=viewer)
        assert r.status_code == 404 and "clusters: north" in r.json()["error"]
        assert not any("no checkpoints" in reason for reason in client.get("/api/v1/ready").json()["reasons"])
        store.save(PartitionState(0))
        store.close()
        assert client.get("/api/v1/clusters/north", headers=viewer).status_code == 200


def test_the_group_folder_made_after_the_api_started_is_found(tmp_path: Path) -> None:
    """``twin api --state-dir <the worker's state_dir>`` started before the worker made its group
    folder finds the checkpoints once they are written there."""
    (tmp_path / "state").mkdir()
    state = ApiState(settings_for(tmp_path, **TOPOLOGY), tmp_path / "state", [])
    assert state.twin() is None
    store = CheckpointStore(tmp_path / "state" / GROUP)
    store.save(PartitionState(0))
    store.close()
    twin = state.twin()
    assert twin is not None and twin.clusters == ("north",)
    assert state.directory == tmp_path / "state" / GROUP
