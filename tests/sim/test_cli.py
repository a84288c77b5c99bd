"""`twin sim` and `twin bench sim` are registered; the benchmark itself runs only when asked (slow)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from twin.cli import _load_plugins, app


def test_sim_commands_are_registered() -> None:
    _load_plugins()
    _load_plugins()  # idempotent
    runner = CliRunner()
    assert "export-link-table" in runner.invoke(app, ["sim", "--help"]).output
    assert "--cells" in runner.invoke(app, ["bench", "sim", "--help"]).output
    out = runner.invoke(app, ["sim", "evaluate", "--rings", "1", "--ues", "200"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["converged"] is True


@pytest.mark.slow
def test_bench_sim_prints_one_json_object() -> None:
    _load_plugins()
    out = CliRunner().invoke(app, ["bench", "sim", "--cells", "21", "--ues", "1000", "--repeats", "10", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    for key in ("snapshot_ms", "whatif_ms", "whatif_per_s", "peak_rss_mb"):
        assert doc[key] > 0
