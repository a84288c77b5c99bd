"""Pretrain on the twin, adapt to the real network: the four ways of :data:`METHODS`.

* ``real_only``: a fresh network trained on the real samples only;
* ``twin_only``: the twin-pretrained network as it is (an unseen cell starts from the mean embedding);
* ``finetune``: the pretrained network, then every weight trained on the real samples (naive);
* ``transfer``: the pretrained network with its CM-response part frozen; only the environment
  adapter and the cells' embeddings learn from the real samples, the adapter regularised toward
  its twin-trained weights (``TrainConfig.anchor``).

All four use the same network shape, input scaling, loss (mean squared error of ``log1p`` KPIs,
i.e. relative error), optimiser, validation split and early stopping, so a comparison differs in
the method only. Training is deterministic for a given ``TrainConfig.seed``.

>>> import numpy as np
>>> from twin.sim2real.samples import Samples
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(64, len(FEATURES))); y = np.exp(rng.normal(size=(64, 2)))
>>> s = Samples(x, y, np.zeros(64, dtype=np.int64), ("c/a",))
>>> net, report = pretrain(s, TrainConfig(epochs=2, min_steps=0))
>>> report.samples, report.method
(64, 'pretrain')
>>> adapt(net, s, "magic", ("c/a",))
Traceback (most recent call last):
...
ValueError: method='magic' is not one of 'real_only', 'twin_only', 'finetune', 'transfer'
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from twin.sim2real.features import FEATURES, to_target  # noqa: F401  (FEATURES: the doctest)
from twin.sim2real.network import Sim2RealNet, scale_inputs
from twin.sim2real.samples import Samples

__all__ = ["METHODS", "TrainConfig", "TrainReport", "adapt", "fit", "pretrain"]

METHODS: tuple[str, ...] = ("real_only", "twin_only", "finetune", "transfer")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. ``epochs`` passes over the data, at least ``min_steps`` optimiser steps
    in all; the validation loss (on ``val_fraction`` of the samples, at least one) is checked
    every epoch or every 50 steps, whichever is longer, and training stops after ``patience``
    checks without improvement, keeping the best weights. ``anchor``: weight of the L2 pull of the
    adapter toward its pretrained weights in ``transfer``. ``threads``: torch intra-op threads (one:
    the network is small, and two were no faster on the 2-core machine and 10-50 x slower per step
    whenever another process used the cores)."""

    epochs: int = 40
    min_steps: int = 1500
    batch: int = 256
    lr: float = 3e-3
    patience: int = 6
    val_fraction: float = 0.1
    anchor: float = 1e-3
    seed: int = 0
    threads: int = 1
    hidden: int = 96
    embedding: int = 6
    response_embedding: int = 0  # > 0: a per-cell embedding in the response part (Sim2RealNet)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch", "patience", "threads", "hidden", "embedding"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name}={value!r} must be an integer >= 1")
        if isinstance(self.response_embedding, bool) or not isinstance(self.response_embedding, int) \
                or self.response_embedding < 0:
            raise ValueError(f"TrainConfig.response_embedding={self.response_embedding!r} must be an integer >= 0")
        if not 0.0 < self.val_fraction < 0.5:
            raise ValueError(f"TrainConfig.val_fraction={self.val_fraction!r} must be in (0, 0.5)")
        if not (self.lr > 0 and self.anchor >= 0 and self.min_steps >= 0):
            raise ValueError("TrainConfig.lr must be > 0, anchor >= 0 and min_steps >= 0")


@dataclass(frozen=True)
class TrainReport:
    """What one training did: ``method``, ``samples`` used (train + validation), optimiser
    ``steps``, best validation loss (mean squared log error), wall ``seconds``."""

    method: str
    samples: int
    steps: int
    val_loss: float
    seconds: float


def _tensors(samples: Samples) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(scale_inputs(samples.x)), torch.from_numpy(samples.env.astype(np.int64)),
            torch.from_numpy(to_target(samples.y).astype(np.float32)))


