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
  loss (``UMaScenario`` / ``UMiScenario`` / ``RMaScenario``), optionally its O2I penetration
  loss (``LSPGenerator``'s Table 7.4.3-2 low/high-loss code path) and shadow fading with the
  scenario's own per-link sigma (``lsp_log_std``, LoS/NLoS/O2I), the Table 7.3-1 pattern in each
  sector's LCS (rotated with Sionna's own GCS->LCS transform), ``geometry_sinr_db`` (with each
  interferer's power scaled by its load for the load-coupled SINR), and the link abstraction
  above. It is the reference in the tests and the peer in ``twin bench sim``.

Where Sionna has no knob for what the twin runs, the pipeline takes the twin's parameters into
Sionna's own functions and says so:

* the element pattern: ``AntennaElement("38.901")`` is fixed at 65°/65°/8 dBi, so the pattern
  is Sionna's ``_radiation_pattern_38901_table`` (the function behind it) with the twin's
  beamwidths and maximum gain;
* electrical tilt: Sionna's arrays have no tilt weights, so the vertical pattern is evaluated at
  ``θ' - tilt_e`` in the LCS that Sionna's ``_gcs_to_lcs`` gives for the mechanical tilt (the
  beam of a phase-steered vertical column moves the same way, see the golden tests);
* random draws: LoS states, indoor distances, the O2I normal and the unit shadowing field are
  the twin's (their statistics are compared with Sionna's draws in the golden tests); the
  formulas and sigmas that turn them into dB are Sionna's;
* O2I below 6 GHz: Sionna 2.2 switches UMa/UMi to the "legacy" Table 7.4.3-3 model (20 dB, no
  random part) below 6 GHz; the twin always uses Table 7.4.3-2 low/high loss, so the pipeline
  turns Sionna's legacy switch off (``_use_legacy_o2i_model``) to take the same model.
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

__all__ = [
    "LinkAbstraction", "SionnaPipeline", "expected_se_per_re", "export_link_table", "pattern_db", "sionna_available",
]

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


def pattern_db(theta_rad: Any, phi_rad: Any, v_beamwidth_deg: Any, h_beamwidth_deg: Any,
               max_gain_dbi: Any, sla_v_db: float = 30.0, a_max_db: float = 30.0) -> Any:
    """Sionna's Table 7.3-1 power pattern (dBi) with given beamwidths and gain (torch in and out).

    ``theta_rad``/``phi_rad`` are LCS angles; the parameters broadcast against them.
    """
    import torch
    from sionna.phy.channel.tr38901.antenna import _radiation_pattern_38901_table

    t = lambda v: torch.as_tensor(v, dtype=theta_rad.dtype)  # noqa: E731
    lin = _radiation_pattern_38901_table(theta_rad, phi_rad, t(v_beamwidth_deg), t(h_beamwidth_deg),
                                         sla_v_db, a_max_db, t(max_gain_dbi))
    return 10.0 * torch.log10(lin)


