"""The gap learners on their own: they learn a known bias, they are prequential, their state
round-trips exactly, and a fault on the emulated network makes one divergence episode that clears."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from replay.emulator import NetworkEmulator
from tests.library.worker_run import write_config
from twin import Twin, topics
from twin.config import GapSettings
from twin.gap import GAP_KPIS, RSRP_MEAN, SINR_MEAN, GapTracker, context, kpi_error, residual
from twin.mirror.cell import CellMirror
from twin.prediction import calibrated_name
from twin.prediction.model import calibration_as_of
from twin.prediction.resync import ResyncOutcome
from twin.resync import divergence_alert, telemetry_alert
from twin.resync.calibration import Calibration, CellCalibration
from twin.resync.fit import FitResult
from twin.resync.trigger import TriggerEvent
from twin.sim.kpis import CONN, PRB, THP

GP = 900
#: the fault comes at noon of the first day: the drift detectors are armed after 10 hours (default: a day)
WARMUP = 40
START = 1_700_000_100 - 1_700_000_100 % 86_400  # a midnight, UTC


def _stream(periods: int, seed: int = 1) -> list[tuple[int, dict[str, dict[str, float]], dict[str, dict[str, float]]]]:
    """A cell whose real throughput is 0.6 of the twin's, PRB load 1.3 times, connected UEs 5 fewer
    RSRP 4 dB and SINR 2 dB lower, with 2 % noise and a daily pattern in the raw prediction."""
    rng = random.Random(seed)
    out = []
    for i in range(periods):
        end = START + GP * (i + 1)
        day = math.sin(2 * math.pi * (end % 86_400) / 86_400)
        raw = {THP: 50_000.0 * (1.2 + day), PRB: 30.0 * (1.2 + day), CONN: 20.0 * (1.2 + day), RSRP_MEAN: -95.0,
               SINR_MEAN: 8.0}
        noise = {k: 1.0 + rng.gauss(0.0, 0.02) for k in raw}
        real = {THP: 0.6 * raw[THP] * noise[THP], PRB: min(100.0, 1.3 * raw[PRB] * noise[PRB]),
                CONN: max(0.0, raw[CONN] - 5.0) * noise[CONN], RSRP_MEAN: raw[RSRP_MEAN] - 4.0 + rng.gauss(0.0, 0.3),
                SINR_MEAN: raw[SINR_MEAN] - 2.0 + rng.gauss(0.0, 0.3)}
        out.append((end, {"nr:a": raw}, {"nr:a": real}))
    return out


def _ctx(end: int) -> dict[str, dict[str, float]]:
    return {"nr:a": context(end, 1.0, {"digitalTilt": 40})}


def test_learners_remove_a_known_bias() -> None:
    tracker = GapTracker()
    late_raw: dict[str, list[float]] = {k: [] for k in GAP_KPIS}
    late_cal: dict[str, list[float]] = {k: [] for k in GAP_KPIS}
    for i, (end, raw, real) in enumerate(_stream(4 * 96)):
        step = tracker.observe(end, raw, real, _ctx(end))
        if i >= 2 * 96:  # the last two days
            for k in GAP_KPIS:
                late_raw[k].append(kpi_error(k, raw["nr:a"][k], real["nr:a"][k]))
                late_cal[k].append(kpi_error(k, step.calibrated["nr:a"][k], real["nr:a"][k]))
    for k in GAP_KPIS:
        raw_err, cal_err = sum(late_raw[k]) / len(late_raw[k]), sum(late_cal[k]) / len(late_cal[k])
        assert cal_err < 0.3 * raw_err, (k, raw_err, cal_err)
    assert sum(late_cal[THP]) / len(late_cal[THP]) < 0.05
    figures = tracker.figures()["nr:a"]
    assert figures[THP]["mapeCalibrated"] < figures[THP]["mapeRaw"] and figures[THP]["biasRaw"] > 0
    assert abs(figures[RSRP_MEAN]["biasRaw"] - 4.0) < 0.5  # the raw twin is 4 dB too strong


def test_calibration_is_prequential_and_a_period_is_learned_once() -> None:
    tracker = GapTracker()
    stream = _stream(20)
    for end, raw, real in stream[:10]:
        tracker.observe(end, raw, real, _ctx(end))
    end, raw, real = stream[10]
    before = tracker.calibrated(end, raw, _ctx(end))
    step = tracker.observe(end, raw, real, _ctx(end))
    assert step.calibrated == before  # made from what was learned before the period's real values
    state = tracker.to_bytes()
    again = tracker.observe(end, raw, real, _ctx(end))  # a redelivered period: not learned twice
    assert again.signals == [] and tracker.to_bytes() == state


def test_state_round_trip_continues_identically() -> None:
    stream = _stream(200)
    a = GapTracker()
    for end, raw, real in stream[:120]:
        a.observe(end, raw, real, _ctx(end))
    b = GapTracker.from_bytes(a.to_bytes())
    for end, raw, real in stream[120:]:
        sa, sb = a.observe(end, raw, real, _ctx(end)), b.observe(end, raw, real, _ctx(end))
        assert sa.calibrated == sb.calibrated and sa.signals == sb.signals
    assert a.figures() == b.figures()
    stale = GapTracker.from_bytes(b"x\x9c\x03\x00\x00\x00\x00\x01")  # not a tracker state: start afresh
    assert stale.cells == {} and stale.restart_reason is not None and "EOFError" in stale.restart_reason


def _fault_twin(tmp: Path, periods: int, resync: bool, mr_per_cell: int = 1) -> tuple[Twin, NetworkEmulator, list[int]]:
    """``periods`` of fault-midrun (the antenna of cell 4 loses 15 dB at 12:00) through the
    library's in-memory ingest, which predicts, learns and resyncs as the worker does."""
    emu = NetworkEmulator("fault-midrun", seed=4, start=datetime.fromtimestamp(START, UTC), granularity_s=GP,
                          mr_per_cell=mr_per_cell)
    config = write_config(tmp / "twin.toml", tmp / "state", emu.public_model(), emu.clusters,
                          drift_warmup_periods=WARMUP)
    if not resync:
        config.write_text(config.read_text() + "\n[resync]\nenabled = false\n")
    twin = Twin(config=config)
    twin.ingest(emu.initial_records())
    ends = []
    for _ in range(periods):
        twin.ingest(emu.step())
        ends.append(round(emu.period_end.timestamp()))
    return twin, emu, ends


