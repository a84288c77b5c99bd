"""Fixtures shared by the tests and the documentation's doctests (``docs/*.md``, the README).

``emulated_worker_run`` runs the real worker once per session on the emulated network
(``tests/library/worker_run.py``); the doctests of the documentation read its state as
``state_dir`` and ``config_file``, so the library guide shows a real worker's output.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.library.worker_run import WorkerRun, run_emulated_worker

# Tansu holds a consumer group's new member for half the session timeout before it assigns
# partitions, and the suite starts workers, CM services and benches that join groups well over a
# hundred times: it runs them with 6 s sessions (3 s joins) instead of the 10 s default. Subprocesses
# (``twin run``, ``twin cm serve``) inherit the variables; a test that needs other values sets its own.
os.environ.setdefault("TWIN_KAFKA__SESSION_TIMEOUT_MS", "6000")
os.environ.setdefault("TWIN_KAFKA__HEARTBEAT_INTERVAL_MS", "2000")


@pytest.fixture(scope="session")
def emulated_worker_run(tmp_path_factory: pytest.TempPathFactory) -> WorkerRun:
    return run_emulated_worker(tmp_path_factory.mktemp("worker-run"))


@pytest.fixture(autouse=True)
def _documentation_namespace(request: pytest.FixtureRequest, doctest_namespace: dict[str, Any]) -> None:
    """For doctests in Markdown files only: the worker run's state (the run starts on first use)."""
    path = Path(str(request.node.path))
    if path.suffix == ".md":
        run: WorkerRun = request.getfixturevalue("emulated_worker_run")
        doctest_namespace["state_dir"] = run.state_dir
        doctest_namespace["config_file"] = run.config_file
