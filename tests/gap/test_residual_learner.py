"""The residual learner chooses by measurement: the daily profile where the twin's error repeats with
the time of day, the feature model where it follows the context instead."""

from __future__ import annotations

import math
import random

from twin.config import GapSettings
from twin.gap import context
from twin.gap.learner import ResidualLearner

DAY = 86_400
GP = 900


def _run(residual_of: object, days: int = 4, seed: int = 1) -> tuple[ResidualLearner, float, float]:
    """Prequential mean absolute miss of the published residual and of the feature model alone, on
    the last day; ``residual_of(end, load)`` is the true residual, observed with noise 0.02."""
    rng = random.Random(seed)
    learner = ResidualLearner(GapSettings())
    published, model_only, n = 0.0, 0.0, 0
    for end in range(GP, days * DAY + 1, GP):
        load = rng.uniform(0.5, 1.5)
        x = {**context(end, load, {}), "raw": 100.0}
        parts = learner.parts(x, end)
        y = residual_of(end, load) + rng.gauss(0.0, 0.02)  # type: ignore[operator]
        if end > (days - 1) * DAY:
            published += abs(y - learner.pick(*parts))
            model_only += abs(y - parts[0])
            n += 1
        learner.learn(x, end, y, *parts)
    return learner, published / n, model_only / n


def test_a_daily_pattern_is_learned_by_the_profile() -> None:
    # a hotspot crossing the cell from 17:00 to 19:00: the twin is 40 % low then, right otherwise
    def hotspot(end: int, load: float) -> float:
        hour = (end % DAY) / 3600
        return 0.4 * math.exp(-((hour - 18.0) ** 2) / 0.5)

    learner, published, model_only = _run(hotspot)
    assert learner.choice == "profile"
    assert published < 0.6 * model_only, (published, model_only)
    assert published < 0.02  # the noise's mean absolute value is 0.016


def test_an_error_that_follows_the_load_keeps_the_feature_model() -> None:
    # the twin's error follows the cluster's load, which does not repeat from one day to the next
    learner, published, model_only = _run(lambda end, load: 0.3 * (load - 1.0))
    assert learner.choice == "model"
    assert published == model_only


def test_a_shift_moves_both_parts() -> None:
    learner, _, _ = _run(lambda end, load: 0.1)
    x = {**context(DAY + 3600, 1.0, {}), "raw": 100.0}
    model, profile = learner.parts(x, DAY + 3600)
    learner.shift(-0.25)
    moved_model, moved_profile = learner.parts(x, DAY + 3600)
    assert profile is not None and moved_profile is not None
    assert abs(moved_model - (model - 0.25)) < 1e-9 and abs(moved_profile - (profile - 0.25)) < 1e-9
