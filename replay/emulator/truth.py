"""The hidden ground truth of the emulated network, drawn once per (scenario, seed).

Nothing here is published: the twin sees only CM, PM and MR records. The truth is what makes
the emulated network differ from the twin's model of it:

* per-cell antenna gain error (dB) and azimuth error (degrees): a mis-installed or ageing antenna;
* an extra per-site correlated shadowing field (dB), drawn from a seed the twin does not know;
* extra building (O2I) loss of indoor UEs (dB);
* a time-of-day profile, demand scale and moving hotspots of the real load.

>>> import numpy as np
>>> from replay.emulator.scenario import MovingHotspot
>>> h = MovingHotspot(radius_m=100.0, gain=2.0, path=((8.0, 0.0, 0.0), (18.0, 1000.0, 0.0)))
>>> hotspot_centre(h, 13.0)
(500.0, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from replay.emulator.scenario import MovingHotspot, Scenario, Traffic
from twin.sim.propagation import CorrelatedShadowing
from twin.sim.topology import Cluster
from twin.sim.traffic import UePoints

__all__ = ["HiddenTruth", "draw_truth", "hotspot_centre", "load_multiplier"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class HiddenTruth:
    """Static hidden offsets. Shapes: ``gain_db`` and ``azimuth_deg`` [n_cells];
    ``extra_loss_db`` [n_cells, n_ues] (own shadowing + building loss)."""

    gain_db: FloatArray
    azimuth_deg: FloatArray
    extra_loss_db: FloatArray


def draw_truth(scenario: Scenario, cluster: Cluster, ues: UePoints, seed: int) -> HiddenTruth:
    """Draw the static truth from ``seed`` (deterministic; independent of the model's seed)."""
    t = scenario.truth
    n = len(cluster.sectors)
    rng = np.random.default_rng([seed, 0x7A07])
    gain = rng.normal(0.0, 1.0, n) * t.gain_sigma_db
    azimuth = rng.normal(0.0, 1.0, n) * t.azimuth_sigma_deg
    for c in t.cells:
        i = cluster.index(c.cell) if isinstance(c.cell, str) else int(c.cell)
        if not 0 <= i < n:
            raise ValueError(f"truth.cells: cell {c.cell!r} is not in the layout (0..{n - 1})")
        gain[i] += c.gain_db
        azimuth[i] += c.azimuth_deg
    extra = np.zeros((n, ues.n))
    if t.shadowing_sigma_db:
        site = cluster.site_index()
        field = CorrelatedShadowing(int(site.max()) + 1, t.shadowing_corr_m, [seed, 0x5AD0]).grid(ues.x_m, ues.y_m)
        extra += t.shadowing_sigma_db * field[site]
    if t.building_loss_db or t.building_loss_sigma_db:
        z = rng.normal(0.0, 1.0, ues.n)
        building = np.maximum(t.building_loss_db + t.building_loss_sigma_db * z, 0.0)
        extra += np.where(ues.indoor, building, 0.0)[None, :]
    return HiddenTruth(gain, azimuth, extra)


def hotspot_centre(h: MovingHotspot, hour: float) -> tuple[float, float]:
    """Centre (m) of a moving hotspot at ``hour`` of the day (linear between waypoints)."""
    hours = np.array([p[0] for p in h.path])
    x = float(np.interp(hour, hours, [p[1] for p in h.path]))
    y = float(np.interp(hour, hours, [p[2] for p in h.path]))
    return x, y


def load_multiplier(traffic: Traffic, ues: UePoints, hour: float) -> FloatArray:
    """[n_ues] weight multiplier of the hotspots at ``hour`` of the day (1 = no hotspot)."""
    mult = np.ones(ues.n)
    for h in traffic.hotspots:
        cx, cy = hotspot_centre(h, hour)
        d2 = (ues.x_m - cx) ** 2 + (ues.y_m - cy) ** 2
        mult += h.gain * np.exp(-d2 / (2.0 * h.radius_m**2))
    return mult

