"""The state encoder the real network and the twin share (spec ``dt-bsm.md`` §9.1).

One cell and one period become one state, one CM change between two periods of a cell one action,
and the period's per-UE throughput one reward in [0, 1]:

==========  ======================================  ====================================  ======
part        measurement                              bins (default, inner edges)           count
==========  ======================================  ====================================  ======
load        ``RRU.PrbTotDl``, % of PRBs              <30, 30–60, 60–85, ≥85                 4
quality     ``MR.NRScSSSINR.Mean``, dB               <0, 0–5, 5–10, 10–20, ≥20              5
config      electrical tilt, degrees (+ = down)      <3, 3–7, ≥7                            3
==========  ======================================  ====================================  ======

|S| = 4·5·3 = 60; state = (load·n_quality + quality)·n_config + config. A value on an edge falls in
the upper bin. The electrical tilt is the CM's ``digitalTilt`` (0.1°), else ``retTiltValue``, else
0; a missing PRB load or SINR gives no state (that cell-period is skipped).

Actions (``ACTIONS``): the class of the CM change between two consecutive periods of a cell,
looked at in this order, the first that moved by at least half its what-if step wins:
electrical tilt (step 1°: a change of ≥ 0.5°; *up* = less downtilt), ``configuredMaxTxPower``
(step 1 dB: ≥ 0.5 dB), ``cellIndividualOffset`` (step 2 dB: ≥ 1 dB); otherwise ``none``. The twin's
what-ifs apply one full step (``StateEncoder.change``).

Reward: ``min(DRB.UEThpDl, cap)/cap`` with the cap 100,000 kbit/s (100 Mbit/s) by default; the
throughput of the period the action led to, so R̄ = 1.

>>> enc = StateEncoder()
>>> enc.n_states, len(ACTIONS)
(60, 7)
>>> enc.state(prb_pct=45.0, sinr_db=12.0, tilt_deg=4.0)  # load bin 1, quality bin 3, config bin 1
25
>>> enc.decode(25)
(1, 3, 1)
>>> enc.state(prb_pct=30.0, sinr_db=-3.0, tilt_deg=7.0), enc.state(prb_pct=float("nan"), sinr_db=1.0, tilt_deg=0.0)
(17, None)
>>> enc.reward(34_340.0), enc.reward(250_000.0)  # kbit/s
(0.3434, 1.0)
>>> enc.action({"digitalTilt": 40}, {"digitalTilt": 30})  # 4.0° -> 3.0°: less downtilt
'tilt_up'
>>> enc.action({"configuredMaxTxPower": 39811}, {"configuredMaxTxPower": 50119})  # 46 -> 47 dBm
'power_up'
>>> enc.action({"cellIndividualOffset": 0.0}, {"cellIndividualOffset": 0.5})  # below the 1 dB threshold
'none'
>>> enc.change({"digitalTilt": 40, "configuredMaxTxPower": 39811}, "tilt_down")
{'digitalTilt': 50}
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ACTIONS", "PRB", "SINR", "THP", "StateEncoder", "cio_db", "power_dbm", "tilt_deg"]

PRB = "RRU.PrbTotDl"
SINR = "MR.NRScSSSINR.Mean"
THP = "DRB.UEThpDl"
ACTIONS: tuple[str, ...] = ("none", "tilt_up", "tilt_down", "power_up", "power_down", "cio_up", "cio_down")


def _num(value: Any) -> float | None:
    if isinstance(value, Mapping):
        value = value.get("rsrpOffsetSSB", value.get("rsrpOffsetSsb"))
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def tilt_deg(cm: Mapping[str, Any]) -> float:
    """Electrical tilt (degrees, + = down) of a cell's CM view: ``digitalTilt``, else ``retTiltValue`` (0.1°)."""
    for name in ("digitalTilt", "retTiltValue"):
        v = _num(cm.get(name))
        if v is not None:
            return v / 10.0
    return 0.0


def power_dbm(cm: Mapping[str, Any]) -> float | None:
    """``configuredMaxTxPower`` (mW) in dBm."""
    v = _num(cm.get("configuredMaxTxPower"))
    return 10.0 * math.log10(v) if v is not None and v > 0 else None


def cio_db(cm: Mapping[str, Any]) -> float:
    """``cellIndividualOffset`` (dB, or ``{"rsrpOffsetSSB": dB}``); 0 when absent."""
    v = _num(cm.get("cellIndividualOffset"))
    return 0.0 if v is None else v


