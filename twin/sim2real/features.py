"""Per-cell features of the Sim2Real KPI predictor: what a live network reports, nothing hidden.

One row per cell and period, asking: *this period's KPIs of the cell, had the CM been the
candidate configuration*. The columns split into the **state** (what the network reported under
the configuration actually in effect, the *reference*: time of day, the cluster's load, the
cell's own connected UEs, where the cell sits) and the **CM** (the reference configuration and the
candidate one: the cell's own tilt, power and CIO, and the mean of its neighbours'). For the
period as it ran, candidate = reference. The twin's simulated periods, an emulated or live
network's published PM and CM and the mirror at run time all build their rows with
:func:`cell_features`:

=======================  =====  ==============================================================
column                   unit   meaning
=======================  =====  ==============================================================
``hour_sin/hour_cos``    -      hour of day (middle of the period, UTC) on the unit circle
``load_ues_per_cell``    count  the cluster's connected UEs (sum of ``RRC.ConnMean``) per cell
``cell_ues``             count  the cell's own ``RRC.ConnMean`` under the reference CM
``isd_km``               km     distance from the cell's site to its nearest other site
``height_m``             m      antenna height
``edge``                 -      site distance from the cluster's centroid / largest such distance
``fc_ghz``               GHz    carrier frequency
``bandwidth_mhz``        MHz    carrier bandwidth
``ref_tilt_deg`` ...     deg    the reference CM: tilt (electrical + mechanical, down positive),
``ref_power_dbm``, ...   dBm    configured carrier power, CIO (dB), and the neighbours' means
``tilt_deg``             deg    candidate tilt
``power_dbm``            dBm    candidate configured maximum transmit power of the carrier
``cio_db``               dB     candidate cell individual offset towards the cell
``nbr_tilt_deg``         deg    candidate mean tilt of the neighbours (cells of sites within 1.5 ISD)
``nbr_power_dbm``        dBm    candidate mean configured power of the neighbours
``nbr_cio_db``           dB     candidate mean CIO of the neighbours
=======================  =====  ==============================================================

The targets are ``DRB.UEThpDl`` (kbit/s) and ``RRU.PrbTotDl`` (%), the TS 28.552 PM names, learnt
as ``log1p`` of the value (:func:`to_target` / :func:`from_target`).

>>> from twin.sim.topology import hex_cluster
>>> cluster = hex_cluster(rings=1, isd_m=500.0)
>>> x = cell_features(cluster.sectors, hour=12.0, connected_ues=420.0, cell_ues=[20.0] * 21)
>>> x.shape == (21, len(FEATURES))
True
>>> round(float(x[0, FEATURES.index("load_ues_per_cell")]), 3), round(float(x[0, FEATURES.index("isd_km")]), 3)
(20.0, 0.5)
>>> cell_features(cluster.sectors, hour=12.0, connected_ues=-1.0, cell_ues=[20.0] * 21)
Traceback (most recent call last):
...
ValueError: connected_ues=-1.0 must be a finite number >= 0 (the cluster's summed RRC.ConnMean)
>>> cell_features(cluster.sectors, hour=12.0, connected_ues=1.0, cell_ues=[20.0])
Traceback (most recent call last):
...
ValueError: cell_ues has 1 values for 21 cells (one RRC.ConnMean per cell, finite, >= 0)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from twin.sim.kpis import PRB, THP
from twin.sim.topology import Sector

__all__ = ["CM_FEATURES", "FEATURES", "STATE_FEATURES", "TARGETS", "cell_features", "from_target", "period_hour_of",
           "to_target"]

FloatArray = npt.NDArray[np.float64]

STATE_FEATURES: tuple[str, ...] = ("hour_sin", "hour_cos", "load_ues_per_cell", "cell_ues", "isd_km", "height_m",
                                   "edge", "fc_ghz", "bandwidth_mhz")
_OWN = ("tilt_deg", "power_dbm", "cio_db")
_NBR = ("nbr_tilt_deg", "nbr_power_dbm", "nbr_cio_db")
CM_FEATURES: tuple[str, ...] = (*(f"ref_{n}" for n in _OWN + _NBR), *_OWN, *_NBR)
FEATURES: tuple[str, ...] = STATE_FEATURES + CM_FEATURES
TARGETS: tuple[str, ...] = (THP, PRB)
NEIGHBOUR_ISD = 1.5
"""Sites within this many inter-site distances of a cell's own site are its neighbourhood."""


def _site_geometry(sectors: Sequence[Sector]) -> tuple[FloatArray, FloatArray, list[list[int]]]:
    """Per cell: nearest-other-site distance (m), edge-ness (0..1) and neighbour cell rows (the
    same for every period and what-if of a cluster: computed once per layout)."""
    return _geometry_of(tuple((s.x_m, s.y_m) for s in sectors))


