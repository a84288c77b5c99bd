"""UE measurement reports (``ran.mr.ue.v1``), physical units plus the raw 7-bit indices."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from twin.schemas.base import CellKey, UtcDateTime, Uuid, WireModel

__all__ = [
    "CellMeas", "Location", "LocationMethod", "MrEvent", "MrSource", "Rat", "UeInfo", "rsrp_index", "rsrq_index",
    "sinr_index",
]


class MrSource(StrEnum):
    RRC_MEAS_REPORT = "RRC_MEAS_REPORT"
    IMMEDIATE_MDT = "IMMEDIATE_MDT"
    LOGGED_MDT = "LOGGED_MDT"
    OPERATOR_MRO = "OPERATOR_MRO"
    E2SM_KPM = "E2SM_KPM"
    REPLAY = "REPLAY"


class Rat(StrEnum):
    NR = "NR"
    LTE = "LTE"


class CellMeas(WireModel):
    cell_key: CellKey | None = None
    rat: Rat | None = None
    pci: int | None = Field(default=None, ge=0, le=1007)
    arfcn: int | None = Field(default=None, ge=0)
    ssb_index: int | None = Field(default=None, ge=0, le=63)
    rsrp_dbm: float | None = Field(default=None, ge=-157, le=-30)
    rsrq_db: float | None = Field(default=None, ge=-43.5, le=20)
    sinr_db: float | None = Field(default=None, ge=-23.5, le=40)
    rsrp_idx: int | None = Field(default=None, ge=0, le=127)
    rsrq_idx: int | None = Field(default=None, ge=0, le=127)
    sinr_idx: int | None = Field(default=None, ge=0, le=127)

    @model_validator(mode="after")
    def _identified(self) -> CellMeas:
        if self.pci is None and self.cell_key is None:
            raise ValueError("a cell measurement needs pci or cellKey")
        return self


class UeInfo(WireModel):
    phr_db: float | None = None
    timing_advance: int | None = Field(default=None, ge=0)
    dl_throughput_kbps: float | None = Field(default=None, ge=0)
    ul_throughput_kbps: float | None = Field(default=None, ge=0)
    cqi: int | None = Field(default=None, ge=0, le=15)


class LocationMethod(StrEnum):
    GNSS = "GNSS"
    ECID = "ECID"
    AOA_TA = "AOA_TA"
    NONE = "NONE"


class Location(WireModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy_m: float | None = Field(default=None, ge=0)
    method: LocationMethod | None = None


class MrEvent(WireModel):
    """One UE report; ``event_id`` makes redelivery harmless."""

    schema_version: Literal["1"] = "1"
    event_id: Uuid
    event_time: UtcDateTime
    ingest_time: UtcDateTime | None = None
    cell_key: CellKey
    serving_dn: str | None = Field(default=None, max_length=1024)
    ue_ref: str = Field(min_length=1, max_length=256)
    source: MrSource
    trigger: str | None = Field(default=None, max_length=32)
    rat: Rat | None = None
    serving: CellMeas
    neighbours: list[CellMeas] = Field(default_factory=list, max_length=32)
    ue: UeInfo | None = None
    location: Location | None = None


# Index grids of TS 38.133 as used by the 28.552 distributions (see telemetry.md §3).
def rsrp_index(dbm: float) -> int:
    """SS-RSRP reporting index, clamped to 0..127 (idx ~ dBm + 157)."""
    return int(min(127, max(0, round(dbm + 157))))


def rsrq_index(db: float) -> int:
    return int(min(127, max(0, round((db + 43.5) * 2))))


def sinr_index(db: float) -> int:
    return int(min(127, max(0, round((db + 23.5) * 2))))
