"""Radio layer: RSRP, association with CIO, thermal noise and the load-coupled SINR fixed point.

Received powers are handled as power spectral densities (mW/Hz) so carriers of different
bandwidths mix correctly: ``psd[c, u] = P_c / B_c * 10^(CG[c, u] / 10)`` with the coupling
gain ``CG`` (antenna gain minus loss, dB). Cells on different carrier frequencies do not
interfere (each frequency is one *layer*).

The load coupling is the standard model of Siomina & Yuan (IEEE TWC 2012) / Mogensen et al.:
the SINR of UE ``u`` served by ``s`` is

    SINR_u = psd[s, u] / (sum_{k != s, same layer} rho'_k psd[k, u] + N0)

with ``rho'_k = idle + (1 - idle) rho_k`` (always-on signals radiate even in an idle cell),
and the load of each cell is the share of its resources its UEs need:

    rho_c = min(1, sum_{u in c} w_u d_u / r_u(SINR_u))

with ``w_u d_u`` the offered load and ``r_u`` the UE peak rate from the link model. The map
``rho -> f(rho)`` is a standard interference function, so the iteration converges to its
unique fixed point; :func:`solve_load` iterates until ``max |rho_new - rho| < tol`` and
reports whether it converged.

>>> round(noise_psd_dbm_per_hz(7.0), 1)
-167.0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "THERMAL_NOISE_DBM_PER_HZ", "LoadSolution", "Top2", "associate_with_changes", "noise_dbm", "noise_psd_dbm_per_hz",
    "rsrp_offset_db", "solve_load", "top2",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

THERMAL_NOISE_DBM_PER_HZ = -174.0


def noise_psd_dbm_per_hz(noise_figure_db: float) -> float:
    """Thermal noise PSD at the UE receiver (dBm/Hz): ``-174 + NF``."""
    return THERMAL_NOISE_DBM_PER_HZ + float(noise_figure_db)


def noise_dbm(bandwidth_hz: float, noise_figure_db: float) -> float:
    """Thermal noise power (dBm) in ``bandwidth_hz``: ``-174 + 10 log10(B) + NF``.

    >>> round(noise_dbm(20e6, 7.0), 2)
    -93.99
    """
    return noise_psd_dbm_per_hz(noise_figure_db) + 10.0 * float(np.log10(bandwidth_hz))


def rsrp_offset_db(bandwidth_mhz: npt.ArrayLike, n_prb: npt.ArrayLike) -> FloatArray:
    """dB to subtract from the total carrier power to get the power of one RE (RSRP EPRE).

    >>> float(rsrp_offset_db(20.0, 51).round(2))
    27.87
    """
    return np.asarray(10.0 * np.log10(12.0 * np.asarray(n_prb, dtype=np.float64)))


@dataclass(frozen=True)
class Top2:
    """Best and second-best biased RSRP per UE: indices and values, each [n_ues]."""

    best: IntArray
    best_db: FloatArray
    second: IntArray
    second_db: FloatArray


def top2(biased_db: FloatArray) -> Top2:
    """Best two cells per UE of a [n_cells, n_ues] biased-RSRP matrix (``-inf`` = not a candidate).

    >>> t = top2(np.array([[1.0, 5.0], [3.0, 2.0], [2.0, -np.inf]]))
    >>> t.best.tolist(), t.second.tolist()
    ([1, 0], [2, 1])
    """
    n_cells, n_ues = biased_db.shape
    cols = np.arange(n_ues)
    if n_cells == 1:
        z = np.zeros(n_ues, dtype=np.int64)
        return Top2(z, biased_db[0].copy(), z.copy(), np.full(n_ues, -np.inf))
    part = np.argpartition(biased_db, n_cells - 2, axis=0)[-2:]
    v = biased_db[part, cols]
    order = np.argmax(v, axis=0)
    best = part[order, cols]
    second = part[1 - order, cols]
    return Top2(best.astype(np.int64), biased_db[best, cols], second.astype(np.int64),
                biased_db[second, cols])


def associate_with_changes(
    base: Top2,
    rows: IntArray,
    new_rows_db: FloatArray,
    n_cells: int,
    full: Callable[[], FloatArray] | None = None,
) -> tuple[IntArray, FloatArray]:
    """Serving cell and its biased RSRP after replacing the biased rows ``rows``.

    Uses the cached best two cells: the best unchanged cell is the old best unless that one
    changed, else the old second unless that changed too; UEs whose two best both changed are
    resolved with ``full()`` (the whole new matrix) when given. Output shapes [n_ues].
    """
    changed = np.zeros(n_cells, dtype=bool)
    changed[rows] = True
    best_ok = ~changed[base.best]
    second_ok = ~changed[base.second]
    cand = np.where(best_ok, base.best, base.second)
    cand_db = np.where(best_ok, base.best_db, np.where(second_ok, base.second_db, -np.inf))
    j = np.argmax(new_rows_db, axis=0)
    cols = np.arange(new_rows_db.shape[1])
    new_best_db = new_rows_db[j, cols]
    take_new = new_best_db > cand_db
    serving = np.where(take_new, rows[j], cand)
    serving_db = np.where(take_new, new_best_db, cand_db)
    lost = ~best_ok & ~second_ok
    if rows.size < n_cells and full is not None and lost.any():
        mat = full()
        sub = mat[:, lost]
        serving[lost] = np.argmax(sub, axis=0)
        serving_db[lost] = sub.max(axis=0)
    return serving.astype(np.int64), np.asarray(serving_db, dtype=np.float64)


@dataclass(frozen=True)
class LoadSolution:
    """Result of the load-coupling fixed point.

    ``rho`` [n_cells] PRB load in 0..1, ``sinr`` [n_ues] linear data SINR, ``rate_bps``
    [n_ues] peak rate (bit/s, 0 for UEs not served), ``iterations``, ``converged`` and
    ``residual`` (the last ``max |rho_new - rho|``).
    """

    rho: FloatArray
    sinr: FloatArray
    rate_bps: FloatArray
    iterations: int
    converged: bool
    residual: float


def solve_load(
    interference: Callable[[FloatArray], FloatArray],
    signal: FloatArray,
    serving: IntArray,
    served: npt.NDArray[np.bool_],
    offered_bps: FloatArray,
    rate_per_se: FloatArray,
    se_of_sinr: Callable[[FloatArray], FloatArray],
    noise_psd: float | FloatArray,
    n_cells: int,
    rho0: FloatArray,
    active: npt.NDArray[np.bool_],
    idle: float = 0.1,
    tol: float = 1e-4,
    max_iter: int = 200,
) -> LoadSolution:
    """Iterate ``rho <- min(1, load(SINR(rho)))`` to the fixed point.

    Input
    -----
    interference: maps the effective radiated share ``rho'`` [n_cells] to the PSD each UE
        receives from all co-channel cells, its own serving cell included, [n_ues] (mW/Hz)
    signal: [n_ues] PSD from the serving cell (mW/Hz)
    serving: [n_ues] serving cell index
    served: [n_ues] bool, UEs in coverage (others carry no load)
    offered_bps: [n_ues] offered load ``w_u d_u`` (bit/s)
    rate_per_se: [n_ues] bit/s per unit of SE (b/RE) of the serving cell, layers included
    se_of_sinr: the link model, linear SINR -> bits per RE
    noise_psd: noise PSD (mW/Hz): thermal, or [n_ues] with interference from outside the model
    rho0: [n_cells] starting loads (the baseline's for a what-if: a warm start)
    active: [n_cells] cells that are on
    """
    rho = np.where(active, np.clip(rho0, 0.0, 1.0), 0.0)
    w_serv = np.where(served, offered_bps, 0.0)
    sinr = np.zeros_like(signal)
    rate = np.zeros_like(signal)
    residual = np.inf
    it = 0
    own_share = signal
    for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported
        eff = np.where(active, idle + (1.0 - idle) * rho, 0.0)
        total = interference(eff)
        other = np.maximum(total - eff[serving] * own_share, 0.0)
        sinr = signal / (other + noise_psd)
        rate = se_of_sinr(sinr) * rate_per_se
        with np.errstate(divide="ignore", invalid="ignore"):
            need = np.where(w_serv > 0, w_serv / rate, 0.0)
        need = np.where(np.isfinite(need), need, 1e9)
        new = np.minimum(np.bincount(serving, weights=need, minlength=n_cells), 1.0)
        new = np.where(active, new, 0.0)
        residual = float(np.max(np.abs(new - rho))) if n_cells else 0.0
        rho = new
        if residual < tol:
            break
    rate = np.where(served, rate, 0.0)
    return LoadSolution(rho, sinr, rate, it, residual < tol, residual)
