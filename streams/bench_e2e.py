"""``twin bench e2e``: emulator, broker and worker, closed loop or open loop.

The emulator publishes ``--periods`` periods of a ``--cells`` network through the embedded broker
to a ``twin run`` worker (two processes) which mirrors them and predicts every period.

- Closed loop (default): as fast as the pipeline answers, at most ``--window`` periods in flight
  (period k is published once all predictions of period k - window arrived). Latency is per
  (cell, period), from the moment the period's records exist, before the emulator's records are
  encoded, to the moment the cell's prediction is read back from ``ran.twin.predictions.v1``. The
  window hides queueing: a slow period holds back the next one instead of delaying it.
- Open loop (``--open-loop --rate R``): period k is due k / R seconds after the first, whatever
  the answers; its records are computed ahead and encoded and published when due. Latency runs
  from the moment the period was due, so queueing delay (in the publisher, the broker or the
  worker) is in it. ``publish_lag_ms_*`` says how late the periods were handed to the producer.

The first period is published once the worker built its simulator from the initial CM
(``warmup_s``, outside the measured wall time), as in a network whose CM the twin holds long before
the PM arrives. Percentiles are ``numpy.percentile`` with ``method="inverted_cdf"`` (nearest rank,
``streams.live.PERCENTILE_METHOD``).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from streams.broker import EmbeddedBroker
from streams.demo import GROUP, Worker, scenario_option, write_config
from streams.live import PERCENTILE_METHOD, LiveRun, percentile


def _rings(cells: int) -> int:
    """Hexagonal rings whose 3-sector layout has ``cells`` cells (7 -> 21 cells, 19 -> 57 ...)."""
    for r in range(0, 8):
        if 3 * (1 + 3 * r * (r + 1)) == cells:
            return r
    raise typer.BadParameter(f"--cells must be 3 (1 + 3 r (r + 1)): 3, 21, 57, 111 ..., got {cells}")


async def _bench(run: LiveRun, worker: Worker, clusters: int) -> None:
    stop = asyncio.Event()
    await worker.ready(stop)

    async def warmed(stop: asyncio.Event) -> None:
        await worker.warmed(stop, clusters)

    await run.run(stop, warmed=warmed)


def bench_e2e_command(
    cells: Annotated[int, typer.Option(help="cells of the emulated network (hexagonal: 21, 57 ...)")] = 57,
    periods: Annotated[int, typer.Option(min=1, help="granularity periods to run")] = 96,
    granularity: Annotated[int, typer.Option(min=60, help="PM granularity period (s)")] = 900,
    scenario: Annotated[str, typer.Option(help="emulator scenario (its layout is resized to --cells)")] = (
        "urban-hotspots"),
    window: Annotated[int, typer.Option(min=1, help="closed loop: periods in flight")] = 2,
    open_loop: Annotated[bool, typer.Option(
        "--open-loop", help="publish periods on a fixed schedule (--rate), whatever the answers")] = False,
    rate: Annotated[float | None, typer.Option(
        min=0.001, metavar="PERIODS_PER_S", help="open loop: periods published per second")] = None,
    mr_per_cell: Annotated[int, typer.Option(min=0, help="UE measurement reports per cell and period")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """End-to-end throughput and PM-to-prediction latency of the runtime against the emulator (closed or open loop)."""
    from replay.emulator import NetworkEmulator
    from twin.logs import configure

    configure("WARNING")
    if open_loop != (rate is not None):
        raise typer.BadParameter("--open-loop and --rate PERIODS_PER_S go together")
    sc = scenario_option(scenario)
    sc = replace(sc, topology=replace(sc.topology, rings=_rings(cells)))
    emulator = NetworkEmulator(sc, seed=0, granularity_s=granularity, mr_per_cell=mr_per_cell)
    tmp = Path(tempfile.mkdtemp(prefix="twin-bench-e2e-"))
    try:
        config = write_config(tmp / "twin.toml", tmp / "state", emulator.topology_config(),
                              emulator.public_model())
        with EmbeddedBroker() as broker:
            worker = Worker(config, broker.bootstrap_servers, tmp)
            try:
                run = LiveRun(emulator, broker.bootstrap_servers, periods, granularity, speed=0, window=window,
                              rate=rate if open_loop else None)
                asyncio.run(_bench(run, worker, len(emulator.clusters)))
                stats = worker.mirror()
            finally:
                worker.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    wall = run.finished_at - run.started_at
    lat = run.latencies_ms()
    lags = run.publish_lags_ms()
    expected = len(run.cells) * periods
    result = {
        "benchmark": "e2e", "scenario": sc.name, "cells": len(run.cells), "periods": len(run.log),
        "granularity_s": granularity, "mode": "open-loop" if open_loop else "closed-loop",
        "window": None if open_loop else window, "rate_periods_per_s": rate if open_loop else None,
        "mr_per_cell": mr_per_cell,
        "records_published": run.published, "predictions_received": len(run.watcher.arrived),
        "predictions_expected": expected, "wall_s": round(wall, 3),
        "periods_per_s": round(len(run.log) / wall, 2),
        "sim_seconds_per_wall_second": round(len(run.log) * granularity / wall, 1),
        "latency_from": "scheduled time" if open_loop else "records ready, before encoding",
        "latency_ms_p50": _r(percentile(lat, 50)), "latency_ms_p99": _r(percentile(lat, 99)),
        "latency_ms_max": _r(max(lat) if lat else None), "latency_samples": len(lat),
        "percentile_method": PERCENTILE_METHOD,
        "publish_lag_ms_p50": _r(percentile(lags, 50)) if open_loop else None,
        "publish_lag_ms_max": _r(max(lags) if lags else None) if open_loop else None,
        "warmup_s": None if run.warmup_s is None else round(run.warmup_s, 3),
        "worker_prediction_s": stats.get("predictionSeconds"), "simulator_builds": stats.get("simulatorBuilds"),
        "group": GROUP, "cpu_count": os.cpu_count(),
    }
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for k, v in result.items():
            typer.echo(f"{k:30s} {v}")
    if len(run.watcher.arrived) < expected:
        raise typer.Exit(1)


def _r(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else round(x, 1)


__all__ = ["bench_e2e_command"]
