"""BS sector antenna of TR 38.901 Table 7.3-1 with tilt and configurable beamwidths.

The pattern is the 3-sector element of Table 7.3-1 with the half-power beamwidths as
parameters::

    A_V(θ'') = -min(12 ((θ'' - 90°) / θ_3dB)^2, SLA_V)
    A_H(φ')  = -min(12 (φ' / φ_3dB)^2, A_max)
    A(θ', φ') = G_max - min(-(A_V + A_H), A_max)

where ``θ'`` and ``φ'`` are the zenith and azimuth angles in the antenna's local coordinate
system (LCS). Mechanical tilt (``β``, positive down) and azimuth (``α``) rotate the LCS as in
TR 38.901 §7.1 (eqs. 7.1-7 and 7.1-8 with ``γ = 0``); electrical tilt shifts the vertical
pattern inside the LCS (``θ'' = θ' - tilt_e``), which is how a RET or a digital beam tilt acts.

Table 7.3-1 itself uses 65° vertical beamwidth and 8 dBi for one element. With 65° vertically
a tilt change hardly changes anything, so the twin defaults to a **10° vertical beamwidth**
(TR 36.814 Table A.2.1.1-2 macro panel, within the 6-10° of real macro panels), 65°
horizontally, and 17 dBi maximum gain (the directivity of a 65° x 10° beam less ~1 dB losses).

>>> float(antenna_gain_db(np.array(90.0), np.array(0.0), 90.0).round(2))  # boresight (east), no tilt
17.0
>>> float(antenna_gain_db(np.array(90.0), np.array(0.0), 90.0, elec_tilt_deg=10.0).round(2))
5.0
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from twin.sim.propagation import LinkGeometry

__all__ = [
    "DEFAULT_H_BEAMWIDTH_DEG", "DEFAULT_MAX_GAIN_DBI", "DEFAULT_V_BEAMWIDTH_DEG", "antenna_gain_db",
    "bearing_to_math_deg", "element_pattern_db", "gcs_to_lcs", "sector_gain_rows",
]

FloatArray = npt.NDArray[np.float64]

DEFAULT_V_BEAMWIDTH_DEG = 10.0
DEFAULT_H_BEAMWIDTH_DEG = 65.0
DEFAULT_MAX_GAIN_DBI = 17.0
SLA_V_DB = 30.0
A_MAX_DB = 30.0


def bearing_to_math_deg(bearing_deg: npt.ArrayLike) -> FloatArray:
    """Compass bearing (0 = north, clockwise) to math angle (0 = east/+x, counter-clockwise).

    >>> bearing_to_math_deg([0.0, 90.0, 270.0]).tolist()
    [90.0, 0.0, 180.0]
    """
    return np.asarray((90.0 - np.asarray(bearing_deg, dtype=np.float64)) % 360.0)


def gcs_to_lcs(
    zenith_deg: npt.ArrayLike, azimuth_deg: npt.ArrayLike, alpha_deg: npt.ArrayLike, beta_deg: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Global to local angles for bearing ``alpha`` and mechanical downtilt ``beta`` (γ = 0).

    Input angles in degrees, ``azimuth`` and ``alpha`` as math angles (from +x, counter-
    clockwise). Output: zenith' in [0, 180] and azimuth' in (-180, 180], degrees.

    >>> [float(v) for v in gcs_to_lcs(90.0, 30.0, 30.0, 10.0)]
    [80.0, 0.0]
    """
    th = np.radians(np.asarray(zenith_deg, dtype=np.float64))
    dphi = np.radians(np.asarray(azimuth_deg, dtype=np.float64) - np.asarray(alpha_deg, dtype=np.float64))
    b = np.radians(np.asarray(beta_deg, dtype=np.float64))
    cb, sb = np.cos(b), np.sin(b)
    st, ct = np.sin(th), np.cos(th)
    cz = np.clip(cb * ct + sb * np.cos(dphi) * st, -1.0, 1.0)
    th_p = np.degrees(np.arccos(cz))
    ph_p = np.degrees(np.arctan2(np.sin(dphi) * st, cb * st * np.cos(dphi) - sb * ct))
    return np.asarray(th_p), np.asarray(ph_p)


