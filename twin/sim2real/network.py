"""The Sim2Real network: a shared CM-response part and an environment adapter, kept apart.

``prediction = response(state, CM) + adapter(state, environment embedding)`` in the target space
(``log1p`` of each KPI). The **response** network sees the state and the CM and is the rule "how
KPIs move when CM moves"; it is learnt on the twin's broad data and kept (frozen) when the model
adapts to a real network. The **adapter** sees the state and a small learnt embedding of the
environment (one per cell of a cluster) but never the CM, so whatever it learns from the real
network shifts a cell's KPIs without bending their response to CM: a multiplicative correction
of the KPI in PM units. Inputs are scaled by fixed physical constants (:data:`INPUT_SCALING`),
the same for every model trained, so no model gets its own data's statistics.

>>> import torch
>>> net = Sim2RealNet(n_envs=3)
>>> x = torch.zeros(5, len(FEATURES)); env = torch.tensor([0, 1, 2, 0, 1])
>>> tuple(net(x, env).shape)
(5, 2)
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from twin.sim2real.features import CM_FEATURES, FEATURES, STATE_FEATURES, TARGETS

__all__ = ["INPUT_SCALING", "Sim2RealNet", "scale_inputs"]

_CM_SCALING = {"tilt_deg": ("id", 6.0, 5.0), "power_dbm": ("id", 45.0, 3.0), "cio_db": ("id", 0.0, 4.0),
               "nbr_tilt_deg": ("id", 6.0, 5.0), "nbr_power_dbm": ("id", 45.0, 3.0), "nbr_cio_db": ("id", 0.0, 4.0)}
INPUT_SCALING: dict[str, tuple[str, float, float]] = {
    # feature: (transform, centre, scale) -> (transform(x) - centre) / scale
    "hour_sin": ("id", 0.0, 1.0),
    "hour_cos": ("id", 0.0, 1.0),
    "load_ues_per_cell": ("log1p", 3.0, 1.5),
    "cell_ues": ("log1p", 3.0, 1.5),
    "isd_km": ("id", 0.6, 0.3),
    "height_m": ("id", 25.0, 10.0),
    "edge": ("id", 0.5, 0.5),
    "fc_ghz": ("id", 3.5, 2.0),
    "bandwidth_mhz": ("id", 50.0, 50.0),
    **{f"ref_{k}": v for k, v in _CM_SCALING.items()},
    **_CM_SCALING,
}
assert tuple(INPUT_SCALING) == FEATURES


def scale_inputs(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """Feature rows [N, len(FEATURES)] -> the network's inputs (:data:`INPUT_SCALING`)."""
    out = np.empty(x.shape, dtype=np.float32)
    for i, (transform, centre, scale) in enumerate(INPUT_SCALING.values()):
        col = np.log1p(np.maximum(x[:, i], 0.0)) if transform == "log1p" else x[:, i]
        out[:, i] = (col - centre) / scale
    return out


def _mlp(n_in: int, hidden: int, n_out: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = n_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    mods.append(nn.Linear(width, n_out))
    return nn.Sequential(*mods)


class Sim2RealNet(nn.Module):
    """``n_envs`` environments (embedding rows), ``hidden`` units, ``embedding`` size; the
    response MLP has ``response_layers`` hidden layers, the adapter ``adapter_layers``.

    ``response_embedding`` > 0 gives the response part its own embedding of that size per
    environment (learnt on the twin's data, part of the response: frozen with it when adapting), so
    the response can differ by cell, as it does in a twin calibrated per place; 0 (the default): one
    response for every cell."""

    def __init__(self, n_envs: int, hidden: int = 96, embedding: int = 6, response_layers: int = 3,
                 adapter_layers: int = 2, response_embedding: int = 0) -> None:
        super().__init__()
        if n_envs < 1:
            raise ValueError(f"n_envs={n_envs} must be >= 1")
        if response_embedding < 0:
            raise ValueError(f"response_embedding={response_embedding} must be >= 0")
        self.n_state = len(STATE_FEATURES)
        self.response = _mlp(len(FEATURES) + response_embedding, hidden, len(TARGETS), response_layers)
        self.embedding = nn.Embedding(n_envs, embedding)
        nn.init.normal_(self.embedding.weight, std=0.01)
        self.response_embedding: nn.Embedding | None = None
        if response_embedding:
            self.response_embedding = nn.Embedding(n_envs, response_embedding)
            nn.init.normal_(self.response_embedding.weight, std=0.01)
        self.adapter = _mlp(self.n_state + embedding, hidden, len(TARGETS), adapter_layers)
        assert len(CM_FEATURES) == len(FEATURES) - self.n_state

    def forward(self, x: torch.Tensor, env: torch.Tensor) -> torch.Tensor:
        """``x`` [N, len(FEATURES)] scaled inputs, ``env`` [N] environment rows -> [N, len(TARGETS)]."""
        remb = None if self.response_embedding is None else self.response_embedding(env)
        return self.combine(x, self.embedding(env), remb)

    def combine(self, x: torch.Tensor, emb: torch.Tensor, remb: torch.Tensor | None) -> torch.Tensor:
        """The prediction from explicit embedding vectors (``emb`` [N, embedding]; ``remb`` [N,
        response_embedding] or None): what ``forward`` does, and an unseen cell's mean."""
        state = x[:, : self.n_state]
        response_in = x if remb is None else torch.cat([x, remb], dim=1)
        return self.response(response_in) + self.adapter(torch.cat([state, emb], dim=1))

    def response_parameters(self) -> list[nn.Parameter]:
        extra = [] if self.response_embedding is None else list(self.response_embedding.parameters())
        return list(self.response.parameters()) + extra

    def adapter_parameters(self) -> list[nn.Parameter]:
        return list(self.adapter.parameters()) + list(self.embedding.parameters())

    def with_envs(self, n_envs: int, rows: list[int | None]) -> Sim2RealNet:
        """A copy with ``n_envs`` embedding rows; row ``i`` starts from this network's row
        ``rows[i]`` (None: the mean of this network's rows, an unseen cell's best guess)."""
        first = self.response[0]
        assert isinstance(first, nn.Linear)
        remb = self.response_embedding
        out = Sim2RealNet(n_envs, first.out_features, self.embedding.embedding_dim,
                          sum(isinstance(m, nn.Linear) for m in self.response) - 1,
                          sum(isinstance(m, nn.Linear) for m in self.adapter) - 1,
                          0 if remb is None else remb.embedding_dim)
        out.load_state_dict({k: v for k, v in self.state_dict().items()
                             if not k.startswith(("embedding.", "response_embedding."))}, strict=False)
        with torch.no_grad():
            pairs = [(self.embedding, out.embedding)]
            if remb is not None and out.response_embedding is not None:
                pairs.append((remb, out.response_embedding))
            for src, dst in pairs:
                mean = src.weight.mean(dim=0)
                for i, r in enumerate(rows):
                    dst.weight[i] = src.weight[r] if r is not None else mean
        return out


def parameter_count(net: nn.Module) -> int:
    """Trainable parameters of ``net``."""
    return int(sum(math.prod(p.shape) for p in net.parameters()))
