"""``twin bench sim``: snapshot and what-if timings of the simulator, and the Sionna peer.

The what-if is one cell's tilt change (the cell and the tilt vary between repetitions so no
result is reused); the Sionna peer computes the same change (the same cell's downtilt, as its
antenna pitch) through the same cluster and UEs with Sionna's scenario basic path loss (set up
once, as the twin's path loss is), its 38.901 element pattern, ``geometry_sinr_db`` and the
``InnerLoopLinkAdaptation`` + ``PHYAbstraction`` link abstraction, in the same process.
Figures are medians over the repetitions. ``peak_rss_mb`` is taken before Sionna is imported.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from typing import Any

import numpy as np

from twin.sim.propagation import StatisticalPropagation, los_probability
from twin.sim.simulator import Simulator
from twin.sim.topology import Cluster, hex_cluster
from twin.sim.traffic import TrafficMap

__all__ = ["bench_cluster", "run"]


def bench_cluster(cells: int) -> Cluster:
    """The smallest hexagonal layout with at least ``cells`` cells, cut to exactly ``cells``.

    >>> len(bench_cluster(57).sectors), len(bench_cluster(183).sectors), len(bench_cluster(10).sectors)
    (57, 183, 10)
    """
    if cells < 1:
        raise ValueError(f"--cells must be >= 1, got {cells}")
    rings = 0
    while 3 * (1 + 3 * rings * (rings + 1)) < cells:
        rings += 1
    full = hex_cluster(rings=rings)
    return full.with_sectors(full.sectors[:cells])


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _median_ms(samples: list[float]) -> float:
    return round(1e3 * statistics.median(samples), 3)


def run(cells: int = 57, ues: int = 5000, repeats: int = 50, seed: int = 0,
        sionna: bool | None = None) -> dict[str, Any]:
    """Run the benchmark; ``sionna=None`` runs the Sionna peer when Sionna is installed."""
    cluster = bench_cluster(cells)
    t0 = time.perf_counter()
    sim = Simulator(cluster, TrafficMap(n_ues=ues), seed=seed)
    build_s = time.perf_counter() - t0
    snaps = []
    for _ in range(max(3, repeats // 10)):
        t = time.perf_counter()
        base = sim.evaluate()
        snaps.append(time.perf_counter() - t)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, cells, repeats)
    tilts = rng.integers(20, 160, repeats)  # 2..16 degrees (0.1 degree units)
    keys = cluster.cell_keys
    for i in range(3):  # warm-up
        sim.whatif({keys[int(rows[i])]: {"digitalTilt": int(tilts[i])}})
    wi_t, wi_p, iters = [], [], []
    for r, tilt in zip(rows, tilts, strict=True):
        t = time.perf_counter()
        w = sim.whatif({keys[int(r)]: {"digitalTilt": int(tilt)}})
        wi_t.append(time.perf_counter() - t)
        iters.append(w.result.iterations)
    for r in rows:
        t = time.perf_counter()
        sim.whatif({keys[int(r)]: {"configuredMaxTxPower": 20000}})
        wi_p.append(time.perf_counter() - t)
    whatif_ms = _median_ms(wi_t)
    out: dict[str, Any] = {
        "benchmark": "sim",
        "cells": cells,
        "ues": ues,
        "repeats": repeats,
        "build_ms": round(1e3 * build_s, 1),
        "snapshot_ms": _median_ms(snaps),
        "whatif_ms": whatif_ms,
        "whatif_p95_ms": round(1e3 * float(np.percentile(wi_t, 95)), 3),
        "whatif_per_s": round(1000.0 / whatif_ms, 1),
        "whatif_power_ms": _median_ms(wi_p),
        "whatif_iterations_median": float(np.median(iters)),
        "snapshot_converged": bool(base.converged),
        "link_model": sim.link.name,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "cpu_count": os.cpu_count(),
    }
    from twin.sim.sionna_ref import sionna_available

    if sionna is None:
        sionna = sionna_available()
    if sionna:
        out.update(_sionna_peer(sim, rows, tilts, repeats))
        out["sionna_whatif_vs_twin"] = round(out["sionna_whatif_ms"] / whatif_ms, 1)
        out["peak_rss_mb_with_sionna"] = round(_peak_rss_mb(), 1)
    return out


def _sionna_peer(sim: Simulator, rows: np.ndarray, tilts: np.ndarray, repeats: int) -> dict[str, Any]:
    import torch

    from twin.sim.sionna_ref import SionnaPipeline

    cells = sim.cluster.sectors
    site = sim.cluster.site_index()
    prop = sim.propagation
    d2d = sim._d2d[np.unique(site, return_index=True)[1]]
    if isinstance(prop, StatisticalPropagation):
        # the twin's own LoS draws, so both sides see the same LoS/NLoS links
        los_site = prop.los_uniform < los_probability(sim.cluster.scenario, d2d, sim.ues.h_m[None, :])
    else:
        los_site = np.zeros((site.max() + 1, sim.ues.n), dtype=bool)
    t0 = time.perf_counter()
    pipe = SionnaPipeline(
        sim.cluster.scenario,
        np.array([[s.x_m, s.y_m, s.height_m] for s in cells]),
        np.stack([sim.ues.x_m, sim.ues.y_m, sim.ues.h_m], axis=1),
        np.array([s.azimuth_deg for s in cells]),
        np.array([s.mech_tilt_deg + s.elec_tilt_deg for s in cells]),
        cells[0].fc_ghz,
        los_site[site],
        np.array([s.tx_power_dbm for s in cells]),
        cells[0].bandwidth_mhz * 1e6,
        sim.config.noise_figure_db,
        precision="single",
    )
    setup_s = time.perf_counter() - t0
    base_tilt = cells[0].elec_tilt_deg
    with torch.no_grad():
        for i in range(3):
            pipe.evaluate(pipe.tilt(int(rows[i]), tilts[i] / 10.0 - base_tilt))
        times = []
        n = max(5, repeats // 5)
        for r, tilt in zip(rows[:n], tilts[:n], strict=True):
            t = time.perf_counter()
            pipe.evaluate(pipe.tilt(int(r), tilt / 10.0 - base_tilt))
            times.append(time.perf_counter() - t)
    return {
        "sionna_setup_ms": round(1e3 * setup_s, 1),
        "sionna_whatif_ms": _median_ms(times),
        "sionna_repeats": n,
        "torch_threads": torch.get_num_threads(),
    }

