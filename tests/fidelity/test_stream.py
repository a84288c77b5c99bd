"""The streaming estimator on synthetic transitions: identical behaviour, shifted rewards,
uncovered pairs, the trigger's hysteresis, the trust gate and the state's round trips."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from twin.config import FidelitySettings, GapSettings
from twin.fidelity import FidelityEstimator, dt_bsm_interval, trust
from twin.gap import GapTracker
from twin.mirror.cluster import ClusterMirror
from twin.resync.trigger import Signal

CELLS = ("nr:00101-000000001", "nr:00101-000000002")
S, A = 3, 2


def _mdp() -> tuple[np.ndarray, np.ndarray]:
    """A 3-state, 2-action MDP: action 0 cycles, action 1 stays; rewards in [0, 1]."""
    R = np.array([[0.2, 0.4], [0.5, 0.3], [0.8, 0.6]])
    P = np.zeros((S, A, S))
    for x in range(S):
        P[x, 0, (x + 1) % S] = 0.8
        P[x, 0, x] = 0.2
        P[x, 1, x] = 1.0
    return R, P


def _feed(est: FidelityEstimator, n: int, shift: float = 0.0, actions: tuple[int, ...] = (0, 1),
          seed: int = 0) -> None:
    """``n`` samples per side per (x, a) of ``actions`` (real: the MDP, twin: the MDP with rewards + shift)."""
    R, P = _mdp()
    rng = np.random.default_rng(seed)
    for side in ("real", "twin"):
        xs = np.repeat(np.arange(S), n * len(actions))
        acts = np.tile(np.repeat(np.array(actions), n), S)
        nxt = np.array([rng.choice(S, p=P[x, a]) for x, a in zip(xs, acts, strict=True)])
        r = R[xs, acts] + (shift if side == "twin" else 0.0)
        getattr(est, side).add_many(xs, acts, np.clip(r, 0.0, 1.0), nxt)
    for i, cell in enumerate(CELLS):
        est.recent[cell] = [i, 2]


def _estimator(**kw: Any) -> FidelityEstimator:
    base: dict[str, Any] = {"gamma": 0.5, "n_min": 20, "tau": 0.1, "k": 2, "forgetting": 1.0, "tol": 1e-4}
    return FidelityEstimator(S, A, **{**base, **kw})


def test_identical_real_and_twin_give_zero_lower_bound_and_trust_when_covered() -> None:
    est = _estimator()
    _feed(est, 5000)
    rec = est.compute(900, "c")
    assert rec["coverage"] == 1.0 and not rec["restricted"] and rec["actions"] == [0, 1]
    assert rec["lower"] == 0.0 and rec["value"] < 0.05 and rec["upper"] < 0.3
    verdict = trust(rec, tau=0.3, min_coverage=0.9)
    assert verdict.trusted and verdict.reasons == [] and verdict.upper == rec["upper"]
    assert not rec["firing"] and est.signals_scope(rec)  # scope exists, nothing fires


def test_shifted_twin_rewards_are_confident_drift_and_fire_after_k_computations() -> None:
    est = _estimator(k=2)
    _feed(est, 5000, shift=0.3)
    first = est.compute(900, "c")
    # true d = 0.3/(1 − γ) = 0.6 on every state; the interval brackets it
    assert first["lower"] > est.tau and first["lower"] <= 0.6 + 1e-3 <= first["upper"] + 1e-3
    assert abs(first["value"] - 0.6) < 0.05
    assert not first["firing"] and first["consecutiveAbove"] == 1  # hysteresis: not yet
    second = est.compute(1800, "c")
    assert second["firing"] and second["consecutiveAbove"] == 2
    assert est.signals_scope(second) == sorted(CELLS)  # both cells' states carry the drift
    assert "confident drift" in trust(second, 0.1, 0.5).reasons[0]
    # a DT-BSM signal is one more source of the cluster's trigger gate: it opens an episode on the cell
    tracker = GapTracker(GapSettings())
    step = tracker.observe(1800, {}, {}, {}, [Signal("dtbsm", CELLS[0], 1800, True, {"dtbsmLower": second["lower"]})])
    assert [(e.kind, e.scope, e.sources) for e in step.events] == [("raised", CELLS[0], ("dtbsm",))]


def test_a_quiet_computation_resets_the_hysteresis() -> None:
    est = _estimator(k=2)
    _feed(est, 5000, shift=0.3)
    assert est.compute(900)["consecutiveAbove"] == 1
    est.reset_twin()  # a resync: the twin's samples are gone, nothing is confident any more
    _feed(est, 5000, shift=0.0, seed=1)
    rec = est.compute(1800)
    assert rec["consecutiveAbove"] == 0 and not rec["firing"] and est.twin_resets == 1


def test_uncovered_pairs_widen_the_upper_bound_and_fail_the_trust_gate() -> None:
    est = _estimator()
    _feed(est, 5000, actions=(0,))  # the network never took action 1
    rec = est.compute(900)
    assert rec["restricted"] and rec["actions"] == [0] and rec["coverage"] == 0.5 and rec["coverageUsed"] == 1.0
    few = _estimator()
    _feed(few, 3)  # every pair seen, none covered
    thin = few.compute(900)
    assert thin["coverage"] == 0.0 and thin["upper"] > 1.5 and thin["lower"] == 0.0  # d_max = 2
    verdict = trust(thin, tau=0.3, min_coverage=0.5)
    assert not verdict.trusted
    assert any(r.startswith("insufficient data: coverage 0") for r in verdict.reasons)
    assert any(r.startswith("insufficient data: upper bound") for r in verdict.reasons)
    assert trust(None, 0.3, 0.5).reasons == ["no DT-BSM estimate yet: the cluster has not had enough periods"]


def test_the_max_at_each_state_runs_over_the_actions_covered_there() -> None:
    """§9.2's A_cov(x): action 1 covered at state 2 only; states 0 and 1 leave it out of their max
    instead of letting its missing real samples drive their upper end to d_max."""
    R, P = _mdp()
    rng = np.random.default_rng(1)

    def sample(xs: np.ndarray, acts: np.ndarray) -> tuple[np.ndarray, ...]:
        nxt = np.array([rng.choice(S, p=P[x, a]) for x, a in zip(xs, acts, strict=True)])
        return xs, acts, R[xs, acts], nxt

    est = _estimator()
    every = np.repeat(np.arange(S), 400)
    est.real.add_many(*sample(every, np.zeros_like(every)))
    est.real.add_many(*sample(np.full(400, 2), np.ones(400, dtype=np.int64)))
    for a in (0, 1):
        est.twin.add_many(*sample(every, np.full_like(every, a)))
    est.recent = {CELLS[0]: [0], CELLS[1]: [2]}
    rec = est.compute(900, "c")
    assert rec["actions"] == [0, 1] and rec["restricted"] and rec["restrictedPairs"] == 2
    d_max = 1.0 / (1.0 - est.gamma)
    assert rec["upper"] < d_max - 0.5 and rec["lower"] <= rec["value"] <= rec["upper"]
    states = rec["states"]
    real_m, twin_m = est._pair(states, [0, 1])
    unrestricted = dt_bsm_interval(real_m, twin_m, est.gamma, tol=1e-4)
    assert unrestricted.upper == pytest.approx(d_max, abs=1e-3)  # what the uncovered pairs said before
    assert trust(rec, tau=0.5, min_coverage=0.5).reasons[-1].startswith("restricted: (state, action) pairs")


def test_the_tv_bound_between_computations_says_when_the_twin_moved_away() -> None:
    """§9.3's early warning: after a computation on identical behaviour, twin samples with shifted
    rewards raise the TV bound of the point estimates past a small rise; more identical samples do
    not. The bound is kept in the record and through the state's round trip."""
    est = _estimator()
    assert not est.tv_rose(0.05)  # nothing computed yet: no base to rise from
    _feed(est, 400)
    rec = est.compute(900, "c")
    assert rec["tvBound"] >= rec["value"] and rec["tvClosedForm"] >= rec["tvBound"] and not rec["early"]
    _feed(est, 400, seed=1)
    assert not est.tv_rose(0.05) and not est.tv_rose(None) and not est.tv_rose(0.0)
    _feed(est, 4000, shift=0.4, seed=2)
    assert est.tv_rose(0.05) and est.tv_now is not None and est.tv_now - rec["tvBound"] > 0.05
    assert not est.tv_rose(None)
    s = FidelitySettings(gamma=0.5, n_min=20, tau=0.1, trigger_evaluations=2, forgetting=1.0, tol=1e-4)
    back = FidelityEstimator.from_bytes(est.to_bytes(), s, S, A)
    assert back.tv_last == est.tv_last and back.tv_rose(0.05)
    later = est.compute(1800, "c", early=True)
    assert later["early"] and later["tvBound"] == pytest.approx(est.tv_now, abs=1e-6)


