"""The Sionna reference: link-table export and a Sionna pipeline for the same cluster.

Needs the ``[sionna]`` extra (``sionna-no-rt`` on PyTorch); everything here imports torch and
Sionna lazily, so ``twin.sim`` itself never needs them.

* :func:`expected_se_per_re` is the link abstraction of ``sionna.sys``: inner-loop link
  adaptation (``InnerLoopLinkAdaptation``, 10 % BLER target) picks the MCS, ``PHYAbstraction``
  gives its transport BLER, and the expected decoded bits per resource element are
  ``(1 - TBLER) TBS / n_RE``.
* :func:`export_link_table` tabulates that on Sionna's SINR grid and writes
  ``twin/sim/data/link_table.json`` (``twin sim export-link-table``).
* :class:`SionnaPipeline` evaluates a cluster with Sionna: the TR 38.901 scenario's basic path
  loss (``UMaScenario`` / ``UMiScenario`` / ``RMaScenario``), the Table 7.3-1 element of
  ``AntennaElement`` in each sector's LCS (rotated with Sionna's own GCS->LCS transform),
  ``geometry_sinr_db``, and the link abstraction above. It is the reference in the tests and
  the peer in ``twin bench sim``.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.sim.propagation import Scenario

__all__ = ["LinkAbstraction", "SionnaPipeline", "expected_se_per_re", "export_link_table", "sionna_available"]

FloatArray = npt.NDArray[np.float64]

#: Reference allocation for the link table: one slot of a 20 MHz carrier at 30 kHz SCS
#: (51 PRB x 12 subcarriers x 12 data symbols).
REF_NUM_RE = 51 * 12 * 12
PDSCH = 1  # Sionna's MCS category of the PDSCH


def sionna_available() -> bool:
    """True when torch and ``sionna.sys`` import."""
    try:
        import sionna.phy
        import sionna.sys  # noqa: F401
    except Exception:
        return False
    return True


def _require() -> None:
    if not sionna_available():
        raise RuntimeError(
            "Sionna is not installed: install the [sionna] extra (torch==2.13.0 first, "
            "then pip install -e '.[sionna]')"
        )


class LinkAbstraction:
    """``sionna.sys`` PHY abstraction + inner-loop link adaptation for the NR PDSCH."""

    def __init__(self, mcs_table: int = 1, bler_target: float = 0.1, precision: str = "single") -> None:
        _require()
        import sionna.sys as ss
        from sionna.phy.nr.utils import MCSDecoderNR, TransportBlockNR

        self.mcs_table = mcs_table
        self.phy = ss.PHYAbstraction(precision=precision)
        self.illa = ss.InnerLoopLinkAdaptation(self.phy, bler_target=bler_target, precision=precision)
        self.decoder = MCSDecoderNR(precision=precision)
        self.tb = TransportBlockNR(precision=precision)

    @property
    def sinr_db_grid(self) -> FloatArray:
        """SINR grid (dB) of Sionna's interpolated BLER tables."""
        return np.asarray(self.phy._snr_dbs_interp, dtype=np.float64)

    def __call__(self, sinr_lin: Any, num_re: int = REF_NUM_RE) -> tuple[Any, Any]:
        """Expected bits per RE and chosen MCS for linear SINRs (torch tensors, shape [n])."""
        import torch

        sinr = torch.as_tensor(sinr_lin, dtype=self.phy.dtype)
        n_re = torch.full(sinr.shape, int(num_re), dtype=torch.int32)
        mcs = self.illa(sinr_eff=sinr, num_allocated_re=n_re, mcs_table_index=self.mcs_table,
                        mcs_category=PDSCH)
        _, _, _, tbler, _ = self.phy(mcs, sinr_eff=sinr, num_allocated_re=n_re,
                                     mcs_table_index=self.mcs_table, mcs_category=PDSCH)
        mod, rate = self.decoder(mcs, self.mcs_table, PDSCH)
        tbs, _, _ = self.tb.transport_block_size(mod, rate, mod * n_re)
        se = (1.0 - tbler.clamp(0.0, 1.0)) * tbs.to(tbler.dtype) / float(num_re)
        return se, mcs