@dataclass(frozen=True)
class StateEncoder:
    """Bins, action thresholds and the reward cap (module table); build it from ``FidelitySettings``
    with :meth:`from_settings`."""

    prb_edges: Sequence[float] = (30.0, 60.0, 85.0)
    sinr_edges: Sequence[float] = (0.0, 5.0, 10.0, 20.0)
    tilt_edges: Sequence[float] = (3.0, 7.0)
    throughput_cap_kbps: float = 100_000.0
    tilt_step_deg: float = 1.0
    power_step_db: float = 1.0
    cio_step_db: float = 2.0

    @classmethod
    def from_settings(cls, s: Any) -> StateEncoder:
        return cls(tuple(s.prb_edges_pct), tuple(s.sinr_edges_db), tuple(s.tilt_edges_deg), s.throughput_cap_kbps,
                   s.tilt_step_deg, s.power_step_db, s.cio_step_db)

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.prb_edges) + 1, len(self.sinr_edges) + 1, len(self.tilt_edges) + 1

    @property
    def n_states(self) -> int:
        a, b, c = self.shape
        return a * b * c

    @property
    def n_actions(self) -> int:
        return len(ACTIONS)

    def state(self, prb_pct: float | None, sinr_db: float | None, tilt_deg: float) -> int | None:
        """The state of a cell-period (None when the load or the SINR is missing)."""
        if prb_pct is None or sinr_db is None or not (math.isfinite(prb_pct) and math.isfinite(sinr_db)):
            return None
        _, nq, nc = self.shape
        load = bisect.bisect_right(self.prb_edges, prb_pct)
        quality = bisect.bisect_right(self.sinr_edges, sinr_db)
        config = bisect.bisect_right(self.tilt_edges, tilt_deg)
        return (load * nq + quality) * nc + config

    def decode(self, state: int) -> tuple[int, int, int]:
        """(load bin, quality bin, config bin) of a state."""
        _, nq, nc = self.shape
        rest, config = divmod(state, nc)
        load, quality = divmod(rest, nq)
        return load, quality, config

    def encode(self, kpis: Mapping[str, float], cm: Mapping[str, Any]) -> int | None:
        """The state of a cell's period from its KPIs (``RRU.PrbTotDl``, ``MR.NRScSSSINR.Mean``) and CM view."""
        return self.state(kpis.get(PRB), kpis.get(SINR), tilt_deg(cm))

    def reward(self, throughput_kbps: float | None) -> float | None:
        """``min(DRB.UEThpDl, cap)/cap`` in [0, 1] (None when missing)."""
        if throughput_kbps is None or not math.isfinite(throughput_kbps):
            return None
        return min(max(throughput_kbps, 0.0), self.throughput_cap_kbps) / self.throughput_cap_kbps

    def action(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
        """The class of the CM change of one cell from ``before`` to ``after`` (module doc)."""
        dt = tilt_deg(after) - tilt_deg(before)
        if abs(dt) >= self.tilt_step_deg / 2:
            return "tilt_down" if dt > 0 else "tilt_up"
        p0, p1 = power_dbm(before), power_dbm(after)
        if p0 is not None and p1 is not None and abs(p1 - p0) >= self.power_step_db / 2:
            return "power_up" if p1 > p0 else "power_down"
        dc = cio_db(after) - cio_db(before)
        if abs(dc) >= self.cio_step_db / 2:
            return "cio_up" if dc > 0 else "cio_down"
        return "none"

    def change(self, cm: Mapping[str, Any], action: str) -> dict[str, Any] | None:
        """The CM change (``{attribute: value}``) that applies ``action`` to a cell whose CM view is
        ``cm``, one full step; None for ``none`` or a step that would leave the attribute's range."""
        if action in ("tilt_up", "tilt_down"):
            name = "retTiltValue" if _num(cm.get("digitalTilt")) is None and _num(cm.get("retTiltValue")) is not None \
                else "digitalTilt"
            now = _num(cm.get(name)) or 0.0
            new = round(now + (10.0 if action == "tilt_down" else -10.0) * self.tilt_step_deg)
            return {name: new} if -900 <= new <= 900 else None
        if action in ("power_up", "power_down"):
            p = _num(cm.get("configuredMaxTxPower"))
            if p is None or p <= 0:
                return None
            new = round(p * 10 ** ((self.power_step_db if action == "power_up" else -self.power_step_db) / 10.0))
            return {"configuredMaxTxPower": new} if 1 <= new <= 1_000_000 else None
        if action in ("cio_up", "cio_down"):
            new_cio = cio_db(cm) + (self.cio_step_db if action == "cio_up" else -self.cio_step_db)
            return {"cellIndividualOffset": new_cio} if -24 <= new_cio <= 24 else None
        return None
