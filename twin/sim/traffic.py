"""UE density and demand over a cluster: uniform background plus hotspots, scaled by time of day.

A :class:`TrafficMap` is sampled once into fixed UE points (:class:`UePoints`). Each point
stands for ``weight`` connected UEs with a mean offered DL load of ``demand_bps`` each; the
time-of-day profile scales the weights, so a different hour reuses every cached geometry and
gain and only changes the load.

>>> from twin.sim.topology import hex_cluster
>>> ues = TrafficMap(n_ues=500, hotspots=(Hotspot(0.0, 0.0, 100.0, 0.2),)).sample(hex_cluster(1), seed=3)
>>> ues.n, bool((ues.weight == 1.0).all())
(500, True)
>>> round(TrafficMap().hour_factor(4), 2), TrafficMap().hour_factor(20)
(0.15, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from twin.sim.topology import Cluster

__all__ = ["DEFAULT_HOURLY_PROFILE", "Hotspot", "TrafficMap", "UePoints"]

FloatArray = npt.NDArray[np.float64]

#: Relative busy-hour profile of connected UEs per hour of day (peak = 1), a typical
#: mobile-broadband diurnal shape: night trough around 04:00, evening peak around 20:00.
DEFAULT_HOURLY_PROFILE: tuple[float, ...] = (
    0.45, 0.32, 0.22, 0.17, 0.15, 0.17, 0.25, 0.42, 0.60, 0.70, 0.75, 0.79,
    0.82, 0.82, 0.80, 0.80, 0.83, 0.88, 0.93, 0.97, 1.00, 0.97, 0.85, 0.65,
)


@dataclass(frozen=True)
class Hotspot:
    """A disc of extra UEs: centre (m), radius (m) and the share of all UEs inside it."""

    x_m: float
    y_m: float
    radius_m: float
    share: float


@dataclass(frozen=True)
class UePoints:
    """Fixed UE points. Every array has shape [n_ues]; units m, bit/s."""

    x_m: FloatArray
    y_m: FloatArray
    h_m: FloatArray
    indoor: npt.NDArray[np.bool_]
    weight: FloatArray
    demand_bps: FloatArray

    @property
    def n(self) -> int:
        return int(self.x_m.size)

    def scaled(self, factor: float) -> UePoints:
        """The same points with weights (connected UEs) multiplied by ``factor``."""
        if not np.isfinite(factor) or factor < 0:
            raise ValueError(f"traffic scale factor must be finite and >= 0, got {factor}")
        return replace(self, weight=self.weight * factor)

    @classmethod
    def at(
        cls,
        x_m: npt.ArrayLike,
        y_m: npt.ArrayLike,
        h_m: float | npt.ArrayLike = 1.5,
        indoor: bool | npt.ArrayLike = False,
        weight: float | npt.ArrayLike = 1.0,
        demand_bps: float | npt.ArrayLike = 1e6,
    ) -> UePoints:
        """UE points at given positions (for tests, replayed MDT locations, Sionna drops)."""
        x = np.asarray(x_m, dtype=np.float64).ravel()
        y = np.asarray(y_m, dtype=np.float64).ravel()
        if x.shape != y.shape:
            raise ValueError(f"x_m and y_m differ in shape: {x.shape} vs {y.shape}")

        def full(v: float | npt.ArrayLike, dtype: type) -> npt.NDArray[np.generic]:
            return np.broadcast_to(np.asarray(v, dtype=dtype), x.shape).copy()

        return cls(x, y, full(h_m, np.float64), full(indoor, bool),  # type: ignore[arg-type]
                   full(weight, np.float64), full(demand_bps, np.float64))  # type: ignore[arg-type]


@dataclass(frozen=True)
class TrafficMap:
    """UE density and demand of a cluster.

    ``n_ues`` points are dropped uniformly over the area served by the cluster (discs of
    radius ``isd/sqrt(3)`` around the sites, at least ``min_ue_distance_m`` from any site),
    except a ``share`` of them per hotspot dropped uniformly in the hotspot's disc.
    ``demand_bps`` is the mean offered DL load per connected UE (bit/s), ``indoor_fraction``
    the share of indoor UEs (TR 38.901 Table 7.2-1 uses 80 % for UMa/UMi), ``ue_height_m``
    the UE antenna height.
    """

    n_ues: int = 5000
    demand_bps: float = 150e3
    indoor_fraction: float = 0.8
    ue_height_m: float = 1.5
    hotspots: tuple[Hotspot, ...] = ()
    hourly_profile: tuple[float, ...] = field(default=DEFAULT_HOURLY_PROFILE)

    def __post_init__(self) -> None:
        if self.n_ues < 1:
            raise ValueError(f"n_ues must be >= 1, got {self.n_ues}")
        if self.demand_bps < 0:
            raise ValueError(f"demand_bps must be >= 0, got {self.demand_bps}")
        if not 0.0 <= self.indoor_fraction <= 1.0:
            raise ValueError(f"indoor_fraction must be in 0..1, got {self.indoor_fraction}")
        if len(self.hourly_profile) != 24:
            raise ValueError(f"hourly_profile needs 24 values, got {len(self.hourly_profile)}")
        if sum(h.share for h in self.hotspots) > 1.0:
            raise ValueError("hotspot shares add up to more than 1")

    def hour_factor(self, hour: float) -> float:
        """Profile value at ``hour`` (0..24, linear between whole hours)."""
        h = float(hour) % 24.0
        i = int(h)
        frac = h - i
        p = self.hourly_profile
        return float((1 - frac) * p[i] + frac * p[(i + 1) % 24])

    def sample(self, cluster: Cluster, seed: int = 0) -> UePoints:
        """Drop the UE points; the same cluster and seed give the same points."""
        rng = np.random.default_rng([seed, 7201])
        sites = np.unique(np.array([[s.x_m, s.y_m] for s in cluster.sectors]), axis=0)
        radius = cluster.isd_m / np.sqrt(3.0)
        counts = [round(h.share * self.n_ues) for h in self.hotspots]
        n_bg = self.n_ues - sum(counts)
        xs: list[FloatArray] = []
        ys: list[FloatArray] = []

        def accept(x: FloatArray, y: FloatArray, need_cover: bool) -> npt.NDArray[np.bool_]:
            d = np.hypot(x[:, None] - sites[None, :, 0], y[:, None] - sites[None, :, 1])
            ok = d.min(axis=1) >= cluster.min_ue_distance_m
            if need_cover:
                ok &= d.min(axis=1) <= radius
            return np.asarray(ok)

        lo = sites.min(axis=0) - radius
        hi = sites.max(axis=0) + radius
        got = 0
        while got < n_bg:
            m = max(64, 2 * (n_bg - got))
            x = rng.uniform(lo[0], hi[0], m)
            y = rng.uniform(lo[1], hi[1], m)
            ok = accept(x, y, True)
            x, y = x[ok][: n_bg - got], y[ok][: n_bg - got]
            xs.append(x)
            ys.append(y)
            got += x.size
        for h, n in zip(self.hotspots, counts, strict=True):
            got = 0
            while got < n:
                m = max(64, 2 * (n - got))
                r = h.radius_m * np.sqrt(rng.random(m))
                a = rng.uniform(0, 2 * np.pi, m)
                x, y = h.x_m + r * np.cos(a), h.y_m + r * np.sin(a)
                ok = accept(x, y, False)
                x, y = x[ok][: n - got], y[ok][: n - got]
                xs.append(x)
                ys.append(y)
                got += x.size
        x_all = np.concatenate(xs)
        y_all = np.concatenate(ys)
        indoor = rng.random(x_all.size) < self.indoor_fraction
        return UePoints.at(x_all, y_all, self.ue_height_m, indoor, 1.0, self.demand_bps)
