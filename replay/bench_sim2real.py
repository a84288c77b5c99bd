"""``twin bench sim2real``: the four Sim2Real models on the same data, against the emulator's truth.

Data (``replay.sim2real_data``): the twin's broad data from the public model of the three shipped
scenarios (``twin_samples``), and "real" data from the emulated networks collected hourly with
small CM changes only (a narrow band), the first ``train_days`` for training and the following
``test_days`` held out. Every model sees the same training rows, the same held-out periods, the
same network shape, input scaling, loss, optimiser and early stopping (``twin.sim2real.train``).
With ``per_place_reports`` > 0 the real network also sends that many located UE reports per cell and
hour, and the twin's model of each scenario is first calibrated per place from the training days'
reports (``replay.bench_mr_ceiling.offsets_from_reports``, ``ClusterModel.extra_loss_db``); with
``TrainConfig.response_embedding`` > 0 every network's response part has a per-cell embedding
(``Sim2RealNet``). Both are off by default (``docs/sim2real.md``, "What located UE reports could
teach the twin").

Figures:

* ``mape``: mean absolute percentage error on the held-out real periods (in band), the mean of
  ``DRB.UEThpDl`` and ``RRU.PrbTotDl``; the denominator is floored (``MAPE_FLOOR``: 1,000 kbit/s
  and 1 %) so that an idle night cell does not divide by ~0; labels are the measured (noisy) PM,
  as a field study has them;
* ``mape_out_of_band``: the same on the held-out periods replayed on the hidden truth with a
  candidate configuration outside the band: each cell moved with probability ``OOB_SHARE`` (30 %)
  to a setting over the twin's ranges with its tilt, power or CIO outside the band, the others as
  they ran; only the moved cells count, labelled with the same measurement noise. The state (load,
  each cell's connected UEs) is the period as it ran: what the model is given for a what-if.
  ``mape_out_of_band_all_cells``: the same with every cell moved at once;
* ``mape_10pct`` / ``learning_curve``: trained on 1 %, 10 % and 100 % of the real training rows
  (a random subset, the same for every model);
* ``kendall_tau``: for ``rank_cells`` held-out (period, cell) pairs, the candidates of the cell's
  tilt x power grid (``RANK_TILTS_DEG`` x ``RANK_POWERS_DBM``, the other cells as they ran) ranked
  by the predicted ``DRB.UEThpDl`` of the cell against the noiseless truth (Kendall tau-b, mean over
  pairs); ``kendall_tau_by_kpi`` the same for each KPI, with ``twin_simulator``: the twin's own
  simulation model (traffic scaled to the reported load) ranking the same candidates, the teacher
  a twin-pretrained model inherits its response from;
* ``kendall_tau_ceiling``: how far any model can get that knows the network's public description
  and how its hidden truth is drawn, but not the draw itself (each cell's UE positions, shadowing,
  gain and azimuth errors): the same candidates evaluated on ``ceiling_realisations`` other draws of
  the same scenario (emulators with other seeds: same sites, CM, hour and events), ranked against
  this network's truth, one draw (``other_realisation``) and their mean (``expected_response``, the
  best estimate such a model could give); and how far a response *smooth* in tilt and power can get
  (``smooth_truth``): per pair, the least-squares surface of :func:`smooth_surface` fitted to the
  truth's own ``log`` throughput of the candidates, ranked against the truth (an oracle that knows
  the truth but only its smooth trend); ``smooth_teacher`` the same surface fitted to the twin's
  simulator instead (what a network that learnt its teacher's trend exactly would rank at);
* ``similarity``: how alike the twin's and the real data's KPIs are: per KPI the overlap
  coefficient of the histograms of ``log1p`` of the values (the share both sets put in the same
  bins), averaged over the two KPIs; ``similarity_in_band`` the same with the twin rows restricted
  to the real band; ``similarity_joint`` a stricter figure over features and KPIs together, by
  nearest neighbours (for each real row, is its nearest other row a twin row? that share over its
  value for one distribution, 1/2): near 0 when the real rows crowd a corner of the twin's space;
* ``pretrain_s``: the pretraining's wall time on ``twin_samples`` rows (data generation apart,
  ``twin_data_s``).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import numpy.typing as npt
import typer

from replay.bench_options import SHIPPED_SCENARIOS, chosen_scenarios
from replay.emulator import NetworkEmulator
from replay.sim2real_data import (
    Band,
    PeriodReports,
    RealData,
    in_band,
    out_of_band,
    real_samples,
    truth_samples,
    truth_state,
    twin_models,
)
from twin.config import PredictSettings
from twin.sim2real import FEATURES, TARGETS, ClusterModel, Ranges, Samples, twin_samples
from twin.sim2real.features import to_target
from twin.sim2real.metrics import MAPE_FLOOR, mape

if TYPE_CHECKING:  # torch loads when the benchmark runs, not with the CLI
    from twin.sim2real.network import Sim2RealNet
    from twin.sim2real.train import TrainConfig

__all__ = ["MAPE_FLOOR", "bench_sim2real_command", "joint_similarity", "mape", "run_sim2real", "similarity",
           "smooth_surface"]

SCENARIOS = SHIPPED_SCENARIOS
START = datetime(2024, 3, 1, tzinfo=UTC)
GP = 3600
OOB_SHARE = 0.3
"""Out of band: the share of cells a candidate configuration moves (each out of the band)."""
RANK_TILTS_DEG = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0)
RANK_POWERS_DBM = (41.0, 44.0, 47.0)
FloatArray = npt.NDArray[np.float64]


def similarity(a: Samples, b: Samples, bins: int = 50) -> float:
    """How alike the KPIs of two data sets are: per target, the overlap coefficient of the
    histograms of ``log1p`` of the values (``bins`` bins over the pooled range; the sum over bins
    of the smaller of the two shares), averaged over the targets: 1 = the same distribution of
    KPI values, 0 = no value of one set falls where the other has any.

    >>> import numpy as np
    >>> from twin.sim2real import FEATURES
    >>> x = np.zeros((4, len(FEATURES))); env = np.zeros(4, dtype=np.int64)
    >>> a = Samples(x, np.array([[1e3, 10.0], [2e3, 20.0], [4e3, 40.0], [8e3, 80.0]]), env, ("c/a",))
    >>> similarity(a, a), similarity(a, Samples(x, a.y * 50.0, env, ("c/a",)))
    (1.0, 0.0)
    """
    out = []
    for j in range(len(TARGETS)):
        u, v = to_target(a.y)[:, j], to_target(b.y)[:, j]
        edges = np.linspace(min(u.min(), v.min()), max(u.max(), v.max()) + 1e-9, bins + 1)
        p = np.histogram(u, edges)[0] / len(u)
        q = np.histogram(v, edges)[0] / len(v)
        out.append(float(np.minimum(p, q).sum()))
    return round(float(np.mean(out)), 3)


def joint_similarity(a: Samples, b: Samples, seed: int = 0, n: int = 5000) -> float:
    """How alike two data sets are, by nearest neighbours: ``n`` rows of each at most (scaled
    features and log KPIs, each column over its pooled spread); for every row of ``b``, is its
    nearest other row in the pool a row of ``a``? The share of such rows over its value for two
    sets drawn from one distribution (1/2), capped at 1: 1 = ``b``'s rows sit among ``a``'s as if
    drawn from the same distribution, 0 = every row of ``b`` is nearest to another row of ``b``."""
    from scipy.spatial import cKDTree

    from twin.sim2real.network import scale_inputs

    rng = np.random.default_rng([seed, 0x5111])
    m = min(n, len(a), len(b))
    if m < 4:
        raise ValueError("similarity needs at least 4 rows in each set")

    def rows(s: Samples) -> FloatArray:
        pick = rng.choice(len(s), size=m, replace=False)
        return np.hstack([scale_inputs(s.x[pick]).astype(np.float64), to_target(s.y[pick])])

    pool = np.vstack([rows(a), rows(b)])
    spread = pool.std(axis=0)
    pool = pool / np.where(spread > 0, spread, 1.0)
    _, idx = cKDTree(pool).query(pool[m:], k=2)
    share = float(np.mean(idx[:, 1] < m))
    return round(min(2.0 * share, 1.0), 3)


def _simulated(sim: Any, period: Any, key: str, attrs: dict[str, Any]) -> FloatArray:
    """The twin simulator's KPIs [n_cells, TARGETS] of ``period`` with ``attrs`` on cell ``key``,
    its traffic scaled to the connected UEs the period reported (as the runtime predicts)."""
    from twin.sim.kpis import CONN

    cm = {s.cell_key: {"digitalTilt": round(10 * s.elec_tilt_deg),
                       "configuredMaxTxPower": round(10 ** (s.tx_power_dbm / 10)),
                       "cellIndividualOffset": round(s.cio_db)} for s in period.public}
    cm[key] = {**cm[key], **attrs}
    base = sim.evaluate(cm=cm, hour=period.hour)
    total = float(base.kpi.values[CONN].sum())
    result = sim.evaluate(cm=cm, hour=period.hour, ue_scale=period.connected / total if total > 0 else 1.0)
    return np.stack([result.kpi.values[t] for t in TARGETS], axis=1)


def _predict(net: Sim2RealNet, envs: tuple[str, ...], s: Samples) -> FloatArray:
    from twin.sim2real.model import Sim2RealModel

    model = Sim2RealModel(net, envs, {f: (-np.inf, np.inf) for f in FEATURES}, "eval")
    return model.predict(s.x, [s.envs[e] for e in s.env]).values


def _truth_kpi(emu: NetworkEmulator, period: Any, key: str, attrs: dict[str, Any], cell: int) -> float:
    """``emu``'s noiseless ``DRB.UEThpDl`` of ``cell`` in ``period`` with ``attrs`` on cell ``key``."""
    _, state = truth_state(emu, period, {key: attrs})
    return float(state.result.kpi.values[TARGETS[0]][cell])


