"""A simulated cluster built from the mirror's CM view: positions, antennas, carriers per cell.

The twin simulates the network it mirrors: :func:`cluster_from_mirror` turns the CM attributes the
mirror holds per cell (TS 28.541 names, read through ``twin.sim.cm``) into a
``twin.sim.topology.Cluster``. Latitude/longitude become local metres around the cells' centroid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.sim.cm import apply_cm_to_sector, normalise_attributes
from twin.sim.propagation import Scenario
from twin.sim.topology import Cluster, Sector

__all__ = ["EARTH_RADIUS_M", "cluster_from_mirror", "cluster_origin", "latlon_to_xy"]

FloatArray = npt.NDArray[np.float64]
EARTH_RADIUS_M = 6_371_000.0


def latlon_to_xy(
    lat_deg: npt.ArrayLike, lon_deg: npt.ArrayLike, lat0_deg: float, lon0_deg: float
) -> tuple[FloatArray, FloatArray]:
    """Equirectangular projection to local metres around (lat0, lon0); fine for a cluster.

    >>> x, y = latlon_to_xy([0.0], [0.001], 0.0, 0.0)
    >>> round(float(x[0]), 1), round(float(y[0]), 1)
    (111.2, 0.0)
    """
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lon = np.radians(np.asarray(lon_deg, dtype=np.float64))
    x = EARTH_RADIUS_M * (lon - math.radians(lon0_deg)) * math.cos(math.radians(lat0_deg))
    y = EARTH_RADIUS_M * (lat - math.radians(lat0_deg))
    return np.asarray(x), np.asarray(y)


def _origin(norm: Mapping[str, Mapping[str, Any]]) -> tuple[float, float]:
    lats = [a["lat"] for a in norm.values() if "lat" in a and "lon" in a]
    lons = [a["lon"] for a in norm.values() if "lat" in a and "lon" in a]
    return (float(np.mean(lats)) if lats else 0.0), (float(np.mean(lons)) if lons else 0.0)


def cluster_origin(cells: Mapping[str, Mapping[str, Any]]) -> tuple[float, float]:
    """(lat0, lon0) of the local frame ``cluster_from_mirror`` puts the same CM view in (degrees):
    positions reported in lat/lon (located UE reports) go through ``latlon_to_xy`` with it.

    >>> [round(v, 6) for v in cluster_origin({"nr:a": {"lat": 45.0, "lon": 7.0}, "nr:b": {"lat": 45.002, "lon": 7.0}})]
    [45.001, 7.0]
    """
    return _origin({key: normalise_attributes(attrs) for key, attrs in cells.items()})


def cluster_from_mirror(
    cells: Mapping[str, Mapping[str, Any]],
    cluster_id: str = "cluster",
    scenario: Scenario = "uma",
    isd_m: float | None = None,
    defaults: Sector | None = None,
) -> Cluster:
    """Build a cluster from the mirror's CM view: ``{cell_key: {attribute: value}}``.

    Attribute names are TS 28.541 names, optionally prefixed by their class as the mirror
    stores them (``"NRSectorCarrier.configuredMaxTxPower"``); values may be plain or the
    mirror's ``[value, observedAt, dn]`` / ``{"value": ...}`` forms. Position comes from
    ``lat``/``lon`` (degrees) or ``x``/``y`` (local metres); the site from ``siteId`` or the
    rounded position. See ``twin.sim.cm.ATTRIBUTES`` for the attributes and units read;
    attributes the model does not use are ignored here. From a ``ClusterMirror`` pass
    ``{key: cell.cm for key, cell in mirror.cells.items()}``.

    >>> cl = cluster_from_mirror({
    ...     "nr:00101-000000101": {"lat": 45.0, "lon": 7.0, "azimuth": 30,
    ...                            "NRSectorCarrier.configuredMaxTxPower": [20000, 0, "dn"]},
    ...     "nr:00101-000000102": {"lat": 45.0, "lon": 7.0, "azimuth": 150, "digitalTilt": 60},
    ... })
    >>> [round(s.tx_power_dbm, 1) for s in cl.sectors], cl.sectors[1].elec_tilt_deg
    ([43.0, 46.0], 6.0)
    """
    if not cells:
        raise ValueError("cannot build a cluster from an empty CM view")
    base = defaults or Sector(cell_key="", site_id="", x_m=0.0, y_m=0.0)
    norm = {key: normalise_attributes(attrs) for key, attrs in cells.items()}
    lat0, lon0 = _origin(norm)
    sectors: list[Sector] = []
    for key, attrs in norm.items():
        if "lat" in attrs and "lon" in attrs:
            xa, ya = latlon_to_xy([float(attrs["lat"])], [float(attrs["lon"])], lat0, lon0)
            x, y = float(xa[0]), float(ya[0])
        elif "x" in attrs and "y" in attrs:
            x, y = float(attrs["x"]), float(attrs["y"])
        else:
            raise ValueError(f"cell {key!r}: no position (needs lat/lon or x/y)")
        site = str(attrs.get("siteId") or f"{round(x, 0):.0f},{round(y, 0):.0f}")
        sector = replace(base, cell_key=key, site_id=site, x_m=x, y_m=y)
        sectors.append(apply_cm_to_sector(sector, attrs, strict=False))
    if isd_m is None:
        sites = {(s.x_m, s.y_m) for s in sectors}
        pts = np.array(sorted(sites))
        if len(pts) > 1:
            d = np.hypot(pts[:, None, 0] - pts[None, :, 0], pts[:, None, 1] - pts[None, :, 1])
            np.fill_diagonal(d, np.inf)
            isd_m = float(np.median(d.min(axis=1)))
        else:
            isd_m = 500.0
    return Cluster(
        cluster_id=cluster_id,
        sectors=tuple(sectors),
        scenario=scenario,
        isd_m=isd_m,
        min_ue_distance_m=10.0 if scenario == "umi" else 35.0,
    )