@pytest.fixture(scope="module")
def learners_only(tmp_path_factory: pytest.TempPathFactory) -> tuple[Twin, NetworkEmulator, list[int]]:
    return _fault_twin(tmp_path_factory.mktemp("learners"), 14 * 4, resync=False)


@pytest.fixture(scope="module")
def with_resync(tmp_path_factory: pytest.TempPathFactory) -> tuple[Twin, NetworkEmulator, list[int]]:
    # located UE reports (ten per cell and period): the fit's per-place evidence (``twin.mirror.radio_map``)
    return _fault_twin(tmp_path_factory.mktemp("resync"), 15 * 4, resync=True, mr_per_cell=10)


def _errors(cell: CellMirror, kpi: str, ends: list[int], name: str | None = None) -> list[float]:
    return [kpi_error(kpi, cell.predicted[GP][name or kpi][e], cell.pm[GP][kpi][e]) for e in ends]


def test_fault_makes_one_episode_on_the_faulty_cell_that_clears(
        learners_only: tuple[Twin, NetworkEmulator, list[int]]) -> None:
    twin, emu, ends = learners_only
    faulty = emu.cells[4]
    mirror = twin.mirror(emu.cluster_id)
    tracker = GapTracker.from_bytes(mirror.gap_state or b"", GapSettings())
    assert tracker.last_period == ends[-1]
    started = tracker.gate.last_start[faulty]
    # nothing diverged but the fault: the faulty cell and neighbours that took its UEs, all at once
    assert set(tracker.gate.last_start.values()) == {started}, tracker.gate.last_start
    fault_at = START + 12 * 3600
    assert fault_at < started <= fault_at + 2 * GP, (started - fault_at) / GP  # within two periods
    assert faulty not in tracker.gate.open  # cleared once the learners caught up
    # without a resync the raw twin stays wrong; the calibrated prediction is the better one
    late = [e for e in ends if e > started + 4 * GP]
    raw = sum(_errors(mirror.cells[faulty], CONN, late))
    cal = sum(_errors(mirror.cells[faulty], CONN, late, calibrated_name(CONN)))
    assert cal < 0.25 * raw, (raw, cal)
    assert mirror.resyncs == [] and mirror.calibrations == []


