"""CM attributes the simulation model understands: names, units, ranges, validation.

Names are TS 28.541 NRM attribute names where the NRM has one; the few the NRM lacks
(mechanical tilt, antenna height and gain) carry twin-local names, marked below. Every value
is checked; an invalid one raises ``ValueError`` naming the cell, the attribute and the value.

=========================  ==============================  ===========================
attribute                  unit / range                    sets
=========================  ==============================  ===========================
``configuredMaxTxPower``   mW, 1..1e6 (int32 in the NRM)    total carrier power (dBm)
``digitalTilt``            0.1°, -900..900, + = down        electrical tilt
``retTiltValue``           0.1°, -900..900, + = down        electrical tilt (RET)
``mechanicalTilt`` (twin)  0.1°, -900..900, + = down        mechanical tilt
``azimuth``                degrees, 0..<360 (bearing)      sector azimuth
``antennaHeight`` (twin)   m, 1..300                        antenna height
``beamVertWidth``          0.1°, 1..1800                    vertical half-power width
``beamHorizWidth``         0.1°, 1..3599                    horizontal half-power width
``antennaMaxGain`` (twin)  dBi, -10..30                     maximum antenna gain
``arfcnDL``                NR-ARFCN, 0..3279165             carrier frequency
``bSChannelBwDL``          MHz, an NR channel bandwidth     carrier bandwidth
``subCarrierSpacing``      kHz, 15/30/60/120                numerology (PRB count)
``cellIndividualOffset``   dB, -24..24 (QOffsetRange), or   CIO towards this cell
                           ``{"rsrpOffsetSSB": dB}``
``administrativeState``    LOCKED / UNLOCKED / SHUTTINGDOWN cell on or off
=========================  ==============================  ===========================

The electrical tilt must also stay inside the cell's ``tilt_range_deg`` (default -10..20°).
CIO in the NRM lives on each ``NRCellRelation``; the twin models it as one handover bias
towards the cell, which is what a uniform set of relation offsets does.

>>> from twin.sim.topology import Sector
>>> s = apply_cm_to_sector(Sector("nr:00101-000000101", "a", 0.0, 0.0), {"digitalTilt": 45})
>>> s.elec_tilt_deg
4.5
>>> apply_cm_to_sector(s, {"digitalTilt": 1200})
Traceback (most recent call last):
...
ValueError: cell 'nr:00101-000000101': digitalTilt=1200 outside the allowed range -900..900 (0.1 degree)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from twin.sim.topology import Sector

__all__ = [
    "ATTRIBUTES",
    "NR_CHANNEL_BW_MHZ",
    "POSITION_ATTRIBUTES",
    "SUPPORTED",
    "Attribute",
    "apply_cm_to_sector",
    "normalise_attributes",
    "nr_arfcn_to_ghz",
]

NR_CHANNEL_BW_MHZ = (5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80, 90, 100, 200, 400)
POSITION_ATTRIBUTES = frozenset({"lat", "lon", "x", "y", "siteId"})


@dataclass(frozen=True)
class Attribute:
    name: str
    lo: float
    hi: float
    unit: str
    apply: Callable[[Sector, float], Sector]


def nr_arfcn_to_ghz(arfcn: int) -> float:
    """Carrier frequency (GHz) of an NR-ARFCN (TS 38.104 §5.4.2.1).

    >>> nr_arfcn_to_ghz(636666)
    3.54999
    """
    n = int(arfcn)
    if 0 <= n < 600_000:
        mhz = 0.005 * n
    elif n < 2_016_667:
        mhz = 3000.0 + 0.015 * (n - 600_000)
    elif n <= 3_279_165:
        mhz = 24250.08 + 0.06 * (n - 2_016_667)
    else:
        raise ValueError(f"arfcnDL={arfcn} outside 0..3279165")
    return round(mhz / 1000.0, 6)


def _tilt_e(s: Sector, v: float) -> Sector:
    return replace(s, elec_tilt_deg=v / 10.0)


ATTRIBUTES: dict[str, Attribute] = {
    a.name: a
    for a in (
        Attribute("configuredMaxTxPower", 1, 1e6, "mW",
                  lambda s, v: replace(s, tx_power_dbm=10.0 * math.log10(v))),
        Attribute("digitalTilt", -900, 900, "0.1 degree", _tilt_e),
        Attribute("retTiltValue", -900, 900, "0.1 degree", _tilt_e),
        Attribute("mechanicalTilt", -900, 900, "0.1 degree", lambda s, v: replace(s, mech_tilt_deg=v / 10.0)),
        Attribute("azimuth", 0, 359.999999, "degree", lambda s, v: replace(s, azimuth_deg=v)),
        Attribute("antennaHeight", 1, 300, "m", lambda s, v: replace(s, height_m=v)),
        Attribute("beamVertWidth", 1, 1800, "0.1 degree", lambda s, v: replace(s, v_beamwidth_deg=v / 10.0)),
        Attribute("beamHorizWidth", 1, 3599, "0.1 degree", lambda s, v: replace(s, h_beamwidth_deg=v / 10.0)),
        Attribute("antennaMaxGain", -10, 30, "dBi", lambda s, v: replace(s, max_gain_dbi=v)),
        Attribute("arfcnDL", 0, 3_279_165, "NR-ARFCN", lambda s, v: replace(s, fc_ghz=nr_arfcn_to_ghz(int(v)))),
        Attribute("bSChannelBwDL", 5, 400, "MHz", lambda s, v: replace(s, bandwidth_mhz=v)),
        Attribute("subCarrierSpacing", 15, 120, "kHz", lambda s, v: replace(s, scs_khz=v)),
        Attribute("cellIndividualOffset", -24, 24, "dB", lambda s, v: replace(s, cio_db=v)),
    )
}
SUPPORTED = frozenset({*ATTRIBUTES, "administrativeState"})


def _unwrap(value: Any) -> Any:
    """The value of a mirror entry: ``[value, observedAt, dn(, since)]`` or ``{"value": v, ...}``."""
    if isinstance(value, list | tuple) and len(value) in (3, 4) and isinstance(value[2], str | type(None)):
        return value[0]
    if isinstance(value, Mapping) and "value" in value:
        return value["value"]
    return value


def normalise_attributes(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Strip the mirror's ``Class.`` prefixes and value wrappers: ``{attribute: value}``.

    >>> normalise_attributes({"NRSectorCarrier.configuredMaxTxPower": [20000, 1.0, "dn"]})
    {'configuredMaxTxPower': 20000}
    """
    out: dict[str, Any] = {}
    for name, value in attrs.items():
        head, _, tail = name.partition(".")
        key = tail if tail and head[:1].isupper() else name
        out[key] = _unwrap(value)
    return out