def expected_se_per_re(sinr_lin: npt.ArrayLike, mcs_table: int = 1, num_re: int = REF_NUM_RE) -> FloatArray:
    """Sionna's expected bits per RE at each linear SINR (numpy in, numpy out)."""
    se, _ = LinkAbstraction(mcs_table)(np.asarray(sinr_lin, dtype=np.float64), num_re)
    return np.asarray(se.cpu().numpy(), dtype=np.float64)


def export_link_table(path: Path | None = None, mcs_tables: tuple[int, ...] = (1, 2),
                      num_re: int = REF_NUM_RE) -> dict[str, Any]:
    """Tabulate :func:`expected_se_per_re` on Sionna's SINR grid and write it as JSON."""
    from twin.sim.link import _data_path

    tables: dict[str, Any] = {}
    for t in mcs_tables:
        la = LinkAbstraction(t)
        grid = la.sinr_db_grid
        se, mcs = la(10 ** (grid / 10.0), num_re)
        step = float(np.round(grid[1] - grid[0], 6))
        tables[str(t)] = {
            "sinr_db_min": float(np.round(grid[0], 6)),
            "sinr_db_step": step,
            "se_per_re": [round(float(v), 6) for v in se.cpu().numpy()],
            "mcs": [int(v) for v in mcs.cpu().numpy()],
        }
    doc = {
        "source": "sionna.sys InnerLoopLinkAdaptation + PHYAbstraction (PDSCH), expected (1-TBLER)*TBS/n_RE",
        "sionna_version": version("sionna-no-rt"),
        "generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "bler_target": 0.1,
        "mcs_category": "PDSCH",
        "num_allocated_re": num_re,
        "unit": "bits per resource element",
        "tables": tables,
    }
    out = path or _data_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


