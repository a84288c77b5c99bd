"""Per-cell KPIs under their TS 28.552 PM names, so predictions line up with telemetry.

=====================  ========  ===========================================================
name                   unit      how the twin computes it
=====================  ========  ===========================================================
``DRB.UEThpDl``        kbit/s    volume-weighted harmonic mean of UE burst throughput
                                 (sum of volumes / sum of transfer times, as 28.552 counts)
``RRU.PrbTotDl``       %         100 x the cell's PRB load from the load-coupling fixed point
``RRC.ConnMean``       count     connected UEs (sum of UE weights in coverage)
``CARR.MeanTxPwr``     dBm       ``P_max x (idle + (1 - idle) load)``; NaN when locked
``PEE.AvgPower``       W         ``P0 + dP x P_out`` (EARTH model), ``P_sleep`` when locked
``L1M.SS-RSRP.BinX``   count     SS-RSRP of connected UEs on the 0..127 index grid
``MR.NRScSSSINR.BinX`` count     SS-SINR (SSB, all neighbours radiating) on the 0..127 grid
=====================  ========  ===========================================================

UE burst throughput follows the processor-sharing flow model: a UE with peak rate ``r`` in a
cell at load ``rho`` gets ``r (1 - rho)``, but never less than an equal share ``r / n`` of the
``n`` connected UEs of a saturated cell.

The index grids are those of ``twin.schemas.mr``: RSRP idx = round(dBm + 157), SINR idx =
round(2 (dB + 23.5)), both clamped to 0..127.

>>> rsrp_index_array(np.array([-160.0, -100.2, -20.0])).tolist()
[0, 57, 127]
>>> sinr_index_array(np.array([-30.0, 0.0, 12.26])).tolist()
[0, 47, 72]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "CONN", "KPI_NAMES", "N_BINS", "POWER", "PRB", "RSRP_BIN", "RSRP_BIN_NAMES", "SINR_BIN", "SINR_BIN_NAMES", "THP",
    "TXPWR", "KpiArrays", "PowerModel",
    "cell_kpis", "pm_values", "rsrp_index_array", "sinr_index_array",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

N_BINS = 128
THP = "DRB.UEThpDl"
PRB = "RRU.PrbTotDl"
CONN = "RRC.ConnMean"
TXPWR = "CARR.MeanTxPwr"
POWER = "PEE.AvgPower"
KPI_NAMES: tuple[str, ...] = (THP, PRB, CONN, TXPWR, POWER)
RSRP_BIN = "L1M.SS-RSRP.Bin"
SINR_BIN = "MR.NRScSSSINR.Bin"
RSRP_BIN_NAMES: tuple[str, ...] = tuple(f"{RSRP_BIN}{i}" for i in range(N_BINS))
"""``L1M.SS-RSRP.Bin0`` .. ``Bin127``: the PM names of the SS-RSRP histogram, index order."""
SINR_BIN_NAMES: tuple[str, ...] = tuple(f"{SINR_BIN}{i}" for i in range(N_BINS))
"""``MR.NRScSSSINR.Bin0`` .. ``Bin127``: the PM names of the SS-SINR histogram, index order."""


def rsrp_index_array(dbm: npt.ArrayLike) -> IntArray:
    """Vectorised ``twin.schemas.mr.rsrp_index``: round(dBm + 157) clamped to 0..127."""
    return np.clip(np.round(np.asarray(dbm, dtype=np.float64) + 157.0), 0, 127).astype(np.int64)


def sinr_index_array(db: npt.ArrayLike) -> IntArray:
    """Vectorised ``twin.schemas.mr.sinr_index``: round(2 (dB + 23.5)) clamped to 0..127."""
    return np.clip(np.round((np.asarray(db, dtype=np.float64) + 23.5) * 2.0), 0, 127).astype(np.int64)


@dataclass(frozen=True)
class PowerModel:
    """EARTH base-station power model (Auer et al., IEEE Wireless Commun. 2011), per cell.

    Defaults: a macro cell with 2 TX chains, ``P0 = 2 x 130 W``, slope ``dP = 4.7``,
    ``P_sleep = 2 x 75 W``.
    """

    p0_w: float = 260.0
    delta_p: float = 4.7
    p_sleep_w: float = 150.0

    def input_power_w(self, p_out_w: FloatArray, active: npt.NDArray[np.bool_]) -> FloatArray:
        return np.asarray(np.where(active, self.p0_w + self.delta_p * p_out_w, self.p_sleep_w))


@dataclass(frozen=True)
class KpiArrays:
    """KPIs of every cell: ``values[name]`` is [n_cells]; bins are [n_cells, 128] counts."""

    values: dict[str, FloatArray]
    rsrp_bins: FloatArray
    sinr_bins: FloatArray


def cell_kpis(
    n_cells: int,
    serving: IntArray,
    connected: npt.NDArray[np.bool_],
    weight: FloatArray,
    offered_bps: FloatArray,
    rate_bps: FloatArray,
    rho: FloatArray,
    rsrp_dbm: FloatArray,
    ss_sinr_db: FloatArray,
    tx_power_dbm: FloatArray,
    active: npt.NDArray[np.bool_],
    idle: float,
    power_model: PowerModel,
) -> tuple[KpiArrays, FloatArray]:
    """Aggregate per-UE results into per-cell KPIs; also returns UE throughput (bit/s) [n_ues].

    Per-UE inputs are [n_ues] (``serving`` cell index, ``connected`` mask, ``weight`` UEs per
    point, ``offered_bps``, peak ``rate_bps``, ``rsrp_dbm`` and ``ss_sinr_db`` of the serving
    cell); per-cell inputs are [n_cells].
    """
    w = np.where(connected, weight, 0.0)
    conn = np.bincount(serving, weights=w, minlength=n_cells)
    share = np.maximum(1.0 - rho, 1.0 / np.maximum(conn, 1.0))
    thp = rate_bps * share[serving]
    vol = np.where(connected & (thp > 0), w * offered_bps, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ue = np.where(vol > 0, vol / thp, 0.0)
    vol_c = np.bincount(serving, weights=vol, minlength=n_cells)
    time_c = np.bincount(serving, weights=t_ue, minlength=n_cells)
    with np.errstate(divide="ignore", invalid="ignore"):
        thp_c = np.where(time_c > 0, vol_c / time_c / 1e3, 0.0)
    eff = np.where(active, idle + (1.0 - idle) * rho, 0.0)
    p_out_w = 10 ** (tx_power_dbm / 10.0) / 1e3 * eff
    with np.errstate(divide="ignore"):
        mean_tx = np.where(active, tx_power_dbm + 10.0 * np.log10(np.maximum(eff, 1e-12)), np.nan)
    base = serving * N_BINS
    rsrp_bins = np.bincount(base + rsrp_index_array(rsrp_dbm), weights=w, minlength=n_cells * N_BINS)
    sinr_bins = np.bincount(base + sinr_index_array(ss_sinr_db), weights=w, minlength=n_cells * N_BINS)
    values = {
        THP: thp_c,
        PRB: 100.0 * np.where(active, rho, 0.0),
        CONN: conn,
        TXPWR: mean_tx,
        POWER: power_model.input_power_w(p_out_w, active),
    }
    return (
        KpiArrays(
            values,
            np.asarray(rsrp_bins, dtype=np.float64).reshape(n_cells, N_BINS),
            np.asarray(sinr_bins, dtype=np.float64).reshape(n_cells, N_BINS),
        ),
        np.where(connected, thp, 0.0),
    )


def pm_values(kpis: KpiArrays, row: int, bins: bool = True) -> dict[str, float]:
    """One cell's KPIs as a PM ``values`` dict (``ran.pm.cell.v1`` names); non-zero bins only."""
    out = {name: float(arr[row]) for name, arr in kpis.values.items()}
    if bins:
        for i in np.flatnonzero(kpis.rsrp_bins[row]):
            out[RSRP_BIN_NAMES[i]] = float(kpis.rsrp_bins[row, i])
        for i in np.flatnonzero(kpis.sinr_bins[row]):
            out[SINR_BIN_NAMES[i]] = float(kpis.sinr_bins[row, i])
    return out
