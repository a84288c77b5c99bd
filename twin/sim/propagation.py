"""Large-scale propagation of 3GPP TR 38.901 §7.4: path loss, LoS probability, shadowing, O2I.

All functions are vectorised over numpy arrays (broadcasting like numpy) and use float64.
Distances are in metres, frequencies in GHz, losses in dB.

* :func:`pathloss_db` is Table 7.4.1-1 (UMa, UMi-Street Canyon, RMa), LoS and NLoS, with the
  breakpoint distance and the NLoS rule ``PL_NLOS = max(PL_LOS, PL'_NLOS)``.
* :func:`los_probability` is Table 7.4.2-1.
* :func:`o2i_loss_db` is the outdoor-to-indoor building penetration loss of §7.4.3.1.
* :class:`CorrelatedShadowing` draws log-normal shadow fading that is spatially correlated
  (exponential correlation, Table 7.5-6 distances) and identical for the same site-UE pair
  every time it is evaluated, so a what-if never re-draws it.
* :class:`PropagationModel` is the pluggable interface the simulator uses; the statistical
  38.901 model is :class:`StatisticalPropagation` and a precomputed per-cell loss grid (for
  instance from ray tracing) can be plugged in through :class:`PrecomputedPropagation`.

>>> float(pathloss_db("uma", 100.0, 25.0, 1.5, 3.5, True).round(2))
83.14
>>> float(los_probability("umi", 18.0, 1.5))
1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, cast, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "SCENARIOS", "SHADOW_CORR_M", "SHADOW_O2I", "SHADOW_SIGMA_DB", "SPEED_OF_LIGHT", "CorrelatedShadowing",
    "LinkGeometry", "PrecomputedPropagation", "PropagationModel", "Scenario", "StatisticalPropagation",
    "breakpoint_distance_m", "los_probability", "o2i_loss_db", "pathloss_db", "shadow_sigma_db",
]

Scenario = Literal["uma", "umi", "rma"]
SCENARIOS: tuple[str, ...] = ("uma", "umi", "rma")

SPEED_OF_LIGHT = 299_792_458.0  # m/s, the value Sionna uses

#: RMa defaults of TR 38.901 Table 7.4.1-1 (average street width W and building height h)
RMA_STREET_WIDTH_M = 20.0
RMA_BUILDING_HEIGHT_M = 5.0

#: Shadow-fading standard deviation (dB), Table 7.4.1-1: (LoS, NLoS). RMa LoS is 4 dB before
#: the breakpoint and 6 dB after it; :func:`shadow_sigma_db` applies that.
SHADOW_SIGMA_DB: dict[str, tuple[float, float]] = {"uma": (4.0, 6.0), "umi": (4.0, 7.82), "rma": (4.0, 8.0)}
#: Shadow-fading correlation distance (m), Table 7.5-6: (LoS, NLoS).
SHADOW_CORR_M: dict[str, tuple[float, float]] = {"uma": (37.0, 50.0), "umi": (10.0, 13.0), "rma": (37.0, 120.0)}
#: Shadow fading of O2I links (indoor UEs), Table 7.5-6 "O2I" columns: (sigma dB, correlation m).
#: An indoor link is shadowed with these whatever the LoS state of its outdoor part.
SHADOW_O2I: dict[str, tuple[float, float]] = {"uma": (7.0, 7.0), "umi": (7.0, 7.0), "rma": (8.0, 120.0)}

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike


def _scenario(scenario: str) -> Scenario:
    s = str(scenario).lower()
    if s not in SCENARIOS:
        raise ValueError(f"scenario {scenario!r} is not one of {', '.join(SCENARIOS)}")
    return cast(Scenario, s)


def _check_positive(name: str, value: FloatArray) -> None:
    if np.any(~np.isfinite(value)) or np.any(value <= 0):
        bad = value[~(np.isfinite(value) & (value > 0))].ravel()[0]
        raise ValueError(f"{name} must be finite and > 0, got {bad}")


def breakpoint_distance_m(
    scenario: Scenario, h_bs_m: ArrayLike, h_ut_m: ArrayLike, fc_ghz: ArrayLike, h_e_m: float = 1.0
) -> FloatArray:
    """Breakpoint distance (m), note 1 of Table 7.4.1-1.

    UMa/UMi use the effective antenna heights ``h - h_E`` with ``h_E = 1 m``; RMa uses
    ``2 pi h_BS h_UT f_c / c``.

    >>> float(breakpoint_distance_m("umi", 10.0, 1.5, 3.5).round(1))
    210.1
    """
    s = _scenario(scenario)
    h_bs = np.asarray(h_bs_m, dtype=np.float64)
    h_ut = np.asarray(h_ut_m, dtype=np.float64)
    fc_hz = np.asarray(fc_ghz, dtype=np.float64) * 1e9
    if s == "rma":
        return np.asarray(2.0 * np.pi * h_bs * h_ut * fc_hz / SPEED_OF_LIGHT)
    return np.asarray(4.0 * (h_bs - h_e_m) * (h_ut - h_e_m) * fc_hz / SPEED_OF_LIGHT)


def _rma_pl1(d3d: FloatArray, fc: FloatArray, h: float) -> FloatArray:
    return np.asarray(
        20.0 * np.log10(40.0 * np.pi * d3d * fc / 3.0)
        + min(0.03 * h**1.72, 10.0) * np.log10(d3d)
        - min(0.044 * h**1.72, 14.77)
        + 0.002 * np.log10(h) * d3d
    )


def pathloss_db(
    scenario: Scenario,
    d2d_m: ArrayLike,
    h_bs_m: ArrayLike,
    h_ut_m: ArrayLike,
    fc_ghz: ArrayLike,
    los: ArrayLike,
) -> FloatArray:
    """Basic path loss (dB) of TR 38.901 Table 7.4.1-1, without shadowing or O2I loss.

    Input
    -----
    scenario: ``"uma"``, ``"umi"`` (street canyon) or ``"rma"``
    d2d_m: [...] horizontal BS-UT distance (m)
    h_bs_m: [...] BS antenna height (m)
    h_ut_m: [...] UT antenna height (m)
    fc_ghz: [...] carrier frequency (GHz)
    los: [...] bool, line of sight

    Output
    ------
    [...] float64 path loss (dB), the broadcast shape of the inputs.

    UMa and UMi use the effective environment height ``h_E = 1 m`` (for UMa this is the case
    ``h_UT < 13 m``; above that 38.901 draws ``h_E`` at random and this function keeps 1 m).
    RMa uses ``W = 20 m`` and ``h = 5 m``. NLoS is ``max(PL_LoS, PL'_NLoS)``.

    >>> pathloss_db("umi", np.array([50.0, 500.0]), 10.0, 1.5, 3.5, False).round(2)
    array([ 94.18, 129.26])
    >>> bool(pathloss_db("rma", 2000.0, 35.0, 1.5, 0.7, False) > pathloss_db("rma", 2000.0, 35.0, 1.5, 0.7, True))
    True
    """
    s = _scenario(scenario)
    d2d, h_bs, h_ut, fc, los_b = np.broadcast_arrays(
        np.asarray(d2d_m, dtype=np.float64),
        np.asarray(h_bs_m, dtype=np.float64),
        np.asarray(h_ut_m, dtype=np.float64),
        np.asarray(fc_ghz, dtype=np.float64),
        np.asarray(los, dtype=bool),
    )
    _check_positive("fc_ghz", fc)
    _check_positive("h_bs_m", h_bs)
    _check_positive("h_ut_m", h_ut)
    d3d = np.sqrt(d2d**2 + (h_bs - h_ut) ** 2)
    _check_positive("3D distance (m)", d3d)
    log_fc = np.log10(fc)
    log_d3d = np.log10(d3d)
    d_bp = breakpoint_distance_m(s, h_bs, h_ut, fc)
    if s == "uma":
        pl1 = 28.0 + 22.0 * log_d3d + 20.0 * log_fc
        pl2 = 28.0 + 40.0 * log_d3d + 20.0 * log_fc - 9.0 * np.log10(d_bp**2 + (h_bs - h_ut) ** 2)
        pl_los = np.where(d2d < d_bp, pl1, pl2)
        pl_nlos_prime = 13.54 + 39.08 * log_d3d + 20.0 * log_fc - 0.6 * (h_ut - 1.5)
    elif s == "umi":
        pl1 = 32.4 + 21.0 * log_d3d + 20.0 * log_fc
        pl2 = 32.4 + 40.0 * log_d3d + 20.0 * log_fc - 9.5 * np.log10(d_bp**2 + (h_bs - h_ut) ** 2)
        pl_los = np.where(d2d < d_bp, pl1, pl2)
        pl_nlos_prime = 35.3 * log_d3d + 22.4 + 21.3 * log_fc - 0.3 * (h_ut - 1.5)
    else:
        h, w = RMA_BUILDING_HEIGHT_M, RMA_STREET_WIDTH_M
        pl1 = _rma_pl1(d3d, fc, h)
        pl2 = _rma_pl1(d_bp, fc, h) + 40.0 * np.log10(d3d / d_bp)
        pl_los = np.where(d2d < d_bp, pl1, pl2)
        pl_nlos_prime = (
            161.04
            - 7.1 * np.log10(w)
            + 7.5 * np.log10(h)
            - (24.37 - 3.7 * (h / h_bs) ** 2) * np.log10(h_bs)
            + (43.42 - 3.1 * np.log10(h_bs)) * (log_d3d - 3.0)
            + 20.0 * log_fc
            - (3.2 * np.log10(11.75 * h_ut) ** 2 - 4.97)
        )
    pl_nlos = np.maximum(pl_los, pl_nlos_prime)
    return np.asarray(np.where(los_b, pl_los, pl_nlos), dtype=np.float64)


def los_probability(scenario: Scenario, d2d_m: ArrayLike, h_ut_m: ArrayLike) -> FloatArray:
    """LoS probability of TR 38.901 Table 7.4.2-1 (outdoor distance ``d2d_m`` in m).

    Input
    -----
    scenario: ``"uma"``, ``"umi"`` or ``"rma"``
    d2d_m: [...] horizontal (outdoor) BS-UT distance (m)
    h_ut_m: [...] UT height (m); used by UMa only

    Output
    ------
    [...] float64 probability in [0, 1].

    >>> los_probability("uma", np.array([10.0, 100.0, 1000.0]), 1.5).round(4)
    array([1.    , 0.3477, 0.018 ])
    >>> float(los_probability("rma", 1010.0, 1.5).round(4))
    0.3679
    """
    s = _scenario(scenario)
    d, h_ut = np.broadcast_arrays(np.asarray(d2d_m, dtype=np.float64), np.asarray(h_ut_m, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        if s == "uma":
            c = np.where(h_ut < 13.0, 0.0, np.abs((h_ut - 13.0) / 10.0) ** 1.5)
            p = (18.0 / d + np.exp(-d / 63.0) * (1.0 - 18.0 / d)) * (
                1.0 + c * 1.25 * (d / 100.0) ** 3 * np.exp(-d / 150.0)
            )
            p = np.where(d <= 18.0, 1.0, p)
        elif s == "umi":
            p = np.where(d <= 18.0, 1.0, 18.0 / d + np.exp(-d / 36.0) * (1.0 - 18.0 / d))
        else:
            p = np.where(d <= 10.0, 1.0, np.exp(-(d - 10.0) / 1000.0))
    return np.asarray(np.clip(p, 0.0, 1.0), dtype=np.float64)


def shadow_sigma_db(scenario: Scenario, los: ArrayLike, beyond_breakpoint: ArrayLike = False) -> FloatArray:
    """Shadow-fading standard deviation (dB) of Table 7.4.1-1.

    >>> shadow_sigma_db("rma", np.array([True, True, False]), np.array([False, True, False]))
    array([4., 6., 8.])
    """
    s = _scenario(scenario)
    los_b, beyond = np.broadcast_arrays(np.asarray(los, dtype=bool), np.asarray(beyond_breakpoint, dtype=bool))
    sigma_los, sigma_nlos = SHADOW_SIGMA_DB[s]
    sig_los = np.where(beyond, 6.0, sigma_los) if s == "rma" else np.full(los_b.shape, sigma_los)
    return np.asarray(np.where(los_b, sig_los, sigma_nlos), dtype=np.float64)


def o2i_loss_db(
    fc_ghz: ArrayLike,
    d2d_in_m: ArrayLike,
    model: Literal["low", "high"] = "low",
    std_normal: ArrayLike = 0.0,
) -> FloatArray:
    """Outdoor-to-indoor penetration loss (dB) of TR 38.901 §7.4.3.1 (Table 7.4.3-2).

    ``PL_tw + 0.5 d2d_in + sigma_P * std_normal`` with the low-loss model (30 % glass, 70 %
    concrete, sigma_P 4.4 dB) or the high-loss model (70 % IRR glass, sigma_P 6.5 dB).
    ``std_normal`` is a standard-normal draw per UE, so the loss is reproducible.

    >>> float(o2i_loss_db(3.5, 0.0, "low").round(2))
    12.7
    """
    fc = np.asarray(fc_ghz, dtype=np.float64)
    d_in = np.asarray(d2d_in_m, dtype=np.float64)
    z = np.asarray(std_normal, dtype=np.float64)
    l_concrete = 5.0 + 4.0 * fc
    if model == "low":
        l_glass = 2.0 + 0.2 * fc
        pl_tw = 5.0 - 10.0 * np.log10(0.3 * 10 ** (-l_glass / 10.0) + 0.7 * 10 ** (-l_concrete / 10.0))
        sigma = 4.4
    elif model == "high":
        l_irr = 23.0 + 0.3 * fc
        pl_tw = 5.0 - 10.0 * np.log10(0.7 * 10 ** (-l_irr / 10.0) + 0.3 * 10 ** (-l_concrete / 10.0))
        sigma = 6.5
    else:
        raise ValueError(f"O2I model {model!r} is not 'low' or 'high'")
    return np.asarray(pl_tw + 0.5 * d_in + sigma * z, dtype=np.float64)


class CorrelatedShadowing:
    """Unit-variance Gaussian fields, one per site, with exponential spatial correlation.

    Each field is a sum of ``n_waves`` random plane waves whose wave numbers follow the 2D
    spectrum of ``exp(-d / corr_m)``; evaluating the same position of the same site always
    returns the same value, and two UEs ``d`` metres apart are correlated ``~exp(-d / corr_m)``.

    >>> sh = CorrelatedShadowing(n_sites=2, corr_m=50.0, seed=1)
    >>> a = sh.sample(np.array([0, 1]), np.array([10.0, 10.0]), np.array([5.0, 5.0]))
    >>> b = sh.sample(np.array([0, 1]), np.array([10.0, 10.0]), np.array([5.0, 5.0]))
    >>> bool(np.array_equal(a, b)), a.shape
    (True, (2,))
    """

    def __init__(self, n_sites: int, corr_m: float, seed: int | Sequence[int], n_waves: int = 48) -> None:
        if corr_m <= 0:
            raise ValueError(f"shadowing correlation distance must be > 0 m, got {corr_m}")
        rng = np.random.default_rng(seed)
        u = rng.random((n_sites, n_waves))
        # radial CDF of the 2D spectrum of exp(-d/L): F(k) = 1 - 1/sqrt(1 + (kL)^2)
        k = np.sqrt(np.maximum((1.0 - u) ** -2 - 1.0, 0.0)) / corr_m
        ang = rng.uniform(0.0, 2.0 * np.pi, (n_sites, n_waves))
        self.kx = k * np.cos(ang)
        self.ky = k * np.sin(ang)
        self.phase = rng.uniform(0.0, 2.0 * np.pi, (n_sites, n_waves))
        self.scale = np.sqrt(2.0 / n_waves)

    def sample(self, site: npt.NDArray[np.int_], x_m: FloatArray, y_m: FloatArray) -> FloatArray:
        """Field value of ``site[i]`` at ``(x_m[i], y_m[i])``; all inputs broadcast to [...]."""
        site_b, x, y = np.broadcast_arrays(np.asarray(site), np.asarray(x_m, float), np.asarray(y_m, float))
        arg = (
            self.kx[site_b] * x[..., None] + self.ky[site_b] * y[..., None] + self.phase[site_b]
        )
        return np.asarray(self.scale * np.cos(arg).sum(axis=-1), dtype=np.float64)

    def grid(self, x_m: FloatArray, y_m: FloatArray) -> FloatArray:
        """Values of every site at every point: [n_sites, n_points]."""
        out = np.empty((self.kx.shape[0], np.asarray(x_m).size))
        x = np.asarray(x_m, float).ravel()
        y = np.asarray(y_m, float).ravel()
        for s in range(self.kx.shape[0]):
            arg = np.outer(x, self.kx[s]) + np.outer(y, self.ky[s]) + self.phase[s]
            out[s] = self.scale * np.cos(arg).sum(axis=1)
        return out


@dataclass(frozen=True)
class LinkGeometry:
    """Geometry of every cell-UE link, independent of any CM change that keeps sites in place.

    Shapes: ``d2d_m``, ``d3d_m``, ``azimuth_deg`` (direction BS->UE, math angle from +x,
    counter-clockwise) and ``zenith_deg`` (0 = straight up, 90 = horizon) are [n_cells, n_ues].
    """

    d2d_m: FloatArray
    d3d_m: FloatArray
    azimuth_deg: FloatArray
    zenith_deg: FloatArray


@runtime_checkable
class PropagationModel(Protocol):
    """Pluggable large-scale propagation: the loss (dB) of the cells ``rows`` to every UE.

    Input
    -----
    rows: [R] global cell indices (the model's identity of each cell, e.g. for its site)
    geometry: link geometry of those cells, each array [R, n_ues]
    h_bs_m, fc_ghz: [R] antenna height (m) and carrier frequency (GHz) of those cells

    Output
    ------
    [R, n_ues] loss (dB) including everything except the BS antenna pattern (path loss,
    shadowing, penetration), unless ``includes_antenna`` is true, in which case the simulator
    takes the values as the whole coupling loss (e.g. a ray-traced radio map computed with
    the real antenna).
    """

    includes_antenna: bool

    def loss_db(
        self,
        rows: npt.NDArray[np.int_],
        geometry: LinkGeometry,
        h_bs_m: FloatArray,
        fc_ghz: FloatArray,
    ) -> FloatArray: ...


class StatisticalPropagation:
    """TR 38.901 path loss + LoS draws + correlated shadowing + O2I for fixed UEs.

    Everything random is drawn once at construction from ``seed`` (LoS uniforms per site-UE
    pair, shadowing fields per site, indoor depth and O2I normal per UE), so calling
    :meth:`loss_db` again for a changed cell reproduces the same randomness.

    Input
    -----
    scenario: ``"uma"`` | ``"umi"`` | ``"rma"``
    site_of_cell: [n_cells] int site index (co-sited sectors share LoS and shadowing)
    ue_x_m, ue_y_m, ue_h_m: [n_ues] UE position (m)
    indoor: [n_ues] bool
    seed: int, or a sequence of ints (``SeedSequence`` entropy)
    shadowing: draw log-normal shadow fading (``False`` gives the median path loss)
    o2i_model: ``"low"`` | ``"high"``
    los: ``None`` to draw LoS per site-UE pair, or a forced [n_sites, n_ues] bool array
    """

    includes_antenna = False

    def __init__(
        self,
        scenario: Scenario,
        site_of_cell: npt.NDArray[np.int_],
        ue_x_m: FloatArray,
        ue_y_m: FloatArray,
        ue_h_m: FloatArray,
        indoor: npt.NDArray[np.bool_],
        seed: int | Sequence[int] = 0,
        shadowing: bool = True,
        o2i_model: Literal["low", "high"] = "low",
        los: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        self.scenario = _scenario(scenario)
        self.site_of_cell = np.asarray(site_of_cell, dtype=np.int64)
        self.n_sites = int(self.site_of_cell.max()) + 1 if self.site_of_cell.size else 0
        self.ue_h_m = np.asarray(ue_h_m, dtype=np.float64)
        self.indoor = np.asarray(indoor, dtype=bool)
        n_ues = self.ue_h_m.size
        base = [seed] if isinstance(seed, int) else list(seed)
        rng = np.random.default_rng([*base, 38901])
        self.los_uniform = rng.random((self.n_sites, n_ues))
        self.forced_los = None if los is None else np.asarray(los, dtype=bool)
        # d_2D-in: the minimum of two uniform draws in 0..25 m (UMa, UMi) or 0..10 m (RMa), per UT
        # (note to Table 7.4.3-2; Sionna draws it the same way)
        d_max = 10.0 if self.scenario == "rma" else 25.0
        d_in = rng.uniform(0.0, d_max, (2, n_ues))
        self.d2d_in_m = np.where(self.indoor, d_in.min(axis=0), 0.0)
        self.o2i_normal = rng.standard_normal(n_ues)
        self.o2i_model: Literal["low", "high"] = o2i_model
        self.shadowing = shadowing
        if shadowing and self.n_sites:
            corr_los, corr_nlos = SHADOW_CORR_M[self.scenario]
            f_los = CorrelatedShadowing(self.n_sites, corr_los, [*base, 1, 7])
            f_nlos = CorrelatedShadowing(self.n_sites, corr_nlos, [*base, 2, 7])
            x = np.asarray(ue_x_m, dtype=np.float64)
            y = np.asarray(ue_y_m, dtype=np.float64)
            self.shadow_los = f_los.grid(x, y)
            self.shadow_nlos = f_nlos.grid(x, y)
            self.shadow_o2i = np.zeros((self.n_sites, n_ues))
            if self.indoor.any():
                f_o2i = CorrelatedShadowing(self.n_sites, SHADOW_O2I[self.scenario][1], [*base, 3, 7])
                self.shadow_o2i[:, self.indoor] = f_o2i.grid(x[self.indoor], y[self.indoor])
        else:
            self.shadow_los = self.shadow_nlos = self.shadow_o2i = np.zeros((self.n_sites, n_ues))

    def los(self, rows: npt.NDArray[np.int_], d2d_m: FloatArray) -> npt.NDArray[np.bool_]:
        """LoS state of the outdoor part of each link: [len(rows), n_ues] bool."""
        sites = self.site_of_cell[rows]
        if self.forced_los is not None:
            return np.asarray(self.forced_los[sites], dtype=bool)
        p = los_probability(self.scenario, d2d_m, self.ue_h_m[None, :])
        return np.asarray(self.los_uniform[sites] < p, dtype=bool)

    def link_los(self, rows: npt.NDArray[np.int_], d2d_m: FloatArray) -> npt.NDArray[np.bool_]:
        """LoS state of the outdoor part of each link from the total 2D distance: [len(rows), n_ues]."""
        return self.los(rows, np.maximum(d2d_m - self.d2d_in_m[None, :], 1.0))

    def shadow_unit(self, rows: npt.NDArray[np.int_], los: npt.NDArray[np.bool_]) -> FloatArray:
        """Unit-variance shadowing field of each link (the loss adds ``sigma`` times it): [len(rows), n_ues].

        Outdoor links take the LoS or NLoS field of their site, indoor (O2I) links the O2I field.
        """
        sites = self.site_of_cell[np.asarray(rows, dtype=np.int64)]
        indoor = self.indoor[None, :]
        out = np.where(los, self.shadow_los[sites], self.shadow_nlos[sites])
        return np.asarray(np.where(indoor, self.shadow_o2i[sites], out), dtype=np.float64)

    def shadow_sigma(self, los: npt.NDArray[np.bool_], beyond_breakpoint: npt.NDArray[np.bool_]) -> FloatArray:
        """Shadow-fading sigma (dB) of each link: LoS/NLoS of Table 7.4.1-1, O2I of Table 7.5-6."""
        sigma = shadow_sigma_db(self.scenario, los, beyond_breakpoint)
        return np.asarray(np.where(self.indoor[None, :], SHADOW_O2I[self.scenario][0], sigma), dtype=np.float64)

    def loss_db(
        self,
        rows: npt.NDArray[np.int_],
        geometry: LinkGeometry,
        h_bs_m: FloatArray,
        fc_ghz: FloatArray,
    ) -> FloatArray:
        """Path loss + shadowing + O2I (dB) for cells ``rows``: [len(rows), n_ues]."""
        rows = np.asarray(rows, dtype=np.int64)
        d2d = geometry.d2d_m
        h_bs = np.asarray(h_bs_m, dtype=np.float64)[:, None]
        fc = np.asarray(fc_ghz, dtype=np.float64)[:, None]
        los = self.link_los(rows, d2d)
        pl = pathloss_db(self.scenario, d2d, h_bs, self.ue_h_m[None, :], fc, los)
        if self.shadowing:
            beyond = d2d >= breakpoint_distance_m(self.scenario, h_bs, self.ue_h_m[None, :], fc)
            # an indoor link is shadowed with the O2I sigma and field (Table 7.5-6), whatever the
            # LoS state of its outdoor part (which sets its basic path loss)
            pl = pl + self.shadow_sigma(los, beyond) * self.shadow_unit(rows, los)
        if self.indoor.any():
            o2i = o2i_loss_db(fc, self.d2d_in_m[None, :], self.o2i_model, self.o2i_normal[None, :])
            pl = pl + np.where(self.indoor[None, :], o2i, 0.0)
        return np.asarray(pl, dtype=np.float64)


class PrecomputedPropagation:
    """A fixed [n_cells, n_ues] loss matrix (dB), e.g. sampled from a ray-traced radio map.

    >>> p = PrecomputedPropagation(np.array([[100.0, 110.0], [120.0, 90.0]]))
    >>> p.loss_db(np.array([1]), None, None, None).tolist()  # type: ignore[arg-type]
    [[120.0, 90.0]]
    """

    def __init__(self, loss_db: FloatArray, includes_antenna: bool = False) -> None:
        self._loss = np.asarray(loss_db, dtype=np.float64)
        if self._loss.ndim != 2:
            raise ValueError(f"a precomputed loss grid must be [n_cells, n_ues], got shape {self._loss.shape}")
        self.includes_antenna = includes_antenna

    def loss_db(
        self,
        rows: npt.NDArray[np.int_],
        geometry: LinkGeometry,
        h_bs_m: FloatArray,
        fc_ghz: FloatArray,
    ) -> FloatArray:
        return np.asarray(self._loss[np.asarray(rows, dtype=np.int64)], dtype=np.float64)
