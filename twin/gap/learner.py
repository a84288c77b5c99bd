"""The residual learner of one cell and KPI: a feature model and a daily profile, and the better of
the two by its recent misses.

Why two: the twin's error has a part that follows context (the cluster's load, the cell's
configuration, the size of the prediction) and a part that repeats with the time of day (a
commuter hotspot the twin does not model crosses the same cells at the same hours every day). A
linear model on smooth hour features learns the second part slowly and only roughly: on the shipped
scenarios it left the evening hours 6-18 % off on the day after its first (``docs/gap.md``). The
**daily profile** remembers the residual of each slot of the day (15 min by default), exponentially
weighted over days and read smoothed over the neighbouring slots; from the second day it was the
better of the two on most cells (calibrated throughput accuracy 0.974 against 0.944 on two days of
each scenario). Which one is published is chosen per cell and KPI by the exponentially weighted
mean of each one's absolute miss, so a network whose days do not repeat keeps the feature model.

>>> from twin.config import GapSettings
>>> learner = ResidualLearner(GapSettings())
>>> day = 86_400
>>> for d in range(3):  # the residual is 0.3 at 18:00 and 0 otherwise, every day
...     for end in range(d * day + 900, (d + 1) * day + 1, 900):
...         y = 0.3 if end % day == 18 * 3600 else 0.0
...         learner.learn({"raw": 1.0}, end, y, *learner.parts({"raw": 1.0}, end))
>>> round(learner.predict({"raw": 1.0}, 3 * day + 18 * 3600), 2), learner.choice
(0.1, 'profile')

(The profile is read over the slot and its two neighbours: a one-slot spike comes out a third as
high; traffic moves over hours, not single slots. The slot before a period's was learned in the
period before, the same day: on the first day that is all the profile has, and later it carries a
sixth of a sudden change (half of it, in one of three slots) into the next period's reading, the
rest waits for the next day; the drift detectors see the remaining five sixths.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from river import compose, linear_model, optim, preprocessing

from twin.config import GapSettings

__all__ = ["DailyProfile", "ResidualLearner", "residual_model"]

_DAY_S = 86_400


def residual_model(settings: GapSettings) -> compose.Pipeline:
    """The feature model of one cell and KPI: river's ``StandardScaler | LinearRegression`` (SGD)."""
    return compose.Pipeline(
        preprocessing.StandardScaler(),
        linear_model.LinearRegression(optimizer=optim.SGD(settings.learning_rate),
                                      intercept_lr=settings.intercept_learning_rate),
    )


class DailyProfile:
    """A residual per slot of the day, exponentially weighted over days (``alpha`` per day), read as
    the mean over the slot and its ``reach`` neighbours on either side that were learned.

    >>> p = DailyProfile(slot_s=900, alpha=0.5)
    >>> p.predict(900) is None  # nothing learned yet
    True
    >>> p.learn(900, 0.2); p.learn(900 + 86_400, 0.4)  # the same slot on two days
    >>> p.predict(2 * 86_400 + 900), p.predict(1800)  # 0.2 then 0.4 weighted 1/2; a neighbour reads it
    (0.3, 0.3)
    >>> p.shift(-0.1); p.predict(900)
    0.2
    """

    def __init__(self, slot_s: int = 900, alpha: float = 0.5, reach: int = 1) -> None:
        self.slot_s, self.alpha, self.reach = slot_s, alpha, reach
        self.values: npt.NDArray[np.float64] = np.full(_DAY_S // slot_s, np.nan)

    def _slot(self, period_end: int) -> int:
        return int(period_end % _DAY_S) // self.slot_s

    def predict(self, period_end: int) -> float | None:
        """The profile's residual for the period ending at ``period_end`` (epoch s); ``None`` when
        neither its slot nor a neighbour was learned."""
        n = len(self.values)
        slot = self._slot(period_end)
        near = [float(v) for v in (self.values[(slot + d) % n] for d in range(-self.reach, self.reach + 1))
                if not math.isnan(v)]
        return round(sum(near) / len(near), 12) if near else None

    def learn(self, period_end: int, y: float) -> None:
        slot = self._slot(period_end)
        old = float(self.values[slot])
        self.values[slot] = y if math.isnan(old) else old + self.alpha * (y - old)

    def shift(self, delta: float) -> None:
        """Add ``delta`` to every learned slot (a re-base: ``twin.gap.tracker``)."""
        self.values += delta


class ResidualLearner:
    """The residual of one cell and KPI (module docstring): ``parts`` gives the feature model's and
    the profile's predictions, ``predict`` the chosen one, ``learn`` learns both and scores them."""

    def __init__(self, settings: GapSettings) -> None:
        self.model = residual_model(settings)
        self.profile = DailyProfile(settings.profile_slot_s, settings.profile_day_alpha)
        self.score_alpha = settings.learner_score_alpha
        self.miss_model: float | None = None  # EW mean absolute miss of each, prequential
        self.miss_profile: float | None = None
        self.n = 0

    @property
    def choice(self) -> str:
        """``"profile"`` when the profile has missed less than the feature model lately, else ``"model"``."""
        if self.miss_profile is None or self.miss_model is None or self.miss_profile > self.miss_model:
            return "model"
        return "profile"

    def parts(self, x: dict[str, Any], period_end: int) -> tuple[float, float | None]:
        """(feature model, profile or ``None``) residuals for ``x`` in the period ending at ``period_end``."""
        return (float(self.model.predict_one(x)) if self.n else 0.0), self.profile.predict(period_end)

    def pick(self, model: float, profile: float | None) -> float:
        """The published one of the two ``parts``."""
        return profile if profile is not None and self.choice == "profile" else model

    def predict(self, x: dict[str, Any], period_end: int) -> float:
        return self.pick(*self.parts(x, period_end))

    def learn(self, x: dict[str, Any], period_end: int, y: float, model: float, profile: float | None) -> None:
        """Learn the real residual ``y``; ``model`` and ``profile`` are what ``parts`` said before."""
        self.miss_model = self._score(self.miss_model, abs(y - model))
        if profile is not None:
            self.miss_profile = self._score(self.miss_profile, abs(y - profile))
        self.model.learn_one(x, y)
        self.profile.learn(period_end, y)
        self.n += 1

    def _score(self, score: float | None, miss: float) -> float:
        return miss if score is None else score + self.score_alpha * (miss - score)

    def shift(self, delta: float) -> None:
        """Move both learners by ``delta`` (a re-base after a resync moved the raw twin a little)."""
        regression = list(self.model.steps.values())[-1]
        regression.intercept += delta
        self.profile.shift(delta)
