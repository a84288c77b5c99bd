"""The shared state encoder: bins (with units), action classes and their thresholds, the reward."""

from __future__ import annotations

import itertools

import pytest

from twin.config import FidelitySettings
from twin.fidelity import ACTIONS, StateEncoder


@pytest.fixture
def enc() -> StateEncoder:
    return StateEncoder.from_settings(FidelitySettings())


def test_default_encoder_has_60_states_and_7_actions(enc: StateEncoder) -> None:
    assert enc.shape == (4, 5, 3) and enc.n_states == 60 and enc.n_actions == 7
    assert ACTIONS == ("none", "tilt_up", "tilt_down", "power_up", "power_down", "cio_up", "cio_down")


@pytest.mark.parametrize(("prb_pct", "load"), [(0.0, 0), (29.99, 0), (30.0, 1), (59.9, 1), (60.0, 2), (84.9, 2),
                                                (85.0, 3), (100.0, 3)])
def test_load_bins_in_percent_of_prbs(enc: StateEncoder, prb_pct: float, load: int) -> None:
    state = enc.state(prb_pct, 7.0, 4.0)
    assert state is not None and enc.decode(state) == (load, 2, 1)


@pytest.mark.parametrize(("sinr_db", "quality"), [(-8.0, 0), (0.0, 1), (4.9, 1), (5.0, 2), (10.0, 3), (19.9, 3),
                                                  (20.0, 4), (35.0, 4)])
def test_quality_bins_in_db(enc: StateEncoder, sinr_db: float, quality: int) -> None:
    state = enc.state(50.0, sinr_db, 4.0)
    assert state is not None and enc.decode(state)[1] == quality


def test_config_bin_reads_the_electrical_tilt_in_tenths_of_a_degree(enc: StateEncoder) -> None:
    kpis = {"RRU.PrbTotDl": 10.0, "MR.NRScSSSINR.Mean": 3.0}
    bins = [enc.decode(s)[2] for s in (enc.encode(kpis, {"digitalTilt": t}) for t in (-20, 29, 30, 69, 70, 150))
            if s is not None]
    assert bins == [0, 0, 1, 1, 2, 2]
    assert enc.encode(kpis, {"retTiltValue": 80}) == enc.encode(kpis, {"digitalTilt": 80})  # RET when no digital
    assert enc.encode({"RRU.PrbTotDl": 10.0}, {}) is None  # no SINR, no state


def test_every_state_is_reached_and_decodes_back(enc: StateEncoder) -> None:
    reps = ([10.0, 45.0, 70.0, 90.0], [-3.0, 2.0, 7.0, 15.0, 25.0], [1.0, 5.0, 9.0])
    states = [enc.state(p, q, t) for p, q, t in itertools.product(*reps)]
    assert sorted(s for s in states if s is not None) == list(range(60))
    assert [enc.decode(s) for s in states if s is not None] == list(itertools.product(range(4), range(5), range(3)))


def test_configured_edges_change_the_state_count() -> None:
    enc = StateEncoder.from_settings(FidelitySettings(prb_edges_pct=[50.0], sinr_edges_db=[5.0], tilt_edges_deg=[5.0]))
    assert enc.n_states == 8
    with pytest.raises(ValueError, match="increasing"):
        FidelitySettings(sinr_edges_db=[5.0, 0.0])


@pytest.mark.parametrize(("before", "after", "action"), [
    ({"digitalTilt": 40}, {"digitalTilt": 40}, "none"),
    ({"digitalTilt": 40}, {"digitalTilt": 44}, "none"),  # 0.4° < half a 1° step
    ({"digitalTilt": 40}, {"digitalTilt": 45}, "tilt_down"),  # + = down
    ({"digitalTilt": 40}, {"digitalTilt": 30}, "tilt_up"),
    ({"configuredMaxTxPower": 40000}, {"configuredMaxTxPower": 20000}, "power_down"),  # -3 dB
    ({"configuredMaxTxPower": 40000}, {"configuredMaxTxPower": 42000}, "none"),  # +0.2 dB
    ({"cellIndividualOffset": 0.0}, {"cellIndividualOffset": {"rsrpOffsetSSB": 2.0}}, "cio_up"),
    ({"cellIndividualOffset": 0.0}, {"cellIndividualOffset": -1.0}, "cio_down"),
    # one class per change: tilt before power before CIO
    ({"digitalTilt": 40, "configuredMaxTxPower": 40000}, {"digitalTilt": 50, "configuredMaxTxPower": 80000},
     "tilt_down"),
    ({"configuredMaxTxPower": 40000, "cellIndividualOffset": 0}, {"configuredMaxTxPower": 80000,
                                                                  "cellIndividualOffset": 6}, "power_up"),
])
def test_action_classes(enc: StateEncoder, before: dict[str, object], after: dict[str, object], action: str) -> None:
    assert enc.action(before, after) == action


def test_what_if_changes_are_one_step_and_stay_in_range(enc: StateEncoder) -> None:
    cm = {"digitalTilt": 40, "configuredMaxTxPower": 39811, "cellIndividualOffset": 0.0}
    assert enc.change(cm, "tilt_up") == {"digitalTilt": 30}
    assert enc.change(cm, "power_up") == {"configuredMaxTxPower": 50119}  # +1 dB
    assert enc.change(cm, "cio_down") == {"cellIndividualOffset": -2.0}
    assert enc.change(cm, "none") is None
    assert enc.change({"digitalTilt": 895}, "tilt_down") is None  # would leave -900..900
    assert enc.change({}, "power_up") is None  # no power in CM: nothing to step from
    for action in ACTIONS[1:]:  # each what-if change is classified as its own action
        change = enc.change(cm, action)
        assert change is not None and enc.action(cm, {**cm, **change}) == action


def test_reward_is_throughput_over_the_cap_in_kbit_per_s(enc: StateEncoder) -> None:
    assert enc.reward(0.0) == 0.0 and enc.reward(50_000.0) == 0.5 and enc.reward(10**6) == 1.0
    assert enc.reward(-5.0) == 0.0 and enc.reward(None) is None and enc.reward(float("nan")) is None
    assert StateEncoder(throughput_cap_kbps=20_000.0).reward(5_000.0) == 0.25
