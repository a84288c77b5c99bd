"""Every benchmark command runs once, tiny, through the real CLI in a subprocess, and prints one JSON
object with the keys ``docs/benchmarks.md`` describes, so none of them can silently break. The
figures of such tiny runs mean nothing and are not checked beyond being there."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from replay.emulator import NetworkEmulator
from streams.live import PERCENTILE_METHOD, encode_step, percentile
from twin import topics


def _bench(*args: str, timeout_s: float = 240.0) -> dict[str, Any]:
    """``twin bench ARGS`` in a subprocess; its standard output must be exactly one JSON object."""
    done = subprocess.run([sys.executable, "-m", "twin", "bench", *args], capture_output=True, text=True,
                          timeout=timeout_s, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-4000:]
    doc = json.loads(done.stdout)  # one object, nothing else on stdout
    assert isinstance(doc, dict)
    return doc


def test_bench_ingest() -> None:
    doc = _bench("ingest", "--events", "2000", "--rounds", "1", "--json")
    assert doc["benchmark"] == "ingest" and doc["events"] == 2000 and doc["rounds"] == 1
    for key in ("raw_1p_events_per_s", "raw_2p_events_per_s", "peer_events_per_s",
                "ingest_1p_events_per_s", "ingest_2p_events_per_s", "ratio_1p", "ratio_2p", "vs_peer_1p"):
        assert doc[key] > 0, key
    assert doc["peer"] == "quixstreams" and doc["peer_processes"] == 1
    # the old keys are the two-process figures
    assert doc["ratio"] == doc["ratio_2p"]
    assert doc["vs_peer"] == pytest.approx(doc["ingest_2p_events_per_s"] / doc["peer_events_per_s"], rel=1e-2)
    assert doc["ratio_1p"] == pytest.approx(doc["ingest_1p_events_per_s"] / doc["raw_1p_events_per_s"], rel=1e-2)
    assert {k: len(v) for k, v in doc["samples_events_per_s"].items()} == {
        "raw_1p": 1, "raw_2p": 1, "peer": 1, "ingest_1p": 1, "ingest_2p": 1}


def test_bench_sim() -> None:
    doc = _bench("sim", "--cells", "21", "--ues", "200", "--repeats", "3", "--no-sionna", "--json")
    assert doc["benchmark"] == "sim" and doc["cells"] == 21 and doc["ues"] == 200
    for key in ("build_ms", "snapshot_ms", "snapshot_cold_ms", "whatif_ms", "whatif_p95_ms", "whatif_per_s",
                "whatif_power_ms", "peak_rss_mb"):
        assert doc[key] > 0, key
    assert "sionna_whatif_ms" not in doc


@pytest.mark.parametrize("mode", ["closed-loop", "open-loop"])
def test_bench_e2e(mode: str) -> None:
    extra = ["--open-loop", "--rate", "10"] if mode == "open-loop" else []
    doc = _bench("e2e", "--cells", "21", "--periods", "3", "--json", *extra)
    assert doc["benchmark"] == "e2e" and doc["mode"] == mode and doc["cells"] == 21 and doc["periods"] == 3
    assert doc["predictions_received"] == doc["predictions_expected"] == 21 * 3
    assert doc["latency_samples"] == 21 * 3
    assert 0 < doc["latency_ms_p50"] <= doc["latency_ms_p99"] <= doc["latency_ms_max"]
    assert doc["percentile_method"] == PERCENTILE_METHOD
    for key in ("wall_s", "periods_per_s", "sim_seconds_per_wall_second", "warmup_s"):
        assert doc[key] > 0, key
    if mode == "open-loop":
        assert doc["rate_periods_per_s"] == 10 and doc["window"] is None
        assert doc["latency_from"] == "scheduled time"
        assert doc["publish_lag_ms_p50"] is not None and doc["publish_lag_ms_max"] >= doc["publish_lag_ms_p50"]
    else:
        assert doc["window"] == 2 and doc["rate_periods_per_s"] is None
        assert doc["latency_from"] == "records ready, before encoding"
        assert doc["publish_lag_ms_max"] is None


@pytest.mark.slow  # ~60 s, mostly waiting on the broker; the store and dedup are tested in tests/mirror
def test_bench_scale() -> None:
    doc = _bench("scale", "--cells", "200", "--mr-events", "2000", "--rounds-1pct", "3", "--rounds-all", "1",
                 "--ingest-rounds", "1", "--dedup-trials", "200000", "--json")
    assert doc["benchmark"] == "scale" and doc["cells"] == 200 and doc["restore_cells"] == 200
    for key in ("checkpoint_p50_ms_1pct", "checkpoint_p99_ms_1pct", "checkpoint_p50_ms_100pct",
                "checkpoint_p99_ms_100pct", "restore_s", "memory_per_cell_bytes", "ingest_ratio_vs_57"):
        assert doc[key] > 0, key
    assert set(doc["memory_per_cell_breakdown"]) == {"pm", "predictions", "mr", "dedup", "cm", "cell", "holding"}
    assert doc["percentile_method"] == PERCENTILE_METHOD and doc["dedup_trials"] == 200_000


@pytest.mark.slow  # ~65 s; kills and pauses are covered by tests/integration (worker recovery, broker loss)
def test_bench_soak() -> None:
    """A quarter of a day with one worker kill and one broker pause: every record accounted for."""
    doc = _bench("soak", "--days", "0.25", "--kills", "1", "--pauses", "1", "--pause-s", "4", "--mr-per-cell", "2",
                 "--settle-s", "60", "--json", timeout_s=420)
    assert doc["benchmark"] == "soak" and doc["periods"] == 24 and doc["cells"] == 57
    assert doc["published"] == doc["published_pm"] + doc["published_mr"] == 57 * 24 * 3
    assert doc["mirrored"] == doc["published"] and doc["lost"] == 0 and doc["duplicates"] == 0
    assert doc["pm_mismatched"] == 0 and doc["cm_mismatched"] == 0
    assert len(doc["kills"]) == 1 and len(doc["broker_pauses"]) == 1
    for key in ("worker_rss_mb", "broker_rss_mb"):
        assert set(doc[key]) == {"start", "max", "end"} and 0 < doc[key]["start"] <= doc[key]["max"], key
    assert 0 < doc["latency_ms_p50"] <= doc["latency_ms_p99"] <= doc["latency_ms_max"]
    by_process = doc["worker_rss_mb_max_by_day_by_process"]
    assert {"worker", "rekey"} <= set(by_process) and all(v > 0 for v in by_process["worker"] if v is not None)


def test_open_loop_needs_a_rate() -> None:
    done = subprocess.run([sys.executable, "-m", "twin", "bench", "e2e", "--open-loop", "--json"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "--rate" in done.stderr


def test_percentile_is_nearest_rank() -> None:
    hundred = [float(v) for v in range(100, 0, -1)]
    assert percentile(hundred, 99) == 99.0  # the 99th smallest of 100, not the maximum
    assert percentile(hundred, 100) == 100.0 and percentile(hundred, 50) == 50.0
    assert percentile(hundred[:10], 99) == 100.0  # of 10, only the maximum has 99 % at or below it
    assert percentile([3.0], 99) == 3.0 and percentile([], 50) is None


def test_encode_step_encodes_as_the_emulator_does() -> None:
    """The bench takes its clock between ``step_detail`` and ``encode_step``: the records must be
    those ``step()`` publishes."""
    a, b = (NetworkEmulator("urban-hotspots", seed=3, granularity_s=3600, mr_per_cell=1) for _ in range(2))
    topics_seen = set()
    for _ in range(16):  # past the scenario's CM change at 14:00 (a notification and a snapshot)
        records = b.step()
        assert encode_step(a.step_detail()) == records
        topics_seen |= {r.topic for r in records}
    assert {topics.CM_NOTIFICATIONS, topics.CM_SNAPSHOT, topics.PM_CELL, topics.MR_UE} <= topics_seen


def test_bench_gap_models() -> None:
    doc = _bench("gap-models", "--days", "0.75", "--scenario", "fault-midrun", "--model", "linear_logratio",
                 "--model", "ew_mean_logratio", "--json")
    assert doc["benchmark"] == "gap-models" and doc["days"] == 0.75
    result = doc["scenarios"]["fault-midrun"]
    assert result["cell_periods"] == 21 * 72 and set(result["models"]) == {"linear_logratio", "ew_mean_logratio"}
    lin = result["models"]["linear_logratio"]
    assert lin["RRC.ConnMean faulty cell after the fault"]["calibrated"] < lin[
        "RRC.ConnMean faulty cell after the fault"]["raw"]
    assert set(result["detectors"]) == {"page_hinkley", "adwin", "kswin", "runtime (page_hinkley + error bound)"}
    assert result["detectors"]["page_hinkley"]["fault_delay_periods"] is not None


def test_bench_fidelity() -> None:
    doc = _bench("fidelity", "--scenario", "fault-midrun", "--drift", "antenna_fault", "--json")
    assert doc["benchmark"] == "fidelity" and len(doc["runs"]) == 1
    for key in ("delay_median", "delay_p90", "false_alarms_per_1000", "missed", "accuracy_raw",
                "accuracy_calibrated", "noise_floor_accuracy", "baselines"):
        assert key in doc, key
    assert set(doc["baselines"]) == {"adwin_raw_kpi", "fixed_schedule", "deviation_score", "dtbsm_trigger"}
    for kpi in ("DRB.UEThpDl", "RRU.PrbTotDl"):
        assert 0 < doc["accuracy_raw"][kpi] < doc["accuracy_calibrated"][kpi] <= 1
        assert 0.9 < doc["noise_floor_accuracy"][kpi] <= 1
    run = doc["runs"][0]
    assert "nr:00101-000000202" in run["affected"]  # the emulator's truth: the cell whose antenna failed


def test_bench_bisim() -> None:
    doc = _bench("bisim", "--states", "12", "--actions", "3", "--pot-states", "4", "--repeats", "1", "--json")
    assert doc["benchmark"] == "bisim" and doc["states"] == 12 and doc["actions"] == 3 and doc["pot_states"] == 4
    assert doc["gamma"] == 0.9 and doc["seed"] == 0 and doc["tol"] == pytest.approx(1e-3 / (1 - 0.9))
    for key in ("exact_s", "exact_s_2_threads", "tv_s", "cold_start_s", "cold_start_process_s", "pot_s",
                "fast_s_same_size", "pot_ratio", "value", "tv_value", "tv_closed_form"):
        assert doc[key] > 0, key
    assert doc["compile_s"] >= 0 and doc["iterations"] >= 1
    assert doc["lower"] <= doc["value"] <= doc["upper"] and doc["upper"] - doc["lower"] <= doc["tol"]
    assert doc["lower"] <= doc["tv_value"] <= doc["tv_closed_form"]  # the TV bound is above the exact value
    # the POT reference and the fast solver agree on the smaller pair, within their certified intervals
    assert doc["pot_fast_intervals_overlap"] is True and doc["pot_fast_value_diff"] <= 2 * doc["tol"]


def test_bench_prefilter() -> None:
    doc = _bench("prefilter", "--quick", "--candidates", "3", "--json", timeout_s=120)
    assert doc["benchmark"] == "prefilter" and doc["candidates_n"] == 3 and doc["ranking_by"] == "dtbsm_mean"
    for key in ("spearman", "top5_return_fraction", "top5_cost_fraction", "top10_return_fraction",
                "top10_cost_fraction", "seconds"):
        assert key in doc, key
    assert 0 < doc["top5_return_fraction"] <= 1 and 0 < doc["top5_cost_fraction"] <= 1
    row = doc["candidates"][0]
    assert 0 <= row["dtbsm_mean"] <= row["dtbsm_sup"] <= 1 / (1 - doc["gamma"]) + 1e-6
    assert row["training_steps"] > 0 and "deployed_return" in row and "in_twin_return" in row
    assert set(doc["selections"]["top5"]) == {"dtbsm_mean", "dtbsm_sup", "random", "in_twin_return"}


def test_bench_optimize() -> None:
    doc = _bench("optimize", "--scenario", "suburban-quiet", "--budget", "40", "--warm-h", "6", "--oracle-pool", "5",
                 "--blind-draws", "1", "--json")
    assert doc["benchmark"] == "optimize" and doc["trust_gate"] is False
    for key in ("oracle_fraction_min", "guard_violations", "rollbacks", "whatifs_per_s", "scenarios"):
        assert key in doc, key
    (s,) = doc["scenarios"]
    assert s["scenario"] == "suburban-quiet" and s["whatifs"] <= 40 and doc["guard_violations"] == 0
    assert s["oracle_gain_pct"] is not None and s["oracle_evaluations"] >= s["candidates"]
    assert {c["state"] for c in s["changes"]} <= {"CONFIRMED", "ROLLED_BACK", "REJECTED", "FAILED", "OBSERVING"}
    blind = s["draw_blind_oracle"]  # the oracle's search on another draw, its choice scored on this one
    assert blind["draws"] == 1 and len(blind["changes"]) <= 3 and "oracle_fraction" in blind
    assert blind["expected_gain_pct"] is not None and blind["expected_gain_pct"] >= 0.0


def test_bench_sim2real(tmp_path: Path) -> None:
    doc = _bench("sim2real", "--scenario", "suburban-quiet", "--twin-samples", "2000", "--train-days", "1",
                 "--test-days", "1", "--rank-cells", "3", "--epochs", "2", "--min-steps", "20",
                 "--ceiling-realisations", "1", "--save", str(tmp_path / "model"), "--json")
    assert doc["benchmark"] == "sim2real"
    models = {"real_only", "twin_only", "finetune", "transfer"}
    for key in ("mape", "mape_out_of_band", "mape_10pct", "kendall_tau"):
        assert set(doc[key]) == models and all(math.isfinite(v) for v in doc[key].values()), key
    assert 0.0 <= doc["similarity"] <= 1.0 and doc["pretrain_s"] > 0
    ceiling = doc["kendall_tau_ceiling"]
    assert ceiling["realisations"] == 1 and all(-1.0 <= ceiling[k] <= 1.0
                                                for k in ("other_realisation", "expected_response",
                                                          "smooth_truth", "smooth_teacher"))
    assert doc["samples"]["twin"] == 2000 and doc["samples"]["real_train"] == 24 * 21
    assert (tmp_path / "model" / "model.json").is_file() and (tmp_path / "model" / "weights.pt").is_file()


def test_bench_mr_ceiling() -> None:
    doc = _bench("mr-ceiling", "--scenario", "suburban-quiet", "--pairs", "1", "--days", "1", "--noise-db", "0.5",
                 "--json")
    assert doc["benchmark"] == "mr_ceiling" and doc["pairs"] == 1 and doc["cells_heard"] == 3
    assert doc["noise_db"] == 0.5 and set(doc["kendall_tau_by_scenario"]) == {"suburban-quiet"}
    assert set(doc["kendall_tau"]) == {"per_place", "per_place_exact_antennas", "public_model"}
    assert all(-1.0 <= v <= 1.0 for v in doc["kendall_tau"].values())


@pytest.mark.parametrize("command", ["optimize", "sim2real", "mr-ceiling"])
def test_an_unknown_scenario_is_refused_by_name(command: str) -> None:
    done = subprocess.run([sys.executable, "-m", "twin", "bench", command, "--scenario", "nowhere", "--json"],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and done.stdout == ""
    shipped = "(urban-hotspots, suburban-quiet, fault-midrun)"
    assert f"--scenario 'nowhere' is not a shipped scenario {shipped}" in done.stderr


def test_soak_memory_by_process_role() -> None:
    """The soak's per-process memory reads /proc: this process is the worker, children are told
    apart by their command lines (the re-keying member's ``--sibling-fds``, a spawned fit)."""
    import os
    import time

    from streams.bench_soak import tree_rss_by_role_mb, tree_rss_mb

    code = "import time; time.sleep(30)"
    children = [subprocess.Popen([sys.executable, "-c", code, "--sibling-fds", "3,4"]),
                subprocess.Popen([sys.executable, "-c", code, "from multiprocessing.spawn import spawn_main"])]
    try:
        time.sleep(0.5)
        roles = tree_rss_by_role_mb(os.getpid())
        assert {"worker", "rekey", "resync_fit"} <= set(roles) and all(v > 0 for v in roles.values())
        assert abs(sum(roles.values()) - tree_rss_mb(os.getpid())) < 0.25 * sum(roles.values())
        assert tree_rss_by_role_mb(None) == {}
    finally:
        for c in children:
            c.kill()
            c.wait()
