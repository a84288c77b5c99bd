"""DT-BSM per cluster through ``twin.Twin.ingest`` on the emulated network: records with a value,
an interval and a coverage in the mirror and on the publication outbox, the same after a checkpoint
round trip, the trust gate's verdict, and the trigger opening a resync that records DT-BSM."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import twin.fidelity.stream as stream
from replay.emulator import NetworkEmulator
from tests.library.worker_run import write_config
from twin import Twin
from twin.mirror.store import CheckpointStore, PartitionState
from twin.prediction.resync import ResyncJob, ResyncOutcome
from twin.schemas import Fidelity, Resync

GP = 900
START = 1_700_000_100 - 1_700_000_100 % 86_400  # a midnight, UTC
PERIODS = 20
SECONDS = ("computeSeconds", "whatifSeconds")


def _emulated(tmp: Path, extra: str = "") -> tuple[Twin, NetworkEmulator, Path]:
    emu = NetworkEmulator("fault-midrun", seed=4, start=datetime.fromtimestamp(START, UTC), granularity_s=GP,
                          mr_per_cell=1)
    config = write_config(tmp / "twin.toml", tmp / "state", emu.public_model(), emu.clusters,
                          drift_warmup_periods=40)
    if extra:
        config.write_text(config.read_text() + extra)
    twin = Twin(config=config)
    twin.ingest(emu.initial_records())
    return twin, emu, config


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Twin, NetworkEmulator, Path]:
    twin, emu, config = _emulated(tmp_path_factory.mktemp("fidelity"))
    for _ in range(PERIODS):
        twin.ingest(emu.step())
    return twin, emu, config


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k not in SECONDS} == {k: v for k, v in b.items() if k not in SECONDS}


def test_each_cluster_gets_value_interval_and_coverage_in_the_mirror(run: tuple[Twin, NetworkEmulator, Path]) -> None:
    twin, emu, _ = run
    service = twin._service
    assert service is not None and service.fidelity is not None
    records = twin.fidelity(emu.cluster_id)
    settings = twin.settings.fidelity
    ends = [r["periodEnd"] for r in records]
    assert len(records) >= PERIODS // settings.recompute_periods  # every few periods, and early ones
    assert all(0 < b - a <= settings.recompute_periods * GP for a, b in itertools.pairwise(ends))
    for r in records:
        assert 0.0 <= r["lower"] <= r["value"] + settings.tol and r["value"] <= r["upper"] + settings.tol
        assert 0.0 < r["coverage"] <= r["coverageUsed"] <= 1.0 and r["states"] and "none" in r["actions"]
        assert r["realSamples"] > 0 and r["twinSamples"] > r["realSamples"]  # what-ifs add twin samples
        Fidelity.model_validate(r)  # what the worker publishes on ran.twin.fidelity.v1
    # the emulated network never changes CM: only "none" is covered, so the metric is restricted to it
    assert records[-1]["restricted"] and records[-1]["actions"] == ["none"]
    since = (records[-1]["periodEnd"] - records[-2]["periodEnd"]) // GP
    assert records[-1]["whatifs"] == settings.whatifs_per_period * since
    assert [rec["periodEnd"] for _, rec in service.take_fidelity()] == [r["periodEnd"] for r in records]
    verdict = twin.trust(emu.cluster_id)
    assert not verdict.trusted and verdict.value == records[-1]["value"]
    assert any(reason.startswith("insufficient data: coverage") for reason in verdict.reasons)


def test_a_checkpoint_round_trip_continues_with_identical_values(
        run: tuple[Twin, NetworkEmulator, Path], tmp_path: Path) -> None:
    twin, emu, config = run
    state = PartitionState(0)
    state.clusters[emu.cluster_id] = twin.mirror(emu.cluster_id)
    CheckpointStore(tmp_path).save(state)
    restored = Twin([CheckpointStore(tmp_path).load(0).clusters[emu.cluster_id]], config=config)
    assert _same(restored.fidelity(emu.cluster_id)[-1], twin.fidelity(emu.cluster_id)[-1])
    before = twin.fidelity(emu.cluster_id)[-1]["periodEnd"]
    for _ in range(twin.settings.fidelity.recompute_periods):
        records = emu.step()
        twin.ingest(records)
        restored.ingest(records)
    a, b = twin.fidelity(emu.cluster_id)[-1], restored.fidelity(emu.cluster_id)[-1]
    assert a["periodEnd"] == b["periodEnd"] > before  # at least one computation (due or early) since
    assert len(twin.fidelity(emu.cluster_id)) == len(restored.fidelity(emu.cluster_id))
    assert _same(a, b) and a["ueLevel"]["value"] is not None


def test_confident_drift_opens_a_resync_that_records_dtbsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_interval = stream.dt_bsm_interval

    def drifted(*args: Any, **kwargs: Any) -> Any:  # every lower bound 1 above what it is: confident drift
        iv = real_interval(*args, **kwargs)

        class Shifted:
            lower = iv.lower + 1.0
            upper = iv.upper + 1.0
            upper_end = iv.upper_end

            class lower_end:
                matrix = iv.lower_end.matrix + 1.0
        return Shifted()

    monkeypatch.setattr(stream, "dt_bsm_interval", drifted)
    # the fit itself is not under test here (tests/gap): skip its seconds of model evaluations
    monkeypatch.setattr(ResyncJob, "run", lambda self: ResyncOutcome(None, (), "not fitted in this test"))
    twin, emu, _ = _emulated(tmp_path, "\n[fidelity]\nrecompute_periods = 2\ntrigger_evaluations = 2\n"
                                       "ue_warning_change = 0\n")  # computations on their cadence only
    for _ in range(6):
        twin.ingest(emu.step())
    records = twin.fidelity(emu.cluster_id)
    assert [r["firing"] for r in records] == [False, True, True]
    mirror = twin.mirror(emu.cluster_id)
    dtbsm = [r for r in mirror.resyncs if "dtbsm" in r["trigger"]["sources"]]
    assert len(dtbsm) == 1
    record = dtbsm[0]
    fired = records[1]
    assert record["at"] == fired["periodEnd"] and record["dtbsmBefore"]["lower"] == fired["lower"]
    worst = max(fired["cells"].values())
    assert record["cells"] == sorted(c for c, v in fired["cells"].items() if v > fired["tau"]) and worst >= 1.0
    assert record["status"] == "failed"
    Resync.model_validate(record)
    assert twin.trust(emu.cluster_id).reasons[0].startswith("confident drift: lower bound")


def test_the_first_estimate_after_an_applied_resync_is_its_dtbsm_after(run: tuple[Twin, NetworkEmulator, Path]) -> None:
    twin, emu, _ = run
    service = twin._service
    assert service is not None
    mirror = twin.mirror(emu.cluster_id).snapshot()
    at = twin.fidelity(emu.cluster_id)[0]["periodEnd"]
    mirror.resyncs = [{"resyncId": "r", "status": "verifying", "at": at, "gp": GP, "dtbsmBefore": None},
                      {"resyncId": "p", "status": "pending", "at": at, "gp": GP, "dtbsmBefore": None}]
    first, later = twin.fidelity(emu.cluster_id)[1], twin.fidelity(emu.cluster_id)[2]
    service._dtbsm_after(mirror, first)
    service._dtbsm_after(mirror, later)
    assert mirror.resyncs[0]["dtbsmAfter"]["periodEnd"] == first["periodEnd"]  # the first, not a later one
    assert "dtbsmAfter" not in mirror.resyncs[1]  # not applied yet


def test_dtbsm_after_waits_for_the_twin_to_compare_as_many_pairs_as_before(
        run: tuple[Twin, NetworkEmulator, Path]) -> None:
    """A resync restarts the twin's counts: a computation right after compares few pairs (the rest
    take the network's estimate) and would flatter the resync; ``dtbsmAfter`` is the first that
    compares as many pairs as ``dtbsmBefore``, or the first ``n_min`` periods after the resync."""
    twin, emu, _ = run
    service = twin._service
    assert service is not None and service.fidelity is not None
    n_min = service.fidelity.settings.n_min
    mirror = twin.mirror(emu.cluster_id).snapshot()
    at = twin.fidelity(emu.cluster_id)[0]["periodEnd"]
    before = {"value": 0.6, "lower": 0.0, "upper": 5.0, "coverage": 0.1, "periodEnd": at, "comparedPairs": 3.0}
    mirror.resyncs = [{"resyncId": "r", "status": "applied", "at": at, "gp": GP, "dtbsmBefore": dict(before)}]

    def record(k: int, compared: int) -> dict[str, Any]:
        return {"value": 0.1 * k, "lower": 0.0, "upper": 5.0, "coverage": 0.1, "periodEnd": at + k * GP,
                "comparedPairs": compared}

    service._dtbsm_after(mirror, record(2, 1))
    assert "dtbsmAfter" not in mirror.resyncs[0]  # one pair compared of three: not yet
    service._dtbsm_after(mirror, record(3, 3))
    assert mirror.resyncs[0]["dtbsmAfter"]["periodEnd"] == at + 3 * GP
    assert mirror.resyncs[0]["dtbsmAfter"]["comparedPairs"] == 3.0
    # a resync whose cluster never compares three pairs again (its states changed): n_min periods on
    late = 1 + math.ceil(n_min)
    mirror.resyncs = [{"resyncId": "t", "status": "applied", "at": at, "gp": GP, "dtbsmBefore": dict(before)}]
    service._dtbsm_after(mirror, record(late - 1, 2))
    assert "dtbsmAfter" not in mirror.resyncs[0]
    service._dtbsm_after(mirror, record(late, 2))
    assert mirror.resyncs[0]["dtbsmAfter"]["periodEnd"] == at + late * GP


def test_the_demo_report_shows_dtbsm_per_cluster_with_tau(run: tuple[Twin, NetworkEmulator, Path]) -> None:
    from twin.report.html import _fidelity_section
    from twin.report.summary import _fidelity

    twin, emu, _ = run
    records = twin.fidelity(emu.cluster_id)
    first = records[0]["periodEnd"]
    ends = [first - GP, first, first + GP, records[-1]["periodEnd"]]
    fid = _fidelity(ends, {emu.cluster_id: twin.mirror(emu.cluster_id)})[emu.cluster_id]
    assert fid["tau"] == records[-1]["tau"] and len(fid["records"]) == len(records)
    by_period = fid["byPeriod"]
    assert by_period[0][1:] == [None] * 6  # before the first estimate
    assert by_period[1][1] == by_period[2][1] == records[0]["value"]  # the latest estimate at each period
    assert by_period[3][1:] == [records[-1][k] for k in ("value", "lower", "upper", "coverage", "tvBound")] \
        + [records[-1]["ueLevel"]["value"]]
    assert by_period[3][6] is not None and set(fid["ueByCell"]) == set(records[-1]["ueLevel"]["cells"])
    page = "\n".join(_fidelity_section({"fidelity": {emu.cluster_id: fid}}, [float(e) for e in ends], []))
    assert "DT-BSM per cluster" in page and f"DT-BSM, {emu.cluster_id}" in page and "<svg" in page
    assert "TV bound" in page and 'stroke="#36c"' in page and "early computations" in page
    assert f"UE-level DT-BSM, {emu.cluster_id}" in page and "cells a resync fitted: none" in page


def test_the_raw_twin_setting_compares_the_model_the_gap_learners_calibrate(tmp_path: Path) -> None:
    """``[fidelity] twin = "raw"`` with gap learning on counts the same twin transitions, so gives the
    same records, as a twin without gap learning; the default (the published, calibrated twin) does
    not. Every record names each reporting cell's point-estimate contribution (``cellsValue``)."""
    records: dict[str, list[dict[str, Any]]] = {}
    # _emulated's config ends with its [gap] table: a bare key line lands in it
    for name, extra in (("raw", '\n[fidelity]\ntwin = "raw"\n'), ("no_gap", "enabled = false\n"), ("calibrated", "")):
        (tmp_path / name).mkdir()
        twin, emu, _ = _emulated(tmp_path / name, extra)
        for _ in range(8):
            twin.ingest(emu.step())
        records[name] = twin.fidelity(emu.cluster_id)
    assert len(records["raw"]) == 2 and all(_same(a, b) for a, b in zip(records["raw"], records["no_gap"], strict=True))
    assert [r["value"] for r in records["raw"]] != [r["value"] for r in records["calibrated"]]
    for r in records["calibrated"]:
        assert set(r["cellsValue"]) == set(emu.cells) and all(0.0 <= v <= r["value"] + 1e-9
                                                              for v in r["cellsValue"].values())
        Fidelity.model_validate(r)


