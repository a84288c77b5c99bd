"""A per-cell embedding in the response part (``Sim2RealNet(response_embedding=...)``): frozen with
the response when adapting, carried over by cell, saved and loaded, its mean for an unseen cell."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from twin.sim2real import FEATURES
from twin.sim2real.model import Sim2RealModel
from twin.sim2real.network import Sim2RealNet
from twin.sim2real.train import TrainConfig


def test_the_response_differs_by_cell_and_is_frozen_with_it(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = Sim2RealNet(3, hidden=8, embedding=2, response_embedding=4)
    assert net.response_embedding is not None and net.response_embedding.weight.shape == (3, 4)
    with torch.no_grad():
        net.response_embedding.weight[1] += 1.0  # cell 1 responds otherwise
        net.embedding.weight.zero_()  # the adapter alike for every cell
    x = torch.randn(4, len(FEATURES))
    same = net(x, torch.zeros(4, dtype=torch.int64))
    other = net(x, torch.ones(4, dtype=torch.int64))
    assert not torch.allclose(same, other)
    assert any(p is net.response_embedding.weight for p in net.response_parameters())
    assert all(p is not net.response_embedding.weight for p in net.adapter_parameters())
    # carried over by cell (None: the mean of the rows, an unseen cell's best guess)
    moved = net.with_envs(2, [1, None])
    assert moved.response_embedding is not None
    assert torch.equal(moved.response_embedding.weight[0], net.response_embedding.weight[1])
    assert torch.allclose(moved.response_embedding.weight[1], net.response_embedding.weight.mean(dim=0))
    # saved and loaded; an unseen cell gets the means of both embeddings
    model = Sim2RealModel(net, envs=("c/a", "c/b", "c/c"), ranges={f: (-1e9, 1e9) for f in FEATURES},
                          method="transfer")
    back = Sim2RealModel.load(model.save(tmp_path / "m"))
    rows = np.zeros((2, len(FEATURES)))
    assert np.allclose(back.predict(rows, ["c/b", "c/a"]).values, model.predict(rows, ["c/b", "c/a"]).values)
    unseen = back.predict(rows, ["c/zzz", "c/a"])
    assert unseen.unseen == [True, False]
    assert not np.allclose(unseen.values[0], back.predict(rows, ["c/a", "c/a"]).values[0])


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="response_embedding=-1"):
        Sim2RealNet(2, response_embedding=-1)
    with pytest.raises(ValueError, match=r"TrainConfig\.response_embedding=-2"):
        TrainConfig(response_embedding=-2)
