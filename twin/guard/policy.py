"""The guard's policy: the ``[guard]`` section of the twin's TOML, one policy for every change.

Why a section of the same file: the operator who sets the runtime up sets its safety policy in the
same place, and a misspelt key is an error (``extra="forbid"``), never a silently absent rule.

>>> p = GuardPolicy()
>>> (p.mode, p.kill_switch, p.rule_for("NRSectorCarrier", "configuredMaxTxPower").step_scale)
('manual', False, 'db')
>>> GuardPolicy(windows=["25:00-06:00"])
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for GuardPolicy
windows
  Value error, change window '25:00-06:00' must be HH:MM-HH:MM with hours 00-23 and minutes 00-59 ...
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from twin.schemas.change import parse_window as _parse_window

__all__ = ["AttributeRule", "GuardPolicy", "ProtectedKpi", "parse_window"]


def parse_window(text: str) -> tuple[time, time]:
    """``"HH:MM-HH:MM"`` as (start, end); an end before the start spans midnight. The schema's parser
    (``twin.schemas.change.parse_window``), which also checks a request's own ``guard.allowedWindow``
    at the edge, so the policy and a request cannot disagree on what a window is.

    >>> parse_window("22:00-05:30")
    (datetime.time(22, 0), datetime.time(5, 30))
    """
    return _parse_window(text)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AttributeRule(_Section):
    """Bounds of one attribute, in the attribute's own unit (mW, 0.1 degree, dB)."""

    min: float
    max: float
    max_step: float = Field(gt=0, description="largest change in one request, in the unit of step_scale")
    step_scale: Literal["linear", "db"] = Field(default="linear", description="'db': the step is "
                                                "10 log10(to / from), for powers in mW")
    integer: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> AttributeRule:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if self.step_scale == "db" and self.min <= 0:
            raise ValueError(f"a step in dB needs a positive min (got {self.min})")
        return self

    def step(self, old: float, new: float) -> float:
        """Size of the step from ``old`` to ``new`` in this rule's scale.

        >>> AttributeRule(min=1, max=1e5, max_step=3, step_scale="db").step(20000, 10000)
        3.0103
        """
        if self.step_scale == "db":
            return round(abs(10.0 * math.log10(new / old)), 4)
        return abs(new - old)


class ProtectedKpi(_Section):
    """A KPI the verification watches: a change that makes it worse than ``max_degradation_pct``
    (against what the KPI would have been without the change) is rolled back; 0 rolls back any
    degradation the verification measures."""

    max_degradation_pct: float = Field(ge=0, le=100)
    higher_is_better: bool = True


def _default_attributes() -> dict[str, AttributeRule]:
    return {
        # 1 W .. 80 W carriers; one request moves the power by at most 3 dB
        "NRSectorCarrier.configuredMaxTxPower": AttributeRule(min=1000, max=80000, max_step=3.0, step_scale="db",
                                                              integer=True),
        # electrical (digital) tilt in 0.1 degree: 0..15 degrees, at most 2 degrees a step
        "SectorEquipmentFunction.digitalTilt": AttributeRule(min=0, max=150, max_step=20, integer=True),
        "CommonBeamformingFunction.digitalTilt": AttributeRule(min=0, max=150, max_step=20, integer=True),
        # CIO in dB, the usual +-6 dB working range of the 3GPP QOffsetRange, 2 dB a step
        "NRCellDU.cellIndividualOffset": AttributeRule(min=-6, max=6, max_step=2),
        "NRCellRelation.cellIndividualOffset": AttributeRule(min=-6, max=6, max_step=2),
    }


def _default_protected() -> dict[str, ProtectedKpi]:
    return {"DRB.UEThpDl": ProtectedKpi(max_degradation_pct=5.0)}