def element_pattern_db(
    zenith_lcs_deg: npt.ArrayLike,
    azimuth_lcs_deg: npt.ArrayLike,
    v_beamwidth_deg: npt.ArrayLike = DEFAULT_V_BEAMWIDTH_DEG,
    h_beamwidth_deg: npt.ArrayLike = DEFAULT_H_BEAMWIDTH_DEG,
    max_gain_dbi: npt.ArrayLike = DEFAULT_MAX_GAIN_DBI,
    sla_v_db: float = SLA_V_DB,
    a_max_db: float = A_MAX_DB,
) -> FloatArray:
    """Table 7.3-1 power pattern (dBi) at LCS angles (deg); inputs broadcast.

    >>> float(element_pattern_db(90.0, 65.0 / 2, 65.0, 65.0, 8.0))  # -3 dB at half beamwidth
    5.0
    """
    th = np.asarray(zenith_lcs_deg, dtype=np.float64)
    ph = (np.asarray(azimuth_lcs_deg, dtype=np.float64) + 180.0) % 360.0 - 180.0
    a_v = -np.minimum(12.0 * ((th - 90.0) / np.asarray(v_beamwidth_deg, dtype=np.float64)) ** 2, sla_v_db)
    a_h = -np.minimum(12.0 * (ph / np.asarray(h_beamwidth_deg, dtype=np.float64)) ** 2, a_max_db)
    return np.asarray(np.asarray(max_gain_dbi, dtype=np.float64) - np.minimum(-(a_v + a_h), a_max_db))


def antenna_gain_db(
    zenith_deg: npt.ArrayLike,
    azimuth_deg: npt.ArrayLike,
    bearing_deg: npt.ArrayLike,
    mech_tilt_deg: npt.ArrayLike = 0.0,
    elec_tilt_deg: npt.ArrayLike = 0.0,
    v_beamwidth_deg: npt.ArrayLike = DEFAULT_V_BEAMWIDTH_DEG,
    h_beamwidth_deg: npt.ArrayLike = DEFAULT_H_BEAMWIDTH_DEG,
    max_gain_dbi: npt.ArrayLike = DEFAULT_MAX_GAIN_DBI,
) -> FloatArray:
    """Gain (dBi) of a sector towards directions given in global coordinates.

    Input
    -----
    zenith_deg: [...] zenith angle of the BS->UE direction (90 = horizon)
    azimuth_deg: [...] math azimuth of the BS->UE direction (0 = +x/east, CCW)
    bearing_deg: [...] sector azimuth as a compass bearing (0 = north, clockwise)
    mech_tilt_deg, elec_tilt_deg: [...] downtilt (positive = down)
    v_beamwidth_deg, h_beamwidth_deg, max_gain_dbi: [...] pattern parameters

    Output
    ------
    [...] float64 gain (dBi).
    """
    alpha = bearing_to_math_deg(bearing_deg)
    beta = np.asarray(mech_tilt_deg, dtype=np.float64)
    if np.all(beta == 0.0):
        th_p = np.asarray(zenith_deg, dtype=np.float64)
        ph_p = np.asarray(azimuth_deg, dtype=np.float64) - alpha
    else:
        th_p, ph_p = gcs_to_lcs(zenith_deg, azimuth_deg, alpha, beta)
    th_e = th_p - np.asarray(elec_tilt_deg, dtype=np.float64)
    return element_pattern_db(th_e, ph_p, v_beamwidth_deg, h_beamwidth_deg, max_gain_dbi)


def sector_gain_rows(
    geometry: LinkGeometry,
    bearing_deg: FloatArray,
    mech_tilt_deg: FloatArray,
    elec_tilt_deg: FloatArray,
    v_beamwidth_deg: FloatArray,
    h_beamwidth_deg: FloatArray,
    max_gain_dbi: FloatArray,
) -> FloatArray:
    """Antenna gain (dBi) of R cells towards every UE: [R, n_ues].

    ``geometry`` holds the R cells' rows ([R, n_ues] each); the sector parameters are [R].
    """
    col = (slice(None), None)
    return antenna_gain_db(
        geometry.zenith_deg,
        geometry.azimuth_deg,
        np.asarray(bearing_deg)[col],
        np.asarray(mech_tilt_deg)[col],
        np.asarray(elec_tilt_deg)[col],
        np.asarray(v_beamwidth_deg)[col],
        np.asarray(h_beamwidth_deg)[col],
        np.asarray(max_gain_dbi)[col],
    )