@functools.lru_cache(maxsize=64)
def _geometry_of(positions: tuple[tuple[float, float], ...]) -> tuple[FloatArray, FloatArray, list[list[int]]]:
    xy = np.array(positions, dtype=np.float64)
    sites, site_of = np.unique(xy, axis=0, return_inverse=True)
    site_of = site_of.reshape(-1)
    d = np.hypot(sites[:, None, 0] - sites[None, :, 0], sites[:, None, 1] - sites[None, :, 1])
    if len(sites) > 1:
        np.fill_diagonal(d, np.inf)
        nearest = d.min(axis=1)
        np.fill_diagonal(d, 0.0)
        isd = float(np.median(nearest))
    else:
        nearest = np.full(1, 500.0)
        isd = 500.0
    centre = sites.mean(axis=0)
    r = np.hypot(sites[:, 0] - centre[0], sites[:, 1] - centre[1])
    edge = r / r.max() if r.max() > 0 else np.zeros_like(r)
    near_sites = d <= NEIGHBOUR_ISD * isd
    near_cells = near_sites[site_of][:, site_of]
    np.fill_diagonal(near_cells, False)
    rows = [np.flatnonzero(row).tolist() for row in near_cells]
    near, edges = nearest[site_of], edge[site_of]
    near.flags.writeable = edges.flags.writeable = False  # cached: shared by every caller
    return near, edges, rows


def _cm_columns(sectors: Sequence[Sector], nbrs: list[list[int]]) -> FloatArray:
    """[n_cells, 6]: own tilt, power, CIO, then the neighbours' means of the same."""
    own = np.array([[s.elec_tilt_deg + s.mech_tilt_deg, s.tx_power_dbm, s.cio_db] for s in sectors])
    out = np.empty((len(sectors), 6))
    out[:, :3] = own
    for i, rows in enumerate(nbrs):
        out[i, 3:] = own[rows].mean(axis=0) if rows else own[i]
    return out


def cell_features(sectors: Sequence[Sector], hour: float, connected_ues: float, cell_ues: npt.ArrayLike,
                  reference: Sequence[Sector] | None = None) -> FloatArray:
    """Feature rows [n_cells, len(FEATURES)] of one cluster's cells in a period at ``hour`` (0..24
    UTC, the period's middle): ``connected_ues`` in the cluster and ``cell_ues`` [n_cells] per cell
    as reported under the ``reference`` configuration (default: ``sectors``), ``sectors`` the
    candidate configuration, both in the same cell order."""
    if not sectors:
        raise ValueError("sectors is empty: a cluster has at least one cell")
    if not (isinstance(hour, int | float) and math.isfinite(hour)):
        raise ValueError(f"hour={hour!r} must be a finite number (hour of day, 0..24)")
    if isinstance(connected_ues, bool) or not (isinstance(connected_ues, int | float) and math.isfinite(connected_ues)
                                               and connected_ues >= 0):
        raise ValueError(f"connected_ues={connected_ues!r} must be a finite number >= 0 (the cluster's summed "
                         "RRC.ConnMean)")
    n = len(sectors)
    ues = np.asarray(cell_ues, dtype=np.float64)
    if ues.shape != (n,) or not np.all(np.isfinite(ues)) or np.any(ues < 0):
        raise ValueError(f"cell_ues has {ues.size} values for {n} cells (one RRC.ConnMean per cell, finite, >= 0)")
    ref = sectors if reference is None else reference
    if len(ref) != n or any(a.cell_key != b.cell_key for a, b in zip(ref, sectors, strict=True)):
        raise ValueError("reference must hold the same cells as sectors, in the same order")
    nearest, edge, nbrs = _site_geometry(sectors)
    angle = 2.0 * math.pi * (float(hour) % 24.0) / 24.0
    out = np.empty((n, len(FEATURES)))
    out[:, 0] = math.sin(angle)
    out[:, 1] = math.cos(angle)
    out[:, 2] = float(connected_ues) / n
    out[:, 3] = ues
    out[:, 4] = nearest / 1e3
    out[:, 5] = [s.height_m for s in sectors]
    out[:, 6] = edge
    out[:, 7] = [s.fc_ghz for s in sectors]
    out[:, 8] = [s.bandwidth_mhz for s in sectors]
    k = len(STATE_FEATURES)
    out[:, k : k + 6] = _cm_columns(ref, nbrs)
    out[:, k + 6 :] = _cm_columns(sectors, nbrs)
    return out


def period_hour_of(period_end: int, gp: int) -> float:
    """UTC hour of day (0..24) at the middle of the period ending at ``period_end`` (epoch s): the
    ``hour`` of :func:`cell_features` (as the emulator evaluates its time-of-day load).

    >>> period_hour_of(1_709_251_200 + 3600, 3600)
    0.5
    """
    return ((period_end - gp / 2.0) % 86_400) / 3600.0


def to_target(values: npt.ArrayLike) -> FloatArray:
    """KPI values [N, len(TARGETS)] in PM units -> what the network learns (``log1p``, clipped at 0).

    >>> from_target(to_target([[12000.0, 35.0]])).round(6).tolist()
    [[12000.0, 35.0]]
    """
    return np.log1p(np.maximum(np.asarray(values, dtype=np.float64), 0.0))


def from_target(values: npt.ArrayLike) -> FloatArray:
    """Inverse of :func:`to_target`: PM units (PRB utilisation capped at 100 %)."""
    out = np.expm1(np.asarray(values, dtype=np.float64))
    out = np.maximum(out, 0.0)
    if out.ndim == 2 and out.shape[1] == len(TARGETS):
        out[:, TARGETS.index(PRB)] = np.minimum(out[:, TARGETS.index(PRB)], 100.0)
    return out