class SionnaPipeline:
    """A cluster evaluated with Sionna, no wraparound.

    Input
    -----
    scenario: ``"uma"`` | ``"umi"`` | ``"rma"``
    bs_xyz: [n_cells, 3] sector positions (m); ut_xyz: [n_ues, 3] UE positions (m)
    bearing_deg, mech_tilt_deg: [n_cells] sector azimuth (compass bearing) and downtilt
    fc_ghz: carrier frequency; los: [n_cells, n_ues] bool LoS state (of the outdoor part)
    tx_power_dbm: [n_cells]; bandwidth_hz; noise_figure_db
    elec_tilt_deg, v_beamwidth_deg, h_beamwidth_deg, max_gain_dbi: [n_cells] or scalars, the
        sector pattern (defaults: Sionna's own 65°/65°/8 dBi element, no electrical tilt)
    indoor: [n_ues] bool (default all outdoor); d2d_in_m: [n_ues] indoor distance (m);
        o2i_model ``"low"`` | ``"high"``; o2i_normal: [n_ues] standard-normal draw of the O2I
        loss (``None``: no O2I loss, only the basic path loss)
    shadow_unit: [n_cells, n_ues] unit-variance shadowing draw per link, scaled by Sionna's
        per-link sigma (``None``: no shadowing)
    spec_version: TR 38.901 tables of Sionna (``"19.2"`` or ``"16.1"``)
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
        *,
        elec_tilt_deg: npt.ArrayLike = 0.0,
        v_beamwidth_deg: npt.ArrayLike = 65.0,
        h_beamwidth_deg: npt.ArrayLike = 65.0,
        max_gain_dbi: npt.ArrayLike = 8.0,
        indoor: npt.NDArray[np.bool_] | None = None,
        d2d_in_m: FloatArray | None = None,
        o2i_model: str = "low",
        o2i_normal: FloatArray | None = None,
        shadow_unit: FloatArray | None = None,
        spec_version: str = "19.2",
    ) -> None:
        _require()
        import torch
        from sionna.phy.channel.tr38901 import (
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
                                "direction": "downlink", "enable_shadow_fading": shadow_unit is not None,
                                "precision": precision, "spec_version": spec_version}
        if scenario != "rma":
            args["o2i_model"] = o2i_model
        self.scenario = cls(**args)
        # the twin's indoor distance is per UT (Table 7.4.3-2); Sionna's legacy <6 GHz one is per link
        self.scenario._legacy_o2i_indoor_distance = False
        n_bs, n_ut = bs_xyz.shape[0], ut_xyz.shape[0]
        self.orient = torch.zeros(1, n_bs, 3, dtype=self.dtype)
        self.orient[0, :, 0] = torch.as_tensor(np.radians(90.0 - np.asarray(bearing_deg)), dtype=self.dtype)
        self.orient[0, :, 1] = torch.as_tensor(np.radians(np.asarray(mech_tilt_deg)), dtype=self.dtype)
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64)[None], dtype=self.dtype)  # noqa: E731
        ind = np.zeros(n_ut, dtype=bool) if indoor is None else np.asarray(indoor, dtype=bool)
        extra: dict[str, Any] = {"in_car": torch.zeros(1, n_ut, dtype=torch.bool)} if scenario == "rma" else {}
        if d2d_in_m is not None:
            extra["distance_2d_in"] = t(d2d_in_m)
        self.scenario.set_topology(
            ut_loc=t(ut_xyz), bs_loc=t(bs_xyz), ut_orientations=torch.zeros(1, n_ut, 3, dtype=self.dtype),
            bs_orientations=self.orient, ut_velocities=torch.zeros(1, n_ut, 3, dtype=self.dtype),
            in_state=torch.as_tensor(ind[None]),
            los=torch.as_tensor(np.asarray(los, dtype=bool)[None]), **extra,
        )
        col = lambda a: torch.as_tensor(  # noqa: E731
            np.broadcast_to(np.asarray(a, dtype=np.float64), (n_bs,))[:, None].copy(), dtype=self.dtype)
        self.elec_tilt = col(elec_tilt_deg)
        self.v_bw, self.h_bw, self.g_max = col(v_beamwidth_deg), col(h_beamwidth_deg), col(max_gain_dbi)
        self.ccg = ChannelCoefficientsGenerator(fc_hz, bs_array, ut_array, subclustering=False,
                                                precision=precision)
        self.loss_db = self._loss(o2i_normal, shadow_unit)
        self.tx_power_dbm = torch.as_tensor(np.asarray(tx_power_dbm, dtype=np.float64), dtype=self.dtype)
        self.bandwidth_hz = float(bandwidth_hz)
        self.noise_figure_db = float(noise_figure_db)
        self.link = LinkAbstraction(mcs_table, precision=precision)
        self.num_re = num_re

    def _loss(self, o2i_normal: FloatArray | None, shadow_unit: FloatArray | None) -> Any:
        """[n_cells, n_ues] loss (dB) without antenna: basic path loss [+ O2I] [+ shadow fading]."""
        torch = self.torch
        from sionna.phy.channel.tr38901 import LSPGenerator

        loss = self.scenario.basic_pathloss[0]
        if o2i_normal is not None:
            lsp = LSPGenerator(self.scenario)
            lsp._use_legacy_o2i_model = False  # Table 7.4.3-2 at every frequency, as the twin
            z = torch.as_tensor(np.asarray(o2i_normal, dtype=np.float64), dtype=self.dtype)
            n_bs = loss.shape[0]
            lsp._sample_o2i_penetration_random = (
                lambda stddev: (stddev * z)[None, None, :].expand(1, n_bs, -1))
            loss = lsp.sample_pathloss()[0]
        if shadow_unit is not None:
            sigma_db = 10.0 * self.scenario.lsp_log_std[0, :, :, 3]
            loss = loss + sigma_db * torch.as_tensor(np.asarray(shadow_unit, dtype=np.float64), dtype=self.dtype)
        return loss

    @property
    def basic_pathloss_db(self) -> FloatArray:
        """[n_cells, n_ues] Sionna's basic path loss."""
        return np.asarray(self.scenario.basic_pathloss[0].cpu().numpy(), dtype=np.float64)

    def antenna_gain_db(self, orient: Any, elec_tilt_deg: Any | None = None) -> Any:
        """[n_cells, n_ues] sector gain (dBi) towards each UE for orientations [1, n_cells, 3]."""
        torch = self.torch
        zod = torch.deg2rad(self.scenario.los_zod)[0]
        aod = torch.deg2rad(self.scenario.los_aod)[0]
        th, ph = self.ccg._gcs_to_lcs(orient[0][:, None, :], zod, aod)
        tilt = self.elec_tilt if elec_tilt_deg is None else elec_tilt_deg
        return pattern_db(th - torch.deg2rad(tilt), ph, self.v_bw, self.h_bw, self.g_max)

    def coupling_loss_db(self, orient: Any | None = None, elec_tilt_deg: Any | None = None) -> Any:
        """[n_ues, n_cells] coupling loss (loss minus antenna gain), as ``sionna.sys`` takes it."""
        o = self.orient if orient is None else orient
        self.scenario.set_topology(bs_orientations=o)
        return (self.loss_db - self.antenna_gain_db(o, elec_tilt_deg)).T

    def evaluate(self, orient: Any | None = None, tx_power_dbm: Any | None = None,
                 elec_tilt_deg: Any | None = None) -> dict[str, Any]:
        """Per-UE serving cell, geometry SINR (dB) and expected bits per RE (torch tensors)."""
        import sionna.sys as ss

        cl = self.coupling_loss_db(orient, elec_tilt_deg)
        p = self.tx_power_dbm if tx_power_dbm is None else tx_power_dbm
        serving = ss.serving_indices(cl - p)
        sinr_db = ss.geometry_sinr_db(cl, p, self.bandwidth_hz, self.noise_figure_db, serving=serving)
        se, mcs = self.link(10 ** (sinr_db / 10.0), self.num_re)
        return {"serving": serving, "sinr_db": sinr_db, "se_per_re": se, "mcs": mcs,
                "coupling_loss_db": cl}

    def loaded_sinr_db(self, cl: Any, serving: Any, eff_load: Any, tx_power_dbm: Any | None = None) -> Any:
        """SINR (dB) with every interferer ``k`` radiating the share ``eff_load[k]`` of its power.

        ``sionna.sys.geometry_sinr_db`` with a per-UE transmit power matrix: interferers at
        ``P_k + 10 log10(eff_load[k])``, the serving cell at its full ``P_s`` (it sends the UE's
        resources at full power). ``eff_load`` 0 removes a cell (``-inf`` dBm).
        """
        import sionna.sys as ss

        torch = self.torch
        p = self.tx_power_dbm if tx_power_dbm is None else tx_power_dbm
        eff = torch.as_tensor(eff_load, dtype=self.dtype)
        p_int = (p + 10.0 * torch.log10(eff)).expand(cl.shape[0], -1).clone()
        p_int.scatter_(1, serving[:, None], p[serving][:, None])
        return ss.geometry_sinr_db(cl, p_int, self.bandwidth_hz, self.noise_figure_db, serving=serving)

    def solve_load(
        self,
        cl: Any,
        serving: Any,
        served: Any,
        offered_bps: Any,
        rate_per_se: Any,
        rho0: Any,
        idle: float = 0.1,
        tol: float = 1e-4,
        max_iter: int = 200,
    ) -> dict[str, Any]:
        """The load-coupling fixed point with Sionna's SINR and link abstraction at each step.

        ``rho <- min(1, sum_{u in c} offered_u / (SE_Sionna(SINR_u(rho)) rate_per_se_u))`` with
        :meth:`loaded_sinr_db` and ``rho' = idle + (1 - idle) rho``, from ``rho0`` until
        ``max |rho_new - rho| < tol``: the iteration of ``twin.sim.radio.solve_load``, every
        radio and link quantity in it computed by Sionna. Tensors in, tensors out.

        Sionna's SE is constant between MCS switches, so the map is a step function and the
        iteration can cycle (UEs at a switch flip each other's MCS); it stops when ``rho_new``
        repeats the loads of one of the 8 steps before within ``tol`` (``cycled``, not
        ``converged``).
        """
        torch = self.torch
        n_cells = cl.shape[1]
        rho = torch.as_tensor(rho0, dtype=self.dtype).clamp(0.0, 1.0)
        offered = torch.where(served, torch.as_tensor(offered_bps, dtype=self.dtype), 0.0)
        rps = torch.as_tensor(rate_per_se, dtype=self.dtype)
        sinr_db = rate = torch.zeros(cl.shape[0], dtype=self.dtype)
        residual, it, cycled = math.inf, 0, False
        seen: list[Any] = []
        for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported
            sinr_db = self.loaded_sinr_db(cl, serving, idle + (1.0 - idle) * rho)
            se, _ = self.link(10 ** (sinr_db / 10.0), self.num_re)
            rate = se * rps
            need = torch.where(offered > 0, offered / rate, torch.zeros_like(rate))
            need = torch.where(torch.isfinite(need), need, torch.full_like(need, 1e9))
            new = torch.zeros(n_cells, dtype=self.dtype).index_add_(0, serving, need).clamp(max=1.0)
            residual = float((new - rho).abs().max())
            cycled = residual >= tol and any(float((new - old).abs().max()) < tol for old in seen)
            seen = [*seen[-7:], rho]
            rho = new
            if residual < tol or cycled:
                break
        return {"rho": rho, "sinr_db": sinr_db, "rate_bps": torch.where(served, rate, 0.0),
                "iterations": it, "converged": residual < tol, "cycled": cycled}

    def tilt(self, cell: int, delta_deg: float) -> Any:
        """Orientations with the downtilt (pitch) of ``cell`` increased by ``delta_deg``."""
        o = self.orient.clone()
        o[0, cell, 1] += math.radians(delta_deg)
        return o

    def elec_tilt_with(self, cell: int, tilt_deg: float) -> Any:
        """[n_cells, 1] electrical tilts with ``cell``'s set to ``tilt_deg``."""
        t = self.elec_tilt.clone()
        t[cell, 0] = tilt_deg
        return t