def _number(cell: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"cell {cell!r}: {name}={value!r} is not a number")
    try:
        v = float(value)
    except ValueError:
        raise ValueError(f"cell {cell!r}: {name}={value!r} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"cell {cell!r}: {name}={value!r} is not a finite number")
    return v


def _fmt(x: float) -> str:
    return f"{x:g}"


def apply_cm_to_sector(sector: Sector, attrs: Mapping[str, Any], strict: bool = True) -> Sector:
    """Return ``sector`` with CM ``attrs`` applied (see the module table).

    With ``strict`` an attribute the model cannot simulate raises ``ValueError`` (a what-if
    must not silently ignore a change); otherwise such attributes are skipped, as for a full
    mirror view that carries many attributes the model does not use.
    """
    cell = sector.cell_key
    out = sector
    for name, raw in normalise_attributes(attrs).items():
        if name in POSITION_ATTRIBUTES:
            if strict:
                raise ValueError(f"cell {cell!r}: {name}={raw!r} cannot change in a what-if (sites are fixed)")
            continue
        if name == "administrativeState":
            state = str(raw).upper()
            if state not in ("LOCKED", "UNLOCKED", "SHUTTINGDOWN"):
                raise ValueError(
                    f"cell {cell!r}: administrativeState={raw!r} is not LOCKED, UNLOCKED or SHUTTINGDOWN"
                )
            out = replace(out, active=state == "UNLOCKED")
            continue
        attr = ATTRIBUTES.get(name)
        if attr is None:
            if strict:
                raise ValueError(
                    f"cell {cell!r}: attribute {name!r} (value {raw!r}) is not simulated; "
                    f"supported: {', '.join(sorted(SUPPORTED))}"
                )
            continue
        value = raw
        if name == "cellIndividualOffset" and isinstance(raw, Mapping):
            value = raw.get("rsrpOffsetSSB", raw.get("rsrpOffsetSsb"))
            if value is None:
                raise ValueError(f"cell {cell!r}: cellIndividualOffset={raw!r} has no rsrpOffsetSSB")
        v = _number(cell, name, value)
        if not attr.lo <= v <= attr.hi:
            raise ValueError(
                f"cell {cell!r}: {name}={value!r} outside the allowed range "
                f"{_fmt(attr.lo)}..{_fmt(attr.hi)} ({attr.unit})"
            )
        if name == "bSChannelBwDL" and v not in NR_CHANNEL_BW_MHZ:
            raise ValueError(
                f"cell {cell!r}: bSChannelBwDL={value!r} is not an NR channel bandwidth "
                f"({', '.join(map(str, NR_CHANNEL_BW_MHZ))} MHz)"
            )
        if name == "subCarrierSpacing" and v not in (15, 30, 60, 120):
            raise ValueError(f"cell {cell!r}: subCarrierSpacing={value!r} is not 15, 30, 60 or 120 kHz")
        out = attr.apply(out, v)
        if name in ("digitalTilt", "retTiltValue"):
            lo, hi = out.tilt_range_deg
            if not lo <= out.elec_tilt_deg <= hi:
                raise ValueError(
                    f"cell {cell!r}: {name}={value!r} gives an electrical tilt of {out.elec_tilt_deg:g}°, "
                    f"outside the cell's allowed range {_fmt(lo)}..{_fmt(hi)}°"
                )
    return out