class SionnaPipeline:
    """A cluster evaluated with Sionna (no shadowing, outdoor UEs, no wraparound).

    Input
    -----
    scenario: ``"uma"`` | ``"umi"`` | ``"rma"``
    bs_xyz: [n_cells, 3] sector positions (m); ut_xyz: [n_ues, 3] UE positions (m)
    bearing_deg, mech_tilt_deg: [n_cells] sector azimuth (compass bearing) and downtilt
    fc_ghz: carrier frequency; los: [n_cells, n_ues] bool LoS state
    tx_power_dbm: [n_cells]; bandwidth_hz; noise_figure_db
    """

    def __init__(
        self,
        scenario: Scenario,
        bs_xyz: FloatArray,
        ut_xyz: FloatArray,
        bearing_deg: FloatArray,
        mech_tilt_deg: FloatArray,
        fc_ghz: float,
        los: npt.NDArray[np.bool_],
        tx_power_dbm: FloatArray,
        bandwidth_hz: float,
        noise_figure_db: float = 7.0,
        mcs_table: int = 1,
        num_re: int = REF_NUM_RE,
        precision: str = "double",
    ) -> None:
        _require()
        import torch
        from sionna.phy.channel.tr38901 import (
            AntennaElement,
            PanelArray,
            RMaScenario,
            UMaScenario,
            UMiScenario,
        )
        from sionna.phy.channel.tr38901.channel_coefficients import ChannelCoefficientsGenerator

        self.torch = torch
        self.dtype = torch.float64 if precision == "double" else torch.float32
        fc_hz = fc_ghz * 1e9
        kw: dict[str, Any] = {"polarization": "single", "polarization_type": "V", "carrier_frequency": fc_hz,
                              "precision": precision, "num_rows_per_panel": 1, "num_cols_per_panel": 1}
        ut_array = PanelArray(antenna_pattern="omni", **kw)
        bs_array = PanelArray(antenna_pattern="38.901", **kw)
        cls = {"uma": UMaScenario, "umi": UMiScenario, "rma": RMaScenario}[scenario]
        args: dict[str, Any] = {"carrier_frequency": fc_hz, "ut_array": ut_array, "bs_array": bs_array,
                                "direction": "downlink", "enable_shadow_fading": False, "precision": precision}
        if scenario != "rma":
            args["o2i_model"] = "low"
        self.scenario = cls(**args)
        n_bs, n_ut = bs_xyz.shape[0], ut_xyz.shape[0]
        self.orient = torch.zeros(1, n_bs, 3, dtype=self.dtype)
        self.orient[0, :, 0] = torch.as_tensor(np.radians(90.0 - np.asarray(bearing_deg)), dtype=self.dtype)
        self.orient[0, :, 1] = torch.as_tensor(np.radians(np.asarray(mech_tilt_deg)), dtype=self.dtype)
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64)[None], dtype=self.dtype)  # noqa: E731
        extra = {"in_car": torch.zeros(1, n_ut, dtype=torch.bool)} if scenario == "rma" else {}
        self.scenario.set_topology(
            ut_loc=t(ut_xyz), bs_loc=t(bs_xyz), ut_orientations=torch.zeros(1, n_ut, 3, dtype=self.dtype),
            bs_orientations=self.orient, ut_velocities=torch.zeros(1, n_ut, 3, dtype=self.dtype),
            in_state=torch.zeros(1, n_ut, dtype=torch.bool),
            los=torch.as_tensor(np.asarray(los, dtype=bool)[None]), **extra,
        )
        self.element = AntennaElement("38.901", precision=precision)
        self.ccg = ChannelCoefficientsGenerator(fc_hz, bs_array, ut_array, subclustering=False,
                                                precision=precision)
        self.tx_power_dbm = torch.as_tensor(np.asarray(tx_power_dbm, dtype=np.float64), dtype=self.dtype)
        self.bandwidth_hz = float(bandwidth_hz)
        self.noise_figure_db = float(noise_figure_db)
        self.link = LinkAbstraction(mcs_table, precision=precision)
        self.num_re = num_re

    @property
    def basic_pathloss_db(self) -> FloatArray:
        """[n_cells, n_ues] Sionna's basic path loss."""
        return np.asarray(self.scenario.basic_pathloss[0].cpu().numpy(), dtype=np.float64)

    def antenna_gain_db(self, orient: Any) -> Any:
        """[n_cells, n_ues] element gain (dBi) towards each UE for orientations [1, n_cells, 3]."""
        torch = self.torch
        zod = torch.deg2rad(self.scenario.los_zod)[0]
        aod = torch.deg2rad(self.scenario.los_aod)[0]
        th, ph = self.ccg._gcs_to_lcs(orient[0][:, None, :], zod, aod)
        f_th, f_ph = self.element.field(th, ph)
        return 10.0 * torch.log10(f_th**2 + f_ph**2)

    def evaluate(self, orient: Any | None = None, tx_power_dbm: Any | None = None) -> dict[str, Any]:
        """Per-UE serving cell, geometry SINR (dB) and expected bits per RE (torch tensors)."""
        import sionna.sys as ss

        o = self.orient if orient is None else orient
        self.scenario.set_topology(bs_orientations=o)
        cl = (self.scenario.basic_pathloss[0] - self.antenna_gain_db(o)).T  # [n_ues, n_cells]
        p = self.tx_power_dbm if tx_power_dbm is None else tx_power_dbm
        serving = ss.serving_indices(cl - p)
        sinr_db = ss.geometry_sinr_db(cl, p, self.bandwidth_hz, self.noise_figure_db, serving=serving)
        se, mcs = self.link(10 ** (sinr_db / 10.0), self.num_re)
        return {"serving": serving, "sinr_db": sinr_db, "se_per_re": se, "mcs": mcs,
                "coupling_loss_db": cl}

    def tilt(self, cell: int, delta_deg: float) -> Any:
        """Orientations with the downtilt (pitch) of ``cell`` increased by ``delta_deg``."""
        o = self.orient.clone()
        o[0, cell, 1] += math.radians(delta_deg)
        return o