def pipeline_for_simulator(sim: Any, precision: str = "double") -> SionnaPipeline:
    """A :class:`SionnaPipeline` of a ``twin.sim.Simulator``'s cluster, UEs and random draws.

    The same sectors (positions, bearings, mechanical and electrical tilts, beamwidths, gains,
    powers), UEs (positions, indoor state), and, when the simulator runs the statistical 38.901
    model, its LoS states, indoor distances, O2I normals and unit shadowing fields (Sionna's
    formulas and sigmas turn them into dB). One carrier (the first sector's) for all cells.
    """
    from twin.sim.propagation import StatisticalPropagation

    cells = sim.cluster.sectors
    rows = np.arange(len(cells), dtype=np.int64)
    prop = sim.propagation
    cfg = sim.config
    kw: dict[str, Any] = {}
    if isinstance(prop, StatisticalPropagation):
        los = prop.link_los(rows, sim._d2d)
        kw = {"indoor": prop.indoor, "d2d_in_m": prop.d2d_in_m, "o2i_model": prop.o2i_model,
              "o2i_normal": prop.o2i_normal if prop.indoor.any() else None,
              "shadow_unit": prop.shadow_unit(rows, los) if prop.shadowing else None}
    else:
        raise ValueError(f"the Sionna reference needs the statistical 38.901 model, not {type(prop).__name__}")
    return SionnaPipeline(
        sim.cluster.scenario,
        np.array([[s.x_m, s.y_m, s.height_m] for s in cells]),
        np.stack([sim.ues.x_m, sim.ues.y_m, sim.ues.h_m], axis=1),
        np.array([s.azimuth_deg for s in cells]),
        np.array([s.mech_tilt_deg for s in cells]),
        cells[0].fc_ghz,
        los,
        np.array([s.tx_power_dbm for s in cells]),
        cells[0].bandwidth_mhz * 1e6,
        cfg.noise_figure_db,
        mcs_table=cfg.mcs_table,
        precision=precision,
        elec_tilt_deg=np.array([s.elec_tilt_deg for s in cells]),
        v_beamwidth_deg=np.array([s.v_beamwidth_deg for s in cells]),
        h_beamwidth_deg=np.array([s.h_beamwidth_deg for s in cells]),
        max_gain_dbi=np.array([s.max_gain_dbi for s in cells]),
        **kw,
    )


