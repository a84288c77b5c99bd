"""PM records (``ran.pm.cell.v1``, ``ran.pm.relation.v1``): one record per object and period."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from twin.schemas.base import CellKey, OpenWireModel, UtcDateTime, WireModel

__all__ = ["FiniteFloat", "MeasObjClass", "MeasurementName", "PmCellRecord", "PmRelationRecord", "PmSource"]


class MeasObjClass(StrEnum):
    NRCellDU = "NRCellDU"
    NRCellCU = "NRCellCU"
    NRCellRelation = "NRCellRelation"
    NRSectorCarrier = "NRSectorCarrier"
    GNBDUFunction = "GNBDUFunction"
    GNBCUCPFunction = "GNBCUCPFunction"
    GNBCUUPFunction = "GNBCUUPFunction"
    ManagedElement = "ManagedElement"
    Beam = "Beam"
    EUtranCellFDD = "EUtranCellFDD"
    EUtranCellTDD = "EUtranCellTDD"
    EUtranCellRelation = "EUtranCellRelation"


class PmSource(OpenWireModel):
    format: str | None = Field(default=None, examples=["3GPP-32.435"])
    vendor: str | None = None
    file_name: str | None = None
    stream_id: str | None = None
    job_id: str | None = None


MeasurementName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class PmCellRecord(WireModel):
    """Values of one measured object for one granularity period; names are TS 28.552 names as-is."""

    schema_version: Literal["1"] = "1"
    cell_key: CellKey
    meas_obj_dn: str = Field(min_length=1, max_length=1024)
    meas_obj_class: MeasObjClass
    period_end: UtcDateTime
    granularity_period_s: int = Field(gt=0, le=86400)
    suspect: bool = False
    source: PmSource = Field(default_factory=PmSource)
    values: dict[MeasurementName, FiniteFloat] = Field(max_length=20000)


class PmRelationRecord(PmCellRecord):
    """Relation-level KPIs keyed by the source cell so they land beside its own state."""

    target_cell_key: CellKey
    relation_dn: str = Field(min_length=1, max_length=1024)
