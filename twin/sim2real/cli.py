"""``twin sim2real fit``: make a Sim2Real model for the operator's own network from a worker's state.

The benchmark (``twin bench sim2real --save``) adapts on the emulated network; this command adapts
on the real history the runtime mirrored. It opens the worker's checkpoints read-only
(``Twin.from_state``), builds the real rows from every mirrored period
(``twin.sim2real.mirror_data``), pretrains on the twin's own simulation model of the same clusters
(``twin_samples``), adapts with ``--method`` and saves the model with what it was made from. The
held-out figure is measured first by a model adapted on the first 80 % of the periods in time and
scored on the last 20 %; the saved model is then adapted on every period.

``register(app)`` adds the ``sim2real`` group; ``twin.cli`` calls it at start-up. Torch is imported
only when the command runs.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

if TYPE_CHECKING:
    from twin.digital_twin import Twin
    from twin.sim2real.model import Sim2RealModel
    from twin.sim2real.network import Sim2RealNet
    from twin.sim2real.train import TrainConfig, TrainReport

__all__ = ["FIT_METHODS", "FitError", "fit_command", "fit_model", "register"]

FIT_METHODS: tuple[str, ...] = ("transfer", "finetune", "real_only")
MIN_SAMPLES = 50
HELD_OUT = 0.2

sim2real_app = typer.Typer(help="Sim2Real KPI models of the mirrored network (docs/sim2real.md).",
                           no_args_is_help=True)


class FitError(ValueError):
    """The state cannot make a model (no usable period, too few samples); the message says why."""


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).isoformat()


def fit_model(twin: Twin, state_dir: str, twin_samples_n: int, method: str, config: TrainConfig,
              seed: int = 0, min_samples: int = MIN_SAMPLES) -> tuple[Sim2RealModel, dict[str, Any]]:
    """The model ``method`` makes for ``twin``'s mirrored history, and the summary (also its
    ``meta``). Raises :class:`FitError` naming the problem when the mirror cannot make one."""
    from twin.sim2real.features import TARGETS
    from twin.sim2real.mirror_data import MAPE_FLOOR, cluster_models, mape, mirror_data, time_split
    from twin.sim2real.model import Sim2RealModel, merged_ranges
    from twin.sim2real.train import adapt, pretrain
    from twin.sim2real.twin_data import twin_samples

    if method not in FIT_METHODS:
        raise FitError(f"method={method!r} is not one of {', '.join(map(repr, FIT_METHODS))}")
    t0 = time.perf_counter()
    data = mirror_data(twin)
    real = data.samples
    skipped = {k: v for k, v in data.skipped.items() if v}
    if not len(real):
        raise FitError(f"the state in {state_dir} holds no usable period (clusters: {list(twin.clusters) or 'none'}; "
                       f"cell-periods skipped: {skipped or 'none reported'})")
    if len(real) < min_samples:
        raise FitError(f"the state in {state_dir} holds {len(real)} usable samples, fewer than {min_samples} "
                       f"(cell-periods skipped: {skipped or 'none'})")
    real_s = time.perf_counter() - t0

    pretrained: Sim2RealNet | None = None
    pre: TrainReport | None = None
    twin_envs: tuple[str, ...] = ()
    twin_ranges = real.ranges()
    twin_n, pre_s = 0, 0.0
    if method != "real_only":  # real-only never sees the twin: no twin data, ranges of the real rows
        t0 = time.perf_counter()
        twin_data = twin_samples(cluster_models(twin, data.clusters), twin_samples_n, seed=seed)
        twin_n, twin_envs, twin_ranges = len(twin_data), twin_data.envs, twin_data.ranges()
        pretrained, pre = pretrain(twin_data, config)
        pre_s = time.perf_counter() - t0

    train_rows, test_rows = time_split(data.period_end, HELD_OUT)
    held: dict[str, Any] = {"share": HELD_OUT, "samples": len(test_rows)}
    if len(test_rows) and len(train_rows):
        test = real.take(test_rows)
        envs = [test.envs[e] for e in test.env]
        net, _ = adapt(pretrained, real.take(train_rows), method, twin_envs, config)
        by_kpi = mape(Sim2RealModel(net, real.envs, real.ranges(), method).predict(test.x, envs).values, test.y)
        held.update({"from": _iso(int(data.period_end[test_rows].min())), "trainSamples": len(train_rows),
                     "mape": round(float(np.mean(by_kpi)), 3), "mapeByKpi": dict(zip(TARGETS, by_kpi, strict=True))})
        if pretrained is not None:
            base, _ = adapt(pretrained, real, "twin_only", twin_envs, config)
            twin_only = mape(Sim2RealModel(base, real.envs, real.ranges(), "twin_only").predict(test.x, envs).values,
                             test.y)
            held["twinOnlyMape"] = round(float(np.mean(twin_only)), 3)
    else:
        held["note"] = "a single period: nothing to hold out"

    t0 = time.perf_counter()
    net, report = adapt(pretrained, real, method, twin_envs, config)
    adapt_s = time.perf_counter() - t0
    settings = twin.settings
    ends = data.period_end
    summary: dict[str, Any] = {
        "stateDir": state_dir,
        "method": method,
        "clusters": list(data.clusters),
        "periods": {"count": len(np.unique(ends)), "first": _iso(int(ends.min())), "last": _iso(int(ends.max())),
                    "gpS": sorted({int(g) for g in data.gp})},
        "samples": {"used": len(real), "cells": len(real.envs), "skipped": data.skipped,
                    "loadFromTwin": data.load_from_twin, "twin": twin_n},
        "twinModel": {"version": settings.predict.model_version, "scenario": settings.predict.scenario,
                      "seed": settings.predict.seed},
        "pretrain": None if pre is None else {"steps": pre.steps, "valLoss": round(pre.val_loss, 5),
                                              "seconds": round(pre_s, 2)},
        "adapt": {"steps": report.steps, "valLoss": round(report.val_loss, 5), "seconds": round(adapt_s, 2)},
        "heldOut": held,
        "mapeFloor": {"DRB.UEThpDl_kbps": MAPE_FLOOR[0], "RRU.PrbTotDl_pct": MAPE_FLOOR[1]},
        "train": {"epochs": config.epochs, "minSteps": config.min_steps, "seed": config.seed},
        "realDataSeconds": round(real_s, 2),
    }
    model = Sim2RealModel(net, real.envs, merged_ranges(twin_ranges, real.ranges()), method, meta=summary)
    return model, summary


def fit_command(
    state_dir: Annotated[Path, typer.Option("--state-dir", help="the worker's checkpoint folder (or its state_dir)")],
    out: Annotated[Path, typer.Option("--out", help="directory to save the model into (model.json, weights.pt)")],
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings of the worker")] = None,
    twin_samples_n: Annotated[int, typer.Option("--twin-samples", min=1, help="twin cell-periods to pretrain on")]
    = 100_000,
    epochs: Annotated[int, typer.Option(min=1, help="at most this many passes over the data per training")] = 40,
    min_steps: Annotated[int, typer.Option("--min-steps", min=0, help="at least this many optimiser steps")] = 1500,
    method: Annotated[str, typer.Option(help="transfer (response frozen), finetune (all weights) or real_only")]
    = "transfer",
    seed: Annotated[int, typer.Option(min=0, help="twin data draws and training")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    force: Annotated[bool, typer.Option("--force", help="replace a model already in --out")] = False,
) -> None:
    """Pretrain on the twin's clusters, adapt on the mirrored history, save the model to --out."""
    from twin.config import load_settings
    from twin.digital_twin import Twin
    from twin.sim2real.train import TrainConfig

    def fail(message: str, code: int = 1) -> typer.Exit:
        typer.echo(f"error: {message}", err=True)
        return typer.Exit(code)

    if method not in FIT_METHODS:
        raise fail(f"--method {method!r} is not one of {', '.join(FIT_METHODS)}", 2)
    if not force and ((out / "model.json").exists() or (out / "weights.pt").exists()):
        raise fail(f"--out {out} already holds a model (a worker may be serving it): give --force to replace it", 2)
    try:
        settings = load_settings(config)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc), 2) from exc
    try:
        twin = Twin.from_state(state_dir, settings)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from exc
    try:
        model, summary = fit_model(twin, str(state_dir.resolve()), twin_samples_n, method,
                                   TrainConfig(epochs=epochs, min_steps=min_steps, seed=seed), seed=seed)
    except FitError as exc:
        raise fail(str(exc)) from exc
    model.save(out)
    summary = {**summary, "saved": str(out)}
    if as_json:
        typer.echo(json.dumps(summary, sort_keys=True))
        return
    held = summary["heldOut"]
    p = summary["periods"]
    typer.echo(f"saved {method} model to {out}")
    typer.echo(f"clusters {', '.join(summary['clusters'])}: {p['count']} periods {p['first']} .. {p['last']}")
    skipped = {k: v for k, v in summary["samples"]["skipped"].items() if v}
    typer.echo(f"samples: {summary['samples']['used']} real ({summary['samples']['cells']} cells), skipped "
               f"{skipped or 'none'}, {summary['samples']['twin']} twin")
    if "mape" in held:
        base = f" (twin only {held['twinOnlyMape']} %)" if "twinOnlyMape" in held else ""
        typer.echo(f"held-out MAPE {held['mape']} %{base} on the last {round(100 * HELD_OUT)} % of periods "
                   f"(from {held['from']}, {held['samples']} samples)")
    else:
        typer.echo(f"held-out MAPE: none ({held.get('note', 'no held-out samples')})")
    typer.echo(f"validation loss {summary['adapt']['valLoss']}; twin model {summary['twinModel']['version']}")


def register(app: typer.Typer) -> None:
    """Add the ``sim2real`` group with ``fit`` to ``app`` (idempotent)."""
    if not any(c.name == "fit" for c in sim2real_app.registered_commands):
        sim2real_app.command("fit")(fit_command)
    if not any(g.name == "sim2real" for g in app.registered_groups):
        app.add_typer(sim2real_app, name="sim2real")