def fit(net: Sim2RealNet, samples: Samples, params: list[nn.Parameter], config: TrainConfig, method: str,
        anchor: dict[str, torch.Tensor] | None = None) -> TrainReport:
    """Train ``params`` of ``net`` on ``samples`` in place (best validation weights kept);
    ``anchor``: parameter name -> tensor the named parameters are pulled toward."""
    if not len(samples):
        raise ValueError(f"{method}: no samples to train on")
    torch.set_num_threads(config.threads)
    gen = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng([config.seed, 0x7A1])
    order = rng.permutation(len(samples))
    n_val = max(1, round(config.val_fraction * len(samples))) if len(samples) > 1 else 0
    val, train = order[:n_val], order[n_val:] if n_val < len(samples) else order
    x, env, y = _tensors(samples)
    xt, et, yt = x[train], env[train], y[train]
    xv, ev, yv = (x[val], env[val], y[val]) if n_val else (xt, et, yt)
    opt = torch.optim.Adam(params, lr=config.lr)
    named = dict(net.named_parameters())
    anchored = [(named[k], v) for k, v in (anchor or {}).items() if k in named]
    per_epoch = max(1, math.ceil(len(train) / config.batch))
    total = max(config.epochs * per_epoch, config.min_steps)
    check = max(per_epoch, 50)
    best, best_state, bad, steps = math.inf, copy.deepcopy(net.state_dict()), 0, 0
    start = time.perf_counter()
    loss_fn = nn.MSELoss()
    net.train()
    while steps < total and bad < config.patience:
        perm = torch.randperm(len(train), generator=gen)
        for i in range(0, len(train), config.batch):
            idx = perm[i : i + config.batch]
            opt.zero_grad()
            loss = loss_fn(net(xt[idx], et[idx]), yt[idx])
            if anchored and config.anchor > 0:
                loss = loss + config.anchor * sum(((p - a) ** 2).sum() for p, a in anchored)
            loss.backward()
            opt.step()
            steps += 1
            if steps % check == 0 or steps >= total:
                with torch.no_grad():
                    net.eval()
                    v = float(loss_fn(net(xv, ev), yv))
                    net.train()
                if v < best - 1e-6:
                    best, best_state, bad = v, copy.deepcopy(net.state_dict()), 0
                else:
                    bad += 1
            if steps >= total or bad >= config.patience:
                break
    net.load_state_dict(best_state)
    net.eval()
    return TrainReport(method, len(samples), steps, best, time.perf_counter() - start)


def pretrain(samples: Samples, config: TrainConfig | None = None) -> tuple[Sim2RealNet, TrainReport]:
    """A network trained on the twin's ``samples``: response and adapter together."""
    cfg = config or TrainConfig()
    torch.manual_seed(cfg.seed)
    net = Sim2RealNet(len(samples.envs), hidden=cfg.hidden, embedding=cfg.embedding,
                      response_embedding=cfg.response_embedding)
    report = fit(net, samples, list(net.parameters()), cfg, "pretrain")
    return net, report


def adapt(pretrained: Sim2RealNet | None, samples: Samples, method: str, twin_envs: tuple[str, ...],
          config: TrainConfig | None = None) -> tuple[Sim2RealNet, TrainReport]:
    """The network ``method`` makes for the real ``samples`` (see the module docstring); its
    embedding rows follow ``samples.envs``. ``pretrained`` and its environments ``twin_envs``
    are needed by every method but ``real_only``."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {', '.join(map(repr, METHODS))}")
    cfg = config or TrainConfig()
    torch.manual_seed(cfg.seed + 1)
    if method == "real_only":
        net = Sim2RealNet(max(1, len(samples.envs)), hidden=cfg.hidden, embedding=cfg.embedding,
                          response_embedding=cfg.response_embedding)
        return net, fit(net, samples, list(net.parameters()), cfg, method)
    if pretrained is None:
        raise ValueError(f"method={method!r} needs the twin-pretrained network")
    index = {name: i for i, name in enumerate(twin_envs)}
    net = pretrained.with_envs(max(1, len(samples.envs)), [index.get(e) for e in samples.envs])
    if method == "twin_only":
        net.eval()
        return net, TrainReport(method, 0, 0, math.nan, 0.0)
    if method == "finetune":
        return net, fit(net, samples, list(net.parameters()), cfg, method)
    for p in net.response_parameters():
        p.requires_grad_(False)
    anchor = {k: v.detach().clone() for k, v in net.named_parameters() if k.startswith("adapter.")}
    return net, fit(net, samples, net.adapter_parameters(), cfg, method, anchor=anchor)

