"""The demo report's Sim2Real table: the four models' MAPE (in band, out of band, with 10 % of the
real data) and Kendall tau, the similarity and pretraining line and the demo-size sentence; the
error line when the step failed, which must not fail the demo (``streams.demo.demo_sim2real``).
The table computed for real runs in ``test_demo_e2e.py::test_demo_fault_scenario_end_to_end``."""

from __future__ import annotations

import math
from typing import Any

import orjson

from streams.demo import SIM2REAL_DEMO_SIZES, demo_sim2real
from twin.report import build_summary, render_report

MODELS = ("real_only", "twin_only", "finetune", "transfer")


def _report(sim2real: dict[str, Any] | None) -> str:
    summary, series = build_summary({"scenario": "fault-midrun"}, [], {}, 900)
    if sim2real is not None:
        summary["sim2real"] = sim2real
    return render_report(summary, series)


def test_report_shows_the_four_models_and_the_demo_size_sentence() -> None:
    doc = {
        "mape": dict(zip(MODELS, (8.99, 18.87, 8.19, 10.49), strict=True)),
        "mape_out_of_band": dict(zip(MODELS, (50.86, 30.78, 33.61, 33.15), strict=True)),
        "mape_10pct": dict(zip(MODELS, (13.75, 18.87, 11.37, 14.98), strict=True)),
        "kendall_tau": dict(zip(MODELS, (0.313, 0.4, 0.433, math.nan), strict=True)),
        "similarity": 0.629, "pretrain_s": 5.17, "scenarios": ["fault-midrun"], "seconds": 38.0,
        "samples": {"twin": 20000, "real_train": 1008, "real_test": 504, "out_of_band": 170},
        "sizes": SIM2REAL_DEMO_SIZES,
    }
    html = _report(doc)
    table = html[html.index("<table id='sim2real'>"):]
    table = table[: table.index("</table>")]
    assert table.count("<tr>") == 1 + 4
    assert "<td>naive fine-tuning</td><td>8.2</td><td>33.6</td><td>11.4</td><td>0.43</td>" in table
    assert "<td>transfer (response frozen)</td><td>10.5</td><td>33.1</td><td>15.0</td><td>-</td>" in table  # NaN
    assert "Similarity of the twin and real data: 0.629" in html and "pretraining 5.2 s on 20000 twin samples" in html
    assert "demo-size figures" in html and "<code>twin bench sim2real --json</code> (docs/benchmarks.md)" in html
    assert "Sim2Real" not in _report(None)  # --no-sim2real: no section


def test_report_shows_the_error_line() -> None:
    html = _report({"error": "ValueError: <bad> value"})
    assert "The Sim2Real table could not be computed: ValueError: &lt;bad&gt; value" in html
    assert "<table id='sim2real'>" not in html


def test_a_failing_sim2real_step_returns_the_error_instead_of_raising() -> None:
    """A training setting ``TrainConfig`` refuses: the step reports it, names the field, and the
    result still goes into ``summary.json``; an unknown scenario falls back to fault-midrun."""
    out = demo_sim2real("my-own.toml", seed=0, sizes={"epochs": 0})
    assert out["error"].startswith("ValueError: TrainConfig.epochs=0"), out
    assert out["scenarios"] == ["fault-midrun"] and out["sizes"]["epochs"] == 0 and out["seconds"] >= 0
    assert orjson.loads(orjson.dumps(out)) == out