def test_state_round_trip_gives_the_identical_value() -> None:
    settings = FidelitySettings(gamma=0.5, n_min=20, tau=0.1, forgetting=0.9999, tol=1e-4)
    est = FidelityEstimator.from_settings(settings, S, A)
    _feed(est, 400, shift=0.1)
    est.last[CELLS[0]] = [900, 2]
    first = est.compute(900, "c")
    _feed(est, 100, shift=0.1, seed=3)  # counts move on after the computation
    blob = est.to_bytes()
    copy = FidelityEstimator.from_bytes(blob, settings, S, A)
    assert copy.to_bytes() == blob and copy.last == est.last and copy.warm is not None
    a, b = est.compute(1800, "c"), copy.compute(1800, "c")
    drop = ("computeSeconds",)
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}
    assert a["value"] != first["value"]
    with pytest.raises(ValueError, match="encoder changed"):
        FidelityEstimator.from_bytes(blob, settings, S + 1, A)


def test_mirror_checkpoint_entries_carry_the_state_and_records(tmp_path: Any) -> None:
    from twin.mirror.store import CheckpointStore, PartitionState

    est = _estimator()
    _feed(est, 50)
    m = ClusterMirror("c1")
    m.cell(CELLS[0])
    m.fidelity_state = est.to_bytes()
    m.fidelity.append(est.compute(900, "c1"))
    m.fidelity_changed = True
    state = PartitionState(0)
    state.clusters["c1"] = m
    store = CheckpointStore(tmp_path)
    store.save(state)
    loaded = store.load(0).clusters["c1"]
    assert loaded.fidelity_state == m.fidelity_state and loaded.fidelity == m.fidelity
    assert loaded.snapshot().fidelity == m.fidelity


