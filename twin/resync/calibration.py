"""The twin's calibration of a cluster: per-cell offsets of its simulation model fitted to the
network's own telemetry by a resync (``twin.resync.fit``), applied to every prediction after.

Per cell: an antenna **gain offset** (dB, added to the CM's maximum gain: a water-filled
connector, a wrong antenna file), an **azimuth offset** (degrees, added to the CM's azimuth: a
turned antenna) and a **traffic scale** (the cell's area carries that many times the traffic the
twin's map gives it) and an **interference margin** (dB >= 0: how much more interference plus noise
the UEs in the cell's area hear than the model's cells give them: an external interferer; the
link-budget sense of the term). Per cluster: a **path-loss offset** (dB on every link: clutter and building
loss the model does not have). A per-cell path-loss offset is not kept: in cell-level PM and MR it
is indistinguishable from the cell's gain offset, which carries it.

>>> cal = Calibration({"nr:a": CellCalibration(gain_db=-14.2, azimuth_deg=3.0)}, pathloss_db=2.5)
>>> Calibration.from_dict(cal.to_dict()) == cal
True
>>> cal.cells["nr:a"].traffic_scale, cal.cells["nr:a"].interference_db, Calibration().is_identity()
(1.0, 0.0, True)
>>> old = {"cells": {"nr:a": {"gainDb": -3.0, "azimuthDeg": 0.0, "trafficScale": 1.0}}}  # before the margin
>>> Calibration.from_dict(old).cell("nr:a").interference_db
0.0
>>> Calibration({"nr:a": CellCalibration(interference_db=-2.0)})
Traceback (most recent call last):
...
ValueError: calibration of nr:a: interference_db=-2.0 outside 0.0..40.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.sim.topology import Sector

__all__ = ["BOUNDS", "Calibration", "CellCalibration"]

#: the range a fit may give each parameter (beyond it a resync fails rather than invents)
BOUNDS = {"gain_db": (-40.0, 15.0), "azimuth_deg": (-90.0, 90.0), "traffic_scale": (0.1, 10.0),
          "pathloss_db": (-15.0, 15.0), "interference_db": (0.0, 40.0)}


@dataclass(frozen=True)
class CellCalibration:
    gain_db: float = 0.0
    azimuth_deg: float = 0.0
    traffic_scale: float = 1.0
    interference_db: float = 0.0

    def is_identity(self) -> bool:
        return (self.gain_db == 0.0 and self.azimuth_deg == 0.0 and self.traffic_scale == 1.0
                and self.interference_db == 0.0)


@dataclass(frozen=True)
class Calibration:
    """Offsets of a cluster's model: ``cells`` by cell key, ``pathloss_db`` for every link."""

    cells: Mapping[str, CellCalibration] = field(default_factory=dict)
    pathloss_db: float = 0.0

    def __post_init__(self) -> None:
        for key, c in self.cells.items():
            for name in ("gain_db", "azimuth_deg", "traffic_scale", "interference_db"):
                lo, hi = BOUNDS[name]
                value = getattr(c, name)
                if not (math.isfinite(value) and lo <= value <= hi):
                    raise ValueError(f"calibration of {key}: {name}={value!r} outside {lo}..{hi}")
        lo, hi = BOUNDS["pathloss_db"]
        if not (math.isfinite(self.pathloss_db) and lo <= self.pathloss_db <= hi):
            raise ValueError(f"calibration: pathloss_db={self.pathloss_db!r} outside {lo}..{hi}")

    def is_identity(self) -> bool:
        return self.pathloss_db == 0.0 and all(c.is_identity() for c in self.cells.values())

    def cell(self, key: str) -> CellCalibration:
        return self.cells.get(key, CellCalibration())

    def with_cells(self, cells: Mapping[str, CellCalibration], pathloss_db: float | None = None) -> Calibration:
        """This calibration with ``cells`` replaced (identity entries dropped)."""
        merged = {**self.cells, **cells}
        return Calibration({k: v for k, v in sorted(merged.items()) if not v.is_identity()},
                           self.pathloss_db if pathloss_db is None else pathloss_db)

    # -- applied to the model ------------------------------------------------------------------
    def cm_overlay(self, sectors: tuple[Sector, ...]) -> dict[str, dict[str, float]]:
        """The CM view that applies the gain and azimuth offsets to the cluster's sectors."""
        out: dict[str, dict[str, float]] = {}
        for s in sectors:
            c = self.cells.get(s.cell_key)
            if c is None or (c.gain_db == 0.0 and c.azimuth_deg == 0.0):
                continue
            gain = min(max(s.max_gain_dbi + c.gain_db, -10.0), 30.0)  # the attribute's range (twin.sim.cm)
            out[s.cell_key] = {"antennaMaxGain": gain, "azimuth": (s.azimuth_deg + c.azimuth_deg) % 360.0}
        return out

    def ue_factor(self, cell_keys: tuple[str, ...], home: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """[n_ues] traffic factor of each UE point: the traffic scale of its home cell (``home``:
        the cell index serving the point in the uncalibrated model)."""
        scale = np.array([self.cell(k).traffic_scale for k in cell_keys], dtype=np.float64)
        return np.asarray(scale[home], dtype=np.float64)

    def interference_rise_db(self, cell_keys: tuple[str, ...],
                             home: npt.NDArray[np.int64]) -> npt.NDArray[np.float64] | float:
        """[n_ues] interference rise (dB) of each UE point: the interference margin of its home cell
        (0.0, a scalar, when no cell has one: the simulator's fast path)."""
        margin = np.array([self.cell(k).interference_db for k in cell_keys], dtype=np.float64)
        return np.asarray(margin[home], dtype=np.float64) if np.any(margin) else 0.0

    # -- state -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"cells": {k: {"gainDb": c.gain_db, "azimuthDeg": c.azimuth_deg, "trafficScale": c.traffic_scale,
                              "interferenceDb": c.interference_db}
                          for k, c in sorted(self.cells.items())},
                "pathlossDb": self.pathloss_db}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        # ``interferenceDb`` is absent from calibrations written before the margin existed
        return cls({k: CellCalibration(float(c["gainDb"]), float(c["azimuthDeg"]), float(c["trafficScale"]),
                                       float(c.get("interferenceDb", 0.0)))
                    for k, c in d.get("cells", {}).items()}, float(d.get("pathlossDb", 0.0)))
