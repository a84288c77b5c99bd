"""Link abstraction: SINR -> spectral efficiency -> UE peak rate.

The primary model is a table exported from Sionna (``twin sim export-link-table``): for each
SINR on Sionna's PHY-abstraction grid (-5..30 dB, 0.1 dB) the inner-loop link adaptation of
``sionna.sys`` picks the highest MCS of the NR PDSCH MCS table whose transport BLER is at most
10 % (``InnerLoopLinkAdaptation``), and ``PHYAbstraction`` gives that MCS's TBLER; the table
stores the expected decoded bits per allocated resource element,
``(1 - TBLER) * TBS / n_RE``, for a reference allocation. The file ships as package data
(``twin/sim/data/link_table.json``). Lookup clamps the SINR to the grid ends like Sionna and
interpolates linearly between grid points (``mode="linear"``, the default: the load fixed
point needs a continuous map) or rounds to the nearest grid point (``mode="nearest"``,
exactly what Sionna does).

When the table is absent (or ``link_model="shannon"``) the fallback is the attenuated
Shannon bound of TR 36.942 Annex A.1: ``SE = 0`` below ``-10 dB``,
``alpha * log2(1 + SINR)`` with ``alpha = 0.6`` above, capped at the highest MCS efficiency.

The peak rate of a UE alone in its cell is ``SE * RE/s * layers``, with the data resource
elements per second ``N_PRB * 12 * 14 * 1000 * (SCS / 15 kHz) * (1 - OH)`` and the DL
overhead ``OH = 0.14`` of TS 38.306 §4.1.2 (FR1).

>>> link = ShannonLink()
>>> link.se_per_re(np.array([0.0, 1.0, 1e6])).round(3)
array([0.   , 0.6  , 5.555])
>>> n_prb(20.0, 30.0), round(re_per_second(20.0, 30.0) / 1e6, 2)
(51, 14.74)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "DL_OVERHEAD_FR1", "LINK_MODELS", "LINK_TABLE_FILE", "LinkModel", "LinkModelName", "ShannonLink", "TableLink",
    "default_link_model",
    "load_link_table", "n_prb", "re_per_second",
]

FloatArray = npt.NDArray[np.float64]

DL_OVERHEAD_FR1 = 0.14
LINK_TABLE_FILE = "link_table.json"

#: TS 38.101-1 Table 5.3.2-1 (FR1) and TS 38.101-2 Table 5.3.2-1 (FR2): N_RB per (SCS kHz, MHz).
_N_RB: dict[int, dict[int, int]] = {
    15: {5: 25, 10: 52, 15: 79, 20: 106, 25: 133, 30: 160, 35: 188, 40: 216, 45: 242, 50: 270},
    30: {5: 11, 10: 24, 15: 38, 20: 51, 25: 65, 30: 78, 35: 92, 40: 106, 45: 119, 50: 133,
         60: 162, 70: 189, 80: 217, 90: 245, 100: 273},
    60: {10: 11, 15: 18, 20: 24, 25: 31, 30: 38, 40: 51, 50: 65, 60: 79, 70: 93, 80: 107,
         90: 121, 100: 135},
    120: {50: 32, 100: 66, 200: 132, 400: 264},
}


def n_prb(bandwidth_mhz: float, scs_khz: float) -> int:
    """Resource blocks of a carrier (TS 38.101 tables; ~92 % occupancy otherwise).

    >>> n_prb(100, 30), n_prb(100, 15)
    (273, 511)
    """
    row = _N_RB.get(int(scs_khz), {})
    if int(bandwidth_mhz) in row and float(bandwidth_mhz).is_integer():
        return row[int(bandwidth_mhz)]
    return max(1, int(bandwidth_mhz * 1e3 * 0.92 // (12 * scs_khz)))


def re_per_second(bandwidth_mhz: float, scs_khz: float, overhead: float = DL_OVERHEAD_FR1) -> float:
    """Data resource elements per second of a carrier (overhead removed)."""
    slots_per_s = 1000.0 * scs_khz / 15.0
    return float(n_prb(bandwidth_mhz, scs_khz) * 12 * 14 * slots_per_s * (1.0 - overhead))


class LinkModel(Protocol):
    """SINR (linear) -> expected decoded bits per resource element."""

    @property
    def name(self) -> str: ...

    @property
    def max_se(self) -> float: ...

    def se_per_re(self, sinr_lin: FloatArray) -> FloatArray: ...


@dataclass(frozen=True)
class ShannonLink:
    """Attenuated Shannon (TR 36.942 A.1): ``alpha log2(1+SINR)``, 0 below ``min_sinr_db``."""

    alpha: float = 0.6
    min_sinr_db: float = -10.0
    max_se: float = 5.5547  # 64QAM, code rate 948/1024: the top of MCS table 1
    name: str = "shannon"

    def se_per_re(self, sinr_lin: FloatArray) -> FloatArray:
        s = np.asarray(sinr_lin, dtype=np.float64)
        se = np.minimum(self.alpha * np.log2(1.0 + np.maximum(s, 0.0)), self.max_se)
        return np.asarray(np.where(s < 10 ** (self.min_sinr_db / 10.0), 0.0, se))


class TableLink:
    """SE per RE on a uniform SINR grid (dB), clamped to the ends; linear or nearest lookup.

    Input
    -----
    sinr_db_min, sinr_db_step: grid start and spacing (dB)
    se: [n_grid] expected bits per resource element at each grid SINR
    mcs: [n_grid] the MCS index chosen at each grid SINR (informative)
    """

    def __init__(
        self,
        sinr_db_min: float,
        sinr_db_step: float,
        se: npt.ArrayLike,
        mcs: npt.ArrayLike | None = None,
        name: str = "table",
        meta: dict[str, Any] | None = None,
        mode: str = "linear",
    ) -> None:
        if mode not in ("linear", "nearest"):
            raise ValueError(f"table lookup mode {mode!r} is not 'linear' or 'nearest'")
        self.mode = mode
        self.se = np.asarray(se, dtype=np.float64)
        if self.se.ndim != 1 or self.se.size < 2 or sinr_db_step <= 0:
            raise ValueError("a link table needs >= 2 SE values and a positive SINR step")
        self.sinr_db_min = float(sinr_db_min)
        self.sinr_db_step = float(sinr_db_step)
        self.mcs = None if mcs is None else np.asarray(mcs, dtype=np.int64)
        self.name = name
        self.meta = meta or {}
        self.max_se = float(self.se.max())
        grid_db = self.sinr_db_min + self.sinr_db_step * np.arange(self.se.size)
        # rounding to the nearest grid point == comparing with the midpoints, in linear scale
        self._bounds = 10 ** ((grid_db[:-1] + self.sinr_db_step / 2.0) / 10.0)
        self._slope = np.diff(self.se)

    @property
    def sinr_db(self) -> FloatArray:
        return np.asarray(self.sinr_db_min + self.sinr_db_step * np.arange(self.se.size))

    def index(self, sinr_lin: FloatArray) -> npt.NDArray[np.intp]:
        return np.asarray(np.searchsorted(self._bounds, np.asarray(sinr_lin), side="right"))

    def se_per_re(self, sinr_lin: FloatArray) -> FloatArray:
        if self.mode == "nearest":
            return np.asarray(self.se[self.index(sinr_lin)])
        with np.errstate(divide="ignore"):
            pos = (10.0 * np.log10(np.asarray(sinr_lin, dtype=np.float64)) - self.sinr_db_min) / self.sinr_db_step
        pos = np.clip(pos, 0.0, self.se.size - 1.0)
        i = np.minimum(pos.astype(np.int64), self.se.size - 2)
        return np.asarray(self.se[i] + (pos - i) * self._slope[i])

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.meta,
            "sinr_db_min": self.sinr_db_min,
            "sinr_db_step": self.sinr_db_step,
            "se_per_re": [round(float(v), 6) for v in self.se],
            "mcs": None if self.mcs is None else [int(v) for v in self.mcs],
        }


def _data_path() -> Path:
    return Path(str(resources.files("twin.sim") / "data" / LINK_TABLE_FILE))


def load_link_table(path: Path | None = None, mcs_table: int = 1, mode: str = "linear") -> TableLink | None:
    """The shipped (or given) link table for NR PDSCH MCS table ``mcs_table``; ``None`` if absent."""
    p = path or _data_path()
    if not p.is_file():
        return None
    doc = json.loads(p.read_text())
    tab = doc.get("tables", {}).get(str(mcs_table))
    if tab is None:
        return None
    meta = {k: v for k, v in doc.items() if k != "tables"}
    meta["mcs_table"] = mcs_table
    return TableLink(tab["sinr_db_min"], tab["sinr_db_step"], tab["se_per_re"], tab.get("mcs"),
                     name=f"sionna-table{mcs_table}", meta=meta, mode=mode)


LinkModelName = Literal["table", "shannon"]
LINK_MODELS: tuple[str, ...] = ("table", "shannon")


def default_link_model(kind: LinkModelName = "table", mcs_table: int = 1) -> LinkModel:
    """``"table"`` (the Sionna table, Shannon if it is missing) or ``"shannon"``."""
    if kind == "shannon":
        return ShannonLink()
    if kind != "table":
        raise ValueError(f"link model {kind!r} is not 'table' or 'shannon'")
    table = load_link_table(mcs_table=mcs_table)
    return table if table is not None else ShannonLink()
