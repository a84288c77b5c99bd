"""A small Sim2Real model trained for real (twin data of the suburban scenario, real data from its
emulated network), shared by the tests of this folder."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from replay.emulator import NetworkEmulator
from replay.sim2real_data import Band, RealData, real_samples, twin_models
from twin.sim2real import Samples, twin_samples

START = datetime(2024, 3, 1, tzinfo=UTC)
SCENARIO = "suburban-quiet"


@dataclass(frozen=True)
class Trained:
    twin: Samples
    real: RealData
    model_dir: Path
    pretrained: object  # Sim2RealNet
    transfer: object  # Sim2RealNet


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    from twin.sim2real.model import Sim2RealModel, merged_ranges
    from twin.sim2real.train import TrainConfig, adapt, pretrain

    emu = NetworkEmulator(SCENARIO, seed=2, start=START, granularity_s=3600, mr_per_cell=0)
    twin = twin_samples(twin_models([emu]), 4000, seed=1)
    real = real_samples(emu, 24, Band(), seed=1)
    cfg = TrainConfig(epochs=4, min_steps=300, threads=1)
    pretrained, _ = pretrain(twin, cfg)
    transfer, _ = adapt(pretrained, real.samples, "transfer", twin.envs, cfg)
    directory = tmp_path_factory.mktemp("sim2real") / "model"
    Sim2RealModel(transfer, real.samples.envs, merged_ranges(twin.ranges(), real.samples.ranges()), "transfer",
                  meta={"test": True}).save(directory)
    return Trained(twin, real, directory, pretrained, transfer)