class GuardPolicy(_Section):
    """Every rule a CM change must pass (``twin.guard.Guard``); defaults are the cautious ones."""

    mode: Literal["auto", "manual", "dry-run"] = Field(default="manual", description="auto: an allowed change is "
        "pushed at once; manual: it waits for an operator's approval; dry-run: validated by the device, never applied")
    kill_switch: bool = Field(default=False, description="refuse every change (also settable at run time: "
                              "twin cm kill-switch on)")
    attributes: dict[str, AttributeRule] = Field(default_factory=_default_attributes, description="'Class.attribute'"
        " -> bounds; an attribute not listed is never changed")
    min_interval_s: int = Field(default=6 * 3600, ge=0, description="least time between two changes on one cell")
    max_cells_per_cluster: int = Field(default=2, ge=1, description="cells of one cluster with a change in flight "
                                       "at once (blast radius)")
    windows: list[str] = Field(default_factory=list, description="'HH:MM-HH:MM' change windows in `timezone`; "
                               "empty: any time")
    timezone: str = "UTC"
    trust_gate: bool = Field(default=True, description="a twin-justified change needs the DT-BSM trust verdict "
                             "and a calibrated error within max_calibrated_error")
    max_calibrated_error: float = Field(default=0.25, gt=0, description="largest rolling calibrated error (mean "
                                        "relative) of the cluster's cells that a twin-justified change accepts")
    min_gain_pct: float = Field(default=1.0, ge=0, description="least predicted objective gain of a twin-justified "
                                "change (percent)")
    observe_periods: int = Field(default=4, ge=1, le=96, description="periods the verification watches after apply")
    max_push_attempts: int = Field(default=5, ge=1, le=100, description="applies (or restores) of one change whose "
                                   "answer was a transport failure with the device still on the other value; then the "
                                   "change ends FAILED with an alert (a roll back that never takes: CRITICAL)")
    baseline_periods: int = Field(default=4, ge=1, le=96, description="periods before the change that make "
                                  "the baseline")
    protected_kpis: dict[str, ProtectedKpi] = Field(default_factory=_default_protected)
    approval_timeout_s: int = Field(default=24 * 3600, ge=60, description="a change left unapproved this long "
                                    "expires")

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        for w in value:
            start, end = parse_window(w)
            if start == end:  # read as "start <= t < start": no time at all, every change refused
                raise ValueError(f"change window {w!r} is empty: its start equals its end, so no change could "
                                 "ever be pushed; leave `windows` empty for any time of day")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"timezone {value!r} is not an IANA time zone") from exc
        return value

    @field_validator("attributes")
    @classmethod
    def _names(cls, value: dict[str, AttributeRule]) -> dict[str, AttributeRule]:
        for name in value:
            if name.count(".") != 1 or not all(name.split(".")):
                raise ValueError(f"attribute rule {name!r} must be named 'Class.attribute'")
        return value

    def rule_for(self, cls: str, attribute: str) -> AttributeRule | None:
        return self.attributes.get(f"{cls}.{attribute}")

    def protected_for(self, requested: Iterable[tuple[str, float]]) -> tuple[dict[str, ProtectedKpi], list[str]]:
        """The KPIs a change's verification judges: the policy's, each tightened to a request's own
        ``maxDegradationPct`` where that is smaller (a request never loosens the policy), keeping the
        policy's direction; and the requested names the policy does not protect, whose direction
        (higher or lower is better) nothing states, so nothing can judge them (the guard refuses such
        a request).

        >>> p = GuardPolicy(protected_kpis={"DRB.UEThpDl": {"max_degradation_pct": 5},
        ...                                 "RRU.PrbTotDl": {"max_degradation_pct": 3, "higher_is_better": False}})
        >>> rules, unknown = p.protected_for([("RRU.PrbTotDl", 0.0), ("DRB.UEThpDl", 10.0), ("RRC.ConnMean", 2.0)])
        >>> rules["RRU.PrbTotDl"], rules["DRB.UEThpDl"].max_degradation_pct, unknown
        (ProtectedKpi(max_degradation_pct=0.0, higher_is_better=False), 5.0, ['RRC.ConnMean'])
        """
        rules = dict(self.protected_kpis)
        unknown: list[str] = []
        for name, pct in requested:
            rule = rules.get(name)
            if rule is None:
                unknown.append(name)
            elif pct < rule.max_degradation_pct:
                rules[name] = ProtectedKpi(max_degradation_pct=pct, higher_is_better=rule.higher_is_better)
        return rules, unknown
