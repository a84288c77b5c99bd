"""Shared fixtures: the real embedded broker (Tansu), never a mock, and the real datasets."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from streams.broker import EmbeddedBroker

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DATASETS = SHARED / "datasets"


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A command a test runs in-process (typer's CliRunner) calls ``twin.logs.configure`` with
    its level and stream, as ``twin`` does once per process; the next test gets the logging it would
    have had (a WARNING level left behind hid the info events ``structlog.testing.capture_logs`` reads)."""
    before = structlog.get_config()
    yield
    if structlog.get_config() != before:
        structlog.configure(**before)


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """One Tansu process for the session; tests isolate themselves with unique topic/group names."""
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture()
def fresh_broker() -> Iterator[EmbeddedBroker]:
    """A broker of the test's own, for tests that kill or restart things."""
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server (Debian's) for the session, stopped at its end (``tests.pg``)."""
    from tests.pg import running_postgres

    with running_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def pm_files_dir() -> Path:
    path = DATASETS / "pm-files"
    if not path.is_dir():
        pytest.fail(f"real PM files missing: {path} (../shared must sit beside the repository)")
    return path


@pytest.fixture(scope="session")
def raca_zip() -> Path:
    path = DATASETS / "raca5g" / "5G-production-dataset.zip"
    if not path.is_file():
        pytest.fail(f"Raca dataset missing: {path} (../shared must sit beside the repository)")
    return path


@pytest.fixture(scope="session")
def raca_dir(raca_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Raca CSVs unpacked into a temporary folder (never into the source tree)."""
    out = tmp_path_factory.mktemp("raca5g")
    with zipfile.ZipFile(raca_zip) as zf:
        for member in zf.namelist():
            if member.startswith("__MACOSX/") or not member.endswith(".csv"):
                continue
            zf.extract(member, out)
    return out
