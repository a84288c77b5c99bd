"""``Sim2RealModel``: a trained network with its training metadata, saved, loaded and asked.

A model directory holds ``weights.pt`` (the network's state dict, loaded with
``torch.load(weights_only=True)``) and ``model.json``: the method, the network shape, the
environments (cells) it knows, per feature the range seen in training (twin and real data
together), the twin model version and data it was pretrained on, package versions and the metrics
measured when it was made. :meth:`Sim2RealModel.predict` flags every input outside those ranges:
a prediction there is an extrapolation and says so.

>>> import numpy as np, tempfile
>>> from twin.sim2real.network import Sim2RealNet
>>> m = Sim2RealModel(Sim2RealNet(1), envs=("c/a",), ranges={f: (0.0, 1.0) for f in FEATURES}, method="transfer")
>>> out = m.predict(np.full((2, len(FEATURES)), 0.5), ["c/a", "c/unseen"])
>>> out.values.shape, out.out_of_range
((2, 2), [[], []])
>>> x = np.full((1, len(FEATURES)), 0.5); x[0, FEATURES.index("tilt_deg")] = 9.0
>>> m.predict(x, ["c/a"]).out_of_range
[['tilt_deg']]
>>> with tempfile.TemporaryDirectory() as d:
...     _ = m.save(d)
...     Sim2RealModel.load(d).envs
('c/a',)
>>> Sim2RealModel.load("/nonexistent/model")
Traceback (most recent call last):
...
FileNotFoundError: no Sim2Real model in /nonexistent/model (model.json and weights.pt expected)
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from twin.sim2real.features import FEATURES, TARGETS, from_target
from twin.sim2real.network import Sim2RealNet, scale_inputs

__all__ = ["Prediction", "Sim2RealModel"]

FORMAT = 1


@dataclass(frozen=True)
class Prediction:
    """``values`` [N, len(TARGETS)] in PM units (kbit/s, %); ``out_of_range[i]`` the features of
    row ``i`` outside the training ranges; ``unseen[i]`` True when row ``i``'s cell was not in
    training (it gets the mean environment)."""

    values: npt.NDArray[np.float64]
    out_of_range: list[list[str]]
    unseen: list[bool]


@dataclass
class Sim2RealModel:
    """A trained Sim2Real network and what it was trained on."""

    net: Sim2RealNet
    envs: tuple[str, ...]
    ranges: dict[str, tuple[float, float]]
    method: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [f for f in FEATURES if f not in self.ranges]
        if missing:
            raise ValueError(f"ranges lacks features {missing}")
        self._index = {e: i for i, e in enumerate(self.envs)}

    def predict(self, x: npt.ArrayLike, envs: Sequence[str]) -> Prediction:
        """KPIs of feature rows ``x`` [N, len(FEATURES)] of the cells ``envs``
        (``"<cluster>/<cell key>"``)."""
        rows = np.asarray(x, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != len(FEATURES):
            raise ValueError(f"x has shape {rows.shape}; expected (N, {len(FEATURES)}) (twin.sim2real.FEATURES)")
        if len(envs) != len(rows):
            raise ValueError(f"{len(envs)} environments for {len(rows)} rows")
        if not np.all(np.isfinite(rows)):
            raise ValueError("x holds a NaN or infinite feature")
        env = np.array([self._index.get(e, -1) for e in envs], dtype=np.int64)
        unseen = env < 0
        with torch.no_grad():
            xt = torch.from_numpy(scale_inputs(rows))
            out = self.net(xt, torch.from_numpy(np.where(unseen, 0, env)))
            if unseen.any():
                mean = self.net.embedding.weight.mean(dim=0, keepdim=True).expand(len(rows), -1)
                remb = self.net.response_embedding
                rmean = None if remb is None else remb.weight.mean(dim=0, keepdim=True).expand(len(rows), -1)
                fallback = self.net.combine(xt, mean, rmean)
                out = torch.where(torch.from_numpy(unseen)[:, None], fallback, out)
        lo = np.array([self.ranges[f][0] for f in FEATURES])
        hi = np.array([self.ranges[f][1] for f in FEATURES])
        bad = (rows < lo - 1e-9) | (rows > hi + 1e-9)
        flags = [[FEATURES[j] for j in np.flatnonzero(b)] for b in bad]
        return Prediction(from_target(out.numpy().astype(np.float64)), flags, unseen.tolist())

    # -- persistence ----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The ``model.json`` document."""
        linear = [m for m in self.net.response if isinstance(m, torch.nn.Linear)]
        adapter = [m for m in self.net.adapter if isinstance(m, torch.nn.Linear)]
        return {
            "format": FORMAT, "method": self.method, "features": list(FEATURES), "targets": list(TARGETS),
            "network": {"hidden": linear[0].out_features, "embedding": self.net.embedding.embedding_dim,
                        "responseLayers": len(linear) - 1, "adapterLayers": len(adapter) - 1,
                        "responseEmbedding": 0 if self.net.response_embedding is None
                        else self.net.response_embedding.embedding_dim},
            "envs": list(self.envs), "ranges": {k: list(v) for k, v in self.ranges.items()},
            "versions": {"ran-twin": _version("ran-twin"), "torch": torch.__version__,
                         "python": platform.python_version()},
            "meta": self.meta,
        }

    def save(self, directory: Path | str) -> Path:
        """Write ``weights.pt`` and ``model.json`` into ``directory`` (created); returns it."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        doc = self.describe()
        doc["savedAt"] = datetime.now(UTC).isoformat()
        # each file written beside and renamed into place: a reader never sees half a file
        tmp_weights, tmp_doc = d / ".weights.pt.tmp", d / ".model.json.tmp"
        torch.save(self.net.state_dict(), tmp_weights)
        tmp_doc.write_text(json.dumps(doc, indent=2, sort_keys=True, default=float))
        os.replace(tmp_weights, d / "weights.pt")
        os.replace(tmp_doc, d / "model.json")
        return d

    @classmethod
    def load(cls, directory: Path | str) -> Sim2RealModel:
        """The model saved in ``directory``; a clear error when it is missing or not one."""
        d = Path(directory)
        if not (d / "model.json").is_file() or not (d / "weights.pt").is_file():
            raise FileNotFoundError(f"no Sim2Real model in {d} (model.json and weights.pt expected)")
        doc = json.loads((d / "model.json").read_text())
        if doc.get("format") != FORMAT or doc.get("features") != list(FEATURES) or doc.get("targets") != list(TARGETS):
            raise ValueError(f"{d / 'model.json'}: format {doc.get('format')!r} with features/targets this "
                             f"version does not read (expected format {FORMAT} and twin.sim2real.FEATURES)")
        n = doc["network"]
        net = Sim2RealNet(max(1, len(doc["envs"])), hidden=n["hidden"], embedding=n["embedding"],
                          response_layers=n["responseLayers"], adapter_layers=n["adapterLayers"],
                          response_embedding=int(n.get("responseEmbedding", 0)))
        net.load_state_dict(torch.load(d / "weights.pt", weights_only=True))
        net.eval()
        ranges = {k: (float(v[0]), float(v[1])) for k, v in doc["ranges"].items()}
        return cls(net, tuple(doc["envs"]), ranges, doc["method"], dict(doc.get("meta", {})))


def merged_ranges(*parts: Mapping[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Per feature, the range covering every part's range."""
    out: dict[str, tuple[float, float]] = {}
    for part in parts:
        for k, (lo, hi) in part.items():
            a, b = out.get(k, (lo, hi))
            out[k] = (min(a, lo), max(b, hi))
    return out


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"