def test_resync_fits_the_fault_and_brings_the_raw_error_down(
        with_resync: tuple[Twin, NetworkEmulator, list[int]]) -> None:
    twin, emu, ends = with_resync
    faulty = emu.cells[4]
    mirror = twin.mirror(emu.cluster_id)
    assert len(mirror.resyncs) == 1, mirror.resyncs  # one episode, one resync
    r = mirror.resyncs[0]
    fault_at = START + 12 * 3600
    assert faulty in r["cells"] and fault_at < r["at"] <= fault_at + 2 * GP
    assert r["status"] == "applied", r  # verified: the twin's error was lower with it
    assert r["errorAfter"] < 0.5 * r["errorBefore"]
    change = r["change"][faulty]
    assert abs(change["gainDb"] + 15.0) <= 1.0, change  # the antenna lost 15 dB
    # 13 places still hear the cell after the fault, after 12 hours of reports: its azimuth is known to
    # about 10 degrees (the bench, after 54 hours: within 4)
    assert abs(change["azimuthDeg"]) <= 15.0, change
    assert faulty in r["affected"] and r["verify"]["errorNew"] < r["verify"]["errorOld"]
    # the calibrated model applies from the period after the trigger
    assert mirror.calibrations == [{"from": r["at"] + GP, "calibration": r["parametersAfter"]}]
    assert calibration_as_of(mirror, r["at"]).is_identity()
    assert calibration_as_of(mirror).cell(faulty).gain_db == change["gainDb"]
    cell = mirror.cells[faulty]
    assert _errors(cell, CONN, [r["at"]])[0] > 2.0  # the fault's first period: the twin is far off
    after = [e for e in ends if e > r["at"]]
    # raw, resynced: the PRB load back near its error of a normal day (0.3 on this cell) from 3 at the fault
    assert max(_errors(cell, CONN, after)) < 0.3
    assert max(_errors(cell, PRB, after)) < 0.2 * _errors(cell, PRB, [r["at"]])[0]
    # predictions of the cluster were held, not skipped: every period is predicted once
    assert all(len(c.predicted[GP][CONN]) == len(ends) for c in mirror.cells.values())


def test_a_resync_that_makes_the_error_worse_is_rolled_back(tmp_path: Path) -> None:
    twin, emu, ends = _fault_twin(tmp_path, 20, resync=True)  # before the fault: a healthy network
    mirror = twin.mirror(emu.cluster_id)
    service = twin._service
    assert service is not None and service.resyncs is not None
    coordinator = service.resyncs
    healthy = emu.cells[7]
    coordinator.plan(mirror, GP, ends[-1], [TriggerEvent("raised", healthy, ends[-1], ends[-1], ("test",), {})])
    record = mirror.resyncs[-1]
    job = coordinator.job(mirror, record)
    # a fit that claims a 20 dB gain loss of a healthy cell lowered the error (a transient misled it)
    bad = Calibration({healthy: CellCalibration(gain_db=-20.0)})
    fit = FitResult(job.start, bad, 1.0, 0.1, 1, 1, 0.0, {healthy: {"gainDb": -20.0}})
    coordinator.finish(mirror, job, ResyncOutcome(fit, (healthy,)), service.tracker)
    assert record["status"] == "verifying"
    for _ in range(5):
        twin.ingest(emu.step())
        ends.append(round(emu.period_end.timestamp()))
    assert record["status"] == "rolled_back", record
    assert "with the resync" in record["reason"]
    assert [c["from"] for c in mirror.calibrations] == [ends[19] + GP, ends[19] + 5 * GP]
    assert calibration_as_of(mirror).is_identity()  # the calibration before applies again
    assert record["verify"]["errorNew"] > record["verify"]["errorOld"]


