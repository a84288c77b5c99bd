"""Sim2Real data and training: the features a live network gives, twin vs real data, and what each
transfer method may and may not change."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from replay.emulator.scenario import Event
from replay.sim2real_data import Band, in_band
from tests.sim2real.conftest import Trained
from twin.sim.kpis import CONN, PRB, THP
from twin.sim.topology import hex_cluster
from twin.sim2real import FEATURES, TARGETS, Ranges, Samples, cell_features
from twin.sim2real.train import METHODS, TrainConfig, adapt


def col(name: str) -> int:
    return FEATURES.index(name)


def test_features_carry_the_cm_the_hour_and_the_neighbours() -> None:
    cluster = hex_cluster(rings=1, isd_m=500.0)
    sectors = list(cluster.sectors)
    sectors[0] = replace(sectors[0], elec_tilt_deg=10.0, mech_tilt_deg=2.0, tx_power_dbm=40.0, cio_db=3.0)
    x = cell_features(tuple(sectors), hour=6.0, connected_ues=210.0, cell_ues=[10.0] * 21)
    assert x[0, col("tilt_deg")] == 12.0 and x[0, col("power_dbm")] == 40.0 and x[0, col("cio_db")] == 3.0
    assert x[0, col("ref_tilt_deg")] == 12.0  # no reference given: the period ran as configured
    moved = cell_features(tuple(sectors), 6.0, 210.0, [10.0] * 21, reference=cluster.sectors)
    assert moved[0, col("ref_tilt_deg")] == cluster.sectors[0].elec_tilt_deg and moved[0, col("tilt_deg")] == 12.0
    assert x[0, col("hour_sin")] == pytest.approx(1.0) and x[0, col("hour_cos")] == pytest.approx(0.0, abs=1e-12)
    assert np.all(x[:, col("load_ues_per_cell")] == 10.0)
    # cell 1 (same site) sees cell 0 among its neighbours: their mean tilt moved, cell 0's own did not count
    others = [s.elec_tilt_deg for s in sectors[1:]]
    assert x[1, col("nbr_tilt_deg")] > min(others)
    assert x[0, col("nbr_tilt_deg")] == pytest.approx(np.mean([s.elec_tilt_deg for s in sectors[1:]]))
    assert x[0, col("edge")] == 0.0 and x[-1, col("edge")] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="hour=nan"):
        cell_features(tuple(sectors), hour=float("nan"), connected_ues=1.0, cell_ues=[1.0] * 21)


def test_twin_data_spans_the_ranges_and_real_data_stays_in_its_band(trained: Trained) -> None:
    twin, real = trained.twin, trained.real.samples
    r = Ranges()
    tilt, power = twin.x[:, col("tilt_deg")], twin.x[:, col("power_dbm")]
    assert tilt.min() < r.tilt_deg[0] + 1 and tilt.max() > r.tilt_deg[1] - 1
    assert power.min() < r.power_dbm[0] + 0.5 and power.max() > r.power_dbm[1] - 0.5
    assert set(np.unique(twin.x[:, col("cio_db")])) <= set(range(-6, 7))
    assert len(np.unique(twin.x[:, col("load_ues_per_cell")])) > 100  # load varies per period
    # the real network: only the band around its plan (4 degrees, 46 dBm, 0 dB)
    assert in_band(real.x, Band()).all()
    assert not in_band(twin.x, Band()).all()
    # labels are the measured PM: close to the hidden truth but not equal (measurement noise)
    rel = np.abs(real.y - trained.real.truth) / np.maximum(trained.real.truth, 1.0)
    assert 0 < np.median(rel[:, 0]) < 0.1
    assert TARGETS == (THP, PRB) and CONN not in TARGETS


def test_the_emulators_periods_are_rebuilt_from_what_it_published(trained: Trained) -> None:
    """A period's rows use only published data: the CM in effect and the PM's connected UEs."""
    p = trained.real.periods[5]
    rows = trained.real.samples.x[p.rows[0]:p.rows[1]]
    again = cell_features(p.public, p.hour, p.connected, p.cell_ues)
    assert np.array_equal(rows, again)
    assert all(isinstance(ev, Event) for ev in p.active)


def test_transfer_keeps_the_twins_response_and_finetune_does_not(trained: Trained) -> None:
    cfg = TrainConfig(epochs=2, min_steps=60, threads=1)
    real = trained.real.samples
    pre = trained.pretrained
    nets = {m: adapt(pre, real, m, trained.twin.envs, cfg)[0] for m in METHODS}  # type: ignore[arg-type]
    pre_response = dict(pre.response.named_parameters())  # type: ignore[attr-defined]

    def same(net: torch.nn.Module, part: str) -> bool:
        ref = dict(getattr(pre, part).named_parameters())
        return all(torch.equal(p, ref[k]) for k, p in getattr(net, part).named_parameters())

    assert same(nets["transfer"], "response") and not same(nets["transfer"], "adapter")
    assert not same(nets["finetune"], "response")
    assert same(nets["twin_only"], "response") and same(nets["twin_only"], "adapter")
    assert set(dict(nets["real_only"].response.named_parameters())) == set(pre_response)
    # deterministic: the same method on the same data gives the same weights
    again = adapt(pre, real, "transfer", trained.twin.envs, cfg)[0]  # type: ignore[arg-type]
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), nets["transfer"].parameters(), strict=True))


def test_training_refuses_what_it_cannot_use(trained: Trained) -> None:
    empty = trained.real.samples.take(np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match="no samples"):
        adapt(None, empty, "real_only", ())
    with pytest.raises(ValueError, match="needs the twin-pretrained network"):
        adapt(None, trained.real.samples, "transfer", ())
    with pytest.raises(ValueError, match=r"TrainConfig\.batch=0"):
        TrainConfig(batch=0)
    bad = trained.real.samples.y.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Samples(trained.real.samples.x, bad, trained.real.samples.env, trained.real.samples.envs)
