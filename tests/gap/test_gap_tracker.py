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
from twin import Twin
from twin.config import GapSettings
from twin.gap import GAP_KPIS, RSRP_MEAN, GapTracker, context, kpi_error
from twin.prediction import calibrated_name
from twin.resync import divergence_alert
from twin.sim.kpis import CONN, PRB, THP

GP = 900
START = 1_700_000_100 - 1_700_000_100 % 86_400  # a midnight, UTC


def _stream(periods: int, seed: int = 1) -> list[tuple[int, dict[str, dict[str, float]], dict[str, dict[str, float]]]]:
    """A cell whose real throughput is 0.6 of the twin's, PRB load 1.3 times, connected UEs 5 fewer
    and RSRP 4 dB lower, with 2 % noise and a daily pattern in the raw prediction."""
    rng = random.Random(seed)
    out = []
    for i in range(periods):
        end = START + GP * (i + 1)
        day = math.sin(2 * math.pi * (end % 86_400) / 86_400)
        raw = {THP: 50_000.0 * (1.2 + day), PRB: 30.0 * (1.2 + day), CONN: 20.0 * (1.2 + day), RSRP_MEAN: -95.0}
        noise = {k: 1.0 + rng.gauss(0.0, 0.02) for k in raw}
        real = {THP: 0.6 * raw[THP] * noise[THP], PRB: min(100.0, 1.3 * raw[PRB] * noise[PRB]),
                CONN: max(0.0, raw[CONN] - 5.0) * noise[CONN], RSRP_MEAN: raw[RSRP_MEAN] - 4.0 + rng.gauss(0.0, 0.3)}
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
    before = tracker.calibrated(raw, _ctx(end))
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


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Twin, NetworkEmulator, list[int]]:
    """Fourteen hours of fault-midrun (the antenna of cell 4 loses 15 dB at 12:00) through the
    library's in-memory ingest, which predicts and learns as the worker does."""
    tmp = tmp_path_factory.mktemp("fault")
    emu = NetworkEmulator("fault-midrun", seed=4, start=datetime.fromtimestamp(START, UTC), granularity_s=GP,
                          mr_per_cell=1)
    config = write_config(tmp / "twin.toml", tmp / "state", emu.public_model(), emu.clusters)
    twin = Twin(config=config)
    twin.ingest(emu.initial_records())
    ends = []
    for _ in range(14 * 4):
        twin.ingest(emu.step())
        ends.append(round(emu.period_end.timestamp()))
    return twin, emu, ends


def test_fault_makes_one_episode_on_the_faulty_cell_that_clears(fault_run: tuple[Twin, NetworkEmulator, list[int]],
                                                                tmp_path: Path) -> None:
    twin, emu, ends = fault_run
    faulty = emu.cells[4]
    mirror = twin.mirror(emu.cluster_id)
    tracker = GapTracker.from_bytes(mirror.gap_state or b"", GapSettings())
    assert tracker.last_period == ends[-1]
    assert set(tracker.gate.last_start) == {faulty}, tracker.gate.last_start  # no other cell diverged
    started = tracker.gate.last_start[faulty]
    fault_at = START + 12 * 3600
    assert fault_at < started <= fault_at + 2 * GP, (started - fault_at) / GP  # within two periods
    assert faulty not in tracker.gate.open  # cleared once the learners caught up
    # the calibrated prediction is stored beside the raw one, and it is the better one after the fault
    cell = mirror.cells[faulty]
    late = [e for e in ends if e > started + 4 * GP]
    raw_err = sum(kpi_error(CONN, cell.predicted[GP][CONN][e], cell.pm[GP][CONN][e]) for e in late)
    cal_err = sum(kpi_error(CONN, cell.predicted[GP][calibrated_name(CONN)][e], cell.pm[GP][CONN][e]) for e in late)
    assert cal_err < 0.25 * raw_err, (raw_err, cal_err)


def test_divergence_alert_pair_shares_its_id() -> None:
    from twin.resync import TriggerGate
    from twin.resync.trigger import Signal

    gate = TriggerGate(clear_periods=1, min_interval_s=0)
    up = gate.offer([Signal("drift", "nr:00101-000000104", 900, True, {"surprise": 1.0})])
    down = gate.offer([Signal("drift", "nr:00101-000000104", 1800, False)])
    a, b = (divergence_alert("c", "g", e) for e in (*up, *down))
    assert a.alert_id == b.alert_id and a.severity.value == "MAJOR" and b.severity.value == "CLEARED"
    assert b.cleared_at is not None and b.raised_at == a.raised_at
