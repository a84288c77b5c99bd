"""TR 38.901 Table 7.3-1 sector antenna with tilt."""

from __future__ import annotations

import numpy as np
import pytest

from twin.sim.antenna import antenna_gain_db, element_pattern_db, gcs_to_lcs


def _rotation(alpha: float, beta: float) -> np.ndarray:
    """R = Rz(alpha) Ry(beta) of TR 38.901 eq. 7.1-1 (gamma = 0), an independent check."""
    a, b = np.radians(alpha), np.radians(beta)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    return rz @ ry


def test_gcs_to_lcs_matches_rotation_matrices() -> None:
    rng = np.random.default_rng(1)
    th, ph = rng.uniform(1, 179, 200), rng.uniform(-180, 180, 200)
    alpha, beta = 37.0, 12.0
    v = np.stack([np.sin(np.radians(th)) * np.cos(np.radians(ph)),
                  np.sin(np.radians(th)) * np.sin(np.radians(ph)), np.cos(np.radians(th))])
    local = _rotation(alpha, beta).T @ v
    th_ref = np.degrees(np.arccos(local[2]))
    ph_ref = np.degrees(np.arctan2(local[1], local[0]))
    th_p, ph_p = gcs_to_lcs(th, ph, alpha, beta)
    assert np.allclose(th_p, th_ref, atol=1e-9)
    assert np.allclose(ph_p, ph_ref, atol=1e-9)


def test_pattern_values() -> None:
    assert element_pattern_db(90.0, 0.0, 10.0, 65.0, 17.0) == pytest.approx(17.0)
    assert element_pattern_db(95.0, 0.0, 10.0, 65.0, 17.0) == pytest.approx(14.0)  # -3 dB at half width
    assert element_pattern_db(90.0, 180.0, 10.0, 65.0, 17.0) == pytest.approx(17.0 - 30.0)  # front-back
    assert element_pattern_db(0.0, 0.0, 10.0, 65.0, 17.0) == pytest.approx(17.0 - 30.0)  # SLA_V


def test_tilt_moves_the_beam_down() -> None:
    # sector pointing east (bearing 90), UE directions at zenith 90..110 degrees
    zen = np.linspace(88.0, 112.0, 241)
    for kind in ("mech", "elec"):
        kw = {"mech_tilt_deg": 8.0} if kind == "mech" else {"elec_tilt_deg": 8.0}
        g = antenna_gain_db(zen, np.zeros_like(zen), 90.0, **kw)
        assert zen[np.argmax(g)] == pytest.approx(98.0, abs=0.1)
    g0 = antenna_gain_db(zen, np.zeros_like(zen), 90.0)
    assert zen[np.argmax(g0)] == pytest.approx(90.0, abs=0.1)


def test_narrow_vertical_beam_makes_tilt_matter() -> None:
    # gain towards the horizon drops by 12 (tilt/bw)^2 dB: much more for 10 degrees than 65
    narrow = antenna_gain_db(90.0, 0.0, 90.0, elec_tilt_deg=6.0, v_beamwidth_deg=10.0, max_gain_dbi=0.0)
    wide = antenna_gain_db(90.0, 0.0, 90.0, elec_tilt_deg=6.0, v_beamwidth_deg=65.0, max_gain_dbi=0.0)
    assert float(narrow) == pytest.approx(-12 * 0.6**2)
    assert float(wide) > -0.2
