"""``twin bench sim2real``: the four Sim2Real models on the same data, against the emulator's truth.

Data (``replay.sim2real_data``): the twin's broad data from the public model of the three shipped
scenarios (``twin_samples``), and "real" data from the emulated networks collected hourly with
small CM changes only (a narrow band), the first ``train_days`` for training and the following
``test_days`` held out. Every model sees the same training rows, the same held-out periods, the
same network shape, input scaling, loss, optimiser and early stopping (``twin.sim2real.train``).

Figures:

* ``mape``: mean absolute percentage error on the held-out real periods (in band), the mean of
  ``DRB.UEThpDl`` and ``RRU.PrbTotDl``; the denominator is floored (``MAPE_FLOOR``: 1,000 kbit/s
  and 1 %) so that an idle night cell does not divide by ~0; labels are the measured (noisy) PM,
  as a field study has them;
* ``mape_out_of_band``: the same on held-out periods replayed on the hidden truth with
  configurations outside the band (each cell's tilt, power and CIO drawn over the twin's ranges;
  only cells whose own CM is outside the band count), with the same measurement noise;
* ``mape_10pct`` / ``learning_curve``: trained on 1 %, 10 % and 100 % of the real training rows
  (a random subset, the same for every model);
* ``kendall_tau``: for ``rank_cells`` held-out (period, cell) pairs, candidates of the cell's
  tilt x power grid (``RANK_TILTS_DEG`` x ``RANK_POWERS_DBM``, the other cells as they were) ranked
  by the predicted ``DRB.UEThpDl`` of the cell against the noiseless truth (Kendall tau-b, mean);
* ``similarity``: how alike the twin and the real data sets are: 2 x the balanced error of a
  classifier told to separate twin rows from real rows (features and log KPIs; a small MLP, half
  the rows to train, half to test): 1 = indistinguishable, 0 = always told apart; ``similarity_in_band``
  the same with the twin rows restricted to the real band;
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

from replay.emulator import NetworkEmulator
from replay.sim2real_data import Band, RealData, in_band, real_samples, truth_samples, twin_models
from twin.sim2real import FEATURES, TARGETS, Ranges, Samples, twin_samples
from twin.sim2real.features import to_target

if TYPE_CHECKING:  # torch loads when the benchmark runs, not with the CLI
    from twin.sim2real.network import Sim2RealNet
    from twin.sim2real.train import TrainConfig

__all__ = ["MAPE_FLOOR", "bench_sim2real_command", "mape", "run_sim2real", "similarity"]

SCENARIOS = ("urban-hotspots", "suburban-quiet", "fault-midrun")
START = datetime(2024, 3, 1, tzinfo=UTC)
GP = 3600
MAPE_FLOOR = (1000.0, 1.0)
"""Denominator floors of the MAPE per target: DRB.UEThpDl kbit/s, RRU.PrbTotDl %."""
RANK_TILTS_DEG = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0)
RANK_POWERS_DBM = (41.0, 44.0, 47.0)
FloatArray = npt.NDArray[np.float64]


def mape(pred: FloatArray, truth: FloatArray) -> list[float]:
    """Per target, the mean of |pred - truth| / max(truth, floor), in percent.

    >>> mape(np.array([[900.0, 0.5], [2200.0, 50.0]]), np.array([[1000.0, 0.0], [2000.0, 40.0]]))
    [10.0, 37.5]
    """
    floor = np.array(MAPE_FLOOR)
    err = np.abs(pred - truth) / np.maximum(np.abs(truth), floor)
    return [round(float(100.0 * v), 3) for v in err.mean(axis=0)]


def similarity(a: Samples, b: Samples, seed: int = 0, n: int = 4000) -> float:
    """2 x the balanced test error of a small MLP separating rows of ``a`` from rows of ``b``
    (scaled features and log KPIs; ``n`` rows of each at most, half to train): 1 when the two
    sets cannot be told apart, 0 when they always can."""
    import torch
    from torch import nn

    from twin.sim2real.network import scale_inputs

    rng = np.random.default_rng([seed, 0x5111])
    m = min(n, len(a), len(b))
    if m < 4:
        raise ValueError("similarity needs at least 4 rows in each set")

    def rows(s: Samples) -> FloatArray:
        pick = rng.choice(len(s), size=m, replace=False)
        return np.hstack([scale_inputs(s.x[pick]), to_target(s.y[pick]) / 5.0])

    x = np.vstack([rows(a), rows(b)]).astype(np.float32)
    y = np.concatenate([np.zeros(m), np.ones(m)]).astype(np.float32)
    order = rng.permutation(2 * m)
    train, test = order[: m], order[m:]
    torch.manual_seed(seed)
    clf = nn.Sequential(nn.Linear(x.shape[1], 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 1))
    opt = torch.optim.Adam(clf.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(300):
        for i in range(0, len(train), 256):
            idx = torch.from_numpy(train[i : i + 256])
            opt.zero_grad()
            loss_fn(clf(xt[idx])[:, 0], yt[idx]).backward()
            opt.step()
    with torch.no_grad():
        p = (clf(xt[torch.from_numpy(test)])[:, 0] > 0).numpy()
    t = y[test] > 0.5
    err = 0.5 * (float(np.mean(p[~t])) + float(np.mean(~p[t])))
    return round(2.0 * min(err, 0.5), 3)


def _predict(net: Sim2RealNet, envs: tuple[str, ...], s: Samples) -> FloatArray:
    from twin.sim2real.model import Sim2RealModel

    model = Sim2RealModel(net, envs, {f: (-np.inf, np.inf) for f in FEATURES}, "eval")
    return model.predict(s.x, [s.envs[e] for e in s.env]).values


def _kendall(truth: list[float], pred: list[float]) -> float:
    from scipy.stats import kendalltau

    tau = kendalltau(truth, pred).statistic
    return float(tau) if np.isfinite(tau) else 0.0


def run_sim2real(twin_n: int = 100_000, train_days: int = 5, test_days: int = 2, seed: int = 0,
                 rank_cells: int = 24, oob_configs: int = 1, config: TrainConfig | None = None,
                 save: Path | None = None, scenarios: tuple[str, ...] = SCENARIOS) -> dict[str, Any]:
    """The benchmark's JSON document (see the module docstring)."""
    from twin.sim2real.model import Sim2RealModel, merged_ranges
    from twin.sim2real.train import METHODS, TrainConfig, adapt, pretrain

    cfg = config or TrainConfig()
    band = Band()
    t0 = time.perf_counter()
    emus = [NetworkEmulator(s, seed=seed, start=START, granularity_s=GP, mr_per_cell=0) for s in scenarios]
    twin = twin_samples(twin_models(emus), twin_n, seed=seed, ranges=Ranges())
    twin_data_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    reals: list[RealData] = [real_samples(e, 24 * (train_days + test_days), band, seed=seed) for e in emus]
    real_data_s = time.perf_counter() - t0

    def split(d: RealData, test: bool) -> Samples:
        rows = [i for p in d.periods if (p.index >= 24 * train_days) == test for i in range(*p.rows)]
        return d.samples.take(np.array(rows, dtype=np.int64))

    train = Samples.concat([split(d, False) for d in reals])
    test = Samples.concat([split(d, True) for d in reals])
    rng = np.random.default_rng([seed, 0x00B])
    oob_parts = []
    for emu, d in zip(emus, reals, strict=True):
        for p in d.periods:
            if p.index < 24 * train_days:
                continue
            for _ in range(oob_configs):
                cm = {k: {"digitalTilt": round(10 * rng.uniform(0.0, 14.0)),
                          "configuredMaxTxPower": round(10 ** (rng.uniform(40.0, 49.0) / 10.0)),
                          "cellIndividualOffset": int(rng.integers(-6, 7))} for k in emu.cells}
                s, _ = truth_samples(emu, p, cm, rng)
                oob_parts.append(s.take(~in_band(s.x, band)))
    oob = Samples.concat(oob_parts)

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
    tenth, _ = table(test, 0.1)

    # ranking of candidate changes for a cell, on the noiseless truth
    taus: dict[str, list[float]] = {m: [] for m in METHODS}
    pairs = []
    for emu, d in zip(emus, reals, strict=True):
        held = [p for p in d.periods if p.index >= 24 * train_days]
        for _ in range(max(1, rank_cells // len(emus))):
            pairs.append((emu, held[int(rng.integers(0, len(held)))], int(rng.integers(0, len(emu.cells)))))
    for emu, period, cell in pairs:
        truth, rows = [], []
        key = emu.cells[cell]
        for tilt in RANK_TILTS_DEG:
            for power in RANK_POWERS_DBM:
                attrs = {"digitalTilt": round(10 * tilt), "configuredMaxTxPower": round(10 ** (power / 10))}
                s, t = truth_samples(emu, period, {key: attrs}, rng)
                truth.append(float(t[cell, TARGETS.index("DRB.UEThpDl")]))
                rows.append(s.x[cell])
        cand_s = Samples(np.array(rows), np.ones((len(rows), len(TARGETS))), np.zeros(len(rows), dtype=np.int64),
                         (f"{emu.cluster_id}/{emu.cells[cell]}",))
        for m in METHODS:
            pred = _predict(*nets[1.0][m], cand_s)[:, TARGETS.index("DRB.UEThpDl")]
            taus[m].append(_kendall(truth, pred.tolist()))

    twin_in_band = twin.take(in_band(twin.x, band))
    doc: dict[str, Any] = {
        "mape": in_band_mape,
        "mape_out_of_band": oob_mape,
        "mape_10pct": tenth,
        "kendall_tau": {m: round(float(np.mean(v)), 3) for m, v in taus.items()},
        "similarity": similarity(twin, train, seed),
        "similarity_in_band": similarity(twin_in_band, train, seed) if len(twin_in_band) >= 4 else None,
        "pretrain_s": round(pretrain_s, 2),
        "twin_data_s": round(twin_data_s, 2),
        "real_data_s": round(real_data_s, 2),
        "adapt_s": fit_s,
        "learning_curve": curve,
        "mape_by_kpi": {"in_band": in_band_kpi, "out_of_band": oob_kpi, "kpis": list(TARGETS)},
        "samples": {"twin": len(twin), "real_train": len(train), "real_test": len(test), "out_of_band": len(oob),
                    "rank_pairs": len(pairs), "rank_candidates": len(RANK_TILTS_DEG) * len(RANK_POWERS_DBM)},
        "pretrain": {"steps": pre_report.steps, "val_loss": round(pre_report.val_loss, 5)},
        "band": {"tilt_deg": list(band.tilt_deg), "power_dbm": list(band.power_dbm), "cio_db": list(band.cio_db)},
        "mape_floor": {"DRB.UEThpDl_kbps": MAPE_FLOOR[0], "RRU.PrbTotDl_pct": MAPE_FLOOR[1]},
        "scenarios": list(scenarios), "seed": seed, "train_days": train_days, "test_days": test_days,
    }
    if save is not None:
        net, envs = nets[1.0]["transfer"]
        Sim2RealModel(net, envs, merged_ranges(twin.ranges(), train.ranges()), "transfer", meta={
            "pretrainedOn": {"samples": len(twin), "envs": len(twin.envs), "scenarios": list(scenarios),
                             "twinModel": "twin.sim public model of the emulated scenarios"},
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
    save: Annotated[Path | None, typer.Option(help="save the transfer model into this directory")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Real-only, twin-only, naive fine-tuning and transfer on the emulated network (docs/sim2real.md)."""
    from twin.sim2real.train import METHODS, TrainConfig

    doc = run_sim2real(twin_samples_n, train_days, test_days, seed, rank_cells, config=TrainConfig(epochs=epochs),
                       save=save)
    if as_json:
        typer.echo(json.dumps(doc))
        return
    typer.echo(f"{'model':<10} {'MAPE %':>8} {'out of band %':>14} {'10 % data':>10} {'Kendall tau':>12}")
    for m in METHODS:
        typer.echo(f"{m:<10} {doc['mape'][m]:>8} {doc['mape_out_of_band'][m]:>14} {doc['mape_10pct'][m]:>10} "
                   f"{doc['kendall_tau'][m]:>12}")
    typer.echo(f"similarity {doc['similarity']} (in band {doc['similarity_in_band']}), pretrain {doc['pretrain_s']} s")
