"""Sites, sectors and clusters: the network the twin simulates.

A :class:`Sector` is one cell (one carrier on one sector antenna) with its configuration in
physical units; a :class:`Cluster` is a group of neighbouring cells simulated together. Cells
come from :func:`hex_cluster` (a synthetic hexagonal layout, 3 sectors per site, any number of
rings) or ``twin.sim.mirrored.cluster_from_mirror``, which reads the CM attributes the mirror holds
per cell (TS 28.541 names, see ``twin.sim.cm``) so the twin simulates the network it mirrors.

Coordinates are local metres: ``x`` east, ``y`` north. Azimuths are compass bearings
(0 = north, clockwise), tilts are downtilts in degrees (positive = down).

>>> c = hex_cluster(rings=1)
>>> len(c.sectors), len({s.site_id for s in c.sectors})
(21, 7)
>>> c.sectors[0].azimuth_deg, c.sectors[1].azimuth_deg, c.sectors[2].azimuth_deg
(30.0, 150.0, 270.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.sim.antenna import DEFAULT_H_BEAMWIDTH_DEG, DEFAULT_MAX_GAIN_DBI, DEFAULT_V_BEAMWIDTH_DEG
from twin.sim.propagation import SCENARIOS, Scenario

FloatArray = npt.NDArray[np.float64]

__all__ = ["CellArrays", "Cluster", "Sector", "hex_cluster", "hex_site_positions"]


@dataclass(frozen=True)
class Sector:
    """One cell: a carrier radiated by one sector antenna of a site.

    Units: positions and height in m, angles in degrees (azimuth as compass bearing, tilts
    positive down), power in dBm (total over the carrier), gain in dBi, frequency in GHz,
    bandwidth in MHz, subcarrier spacing in kHz, CIO in dB.
    """

    cell_key: str
    site_id: str
    x_m: float
    y_m: float
    height_m: float = 25.0
    azimuth_deg: float = 0.0
    mech_tilt_deg: float = 0.0
    elec_tilt_deg: float = 8.0
    v_beamwidth_deg: float = DEFAULT_V_BEAMWIDTH_DEG
    h_beamwidth_deg: float = DEFAULT_H_BEAMWIDTH_DEG
    max_gain_dbi: float = DEFAULT_MAX_GAIN_DBI
    tx_power_dbm: float = 46.0
    fc_ghz: float = 3.5
    bandwidth_mhz: float = 20.0
    scs_khz: float = 30.0
    cio_db: float = 0.0
    active: bool = True
    tilt_range_deg: tuple[float, float] = (-10.0, 20.0)


@dataclass(frozen=True)
class Cluster:
    """A group of neighbouring cells simulated together (the unit of sharding).

    ``scenario`` selects the TR 38.901 model (``"uma"``, ``"umi"``, ``"rma"``) and ``isd_m``
    the typical inter-site distance, used for the default UE area and minimum distances.
    """

    cluster_id: str
    sectors: tuple[Sector, ...]
    scenario: Scenario = "uma"
    isd_m: float = 500.0
    min_ue_distance_m: float = 35.0
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario {self.scenario!r} is not one of {', '.join(SCENARIOS)}")
        if not self.sectors:
            raise ValueError(f"cluster {self.cluster_id!r} has no cells")
        keys = [s.cell_key for s in self.sectors]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise ValueError(f"cluster {self.cluster_id!r} lists cell {dup!r} twice")

    @property
    def cell_keys(self) -> tuple[str, ...]:
        return tuple(s.cell_key for s in self.sectors)

    def index(self, cell_key: str) -> int:
        """Row of ``cell_key``; ``ValueError`` naming the key when it is not in the cluster."""
        for i, s in enumerate(self.sectors):
            if s.cell_key == cell_key:
                return i
        raise ValueError(f"unknown cell {cell_key!r}: not in cluster {self.cluster_id!r}")

    def site_index(self) -> npt.NDArray[np.int64]:
        """[n_cells] site number (0..n_sites-1) in order of first appearance."""
        ids: dict[str, int] = {}
        return np.array([ids.setdefault(s.site_id, len(ids)) for s in self.sectors], dtype=np.int64)

    def with_sectors(self, sectors: tuple[Sector, ...]) -> Cluster:
        return replace(self, sectors=sectors)


@dataclass(frozen=True)
class CellArrays:
    """The cluster's cells as arrays (struct of arrays), each of shape [n_cells]."""

    x_m: FloatArray
    y_m: FloatArray
    height_m: FloatArray
    azimuth_deg: FloatArray
    mech_tilt_deg: FloatArray
    elec_tilt_deg: FloatArray
    v_beamwidth_deg: FloatArray
    h_beamwidth_deg: FloatArray
    max_gain_dbi: FloatArray
    tx_power_dbm: FloatArray
    fc_ghz: FloatArray
    bandwidth_mhz: FloatArray
    scs_khz: FloatArray
    cio_db: FloatArray
    active: npt.NDArray[np.bool_]

    @classmethod
    def of(cls, sectors: tuple[Sector, ...]) -> CellArrays:
        def col(name: str) -> FloatArray:
            return np.array([float(getattr(s, name)) for s in sectors], dtype=np.float64)

        return cls(
            x_m=col("x_m"),
            y_m=col("y_m"),
            height_m=col("height_m"),
            azimuth_deg=col("azimuth_deg"),
            mech_tilt_deg=col("mech_tilt_deg"),
            elec_tilt_deg=col("elec_tilt_deg"),
            v_beamwidth_deg=col("v_beamwidth_deg"),
            h_beamwidth_deg=col("h_beamwidth_deg"),
            max_gain_dbi=col("max_gain_dbi"),
            tx_power_dbm=col("tx_power_dbm"),
            fc_ghz=col("fc_ghz"),
            bandwidth_mhz=col("bandwidth_mhz"),
            scs_khz=col("scs_khz"),
            cio_db=col("cio_db"),
            active=np.array([s.active for s in sectors], dtype=bool),
        )


