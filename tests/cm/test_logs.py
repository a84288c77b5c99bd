"""The CM loop's JSON logs carry the ids an operator searches by: every transition of a change is
one line with its ``change_id``, ``cell`` and ``cluster`` (issue: structlog JSON logs carry cell,
cluster and change ids)."""

from __future__ import annotations

import io
import json

import structlog

from tests.cm.test_runner import device, observe, setup
from tests.cm.util import request
from twin.logs import configure


def test_each_transition_is_a_json_line_with_change_cell_and_cluster() -> None:
    out = io.StringIO()
    configure("INFO", json=True, stream=out)
    try:
        emu, _, runner = setup()
        cell = emu.cells[4]
        req = request(emu, cell, "digitalTilt", device(emu, request(emu, cell, "digitalTilt", 0)) + 10)
        runner.submit(req, "c1", emu.period_end)
        observe(emu, runner, 4, 49.0)
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    moves = [line for line in lines if line["event"] == "cm.transition"]
    assert [m["state"] for m in moves] == ["REQUESTED", "APPROVED", "APPLYING", "APPLIED", "OBSERVING", "CONFIRMED"]
    assert [m["actor"] for m in moves][-1] == "verification"
    for m in moves:
        assert (m["change_id"], m["cell"], m["cluster"]) == (req.change_id, cell, "c1")
        assert m["level"] == "info" and "timestamp" in m