def test_pairs_one_side_has_not_sampled_do_not_inflate_the_point_value() -> None:
    est = _estimator()
    _feed(est, 2000)
    est.reset_twin()  # after a resync: the twin has sampled only action 0 again
    R, P = _mdp()
    xs = np.repeat(np.arange(S), 2000)
    rng = np.random.default_rng(5)
    est.twin.add_many(xs, np.zeros_like(xs), R[xs, 0], np.array([rng.choice(S, p=P[x, 0]) for x in xs]))
    rec = est.compute(900)
    # without the other side's estimate, action 1 of the twin would be a reward-0 self-loop: d >= 0.3/(1 − γ)
    assert rec["value"] < 0.05 and rec["lower"] == 0.0 and rec["upper"] > 1.5


def test_a_difference_below_n_min_samples_is_not_evidence_in_the_point_value() -> None:
    """After a resync reset the twin's counts, three twin samples of a state with shifted rewards
    leave the point value at the real side's (the demo's day showed 1.7-4.5 from such pairs); from
    ``n_min`` samples on the same shift counts in full. The interval still sees the few samples."""
    shift = 0.3
    est = _estimator(n_min=20)
    _feed(est, 2000)
    est.reset_twin()
    R, P = _mdp()
    rng = np.random.default_rng(7)

    def twin_samples(n: int) -> None:
        xs = np.repeat(np.arange(S), n)
        acts = np.zeros_like(xs)
        est.twin.add_many(xs, acts, np.clip(R[xs, 0] + shift, 0.0, 1.0),
                          np.array([rng.choice(S, p=P[x, 0]) for x in xs]))

    twin_samples(3)
    few = est.compute(900)
    assert few["value"] < 1e-3 and few["comparedPairs"] == 0 and few["upper"] > 1.5
    twin_samples(40)
    enough = est.compute(1800)
    assert enough["comparedPairs"] == S  # action 0 at every state: both sides have n_min
    assert enough["value"] > 0.9 * shift and enough["value"] > 100 * few["value"]


def test_a_pair_both_sides_sampled_too_little_compares_their_pooled_estimate() -> None:
    est = _estimator(n_min=20)
    for side in (est.real, est.twin):  # state 1: covered on both sides, identical
        side.add_many(np.ones(50, dtype=np.int64), np.zeros(50, dtype=np.int64), np.full(50, 0.5),
                      np.ones(50, dtype=np.int64))
    est.real.add_many(np.array([0, 0]), np.array([0, 0]), np.array([0.9, 0.9]), np.array([0, 0]))
    est.twin.add_many(np.array([0, 0, 0]), np.array([0, 0, 0]), np.array([0.1, 0.1, 0.1]), np.array([0, 0, 0]))
    rec = est.compute(900)
    # own estimates at state 0: |0.9 - 0.1| / (1 - 0.5) = 1.6; the pooled one on both sides: 0
    assert rec["states"] == [0, 1] and rec["comparedPairs"] == 1
    assert rec["value"] < 1e-3 and rec["upper"] > 1.5
