"""The honest-error acceptance line: the twin, simulating from the published CM only, matches the
emulator when the hidden truth is zero and clearly misses it when it is not."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from replay.emulator import NetworkEmulator, load_scenario, period_hour
from tests.emulator.util import START
from twin import topics
from twin.ports import OutRecord
from twin.schemas import CmSnapshot, PmCellRecord
from twin.sim import Simulator, TrafficMap, cluster_from_mirror

KPIS = ("DRB.UEThpDl", "RRU.PrbTotDl", "RRC.ConnMean")


def twin_from_published(emu: NetworkEmulator, records: list[OutRecord]) -> Simulator:
    """What the twin can build: CM from the published snapshots, the public model parameters."""
    view: dict[str, dict[str, object]] = {}
    for r in records:
        if r.topic == topics.CM_SNAPSHOT:
            s = CmSnapshot.model_validate_json(r.value)
            assert s.cell_key is not None
            view.setdefault(s.cell_key, {}).update({f"{s.class_}.{k}": v for k, v in s.attributes.items()})
    m = emu.public_model()
    cluster = cluster_from_mirror({k: view[k] for k in sorted(view)}, m["cluster_id"], m["scenario"])
    traffic = TrafficMap(n_ues=m["n_ues"], demand_bps=m["demand_bps"], indoor_fraction=m["indoor_fraction"])
    return Simulator(cluster, traffic, seed=m["seed"])


def relative_errors(emu: NetworkEmulator, periods: int) -> dict[str, float]:
    """Mean |real - twin| / mean(real) per KPI over ``periods`` periods and all cells."""
    published = emu.initial_records()
    sim = twin_from_published(emu, published)
    real: dict[str, list[float]] = {k: [] for k in KPIS}
    pred: dict[str, list[float]] = {k: [] for k in KPIS}
    for _ in range(periods):
        recs = emu.step()
        res = sim.evaluate(hour=period_hour(emu.period_end, emu.granularity_s))
        for r in recs:
            if r.topic == topics.PM_CELL:
                pm = PmCellRecord.model_validate_json(r.value)
                for k in KPIS:
                    real[k].append(pm.values[k])
                    pred[k].append(res.kpis[pm.cell_key][k])
    return {k: float(np.mean(np.abs(np.subtract(real[k], pred[k]))) / np.mean(real[k])) for k in KPIS}


def test_zero_truth_gives_near_zero_error() -> None:
    for name in ("fault-midrun", "urban-hotspots"):
        emu = NetworkEmulator(load_scenario(name).without_truth(), seed=4, start=START, granularity_s=3 * 3600,
                              mr_per_cell=1)
        err = relative_errors(emu, 4)
        assert max(err.values()) < 1e-6, (name, err)


def test_hidden_truth_gives_clearly_nonzero_error() -> None:
    for name in ("fault-midrun", "urban-hotspots"):
        emu = NetworkEmulator(name, seed=4, start=START, granularity_s=3 * 3600, mr_per_cell=1)
        err = relative_errors(emu, 4)
        assert err["RRC.ConnMean"] > 0.05 and err["DRB.UEThpDl"] > 0.05, (name, err)


def test_each_kind_of_truth_alone_moves_the_kpis() -> None:
    base = load_scenario("fault-midrun").without_truth()
    t = base.truth
    for truth in (replace(t, gain_sigma_db=2.0), replace(t, azimuth_sigma_deg=10.0),
                  replace(t, shadowing_sigma_db=4.0), replace(t, building_loss_db=5.0),
                  replace(t, outer_ring_load=0.5)):
        emu = NetworkEmulator(replace(base, truth=truth), seed=4, start=START, granularity_s=6 * 3600,
                              mr_per_cell=1)
        err = relative_errors(emu, 2)
        assert max(err.values()) > 0.02, (truth, err)
