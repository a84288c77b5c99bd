"""Topology (``ran.topology.cells.v1``): the DN <-> cell key map and the cluster of each cell."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from twin.schemas.base import CellKey, WireModel

__all__ = ["TopologyCell"]


class TopologyCell(WireModel):
    schema_version: Literal["1"] = "1"
    cell_key: CellKey
    cluster_id: str | None = Field(default=None, min_length=1, max_length=128)
    du_dn: str | None = None
    cu_dn: str | None = None
    pci: int | None = Field(default=None, ge=0, le=1007)
    arfcn: int | None = Field(default=None, ge=0)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    azimuth: float | None = Field(default=None, ge=0, lt=360)
    neighbours: list[CellKey] = Field(default_factory=list)