def test_divergence_alert_pair_shares_its_id() -> None:
    from twin.resync import TriggerGate
    from twin.resync.trigger import Signal

    gate = TriggerGate(clear_periods=1, min_interval_s=0)
    up = gate.offer([Signal("drift", "nr:00101-000000104", 900, True, {"surprise": 1.0})])
    down = gate.offer([Signal("drift", "nr:00101-000000104", 1800, False)])
    a, b = (divergence_alert("c", "g", e) for e in (*up, *down))
    assert a.alert_id == b.alert_id and a.severity.value == "MAJOR" and b.severity.value == "CLEARED"
    assert b.cleared_at is not None and b.raised_at == a.raised_at


def test_missing_telemetry_raises_once_clears_and_is_rate_limited() -> None:
    tracker = GapTracker(GapSettings(stale_cm_s=6 * 3600, data_alert_interval_s=3600))
    cm_at = float(START)

    def period(i: int, b_reports: bool) -> list[TriggerEvent]:
        end = START + GP * i
        return tracker.watch_data(end, {"nr:a": True, "nr:b": b_reports}, {"nr:a": cm_at, "nr:b": cm_at})

    assert period(1, True) == []
    up = period(2, False)
    assert [(e.kind, e.scope) for e in up] == [("raised", "nr:b|data_gap")]
    assert period(3, False) == []  # the same episode
    down = period(4, True)
    assert [(e.kind, e.scope) for e in down] == [("cleared", "nr:b|data_gap")]
    assert period(5, False) == [] and tracker.data_gate.suppressed == 1  # flapping within the hour
    alerts = [telemetry_alert("c", "g", e) for e in (*up, *down)]
    assert alerts[0].alert_id == alerts[1].alert_id and alerts[0].type.value == "DATA_GAP"
    assert alerts[0].cell_key is None  # "nr:b" is not a canonical cell key: the alert names the cluster
    # CM older than six hours of event time: every cell's CM goes stale together
    stale = period(4 * 7, True)
    assert sorted(e.scope for e in stale if e.kind == "raised") == ["nr:a|stale_cm", "nr:b|stale_cm"]
    again = GapTracker.from_bytes(tracker.to_bytes(), tracker.settings)
    assert again.data_gate.to_dict() == tracker.data_gate.to_dict() and again.missed == tracker.missed


def test_a_cell_that_stops_reporting_raises_a_data_gap_alert_through_the_library(tmp_path: Path) -> None:
    emu = NetworkEmulator("suburban-quiet", seed=4, start=datetime.fromtimestamp(START, UTC), granularity_s=GP,
                          mr_per_cell=1)
    config = write_config(tmp_path / "twin.toml", tmp_path / "state", emu.public_model(), emu.clusters,
                          drift_warmup_periods=WARMUP)
    twin = Twin(config=config)
    twin.ingest(emu.initial_records())
    silent = emu.cells[2]
    for i in range(12):
        records = emu.step()
        if 4 <= i < 7:  # the cell's PM is lost for three periods
            records = [r for r in records if not (r.topic == topics.PM_CELL and r.key == silent.encode())]
        twin.ingest(records)
    service = twin._service
    assert service is not None
    gaps = [a for a in service.alerts if a.type.value == "DATA_GAP"]
    assert [(a.cell_key, a.severity.value) for a in gaps] == [(silent, "MINOR"), (silent, "CLEARED")]
    assert gaps[0].alert_id == gaps[1].alert_id and gaps[0].kpis["missedPeriods"] == 1.0


