"""``twin bench sim``: snapshot and what-if timings of the simulator, and the Sionna peer.

The what-if is one cell's electrical-tilt change (``digitalTilt``; the cell and the tilt vary
between repetitions so no result is reused). The Sionna peer computes the same change on the same
model: the same cluster, UEs, antenna (the twin's 10°/17 dBi Table 7.3-1 beam with that
electrical tilt, through Sionna's pattern function and LCS rotation), the same losses (Sionna's
basic path loss, O2I and shadow-fading sigmas with the twin's random draws, set up once as the
twin's are), float64 like the twin's state, and the same load coupling (the fixed point with
Sionna's ``geometry_sinr_db`` and ``PHYAbstraction``, warm-started from the baseline loads).
``snapshot_ms`` is a full evaluation of a new period (other traffic, the same CM: the antenna gains
of the last evaluation are reused, as a worker's next period reuses them); ``snapshot_cold_ms`` one
with every cell's electrical tilt changed, so nothing of the last evaluation is reused (path loss
excluded: it is computed at build).
The JSON says what each side computes (``twin_computes``, ``sionna_computes``) and how far their
results agree (``agreement``). Figures are medians over the repetitions. ``peak_rss_mb`` is
taken before Sionna is imported.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from typing import Any

import numpy as np

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


def _rss_mb() -> float:
    """Current resident memory (MB) from /proc (0 where there is none)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def _median_ms(samples: list[float]) -> float:
    return round(1e3 * statistics.median(samples), 3)


