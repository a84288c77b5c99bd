"""``twin bench prefilter``: rank candidate twins by DT-BSM before training in any of them (spec §7.2).

The trustworthy-twin case study of Tao, Xu, You (arXiv:2511.19961 §IV) on the emulated network:

- **real network**: ``fault-midrun`` with its scheduled events removed (the antenna fault would make
  the real MDP non-stationary; its 500 m inter-site distance makes the cluster interference-limited,
  so tilt matters a lot), with its hidden truth (antenna gain and azimuth errors, own shadowing,
  building loss, a demand scale of 0.8). Evaluated with the emulator's physics directly
  (``PhysicalNetwork.evaluate``), no Kafka.
- **RL task**: the cluster's common CM plan, one electrical tilt and one carrier power for all 21
  cells, changed once an hour. Actions (5): none, tilt down, tilt up (3° steps over 1..16°), power
  down, power up (3 dB steps over 40..46 dBm). State = (tilt level, power level, load bin) where the
  load bin is the cluster's mean PRB utilisation in 4 bins frozen from the real network's default
  day (quartiles), |S| = 6·3·4 = 72. The hour of day is hidden: it drives the load, and the load bin
  is all the agent sees of it. Reward of the period after the action, in [0, 1]:
  ``log10(mean UE DL throughput of connected UEs / 1 Mbit/s) / 2`` minus ``4·max(0, 0.95 − connected
  share)`` (the coverage floor), clipped. γ = 0.9. The real network's PM noise (2 %) is on what the
  agent observes of it; every twin simulates a 2 % PM noise on its own KPIs the same way, so that the
  encoded states near a load-bin edge are reached on both sides.
- **candidate twins**: the twin's own simulation model (``twin.sim.Simulator`` over the published CM,
  the scenario's public ``[model]``) with a calibration overlay (``twin.resync.calibration``:
  per-cell gain and azimuth offsets, a cluster path-loss offset) and a demand scale. Candidate 0 is
  the calibration a perfect resync would fit (the hidden gain and azimuth errors, the mean extra
  loss, the demand scale); candidate i adds errors whose size grows with a severity in 0..1 (gain
  σ 5 dB, azimuth σ 25°, path loss ±10 dB, demand ×e^(±0.8), each scaled by the severity) and, with
  probabilities growing with it, other model choices: propagation scenario (umi or rma instead of
  uma), fewer UE points (1,000 instead of 3,000, same total load), no shadowing, the Shannon link
  model instead of the link table, another UE drop.
- **per candidate**: the empirical DT-BSM (§5: counts of (s, a, r, s') sampled uniformly over the
  hidden state, the same number from the real network and from the twin, ``twin.fidelity.dt_bsm``;
  the ranking uses the diagonal's mean under the real state frequencies, DTBSM_avg, and DTBSM_sup
  is reported beside it); ``agents`` (3) tabular Q-learning agents trained in the twin, each until
  its greedy policy changes in at most one state over three checks 2,000 steps apart, or 150,000
  steps (the training cost is their total steps); each policy deployed on the real network, the
  same 24 episodes (one per start hour, 48 hours each, from the planned configuration, the same
  noise) for every candidate, the deployed return being the mean discounted return over episodes
  and agents; the same policies' return in the twin itself (the "in-twin return" baseline).
  Diagnostics beside them: DT-BSM with the twin's mean reward offset removed, DT-BSM with a pair
  only one side has sampled taking that side's estimate on the other (the streaming estimator's
  convention, ``twin.fidelity.stream``), and the deployed
  return of the twin-optimal policy of the twin's estimated MDP (value iteration, no training
  noise).

Prints one JSON object (``docs/benchmarks.md``, ``docs/fidelity.md``) and can draw DT-BSM against the
deployed return (``--plot``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import typer

from replay.emulator import NetworkEmulator, load_scenario
from twin.fidelity import TransitionCounts, dt_bsm
from twin.resync.calibration import Calibration, CellCalibration
from twin.sim import SimConfig, Simulator
from twin.sim.cm import apply_cm_to_sector
from twin.sim.mirrored import cluster_from_mirror
from twin.sim.traffic import TrafficMap

__all__ = ["ACTIONS", "Candidate", "bench_prefilter_command", "run_prefilter"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SCENARIO = "fault-midrun"
START = datetime(2026, 11, 2, tzinfo=UTC)
TILTS_DEG = (1.0, 4.0, 7.0, 10.0, 13.0, 16.0)
POWERS_DBM = (40.0, 43.0, 46.0)
DEFAULT_CONFIG = (1, 2)  # 4°, 46 dBm: the scenario's planned configuration
N_LOAD = 4
ACTIONS = ("none", "tilt_down", "tilt_up", "power_down", "power_up")
GAMMA = 0.9
HOURS = 24
COVERAGE_FLOOR = 0.95
EPISODE_STEPS = 48
TWIN_NOISE_REL = 0.02  # the twin's model of PM measurement noise on what the encoder sees
N_STATES = len(TILTS_DEG) * len(POWERS_DBM) * N_LOAD


# -- the MDP -----------------------------------------------------------------------------------
def reward_of(thp_bps: float, connected_share: float) -> float:
    """Normalised objective in [0, 1]: log throughput (1 Mbit/s -> 0, 100 Mbit/s -> 1) less the
    coverage-floor penalty."""
    r = math.log10(max(thp_bps, 1.0) / 1e6) / 2.0 - 4.0 * max(0.0, COVERAGE_FLOOR - connected_share)
    return min(1.0, max(0.0, r))


@dataclass(frozen=True)
class Table:
    """One network evaluated at every (tilt, power, hour): cluster mean PRB load (0..1), mean
    throughput of connected UEs (bit/s) and connected share, each [tilts, powers, 24]."""

    load: FloatArray
    thp: FloatArray
    conn: FloatArray

    def reward(self, noise: FloatArray | float = 1.0) -> FloatArray:
        return np.vectorize(reward_of)(self.thp * noise, self.conn)


def next_config(ti: int, pi: int, a: int) -> tuple[int, int]:
    if a == 1:
        ti = max(ti - 1, 0)
    elif a == 2:
        ti = min(ti + 1, len(TILTS_DEG) - 1)
    elif a == 3:
        pi = max(pi - 1, 0)
    elif a == 4:
        pi = min(pi + 1, len(POWERS_DBM) - 1)
    return ti, pi


NEXT = np.array([[[next_config(t, p, a) for a in range(len(ACTIONS))] for p in range(len(POWERS_DBM))]
                 for t in range(len(TILTS_DEG))], dtype=np.int64)  # [tilt, power, action, 2]


def encode(ti: IntArray | int, pi: IntArray | int, load: FloatArray | float, edges: FloatArray) -> IntArray:
    """The shared state encoder: (tilt level, power level, load bin) -> 0..71."""
    b = np.searchsorted(edges, load)
    return np.asarray((np.asarray(ti) * len(POWERS_DBM) + np.asarray(pi)) * N_LOAD + b, dtype=np.int64)


def _plan(sector: Any, ti: int, pi: int) -> dict[str, Any]:
    return {"digitalTilt": round(TILTS_DEG[ti] * 10), "configuredMaxTxPower": round(10 ** (POWERS_DBM[pi] / 10))}


def real_table(emu: NetworkEmulator) -> Table:
    """The real network (hidden truth included) at every configuration and hour."""
    public = [emu.public_sector(k) for k in emu.cells]
    shape = (len(TILTS_DEG), len(POWERS_DBM), HOURS)
    load, thp, conn = np.empty(shape), np.empty(shape), np.empty(shape)
    for ti in range(len(TILTS_DEG)):
        for pi in range(len(POWERS_DBM)):
            sectors = tuple(apply_cm_to_sector(s, _plan(s, ti, pi), strict=True) for s in public)
            for h in range(HOURS):
                st = emu.physics.evaluate(sectors, h + 0.5, [])
                r, w = st.result, st.weight
                wc = np.where(r.ue.connected, w, 0.0)
                load[ti, pi, h] = float(r.load[: st.n_cells].mean())
                thp[ti, pi, h] = float((wc * r.ue.throughput_bps).sum() / max(wc.sum(), 1e-12))
                conn[ti, pi, h] = float(wc.sum() / w.sum())
    return Table(load, thp, conn)


# -- candidate twins ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """A twin: the calibration offsets it uses and its model choices."""

    index: int
    severity: float
    gain_db: tuple[float, ...]
    azimuth_deg: tuple[float, ...]
    pathloss_db: float
    demand_scale: float
    scenario: str = "uma"
    n_ues: int = 3000
    shadowing: bool = True
    link_model: str = "table"
    ue_seed: int = 0

    def params(self, truth_gain: FloatArray, truth_azimuth: FloatArray, base_pathloss: float,
               base_demand: float) -> dict[str, Any]:
        """What the candidate gets wrong, against the calibration a perfect resync would fit."""
        g = np.asarray(self.gain_db) - truth_gain
        az = np.asarray(self.azimuth_deg) - truth_azimuth
        return {"severity": round(self.severity, 4),
                "gain_err_rms_db": round(float(np.sqrt(np.mean(g**2))), 3),
                "azimuth_err_rms_deg": round(float(np.sqrt(np.mean(az**2))), 3),
                "pathloss_err_db": round(self.pathloss_db - base_pathloss, 3),
                "demand_scale_ratio": round(self.demand_scale / base_demand, 4),
                "scenario": self.scenario, "n_ues": self.n_ues, "shadowing": self.shadowing,
                "link_model": self.link_model, "ue_seed": self.ue_seed}


def make_candidates(n: int, emu: NetworkEmulator, seed: int) -> list[Candidate]:
    """``n`` twins from near-perfect (severity 0) to poor (severity 1)."""
    truth = emu.physics.truth
    base_pl = float(truth.extra_loss_db.mean())
    base_demand = float(emu.scenario.traffic.demand_scale)
    rng = np.random.default_rng([seed, 0x9F11])
    out = []
    for i in range(n):
        sev = i / max(n - 1, 1)
        k = len(emu.cells)
        gain = np.clip(truth.gain_db + rng.normal(0.0, 5.0 * sev, k), -10.0, 10.0)
        az = np.clip(truth.azimuth_deg + rng.normal(0.0, 25.0 * sev, k), -85.0, 85.0)
        pl = float(np.clip(base_pl + rng.uniform(-10.0, 10.0) * sev, -15.0, 15.0))
        demand = base_demand * math.exp(rng.uniform(-0.8, 0.8) * sev)
        choice = rng.uniform(size=5)
        out.append(Candidate(
            i, sev, tuple(float(v) for v in gain), tuple(float(v) for v in az), pl, demand,
            scenario=str(rng.choice(["umi", "rma"])) if choice[0] < 0.5 * sev else "uma",
            n_ues=1000 if choice[1] < 0.4 * sev else 3000,
            shadowing=not choice[2] < 0.4 * sev,
            link_model="shannon" if choice[3] < 0.4 * sev else "table",
            ue_seed=int(rng.integers(1, 1000)) if choice[4] < 0.4 * sev else 0,
        ))
    return out


def twin_table(emu: NetworkEmulator, cand: Candidate) -> Table:
    """The candidate twin at every configuration and hour (its own traffic map's day profile)."""
    model = emu.public_model()
    cluster = cluster_from_mirror({k: _mirror_cm(emu, k) for k in emu.cells}, model["cluster_id"],
                                  cand.scenario)  # type: ignore[arg-type]
    traffic = TrafficMap(n_ues=cand.n_ues, demand_bps=model["demand_bps"], indoor_fraction=model["indoor_fraction"])
    config = SimConfig(shadowing=cand.shadowing, link_model=cand.link_model)  # type: ignore[arg-type]
    sim = Simulator(cluster, traffic, seed=model["seed"] + cand.ue_seed, config=config)
    keys = sim.cluster.cell_keys
    cal = Calibration({k: CellCalibration(gain_db=cand.gain_db[i], azimuth_deg=cand.azimuth_deg[i])
                       for i, k in enumerate(keys)}, pathloss_db=cand.pathloss_db)
    overlay = cal.cm_overlay(sim.cluster.sectors)
    ue_scale = model["n_ues"] / cand.n_ues  # the same total load whatever the number of UE points
    shape = (len(TILTS_DEG), len(POWERS_DBM), HOURS)
    load, thp, conn = np.empty(shape), np.empty(shape), np.empty(shape)
    for ti in range(len(TILTS_DEG)):
        for pi in range(len(POWERS_DBM)):
            cm = {k: {**overlay.get(k, {}), **_plan(None, ti, pi)} for k in keys}
            for h in range(HOURS):
                r = sim.evaluate(cm=cm, hour=h + 0.5, ue_scale=ue_scale, demand_scale=cand.demand_scale,
                                 extra_loss_db=cand.pathloss_db)
                w = sim.ues.weight * ue_scale * traffic.hour_factor(h + 0.5)
                wc = np.where(r.ue.connected, w, 0.0)
                load[ti, pi, h] = float(r.load.mean())
                thp[ti, pi, h] = float((wc * r.ue.throughput_bps).sum() / max(wc.sum(), 1e-12))
                conn[ti, pi, h] = float(wc.sum() / w.sum())
    return Table(load, thp, conn)


def _mirror_cm(emu: NetworkEmulator, key: str) -> dict[str, Any]:
    return {f"{cls}.{name}": value for cls, attrs in emu.cm[key].items() for name, value in attrs.items()}


# -- sampling, training, deployment --------------------------------------------------------------
def sample_counts(table: Table, edges: FloatArray, n: int, noise: float, seed: int) -> TransitionCounts:
    """``n`` transitions with the hidden state (configuration, hour) and the action drawn uniformly:
    the same sampling on both sides (§5.1: P and R do not depend on the sampling policy)."""
    rng = np.random.default_rng(seed)
    ti = rng.integers(0, len(TILTS_DEG), n)
    pi = rng.integers(0, len(POWERS_DBM), n)
    h = rng.integers(0, HOURS, n)
    a = rng.integers(0, len(ACTIONS), n)
    nxt = NEXT[ti, pi, a]
    t2, p2, h2 = nxt[:, 0], nxt[:, 1], (h + 1) % HOURS
    x = encode(ti, pi, table.load[ti, pi, h] * (1 + noise * rng.standard_normal(n)), edges)
    x2 = encode(t2, p2, table.load[t2, p2, h2] * (1 + noise * rng.standard_normal(n)), edges)
    thp = table.thp[t2, p2, h2] * (1 + noise * rng.standard_normal(n))
    r = np.array([reward_of(float(v), float(c)) for v, c in zip(thp, table.conn[t2, p2, h2], strict=True)])
    counts = TransitionCounts(N_STATES, len(ACTIONS))
    counts.add_many(x, a, r, x2)
    return counts


class Env:
    """A network (real or twin) as an RL environment over its table; the hour is hidden."""

    def __init__(self, table: Table, edges: FloatArray, noise: float) -> None:
        self.table, self.edges, self.noise = table, edges, noise
        self.reward = table.reward()

    def observe(self, ti: int, pi: int, h: int, z: float) -> int:
        return int(encode(ti, pi, self.table.load[ti, pi, h] * (1 + self.noise * z), self.edges))

    def step_reward(self, ti: int, pi: int, h: int, z: float) -> float:
        if self.noise == 0.0:
            return float(self.reward[ti, pi, h])
        return reward_of(float(self.table.thp[ti, pi, h]) * (1 + self.noise * z), float(self.table.conn[ti, pi, h]))


def q_learning(env: Env, seed: int, check_every: int = 2000, stable_checks: int = 3,
               min_steps: int = 10_000, max_steps: int = 150_000) -> tuple[IntArray, int]:
    """Tabular Q-learning (ε = 0.2, α = 1/n^0.6, 24-step episodes from a random hour and
    configuration) until the greedy policy has changed in at most one state at each of
    ``stable_checks`` consecutive checks (every ``check_every`` steps); returns (policy [S],
    steps = the training cost)."""
    rng = np.random.default_rng(seed)
    q = np.zeros((N_STATES, len(ACTIONS)))
    n = np.zeros((N_STATES, len(ACTIONS)))
    policy = np.zeros(N_STATES, dtype=np.int64)
    stable, steps = 0, 0
    while steps < max_steps:
        block = check_every
        u = rng.uniform(size=block)
        ra = rng.integers(0, len(ACTIONS), block)
        zs = rng.standard_normal((block, 2))
        starts = rng.integers(0, HOURS * len(TILTS_DEG) * len(POWERS_DBM), block // 24 + 1)
        ti = pi = h = x = 0
        for k in range(block):
            if k % 24 == 0:
                s0 = int(starts[k // 24])
                h, ti, pi = s0 % HOURS, (s0 // HOURS) % len(TILTS_DEG), s0 // (HOURS * len(TILTS_DEG))
                x = env.observe(ti, pi, h, float(zs[k, 0]))
            a = int(ra[k]) if u[k] < 0.2 else int(np.argmax(q[x]))
            ti, pi = NEXT[ti, pi, a]
            h = (h + 1) % HOURS
            r = env.step_reward(ti, pi, h, float(zs[k, 1]))
            x2 = env.observe(ti, pi, h, float(zs[k, 0]))
            n[x, a] += 1
            q[x, a] += (r + GAMMA * q[x2].max() - q[x, a]) / n[x, a] ** 0.6
            x = x2
        steps += block
        new = np.argmax(q, axis=1)
        stable = stable + 1 if int((new != policy).sum()) <= 1 else 0
        policy = new
        if steps >= min_steps and stable >= stable_checks:
            break
    return policy, steps


def rollout(env: Env, policy: IntArray, seed: int, steps: int = EPISODE_STEPS) -> tuple[float, float]:
    """The policy from the planned configuration, one episode per start hour, the same noise
    draws for every policy: (mean discounted return, mean reward per step)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((HOURS, steps, 2))
    disc, total = 0.0, 0.0
    for h0 in range(HOURS):
        ti, pi = DEFAULT_CONFIG
        h = h0
        x = env.observe(ti, pi, h, float(z[h0, 0, 0]))
        for t in range(steps):
            ti, pi = NEXT[ti, pi, int(policy[x])]
            h = (h + 1) % HOURS
            r = env.step_reward(ti, pi, h, float(z[h0, t, 1]))
            disc += GAMMA**t * r
            total += r
            x = env.observe(ti, pi, h, float(z[h0, t, 0]))
    return disc / HOURS, total / (HOURS * steps)


def value_iteration(R: FloatArray, P: FloatArray, tol: float = 1e-8) -> IntArray:
    v = np.zeros(R.shape[0])
    while True:
        q = R + GAMMA * P @ v
        new = q.max(axis=1)
        if np.abs(new - v).max() < tol:
            return np.asarray(np.argmax(q, axis=1), dtype=np.int64)
        v = new


# -- selection -----------------------------------------------------------------------------------
def _selection(order: list[int], k: int, deployed: FloatArray, cost: FloatArray) -> dict[str, Any]:
    chosen = order[:k]
    best = float(deployed.max())
    return {"k": k, "chosen": chosen, "return_fraction": float(deployed[chosen].max() / best),
            "cost_fraction": float(cost[chosen].sum() / cost.sum())}


def _random_selection(n: int, k: int, deployed: FloatArray, cost: FloatArray, seed: int,
                      draws: int = 2000) -> dict[str, Any]:
    rng = np.random.default_rng([seed, 0x5E1])
    fr, cf = [], []
    for _ in range(draws):
        pick = rng.choice(n, size=k, replace=False)
        fr.append(deployed[pick].max() / deployed.max())
        cf.append(cost[pick].sum() / cost.sum())
    return {"k": k, "draws": draws, "return_fraction": float(np.mean(fr)),
            "return_fraction_p10": float(np.quantile(fr, 0.1)), "cost_fraction": float(np.mean(cf))}


def run_prefilter(n_candidates: int = 40, seed: int = 0, samples: int = 30_000, agents: int = 3,
                  plot: Path | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The whole case study; see the module docstring. ``samples``: transitions per network;
    ``agents``: Q-learning agents trained per twin (different seeds; the deployed return is their
    mean, the training cost their total steps)."""
    from scipy.stats import spearmanr

    t_start = time.perf_counter()
    base = load_scenario(SCENARIO)
    emu = NetworkEmulator(replace(base, events=()), seed=seed, start=START, granularity_s=3600, mr_per_cell=1)
    noise = float(base.truth.pm_noise_rel)
    t0 = time.perf_counter()
    real = real_table(emu)
    real_eval_s = time.perf_counter() - t0
    d0, p0 = DEFAULT_CONFIG
    edges = np.quantile(real.load[d0, p0], [0.25, 0.5, 0.75])  # frozen on the planned configuration's day
    real_counts = sample_counts(real, edges, samples, noise, seed=seed * 1000 + 1)
    R_real, P_real = real_counts.estimates()
    weights = real_counts.counts.sum(axis=1)
    covered_states = real_counts.counts.min(axis=1) >= 5
    real_env = Env(real, edges, noise)
    opt_policy = value_iteration(R_real, P_real)
    opt_return, opt_mean = rollout(real_env, opt_policy, seed=seed * 1000 + 7)
    default_return, default_mean = rollout(real_env, np.zeros(N_STATES, dtype=np.int64), seed=seed * 1000 + 7)

    truth = emu.physics.truth
    base_pl = float(truth.extra_loss_db.mean())
    base_demand = float(base.traffic.demand_scale)
    rows: list[dict[str, Any]] = []
    timing = {"twin_eval_s": 0.0, "sampling_s": 0.0, "dtbsm_s": 0.0, "training_s": 0.0, "deploy_s": 0.0,
              "diagnostics_s": 0.0}
    for cand in make_candidates(n_candidates, emu, seed):
        t0 = time.perf_counter()
        tab = twin_table(emu, cand)
        t1 = time.perf_counter()
        counts = sample_counts(tab, edges, samples, TWIN_NOISE_REL, seed=seed * 1000 + 2)
        R_twin, P_twin = counts.estimates()
        t2 = time.perf_counter()
        res = dt_bsm(R_real, P_real, R_twin, P_twin, gamma=GAMMA, tol=1e-3, weights=weights)
        diag = res.diagonal
        t3 = time.perf_counter()
        timing["dtbsm_s"] += t3 - t2
        # diagnostics (not the metric): the same DT-BSM with the twin's mean reward offset removed,
        # and the twin-optimal policy of its estimated MDP (no Q-learning noise) deployed
        shift = float(np.average(R_real - R_twin, axis=0, weights=weights).mean())
        centred = dt_bsm(R_real, P_real, np.clip(R_twin + shift, 0.0, 1.0), P_twin, gamma=GAMMA, tol=1e-3,
                         weights=weights)
        vi_deployed, _ = rollout(real_env, value_iteration(R_twin, P_twin), seed=seed * 1000 + 7)
        # and the convention of the streaming estimator (twin.fidelity.stream): a pair only one side
        # has sampled takes that side's estimate on the other
        r_seen, t_seen = real_counts.counts > 0, counts.counts > 0
        filled = dt_bsm(np.where(r_seen, R_real, R_twin), np.where(r_seen[:, :, None], P_real, P_twin),
                        np.where(t_seen, R_twin, R_real), np.where(t_seen[:, :, None], P_twin, P_real),
                        gamma=GAMMA, tol=1e-3, weights=weights)
        t3b = time.perf_counter()
        timing["diagnostics_s"] += t3b - t3
        env = Env(tab, edges, TWIN_NOISE_REL)
        trained = [q_learning(env, seed=seed * 1000 + 3 + 10 * j) for j in range(agents)]
        t4 = time.perf_counter()
        per_agent = [rollout(real_env, policy, seed=seed * 1000 + 7) for policy, _ in trained]
        deployed = float(np.mean([d for d, _ in per_agent]))
        deployed_mean = float(np.mean([m for _, m in per_agent]))
        in_twin = float(np.mean([rollout(env, policy, seed=seed * 1000 + 7)[0] for policy, _ in trained]))
        steps = sum(st for _, st in trained)
        agrees = [float(np.mean(p[covered_states] == opt_policy[covered_states])) for p, _ in trained]
        t5 = time.perf_counter()
        for key, dt in zip(("twin_eval_s", "sampling_s", "training_s", "deploy_s"),
                           (t1 - t0, t2 - t1, t4 - t3b, t5 - t4), strict=True):
            timing[key] += dt
        rows.append({
            "index": cand.index, "params": cand.params(truth.gain_db, truth.azimuth_deg, base_pl, base_demand),
            "dtbsm_sup": float(res.value), "dtbsm_mean": float(res.mean if res.mean is not None else np.nan),
            "dtbsm_sup_covered": float(diag[covered_states].max()),
            "dtbsm_interval": [float(res.lower), float(res.upper)],
            "reward_gap_mean": float(np.abs(R_real - R_twin).mean()),
            "reward_offset": -shift, "dtbsm_mean_offset_removed": float(centred.mean or 0.0),
            "dtbsm_sup_filled": float(filled.value), "dtbsm_mean_filled": float(filled.mean or 0.0),
            "pairs_sampled_one_side_only": int((r_seen != t_seen).sum()),
            "deployed_return_twin_optimal_policy": vi_deployed,
            "deployed_return": deployed, "deployed_mean_reward": deployed_mean, "in_twin_return": in_twin,
            "deployed_return_per_agent": [d for d, _ in per_agent],
            "training_steps": steps, "training_steps_per_agent": [st for _, st in trained], "training_s": t4 - t3b,
            "policy_agrees_with_real_optimum": float(np.mean(agrees)),
        })
        if progress is not None:
            progress(f"candidate {cand.index}: severity {cand.severity:.2f} dtbsm_mean {rows[-1]['dtbsm_mean']:.3f} "
                     f"sup {res.value:.3f} deployed {deployed:.3f} in-twin {in_twin:.3f} steps {steps}")

    n = len(rows)
    dep = np.array([r["deployed_return"] for r in rows])
    cost = np.array([r["training_steps"] for r in rows], dtype=np.float64)
    score = np.array([r["dtbsm_mean"] for r in rows])
    sup = np.array([r["dtbsm_sup"] for r in rows])
    sup_cov = np.array([r["dtbsm_sup_covered"] for r in rows])
    twin_ret = np.array([r["in_twin_return"] for r in rows])
    sev = np.array([r["params"]["severity"] for r in rows])
    centred_score = np.array([r["dtbsm_mean_offset_removed"] for r in rows])
    dep_vi = np.array([r["deployed_return_twin_optimal_policy"] for r in rows])
    dep_first = np.array([r["deployed_return_per_agent"][0] for r in rows])
    sup_filled = np.array([r["dtbsm_sup_filled"] for r in rows])
    mean_filled = np.array([r["dtbsm_mean_filled"] for r in rows])

    def rho(x: FloatArray, y: FloatArray) -> float | None:
        if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
            return None
        return float(spearmanr(x, y).statistic)

    by_dtbsm = [int(i) for i in np.argsort(score, kind="stable")]
    by_sup = [int(i) for i in np.argsort(sup, kind="stable")]
    by_twin = [int(i) for i in np.argsort(-twin_ret, kind="stable")]
    selections: dict[str, dict[str, Any]] = {}
    for pct in (5, 10):
        k = max(1, round(n * pct / 100))
        selections[f"top{pct}"] = {
            "dtbsm_mean": _selection(by_dtbsm, k, dep, cost),
            "dtbsm_sup": _selection(by_sup, k, dep, cost),
            "random": _random_selection(n, k, dep, cost, seed),
            "in_twin_return": _selection(by_twin, k, dep, cost),
        }
    out: dict[str, Any] = {
        "benchmark": "prefilter", "scenario": SCENARIO, "seed": seed, "candidates_n": n,
        "states": N_STATES, "actions": list(ACTIONS), "gamma": GAMMA, "samples_per_network": samples,
        "agents_per_twin": agents,
        "ranking_by": "dtbsm_mean",
        "spearman": rho(score, dep),
        "spearman_dtbsm_sup": rho(sup, dep),
        "spearman_dtbsm_sup_covered": rho(sup_cov, dep),
        "spearman_in_twin_return": rho(twin_ret, dep),
        "spearman_severity": rho(sev, dep),
        "spearman_offset_removed": rho(centred_score, dep),
        "spearman_first_agent_only": rho(score, dep_first),
        "spearman_dtbsm_sup_filled": rho(sup_filled, dep),
        "spearman_dtbsm_mean_filled": rho(mean_filled, dep),
        "spearman_vs_twin_optimal_policy": rho(score, dep_vi),
        "spearman_offset_removed_vs_twin_optimal_policy": rho(centred_score, dep_vi),
        "top5_return_fraction": selections["top5"]["dtbsm_mean"]["return_fraction"],
        "top5_cost_fraction": selections["top5"]["dtbsm_mean"]["cost_fraction"],
        "top10_return_fraction": selections["top10"]["dtbsm_mean"]["return_fraction"],
        "top10_cost_fraction": selections["top10"]["dtbsm_mean"]["cost_fraction"],
        "selections": selections,
        "best_deployed_return": float(dep.max()), "worst_deployed_return": float(dep.min()),
        "real_optimum_return": opt_return, "real_optimum_mean_reward": opt_mean,
        "planned_config_return": default_return, "planned_config_mean_reward": default_mean,
        "load_bin_edges": [float(e) for e in edges],
        "real_covered_states": int(covered_states.sum()),
        "real_eval_s": real_eval_s, **timing,
        "candidates": rows,
    }
    if plot is not None:
        out["plot"] = str(plot)
        _plot(score, dep, by_dtbsm[: max(1, round(n * 0.05))], out, plot)
    out["seconds"] = time.perf_counter() - t_start
    return out


def _plot(score: FloatArray, dep: FloatArray, top: list[int], doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ax.scatter(score, dep, s=22, color="tab:blue", label="candidate twin")
    ax.scatter(score[top], dep[top], s=60, facecolors="none", edgecolors="tab:red", label="best 5 % by DT-BSM")
    ax.axhline(doc["real_optimum_return"], color="grey", ls="--", lw=1, label="policy from the real MDP")
    ax.axhline(doc["planned_config_return"], color="grey", ls=":", lw=1, label="planned configuration kept")
    ax.set_xlabel("DT-BSM (mean of the diagonal under the real state frequencies)")
    ax.set_ylabel("deployed discounted return (real network)")
    sp = doc["spearman"]
    ax.set_title(f"{len(score)} candidate twins, Spearman {sp:.2f}" if sp is not None else "candidate twins")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def bench_prefilter_command(
    candidates: Annotated[int, typer.Option(min=3, help="candidate twins")] = 40,
    seed: Annotated[int, typer.Option(help="hidden truth, candidates and every random draw")] = 0,
    samples: Annotated[int, typer.Option(min=100, help="sampled transitions per network (real, each twin)")] = 30_000,
    agents: Annotated[int, typer.Option(min=1, help="Q-learning agents per twin (mean deployed return)")] = 3,
    quick: Annotated[bool, typer.Option("--quick", help="<= 5 twins, 5,000 samples, 1 agent: smoke run")] = False,
    plot: Annotated[Path | None, typer.Option(help="write DT-BSM against deployed return as a PNG")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Rank candidate twins by DT-BSM, train a policy in each, deploy it on the emulated network."""
    if quick:
        candidates, samples, agents = min(candidates, 5), min(samples, 5000), 1
    say = None if as_json else (lambda m: typer.echo(m, err=True))
    doc = run_prefilter(candidates, seed, samples, agents, plot, progress=say)
    if as_json:
        typer.echo(json.dumps(doc))
    else:
        keys = ("spearman", "spearman_dtbsm_sup", "spearman_in_twin_return", "top5_return_fraction",
                "top5_cost_fraction", "top10_return_fraction", "top10_cost_fraction", "best_deployed_return",
                "real_optimum_return", "planned_config_return", "seconds")
        for key in keys:
            typer.echo(f"{key}: {doc[key]}")