def evaluate_loaded(pipe: SionnaPipeline, sim: Any, rho0: Any, elec_tilt_deg: Any | None = None,
                    tol: float | None = None) -> dict[str, Any]:
    """The simulator's whole radio evaluation done by Sionna: association, geometry (SS) SINR,
    connection criteria and the load-coupled fixed point from ``rho0``.

    Traffic (UEs per point times offered load), the RE rate of the numerology, the connection
    thresholds, ``idle_load`` and the fixed point's ``tol`` are the simulator's; every radio and
    link quantity is Sionna's (``serving_indices``, ``geometry_sinr_db``, ``PHYAbstraction``).
    Returns torch tensors: serving, ss_sinr_db, connected, rho, sinr_db, rate_bps, iterations.
    """
    import sionna.sys as ss
    import torch

    from twin.sim.link import n_prb, re_per_second

    cfg = sim.config
    sec = sim.cluster.sectors[0]
    cl = pipe.coupling_loss_db(None, elec_tilt_deg)
    p = pipe.tx_power_dbm
    serving = ss.serving_indices(cl - p)
    ss_sinr_db = ss.geometry_sinr_db(cl, p, pipe.bandwidth_hz, pipe.noise_figure_db, serving=serving)
    se, _ = pipe.link(10 ** (ss_sinr_db / 10.0), pipe.num_re)
    rate_per_se = re_per_second(sec.bandwidth_mhz, sec.scs_khz) * cfg.layers
    p_re = p - 10.0 * math.log10(12.0 * n_prb(sec.bandwidth_mhz, sec.scs_khz))
    rsrp = p_re[serving] - cl.gather(1, serving[:, None])[:, 0]
    connected = (rsrp >= cfg.min_rsrp_dbm) & (ss_sinr_db >= cfg.min_ss_sinr_db) & (
        se * rate_per_se >= cfg.min_peak_rate_bps)
    st = sim._state
    offered = torch.as_tensor(st.weight * st.demand, dtype=pipe.dtype)
    sol = pipe.solve_load(cl, serving, connected, offered, torch.full_like(offered, rate_per_se), rho0,
                          idle=cfg.idle_load, tol=cfg.tol if tol is None else tol, max_iter=cfg.max_iter)
    return {"serving": serving, "ss_sinr_db": ss_sinr_db, "connected": connected, "coupling_loss_db": cl, **sol}
