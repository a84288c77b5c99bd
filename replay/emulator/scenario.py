"""Scenarios of the emulated network: TOML files with the public network, the hidden truth and events.

A scenario has five parts (see ``scenarios/*.toml`` and ``docs/emulator.md``):

``[topology]``  the public network: a hexagonal layout (``rings``, ``isd_m``) and the cells'
                configuration (height, power, carrier, tilt), published as CM.
``[model]``     public simulation-model parameters an operator would configure for the twin
                (TR 38.901 environment, UE points, mean demand, indoor share, model seed). The
                emulator's physics starts from exactly this model.
``[truth]``     hidden ground truth the twin never reads: per-cell antenna gain and azimuth
                errors, an extra spatially correlated shadowing map, extra building loss, and
                measurement noise.
``[traffic]``   hidden truth of the load: a time-of-day profile, a demand scale and hotspots
                that move over the day.
``[[events]]``  scheduled events at hours after the start: ``antenna_fault``,
                ``azimuth_shift``, ``interference``, ``traffic_surge``, ``weather``, ``cm_change``.

>>> s = load_scenario("fault-midrun")
>>> s.name, s.events[0].kind, s.events[0].at_h
('fault-midrun', 'antenna_fault', 12.0)
>>> "suburban-quiet" in list_scenarios()
True
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from twin.prediction.model import PredictConfig
from twin.sim.traffic import DEFAULT_HOURLY_PROFILE

__all__ = [
    "EVENT_KINDS", "CellTruth", "Event", "Model", "MovingHotspot", "Scenario", "Topology", "Traffic", "Truth",
    "list_scenarios", "load_scenario", "parse_scenario",
]

EVENT_KINDS = ("antenna_fault", "azimuth_shift", "interference", "traffic_surge", "weather", "cm_change")


@dataclass(frozen=True)
class Topology:
    """Public layout and configuration. Units: m, dBm, GHz, MHz, degrees (tilt positive down)."""

    rings: int = 1
    isd_m: float = 500.0
    height_m: float = 25.0
    tx_power_dbm: float = 46.0
    arfcn_dl: int = 636_666  # 3.55 GHz (n78)
    bandwidth_mhz: int = 20
    elec_tilt_deg: float | None = None
    plmn: str = "00101"
    lat0: float = 53.35
    lon0: float = -6.26


# The public simulation model the twin is configured with (``twin.sim`` parameters): the scenario's
# ``[model]`` table is the twin's own prediction configuration, so the two cannot drift apart.
Model = PredictConfig


@dataclass(frozen=True)
class CellTruth:
    """An explicit hidden offset of one cell (``cell`` = index in the layout or cell key)."""

    cell: int | str
    gain_db: float = 0.0
    azimuth_deg: float = 0.0


@dataclass(frozen=True)
class Truth:
    """Hidden ground truth. ``*_sigma`` are standard deviations of per-cell draws (dB, degrees);
    shadowing is an extra per-site Gaussian field (dB, correlation distance m); building loss
    is extra O2I loss of indoor UEs (mean and sigma, dB); noise is measurement noise (PM:
    relative sigma; MR: dB). ``outer_ring_load`` > 0 surrounds the cluster with the next ring of
    sites of the real network (not part of the twin's cluster), radiating at that PRB load: the
    interference from outside the cluster a per-cluster twin does not simulate."""

    gain_sigma_db: float = 1.0
    azimuth_sigma_deg: float = 5.0
    shadowing_sigma_db: float = 4.0
    shadowing_corr_m: float = 60.0
    building_loss_db: float = 3.0
    building_loss_sigma_db: float = 2.0
    pm_noise_rel: float = 0.03
    mr_rsrp_noise_db: float = 2.0
    mr_sinr_noise_db: float = 2.0
    mr_idle_share: float = 0.45
    outer_ring_load: float = 0.0
    cells: tuple[CellTruth, ...] = ()

    def is_zero(self) -> bool:
        return all(
            v == 0
            for v in (
                self.gain_sigma_db, self.azimuth_sigma_deg, self.shadowing_sigma_db, self.building_loss_db,
                self.building_loss_sigma_db, self.pm_noise_rel, self.mr_rsrp_noise_db, self.mr_sinr_noise_db,
                self.outer_ring_load,
            )
        ) and not self.cells


@dataclass(frozen=True)
class MovingHotspot:
    """Extra UE density: weight multiplier ``1 + gain exp(-d^2 / 2 r^2)`` around a centre that
    moves linearly between ``path`` waypoints ``(hour, x_m, y_m)`` (held before the first and
    after the last)."""

    radius_m: float
    gain: float
    path: tuple[tuple[float, float, float], ...]


@dataclass(frozen=True)
class Traffic:
    """Hidden truth of the load: ``hourly_profile`` (24 values; None = the model's profile),
    ``demand_scale`` on every UE, and moving hotspots."""

    hourly_profile: tuple[float, ...] | None = None
    demand_scale: float = 1.0
    hotspots: tuple[MovingHotspot, ...] = ()

    def profile(self) -> tuple[float, ...]:
        return self.hourly_profile or DEFAULT_HOURLY_PROFILE


@dataclass(frozen=True)
class Event:
    """A scheduled event from ``at_h`` hours after the start for ``duration_h`` hours (None = to
    the end). ``params`` depend on ``kind``:

    ``antenna_fault``  cell, gain_drop_db
    ``azimuth_shift``  cell, deg (the antenna turned, e.g. by wind or a loose mount; CM unchanged)
    ``interference``   x_m, y_m, power_dbm (radiated, omni), height_m
    ``traffic_surge``  x_m, y_m, radius_m, factor (UE weight multiplier inside the disc)
    ``weather``        x_m, y_m, radius_m, extra_db (extra path loss inside the disc)
    ``cm_change``      cell, attribute, value (a change made outside the twin, by the OSS)
    """

    kind: str
    at_h: float
    duration_h: float | None = None
    label: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def active(self, hours: float) -> bool:
        """Whether the event is in force ``hours`` after the start."""
        if hours < self.at_h:
            return False
        return self.duration_h is None or hours < self.at_h + self.duration_h


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    topology: Topology = Topology()
    model: Model = field(default_factory=Model)
    truth: Truth = Truth()
    traffic: Traffic = Traffic()
    events: tuple[Event, ...] = ()

    def without_truth(self) -> Scenario:
        """The same public network with every hidden offset, noise, hotspot and event removed:
        the emulator then behaves exactly like the twin's model of it."""
        zero = Truth(0, 0, 0, self.truth.shadowing_corr_m, 0, 0, 0, 0, 0, self.truth.mr_idle_share)
        return replace(self, name=f"{self.name}-no-truth", truth=zero, traffic=Traffic(), events=())


def _pick(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"scenario [{where}]: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return data


def parse_scenario(data: dict[str, Any], name: str) -> Scenario:
    """Build a :class:`Scenario` from parsed TOML; ``ValueError`` names an unknown key or bad value."""
    extra = sorted(set(data) - {"name", "description", "topology", "model", "truth", "traffic", "events"})
    if extra:
        raise ValueError(f"scenario {name!r}: unknown section(s) {', '.join(extra)}")
    topo = Topology(**_pick(Topology, dict(data.get("topology", {})), "topology"))
    model = Model(**_pick(Model, dict(data.get("model", {})), "model"))
    t = dict(data.get("truth", {}))
    cells = tuple(CellTruth(**_pick(CellTruth, c, "truth.cells")) for c in t.pop("cells", []))
    truth = Truth(**_pick(Truth, t, "truth"), cells=cells)
    tr = dict(data.get("traffic", {}))
    hotspots = tuple(
        MovingHotspot(
            radius_m=float(h["radius_m"]),
            gain=float(h["gain"]),
            path=tuple((float(p[0]), float(p[1]), float(p[2])) for p in h["path"]),
        )
        for h in tr.pop("hotspots", [])
    )
    profile = tr.pop("hourly_profile", None)
    traffic = Traffic(
        hourly_profile=None if profile is None else tuple(float(v) for v in profile),
        hotspots=hotspots,
        **_pick(Traffic, tr, "traffic"),
    )
    if traffic.hourly_profile is not None and len(traffic.hourly_profile) != 24:
        raise ValueError(f"scenario {name!r}: traffic.hourly_profile needs 24 values")
    events = []
    for i, e in enumerate(data.get("events", [])):
        e = dict(e)
        kind = e.pop("kind", None)
        if kind not in EVENT_KINDS:
            raise ValueError(f"scenario {name!r}: events[{i}].kind={kind!r} is not one of {', '.join(EVENT_KINDS)}")
        at_h = float(e.pop("at_h"))
        duration = e.pop("duration_h", None)
        label = str(e.pop("label", kind))
        events.append(Event(kind, at_h, None if duration is None else float(duration), label, e))
    return Scenario(
        name=str(data.get("name", name)),
        description=str(data.get("description", "")),
        topology=topo,
        model=model,
        truth=truth,
        traffic=traffic,
        events=tuple(sorted(events, key=lambda ev: ev.at_h)),
    )


def _packaged() -> dict[str, Any]:
    return {p.name[:-5]: p for p in resources.files("replay.emulator").joinpath("scenarios").iterdir()
            if p.name.endswith(".toml")}


def list_scenarios() -> list[str]:
    """Names of the scenarios shipped with the package."""
    return sorted(_packaged())


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name, or a TOML file by path."""
    packaged = _packaged()
    if isinstance(name_or_path, str) and name_or_path in packaged:
        text = packaged[name_or_path].read_text(encoding="utf-8")
        return parse_scenario(tomllib.loads(text), name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"scenario {str(name_or_path)!r} is neither a shipped scenario "
                         f"({', '.join(sorted(packaged))}) nor a TOML file")
    return parse_scenario(tomllib.loads(path.read_text(encoding="utf-8")), path.stem)