def smooth_surface(values: npt.ArrayLike) -> FloatArray:
    """The least-squares surface, a quadratic in tilt times a quadratic in power (9 terms), through
    ``values`` [len(RANK_TILTS_DEG) * len(RANK_POWERS_DBM)] of the candidate grid (tilt-major, as
    the ranking lists them): the smooth trend of a cell's response, without what one UE drop adds.

    >>> import numpy as np
    >>> t, p = np.meshgrid(RANK_TILTS_DEG, RANK_POWERS_DBM, indexing="ij")
    >>> bool(np.allclose(smooth_surface((1 + t * p + p**2).ravel()), (1 + t * p + p**2).ravel()))
    True
    >>> smooth_surface([1.0, 2.0])
    Traceback (most recent call last):
    ...
    ValueError: smooth_surface needs 21 values (the candidate grid), got 2
    """
    y = np.asarray(values, dtype=np.float64).ravel()
    t, p = np.meshgrid(RANK_TILTS_DEG, RANK_POWERS_DBM, indexing="ij")
    if len(y) != t.size:
        raise ValueError(f"smooth_surface needs {t.size} values (the candidate grid), got {len(y)}")
    u, v = (t.ravel() - 6.0) / 6.0, (p.ravel() - 44.0) / 3.0
    design = np.stack([u**a * v**b for a in range(3) for b in range(3)], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return np.asarray(design @ coef, dtype=np.float64)


def _kendall(truth: list[float], pred: list[float]) -> float:
    from scipy.stats import kendalltau

    tau = kendalltau(truth, pred).statistic
    return float(tau) if np.isfinite(tau) else 0.0


def run_sim2real(twin_n: int = 100_000, train_days: int = 5, test_days: int = 2, seed: int = 0,
                 rank_cells: int = 24, oob_configs: int = 1, config: TrainConfig | None = None,
                 save: Path | None = None, scenarios: tuple[str, ...] = SCENARIOS,
                 ceiling_realisations: int = 4, twin_realisations: int = 1,
                 per_place_reports: int = 0) -> dict[str, Any]:
    """The benchmark's JSON document (see the module docstring). ``per_place_reports`` > 0: the
    real network also sends that many located UE reports per cell and hour, and the twin's model is
    calibrated per place from those of the training days (``replay.bench_mr_ceiling.
    offsets_from_reports``) before it makes the twin data and ranks (one realisation only)."""
    from twin.sim2real.model import Sim2RealModel, merged_ranges
    from twin.sim2real.train import METHODS, TrainConfig, adapt, pretrain

    cfg = config or TrainConfig()
    band = Band()
    t0 = time.perf_counter()
    if per_place_reports and twin_realisations != 1:
        raise ValueError(f"per_place_reports={per_place_reports} needs twin_realisations=1 (a place is a UE point "
                         f"of the twin's one drop), got {twin_realisations}")
    emus = [NetworkEmulator(s, seed=seed, start=START, granularity_s=GP, mr_per_cell=per_place_reports)
            for s in scenarios]
    models = twin_models(emus, twin_realisations)
    calibration: dict[str, Any] = {}
    if not per_place_reports:
        twin = twin_samples(models, twin_n, seed=seed, ranges=Ranges())
        twin_data_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    collected: list[list[PeriodReports]] = [[] for _ in emus]
    reals: list[RealData] = [real_samples(e, 24 * (train_days + test_days), band, seed=seed, reports=c)
                             for e, c in zip(emus, collected, strict=True)]
    real_data_s = time.perf_counter() - t0
    if per_place_reports:
        from replay.bench_mr_ceiling import offsets_from_reports

        t0 = time.perf_counter()
        for i, (emu, c) in enumerate(zip(emus, collected, strict=True)):
            topo = emu.scenario.topology
            offsets, heard = offsets_from_reports(emu.physics, topo.lat0, topo.lon0, emu.cells,
                                                  [p for p in c if p.index < 24 * train_days])
            base = models[i]
            models[i] = ClusterModel(base.cluster, base.traffic, base.seed, base.config, extra_loss_db=offsets)
            calibration[emu.cluster_id] = {"reports": sum(len(p.reports) for p in c if p.index < 24 * train_days),
                                           "places_heard": round(float(heard.any(0).mean()), 3),
                                           "pairs_heard": int(heard.sum())}
        twin = twin_samples(models, twin_n, seed=seed, ranges=Ranges())
        twin_data_s = time.perf_counter() - t0

    def split(d: RealData, test: bool) -> Samples:
        rows = [i for p in d.periods if (p.index >= 24 * train_days) == test for i in range(*p.rows)]
        return d.samples.take(np.array(rows, dtype=np.int64))

    train = Samples.concat([split(d, False) for d in reals])
    test = Samples.concat([split(d, True) for d in reals])
    rng = np.random.default_rng([seed, 0x00B])
    oob_parts: dict[str, list[Samples]] = {"some": [], "all": []}
    for emu, d in zip(emus, reals, strict=True):
        for p in d.periods[24 * train_days:]:
            for share, part in ((OOB_SHARE, "some"), (1.0, "all")):
                for _ in range(oob_configs):
                    moved = {k: out_of_band(band, rng) for k in emu.cells if rng.random() < share}
                    if moved:
                        s, _ = truth_samples(emu, p, moved, rng)
                        oob_parts[part].append(s.take(np.array([emu.cells.index(k) for k in moved])))
    oob = Samples.concat(oob_parts["some"])
    oob_all = Samples.concat(oob_parts["all"])

    t0 = time.perf_counter()
    pretrained, pre_report = pretrain(twin, cfg)
    pretrain_s = time.perf_counter() - t0

    fractions = (0.01, 0.1, 1.0)
    order = np.random.default_rng([seed, 0xF7AC]).permutation(len(train))
    nets: dict[float, dict[str, tuple[Sim2RealNet, tuple[str, ...]]]] = {}
    curve: dict[str, dict[str, float]] = {}
    fit_s: dict[str, float] = {}
    for frac in fractions:
        sub = train.take(np.sort(order[: max(8, round(frac * len(train)))]))
        nets[frac] = {}
        for method in METHODS:
            t1 = time.perf_counter()
            net, _ = adapt(pretrained, sub, method, twin.envs, cfg)
            if frac == 1.0:
                fit_s[method] = round(time.perf_counter() - t1, 2)
            nets[frac][method] = (net, sub.envs)
        curve[f"{round(100 * frac)}"] = {m: float(np.mean(mape(_predict(*nets[frac][m], test), test.y)))
                                         for m in METHODS}

    def table(s: Samples, frac: float = 1.0) -> tuple[dict[str, float], dict[str, list[float]]]:
        by_kpi = {m: mape(_predict(*nets[frac][m], s), s.y) for m in METHODS}
        return {m: round(float(np.mean(v)), 3) for m, v in by_kpi.items()}, by_kpi

    in_band_mape, in_band_kpi = table(test)
    oob_mape, oob_kpi = table(oob)
    oob_all_mape, _ = table(oob_all)
    tenth, _ = table(test, 0.1)

    # ranking of candidate changes for a cell, on the noiseless truth
    taus: dict[str, dict[str, list[float]]] = {kpi: {m: [] for m in (*METHODS, "twin_simulator")}
                                               for kpi in TARGETS}
    pairs = []
    for emu, d in zip(emus, reals, strict=True):
        held = d.periods[24 * train_days:]
        for _ in range(max(1, rank_cells // len(emus))):
            pairs.append((emu, held[int(rng.integers(0, len(held)))], int(rng.integers(0, len(emu.cells)))))
    simulators = {emu.cluster_id: m.simulator
                  for emu, m in zip(emus, models if per_place_reports else twin_models(emus), strict=True)}
    others = {emu.cluster_id: [NetworkEmulator(emu.scenario.name, seed=seed + 1 + i, start=START, granularity_s=GP,
                                               mr_per_cell=0) for i in range(ceiling_realisations)]
              for emu in emus}
    ceiling: dict[str, list[float]] = {"other_realisation": [], "expected_response": [], "smooth_truth": [],
                                       "smooth_teacher": []}
    for emu, period, cell in pairs:
        truth, rows, simulated, other = [], [], [], []
        key = emu.cells[cell]
        for tilt in RANK_TILTS_DEG:
            for power in RANK_POWERS_DBM:
                attrs = {"digitalTilt": round(10 * tilt), "configuredMaxTxPower": round(10 ** (power / 10))}
                s, t = truth_samples(emu, period, {key: attrs}, rng)
                truth.append(t[cell])
                rows.append(s.x[cell])
                simulated.append(_simulated(simulators[emu.cluster_id], period, key, attrs)[cell])
                other.append([_truth_kpi(o, period, key, attrs, cell) for o in others[emu.cluster_id]])
        own = [float(t[0]) for t in truth]
        if ceiling_realisations:
            ceiling["other_realisation"].append(float(np.mean([_kendall(own, [o[i] for o in other])
                                                               for i in range(ceiling_realisations)])))
            ceiling["expected_response"].append(_kendall(own, [float(np.mean(o)) for o in other]))
        ceiling["smooth_truth"].append(_kendall(own, smooth_surface(np.log(np.maximum(own, 1.0))).tolist()))
        ceiling["smooth_teacher"].append(_kendall(own, smooth_surface(
            np.log(np.maximum([float(sim[0]) for sim in simulated], 1.0))).tolist()))
        cand_s = Samples(np.array(rows), np.ones((len(rows), len(TARGETS))), np.zeros(len(rows), dtype=np.int64),
                         (f"{emu.cluster_id}/{key}",))
        preds = {m: _predict(*nets[1.0][m], cand_s) for m in METHODS}
        preds["twin_simulator"] = np.array(simulated)
        for j, kpi in enumerate(TARGETS):
            for m, pred in preds.items():
                taus[kpi][m].append(_kendall([float(t[j]) for t in truth], pred[:, j].tolist()))

    twin_in_band = twin.take(in_band(twin.x, band))
    doc: dict[str, Any] = {
        "benchmark": "sim2real",
        "per_place_reports": per_place_reports,
        "response_embedding": cfg.response_embedding,
        "per_place_calibration": calibration or None,
        "mape": in_band_mape,
        "mape_out_of_band": oob_mape,
        "mape_10pct": tenth,
        "kendall_tau": {m: round(float(np.mean(v)), 3) for m, v in taus[TARGETS[0]].items() if m in METHODS},
        "kendall_tau_by_kpi": {kpi: {m: round(float(np.mean(v)), 3) for m, v in per.items()}
                               for kpi, per in taus.items()},
        "kendall_tau_ceiling": {**{k: round(float(np.mean(v)), 3) if v else None for k, v in ceiling.items()},
                                "realisations": ceiling_realisations, "kpi": TARGETS[0]},
        "mape_out_of_band_all_cells": oob_all_mape,
        "similarity": similarity(twin, train),
        "similarity_in_band": similarity(twin_in_band, train) if len(twin_in_band) >= 4 else None,
        "similarity_joint": joint_similarity(twin, train, seed),
        "pretrain_s": round(pretrain_s, 2),
        "twin_data_s": round(twin_data_s, 2),
        "real_data_s": round(real_data_s, 2),
        "adapt_s": fit_s,
        "learning_curve": curve,
        "mape_by_kpi": {"in_band": in_band_kpi, "out_of_band": oob_kpi, "kpis": list(TARGETS)},
        "samples": {"twin": len(twin), "real_train": len(train), "real_test": len(test), "out_of_band": len(oob),
                    "out_of_band_all_cells": len(oob_all),
                    "rank_pairs": len(pairs), "rank_candidates": len(RANK_TILTS_DEG) * len(RANK_POWERS_DBM)},
        "pretrain": {"steps": pre_report.steps, "val_loss": round(pre_report.val_loss, 5)},
        "band": {"tilt_deg": list(band.tilt_deg), "power_dbm": list(band.power_dbm), "cio_db": list(band.cio_db)},
        "mape_floor": {"DRB.UEThpDl_kbps": MAPE_FLOOR[0], "RRU.PrbTotDl_pct": MAPE_FLOOR[1]},
        "scenarios": list(scenarios), "seed": seed, "train_days": train_days, "test_days": test_days,
        "twin_realisations": twin_realisations,
    }
    if save is not None:
        net, envs = nets[1.0]["transfer"]
        Sim2RealModel(net, envs, merged_ranges(twin.ranges(), train.ranges()), "transfer", meta={
            "pretrainedOn": {"samples": len(twin), "envs": len(twin.envs), "scenarios": list(scenarios),
                             "twinModel": {"version": PredictSettings().model_version,
                                           "what": "twin.sim, the public model of the emulated scenarios"}},
            "adaptedOn": {"samples": len(train), "band": doc["band"]},
            "metrics": {k: doc[k] for k in ("mape", "mape_out_of_band", "kendall_tau", "similarity")},
        }).save(save)
        doc["saved"] = str(save)
    return doc


def bench_sim2real_command(
    twin_samples_n: Annotated[int, typer.Option("--twin-samples", min=100, help="twin cell-periods to pretrain on")]
    = 100_000,
    train_days: Annotated[int, typer.Option(min=1, help="days of hourly real data to adapt on")] = 5,
    test_days: Annotated[int, typer.Option(min=1, help="held-out days of real data")] = 2,
    rank_cells: Annotated[int, typer.Option(min=3, help="held-out (period, cell) pairs whose candidates are ranked")]
    = 24,
    seed: Annotated[int, typer.Option(help="hidden truth, data draws and training")] = 0,
    epochs: Annotated[int, typer.Option(min=1, help="at most this many passes over the data per training")] = 40,
    min_steps: Annotated[int, typer.Option(min=0, help="at least this many optimiser steps per training")] = 1500,
    scenario: Annotated[list[str] | None, typer.Option(help="shipped scenario (repeat); default: all three")] = None,
    twin_realisations: Annotated[int, typer.Option(min=1, help="draws of the twin's public model per scenario "
                                                   "the twin data is taken from")] = 1,
    ceiling_realisations: Annotated[int, typer.Option(min=0, help="other draws of the hidden truth for the ranking "
                                                      "ceiling (0: none)")] = 4,
    per_place_reports: Annotated[int, typer.Option(min=0, help="located UE reports per cell and hour the real "
                                                   "network sends; > 0: the twin is calibrated per place from those "
                                                   "of the training days first (docs/sim2real.md)")] = 0,
    response_embedding: Annotated[int, typer.Option(min=0, help="per-cell embedding size in the response part "
                                                    "(0: one response for every cell)")] = 0,
    save: Annotated[Path | None, typer.Option(help="save the transfer model into this directory")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Real-only, twin-only, naive fine-tuning and transfer on the emulated network (docs/sim2real.md)."""
    from twin.sim2real.train import METHODS, TrainConfig

    chosen = chosen_scenarios(scenario)
    doc = run_sim2real(twin_samples_n, train_days, test_days, seed, rank_cells,
                       config=TrainConfig(epochs=epochs, min_steps=min_steps, response_embedding=response_embedding),
                       save=save, scenarios=chosen,
                       ceiling_realisations=ceiling_realisations, twin_realisations=twin_realisations,
                       per_place_reports=per_place_reports)
    if as_json:
        typer.echo(json.dumps(doc))
        return
    typer.echo(f"{'model':<10} {'MAPE %':>8} {'out of band %':>14} {'10 % data':>10} {'Kendall tau':>12}")
    for m in METHODS:
        typer.echo(f"{m:<10} {doc['mape'][m]:>8} {doc['mape_out_of_band'][m]:>14} {doc['mape_10pct'][m]:>10} "
                   f"{doc['kendall_tau'][m]:>12}")
    c = doc["kendall_tau_ceiling"]
    typer.echo(f"Kendall tau ceiling without the hidden draw: one other draw {c['other_realisation']}, "
               f"expected response {c['expected_response']}; a smooth response fitted to the truth "
               f"{c['smooth_truth']}, to the twin's simulator {c['smooth_teacher']}")
    typer.echo(f"similarity {doc['similarity']} (in band {doc['similarity_in_band']}), pretrain {doc['pretrain_s']} s")