def test_a_pending_resync_holds_the_clusters_predictions_until_it_runs(tmp_path: Path) -> None:
    """As a worker leaves it when killed during a fit: the record is pending; whoever predicts the
    cluster next runs it first, then predicts the periods it held, each once."""
    emu = NetworkEmulator("fault-midrun", seed=4, start=datetime.fromtimestamp(START, UTC), granularity_s=GP,
                          mr_per_cell=1)
    config = write_config(tmp_path / "twin.toml", tmp_path / "state", emu.public_model(), emu.clusters,
                          drift_warmup_periods=WARMUP)
    twin = Twin(config=config)
    service = twin._service
    assert service is not None and service.resyncs is not None
    started: list[str] = []
    service.resyncs.runner = lambda job, mirror: started.append(job.record_id)  # a fit that never returns
    twin.ingest(emu.initial_records())
    for _ in range(52):
        twin.ingest(emu.step())
    mirror = twin.mirror(emu.cluster_id)
    [record] = mirror.resyncs
    assert record["status"] == "pending" and started == [record["resyncId"]]
    cell = mirror.cells[emu.cells[0]]
    assert max(cell.predicted[GP][CONN]) == record["at"]  # later periods wait
    service.resyncs.runner = None
    service.resyncs.running.clear()
    twin.ingest(emu.step())
    assert record["status"] == "applied" and mirror.calibrations  # run, then verified on the held periods
    assert len(cell.predicted[GP][CONN]) == 53  # every period predicted, once


def test_a_rebase_carries_the_learners_over_a_small_change_of_the_raw_twin() -> None:
    """A resync that moves a cell's raw predictions a little (a neighbour's antenna was refitted):
    re-based, its calibrated prediction stays where it was and its detectors are not surprised;
    left as they were, the learners see a step in every period's miss and the detectors fire."""
    settings = GapSettings(drift_warmup_periods=24)
    stream = _stream(3 * 96)
    rebased, control = GapTracker(settings), GapTracker(settings)
    for end, raw, real in stream[:2 * 96]:
        rebased.observe(end, raw, real, _ctx(end))
        control.observe(end, raw, real, _ctx(end))

    def moved(raw: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        # the twin's RSRP and SINR 3 dB up, its throughput 15 % down (2 dB and 10 %: the learners that
        # were not re-based follow within a few periods, and their detectors stay quiet too)
        a = raw["nr:a"]
        return {"nr:a": {**a, RSRP_MEAN: a[RSRP_MEAN] + 3.0, SINR_MEAN: a[SINR_MEAN] + 3.0, THP: 0.85 * a[THP]}}

    end, raw, _ = stream[2 * 96]
    before = rebased.calibrated(end, raw, _ctx(end))["nr:a"]
    rebased.rebase({"nr:a": {k: -residual(k, raw["nr:a"][k], moved(raw)["nr:a"][k]) for k in GAP_KPIS}})
    after = rebased.calibrated(end, moved(raw), _ctx(end))["nr:a"]
    assert after[RSRP_MEAN] == pytest.approx(before[RSRP_MEAN], abs=0.01)
    assert after[SINR_MEAN] == pytest.approx(before[SINR_MEAN], abs=0.01)
    assert after[THP] == pytest.approx(before[THP], rel=0.03)  # the raw value is a feature too
    fired = {"rebased": 0, "control": 0}
    for end, raw, real in stream[2 * 96:]:
        for name, tracker in (("rebased", rebased), ("control", control)):
            step = tracker.observe(end, moved(raw), real, _ctx(end))
            fired[name] += sum(s.firing for s in step.signals if s.source == "drift")
    assert fired["rebased"] == 0 and fired["control"] > 0, fired
