"""Fixtures shared by the tests and the documentation's doctests (``docs/*.md``, the README).

``emulated_worker_run`` runs the real worker once per session on the emulated network
(``tests/library/worker_run.py``); the doctests of the documentation read its state as
``state_dir`` and ``config_file``, so the library guide shows a real worker's output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.library.worker_run import WorkerRun, run_emulated_worker


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
