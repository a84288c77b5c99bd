"""Compile (first run ever) or load (later runs) the numba kernels once per session, not per test."""

from __future__ import annotations

import pytest

from twin.fidelity import compile_kernels


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels() -> float:
    return compile_kernels()
