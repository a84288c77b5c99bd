"""Sim2Real KPI predictor: the CM-response rule learnt from the twin, adapted to the real network.

* :mod:`twin.sim2real.features`: per-cell feature rows and targets (what a live network reports);
* :mod:`twin.sim2real.twin_data`: the twin run over broad CM settings and network states;
* :mod:`twin.sim2real.network`: the network, a shared response part plus an environment adapter;
* :mod:`twin.sim2real.train`: pretrain on the twin, adapt on real data (four methods compared);
* :mod:`twin.sim2real.model`: a trained model with its metadata: save, load, predict, range flags;
* :mod:`twin.sim2real.engine`: the model as the twin's prediction engine (``[predict] engine``).

PyTorch (``torch==2.13.0``, CPU) is needed by the network, training, model and engine, and is
imported only when one of them is first used: the features, samples and twin data need numpy only.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from twin.sim2real.features import CM_FEATURES, FEATURES, STATE_FEATURES, TARGETS, cell_features
from twin.sim2real.samples import Samples
from twin.sim2real.twin_data import ClusterModel, Ranges, twin_samples

if TYPE_CHECKING:
    from twin.sim2real.engine import Sim2RealEngine
    from twin.sim2real.model import Prediction, Sim2RealModel
    from twin.sim2real.train import METHODS, TrainConfig, TrainReport, adapt, pretrain

_LAZY = {"Sim2RealEngine": "engine", "Prediction": "model", "Sim2RealModel": "model", "METHODS": "train",
         "TrainConfig": "train", "TrainReport": "train", "adapt": "train", "pretrain": "train"}

__all__ = [
    "CM_FEATURES",
    "FEATURES",
    "METHODS",
    "STATE_FEATURES",
    "TARGETS",
    "ClusterModel",
    "Prediction",
    "Ranges",
    "Samples",
    "Sim2RealEngine",
    "Sim2RealModel",
    "TrainConfig",
    "TrainReport",
    "adapt",
    "cell_features",
    "pretrain",
    "twin_samples",
]


def __getattr__(name: str) -> Any:
    """The torch-backed names, imported on first use."""
    if name in _LAZY:
        return getattr(import_module(f"twin.sim2real.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'twin.sim2real' has no attribute {name!r}")