def run(cells: int = 57, ues: int = 5000, repeats: int = 50, seed: int = 0,
        sionna: bool | None = None, sionna_precision: str = "double") -> dict[str, Any]:
    """Run the benchmark; ``sionna=None`` runs the Sionna peer when Sionna is installed.

    ``sionna_precision``: ``"double"`` (float64, as the twin's state) or ``"single"``.
    """
    if sionna_precision not in ("double", "single"):
        raise ValueError(f"sionna_precision must be 'double' or 'single', got {sionna_precision!r}")
    rss_before = _rss_mb()  # what the process held before the bench (the CLI's imports)
    cluster = bench_cluster(cells)
    t0 = time.perf_counter()
    sim = Simulator(cluster, TrafficMap(n_ues=ues), seed=seed)
    build_s = time.perf_counter() - t0
    cold = []
    for k in range(max(3, repeats // 10)):  # every cell's antenna moved: nothing of the last evaluation reused
        t = time.perf_counter()
        sim.evaluate({key: {"digitalTilt": 30 + k} for key in cluster.cell_keys})
        cold.append(time.perf_counter() - t)
    snaps = []
    for k in range(max(3, repeats // 10)):  # a new period: other traffic, the same CM (gains reused)
        t = time.perf_counter()
        sim.evaluate(ue_scale=1.0 + 0.01 * (k + 1))
        snaps.append(time.perf_counter() - t)
    base = sim.evaluate()  # the what-ifs' baseline
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, cells, repeats)
    tilts = rng.integers(20, 160, repeats)  # 2..16 degrees (0.1 degree units)
    keys = cluster.cell_keys
    for i in range(3):  # warm-up
        sim.whatif({keys[int(rows[i])]: {"digitalTilt": int(tilts[i])}})
    wi_t, wi_p, iters, results = [], [], [], []
    for r, tilt in zip(rows, tilts, strict=True):
        t = time.perf_counter()
        w = sim.whatif({keys[int(r)]: {"digitalTilt": int(tilt)}})
        wi_t.append(time.perf_counter() - t)
        iters.append(w.result.iterations)
        results.append(w.result)
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
        "snapshot_cold_ms": _median_ms(cold),
        "whatif_ms": whatif_ms,
        "whatif_p95_ms": round(1e3 * float(np.percentile(wi_t, 95)), 3),
        "whatif_per_s": round(1000.0 / whatif_ms, 1),
        "whatif_power_ms": _median_ms(wi_p),
        "whatif_iterations_median": float(np.median(iters)),
        "whatif_iterations_max": int(max(iters)),
        "whatif_not_converged": int(sum(not r.converged for r in results)),
        "snapshot_converged": bool(base.converged),
        "link_model": sim.link.name,
        "twin_precision": "float64 (interference matrix product float32)",
        "twin_computes": TWIN_COMPUTES,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "rss_before_bench_mb": round(rss_before, 1),
        "cpu_count": os.cpu_count(),
    }
    from twin.sim.sionna_ref import sionna_available

    if sionna is None:
        sionna = sionna_available()
    if sionna:
        out.update(_sionna_peer(sim, rows, tilts, repeats, results, sionna_precision))
        out["sionna_whatif_vs_twin"] = round(out["sionna_whatif_ms"] / whatif_ms, 1)
        out["peak_rss_mb_with_sionna"] = round(_peak_rss_mb(), 1)
    return out


TWIN_COMPUTES = (
    "Simulator.whatif: the changed cell's antenna-gain row (10°/17 dBi Table 7.3-1 beam, electrical tilt), "
    "incremental association from the cached best two cells, SS-SINR, connection criteria, the load-coupled "
    "fixed point warm-started from the baseline loads (interference as a float32 matrix product plus a "
    "low-rank correction, everything else float64), and the KPIs and deltas of every cell; path loss, O2I "
    "and shadowing are computed once at build"
)
SIONNA_COMPUTES = (
    "the same what-if through Sionna 2.2 (sionna_ref.evaluate_loaded), all cells recomputed: the Table 7.3-1 "
    "pattern with the twin's beamwidths, gain and electrical tilt in Sionna's rotated LCS for every "
    "cell-UE link, coupling loss on the scenario's cached loss (basic path loss + O2I + shadowing with the "
    "twin's draws, computed once at set-up), serving_indices, geometry_sinr_db, InnerLoopLinkAdaptation + "
    "PHYAbstraction, the connection criteria, and the load-coupled fixed point (geometry_sinr_db with "
    "load-scaled interferer powers + the link abstraction at every iteration) warm-started from the "
    "twin's baseline loads; no KPIs"
)


def _sionna_peer(sim: Simulator, rows: np.ndarray, tilts: np.ndarray, repeats: int,
                 twin_results: list[Any], precision: str = "double") -> dict[str, Any]:
    """Time the same electrical-tilt what-ifs through Sionna and compare their results with the twin's."""
    import torch

    from twin.sim.sionna_ref import evaluate_loaded, pipeline_for_simulator

    t0 = time.perf_counter()
    pipe = pipeline_for_simulator(sim, precision=precision)
    setup_s = time.perf_counter() - t0
    rho0 = torch.as_tensor(sim.baseline.load, dtype=pipe.dtype)
    n = max(5, repeats // 5)
    times, iters, not_converged, cycled = [], [], 0, 0
    e_ss, e_sinr, e_rho, moved = 0.0, 0.0, 0.0, 0
    with torch.no_grad():
        for i in range(3):
            evaluate_loaded(pipe, sim, rho0, pipe.elec_tilt_with(int(rows[i]), tilts[i] / 10.0))
        for r, tilt, twin in zip(rows[:n], tilts[:n], twin_results[:n], strict=True):
            etilt = pipe.elec_tilt_with(int(r), tilt / 10.0)
            t = time.perf_counter()
            ref = evaluate_loaded(pipe, sim, rho0, etilt)
            times.append(time.perf_counter() - t)
            iters.append(ref["iterations"])
            not_converged += int(not ref["converged"])
            cycled += int(ref["cycled"])
            # agreement, outside the clock: association, SS-SINR, loads, and the data SINR at the twin's loads
            moved += int(np.sum(ref["serving"].numpy() != twin.ue.serving))
            e_ss = max(e_ss, float(np.abs(ref["ss_sinr_db"].numpy() - twin.ue.ss_sinr_db).max()))
            e_rho = max(e_rho, float(np.abs(ref["rho"].numpy() - twin.load).max()))
            eff = torch.as_tensor(sim.config.idle_load + (1.0 - sim.config.idle_load) * twin.load, dtype=pipe.dtype)
            sinr = pipe.loaded_sinr_db(ref["coupling_loss_db"], torch.as_tensor(twin.ue.serving), eff).numpy()
            e_sinr = max(e_sinr, float(np.abs(sinr - twin.ue.sinr_db).max()))
    return {
        "sionna_setup_ms": round(1e3 * setup_s, 1),
        "sionna_whatif_ms": _median_ms(times),
        "sionna_repeats": n,
        "sionna_iterations_median": float(np.median(iters)),
        "sionna_iterations_max": int(max(iters)),
        # Sionna's SE is constant between MCS switches, so its load iteration can cycle between two
        # states of a UE at a switch; it stops at the cycle (counted here, not converged)
        "sionna_whatif_not_converged": not_converged,
        "sionna_whatif_cycled": cycled,
        "sionna_precision": "float64" if precision == "double" else "float32",
        "torch_threads": torch.get_num_threads(),
        "sionna_computes": SIONNA_COMPUTES,
        "agreement": {
            "whatifs_compared": n,
            "serving_cell_differences": moved,
            "ss_sinr_max_abs_err_db": float(f"{e_ss:.3g}"),
            "loaded_sinr_max_abs_err_db": float(f"{e_sinr:.3g}"),
            "load_max_abs_err": float(f"{e_rho:.3g}"),
        },
    }
