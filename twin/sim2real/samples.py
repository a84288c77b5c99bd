"""``Samples``: labelled cell-periods, the one data shape every Sim2Real step reads and writes.

>>> import numpy as np
>>> s = Samples(np.zeros((3, len(FEATURES))), np.ones((3, len(TARGETS))), np.array([0, 1, 1]), ("a/x", "a/y"))
>>> len(s), len(s.take(np.array([1, 2])))
(3, 2)
>>> Samples(np.zeros((3, 2)), np.ones((3, 2)), np.zeros(3, dtype=np.int64), ("a/x",))
Traceback (most recent call last):
...
ValueError: Samples.x has 2 columns; the features are 21 (twin.sim2real.FEATURES)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from twin.sim2real.features import FEATURES, TARGETS

__all__ = ["Samples"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Samples:
    """``x`` [N, len(FEATURES)] feature rows, ``y`` [N, len(TARGETS)] KPIs in PM units (kbit/s, %),
    ``env`` [N] row of each sample's environment (a cell of a cluster) in ``envs``
    (``"<cluster>/<cell key>"``)."""

    x: FloatArray
    y: FloatArray
    env: IntArray
    envs: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.x.shape[1] != len(FEATURES):
            cols = self.x.shape[1] if self.x.ndim == 2 else f"a {self.x.ndim}-d array, not"
            raise ValueError(f"Samples.x has {cols} columns; the features are {len(FEATURES)} "
                             "(twin.sim2real.FEATURES)")
        if self.y.shape != (len(self.x), len(TARGETS)):
            raise ValueError(f"Samples.y has shape {self.y.shape}, expected ({len(self.x)}, {len(TARGETS)})")
        if self.env.shape != (len(self.x),):
            raise ValueError(f"Samples.env has shape {self.env.shape}, expected ({len(self.x)},)")
        if len(self.x) and (self.env.min() < 0 or self.env.max() >= len(self.envs)):
            raise ValueError(f"Samples.env indexes outside envs (0..{len(self.envs) - 1})")
        if not (np.all(np.isfinite(self.x)) and np.all(np.isfinite(self.y))):
            raise ValueError("Samples hold a NaN or infinite feature or KPI")

    def __len__(self) -> int:
        return len(self.x)

    def take(self, rows: npt.ArrayLike) -> Samples:
        """The samples at ``rows`` (indices or a boolean mask), same environments."""
        idx = np.asarray(rows)
        return Samples(self.x[idx], self.y[idx], self.env[idx], self.envs)

    @staticmethod
    def concat(parts: Sequence[Samples]) -> Samples:
        """One set of ``parts``, their environments merged by name."""
        names: dict[str, int] = {}
        xs, ys, es = [], [], []
        for p in parts:
            remap = np.array([names.setdefault(e, len(names)) for e in p.envs], dtype=np.int64)
            xs.append(p.x)
            ys.append(p.y)
            es.append(remap[p.env] if len(p) else np.zeros(0, dtype=np.int64))
        if not xs:
            return Samples(np.zeros((0, len(FEATURES))), np.zeros((0, len(TARGETS))), np.zeros(0, dtype=np.int64), ())
        return Samples(np.concatenate(xs), np.concatenate(ys), np.concatenate(es), tuple(names))

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Per feature, the smallest and largest value seen."""
        if not len(self):
            return {}
        lo, hi = self.x.min(axis=0), self.x.max(axis=0)
        return {name: (float(lo[i]), float(hi[i])) for i, name in enumerate(FEATURES)}
