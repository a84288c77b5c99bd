"""Fixtures of the time-series tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.timeseries.victoria import Victoria


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[Victoria]:
    """Debian's VictoriaMetrics on a loopback port (the InfluxDB v2 write API), stopped after the test."""
    vm = Victoria(tmp_path / "vm-data")
    vm.start()
    try:
        yield vm
    finally:
        vm.stop()