def hex_site_positions(rings: int, isd_m: float) -> FloatArray:
    """[n_sites, 2] site positions (m) of a hexagonal grid, centre first, ring by ring.

    ``n_sites = 1 + 3 rings (rings + 1)``: 1, 7, 19, 37, 61 ...

    >>> hex_site_positions(2, 500.0).shape
    (19, 2)
    """
    if rings < 0:
        raise ValueError(f"rings must be >= 0, got {rings}")
    # axial directions, pointy layout with neighbours at distance isd
    dirs = [(1, 0), (1, -1), (0, -1), (-1, 0), (-1, 1), (0, 1)]
    coords: list[tuple[int, int]] = [(0, 0)]
    for r in range(1, rings + 1):
        q, s = dirs[4][0] * r, dirs[4][1] * r  # start r steps out, then walk the six sides
        for side in range(6):
            for _ in range(r):
                coords.append((q, s))
                q, s = q + dirs[side][0], s + dirs[side][1]
    pts = np.array(
        [(isd_m * (q + s / 2.0), isd_m * (math.sqrt(3.0) / 2.0) * s) for q, s in coords], dtype=np.float64
    )
    return pts


def hex_cluster(
    rings: int = 2,
    isd_m: float = 500.0,
    scenario: Scenario = "uma",
    height_m: float = 25.0,
    tx_power_dbm: float = 46.0,
    fc_ghz: float = 3.5,
    bandwidth_mhz: float = 20.0,
    elec_tilt_deg: float | None = None,
    v_beamwidth_deg: float = DEFAULT_V_BEAMWIDTH_DEG,
    plmn: str = "00101",
    cluster_id: str | None = None,
) -> Cluster:
    """A hexagonal layout of ``1 + 3 rings (rings + 1)`` sites with 3 sectors each.

    Sector bearings are 30°, 150° and 270° (the orientation Sionna's ``gen_hexgrid_topology``
    uses). The default electrical tilt aims the beam at ``isd/3`` from the site. Cell keys
    are NR keys ``nr:<plmn>-<nci>`` with gNB id = site number + 1 and local cell id 1..3.

    >>> c = hex_cluster(rings=2)
    >>> len(c.sectors), c.sectors[0].cell_key, round(c.sectors[0].elec_tilt_deg, 1)
    (57, 'nr:00101-000000101', 8.0)
    """
    from twin.cells import nr_cell_key

    if elec_tilt_deg is None:
        elec_tilt_deg = math.degrees(math.atan((height_m - 1.5) / (isd_m / 3.0)))
    sites = hex_site_positions(rings, isd_m)
    sectors: list[Sector] = []
    for i, (x, y) in enumerate(sites):
        for j, bearing in enumerate((30.0, 150.0, 270.0)):
            sectors.append(
                Sector(
                    cell_key=nr_cell_key(plmn, gnb_id=i + 1, gnb_id_length=28, cell_local_id=j + 1),
                    site_id=f"site-{i + 1}",
                    x_m=float(x),
                    y_m=float(y),
                    height_m=height_m,
                    azimuth_deg=bearing,
                    elec_tilt_deg=float(elec_tilt_deg),
                    v_beamwidth_deg=v_beamwidth_deg,
                    tx_power_dbm=tx_power_dbm,
                    fc_ghz=fc_ghz,
                    bandwidth_mhz=bandwidth_mhz,
                )
            )
    return Cluster(
        cluster_id=cluster_id or f"hex-{rings}r-{len(sectors)}c",
        sectors=tuple(sectors),
        scenario=scenario,
        isd_m=isd_m,
        min_ue_distance_m=10.0 if scenario == "umi" else 35.0,
    )