def test_the_tv_early_warning_computes_before_its_period_when_the_bound_rises(tmp_path: Path) -> None:
    """§9.3: between computations each period's TV bound of the point estimates is checked; a rise
    above ``tv_warning_rise`` since the last computation computes at once (``early``)."""
    twin, emu, _ = _emulated(tmp_path, "\n[fidelity]\nrecompute_periods = 6\ntv_warning_rise = 0.01\n"
                                       "ue_warning_change = 0\n")  # the TV warning alone
    for _ in range(40):
        twin.ingest(emu.step())
    records = twin.fidelity(emu.cluster_id)
    early = [i for i, r in enumerate(records) if r["early"]]
    assert early, [r["tvBound"] for r in records]
    tol = twin.settings.fidelity.tol
    for i, r in enumerate(records):
        Fidelity.model_validate(r)
        assert r["tvBound"] >= r["value"] - tol and r["tvClosedForm"] >= r["tvBound"] - tol
        if i == 0:
            continue
        gap = (r["periodEnd"] - records[i - 1]["periodEnd"]) // GP
        if r["early"]:
            assert gap < 6 and r["tvBound"] - records[i - 1]["tvBound"] > 0.01 - 1e-6
        else:
            assert gap == 6
    service = twin._service
    assert service is not None and service.fidelity is not None
    stats = service.fidelity.stats.as_dict()
    assert stats["fidelityEarlyComputations"] == len(early) and stats["fidelityTvChecks"] > 0
    (tmp_path / "off").mkdir()
    off, emu, _ = _emulated(tmp_path / "off", "\n[fidelity]\nrecompute_periods = 6\ntv_warning_rise = 0\n"
                                              "ue_warning_change = 0\n")
    for _ in range(40):
        off.ingest(emu.step())
    assert off._service is not None and off._service.fidelity is not None
    assert not any(r["early"] for r in off.fidelity(emu.cluster_id))
    assert off._service.fidelity.stats.as_dict()["fidelityTvChecks"] == 0
