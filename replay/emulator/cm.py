"""The emulated network's public configuration: managed objects, DNs and CM attributes.

Each cell is three managed object instances (TS 28.541 class names; the attributes the NRM
lacks carry the twin-local names of ``twin.sim.cm``):

=========================  =================================================================
class                      attributes
=========================  =================================================================
``NRCellDU``               administrativeState, nRPCI, bSChannelBwDL, subCarrierSpacing,
                           cellIndividualOffset, lat, lon, siteId
``NRSectorCarrier``        configuredMaxTxPower (mW), arfcnDL
``SectorEquipmentFunction``  azimuth, antennaHeight, mechanicalTilt, digitalTilt,
                           beamVertWidth, beamHorizWidth, antennaMaxGain
=========================  =================================================================

These are exactly what ``twin.sim.mirrored.cluster_from_mirror`` reads, so the twin can rebuild
the cluster from the published CM alone.

>>> dn_of("nr:00101-000000102", "NRCellDU")
'SubNetwork=Emulator,ManagedElement=gnb-001,GNBDUFunction=1,NRCellDU=2'
>>> owner_class("digitalTilt")
'SectorEquipmentFunction'
"""

from __future__ import annotations

import math
from typing import Any

from twin.cells import parse_cell_key
from twin.sim.mirrored import EARTH_RADIUS_M
from twin.sim.topology import Sector

__all__ = [
    "CLASSES", "INTEGER", "READ_ONLY", "dn_of", "initial_attributes", "mirror_view", "owner_class", "xy_to_latlon",
]

CLASSES: dict[str, tuple[str, ...]] = {
    "NRCellDU": ("administrativeState", "nRPCI", "bSChannelBwDL", "subCarrierSpacing", "cellIndividualOffset",
                 "lat", "lon", "siteId"),
    "NRSectorCarrier": ("configuredMaxTxPower", "arfcnDL"),
    "SectorEquipmentFunction": ("azimuth", "antennaHeight", "mechanicalTilt", "digitalTilt", "beamVertWidth",
                                "beamHorizWidth", "antennaMaxGain"),
}
READ_ONLY = frozenset({"nRPCI", "lat", "lon", "siteId", "bSChannelBwDL", "subCarrierSpacing", "arfcnDL"})
"""Attributes the emulated OSS refuses to change at run time (sites and carriers are planned)."""
INTEGER = frozenset({"configuredMaxTxPower", "digitalTilt", "mechanicalTilt", "beamVertWidth", "beamHorizWidth",
                     "arfcnDL", "nRPCI"})


def owner_class(attribute: str) -> str | None:
    """The class whose instances carry ``attribute`` (None when no managed object has it)."""
    return next((cls for cls, attrs in CLASSES.items() if attribute in attrs), None)


def gnb_and_local(cell_key: str) -> tuple[int, int]:
    """(gNB id, local cell id) of a key made with a 28-bit gNB id."""
    nci = int(parse_cell_key(cell_key)[2], 16)
    return nci >> 8, nci & 0xFF


def dn_of(cell_key: str, cls: str) -> str:
    """DN of the cell's instance of ``cls``."""
    gnb, local = gnb_and_local(cell_key)
    me = f"SubNetwork=Emulator,ManagedElement=gnb-{gnb:03d}"
    if cls == "SectorEquipmentFunction":
        return f"{me},SectorEquipmentFunction={local}"
    return f"{me},GNBDUFunction=1,{cls}={local}"


def xy_to_latlon(x_m: float, y_m: float, lat0: float, lon0: float) -> tuple[float, float]:
    """Inverse of ``twin.sim.mirrored.latlon_to_xy`` around (lat0, lon0), degrees."""
    lat = lat0 + math.degrees(y_m / EARTH_RADIUS_M)
    lon = lon0 + math.degrees(x_m / (EARTH_RADIUS_M * math.cos(math.radians(lat0))))
    return lat, lon


def mw(dbm: float) -> int:
    """Carrier power in integer mW (the NRM's configuredMaxTxPower)."""
    return round(10 ** (dbm / 10.0))


def initial_attributes(sector: Sector, index: int, arfcn: int, lat0: float, lon0: float) -> dict[str, dict[str, Any]]:
    """``{class: {attribute: value}}`` of one cell as planned (the first CM snapshots)."""
    lat, lon = xy_to_latlon(sector.x_m, sector.y_m, lat0, lon0)
    return {
        "NRCellDU": {
            "administrativeState": "UNLOCKED" if sector.active else "LOCKED",
            "nRPCI": index % 1008,
            "bSChannelBwDL": int(sector.bandwidth_mhz),
            "subCarrierSpacing": int(sector.scs_khz),
            "cellIndividualOffset": sector.cio_db,
            "lat": lat,
            "lon": lon,
            "siteId": sector.site_id,
        },
        "NRSectorCarrier": {"configuredMaxTxPower": mw(sector.tx_power_dbm), "arfcnDL": arfcn},
        "SectorEquipmentFunction": {
            "azimuth": sector.azimuth_deg,
            "antennaHeight": sector.height_m,
            "mechanicalTilt": round(sector.mech_tilt_deg * 10),
            "digitalTilt": round(sector.elec_tilt_deg * 10),
            "beamVertWidth": round(sector.v_beamwidth_deg * 10),
            "beamHorizWidth": round(sector.h_beamwidth_deg * 10),
            "antennaMaxGain": sector.max_gain_dbi,
        },
    }


def mirror_view(cm: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """``{cell: {"Class.attribute": value}}`` in cell-key order, as the twin's mirror holds CM."""
    return {
        key: {f"{cls}.{name}": value for cls, attrs in cm[key].items() for name, value in attrs.items()}
        for key in sorted(cm)
    }
