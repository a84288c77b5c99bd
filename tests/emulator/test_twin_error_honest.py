"""The honest-error acceptance line through the twin's own prediction path (``twin.prediction``),
the one the demo reports: the twin, fed only what the emulator publishes (CM and PM through the
ingest decoder into a mirror), is near-exact when the hidden truth is zero and clearly off when
it is not. ``test_emulator_honest_error`` shows the same for the bare simulation model."""

from __future__ import annotations

import statistics

from replay.emulator import NetworkEmulator, load_scenario
from tests.emulator.util import START
from twin import topics
from twin.config import IngestSettings
from twin.ingest import IngestDecoder, Rejection
from twin.mirror.cluster import ClusterMirror
from twin.prediction import ClusterPredictor, PredictConfig, cell_error

GP = 3 * 3600


def mean_twin_error(emu: NetworkEmulator, periods: int) -> float:
    decoder = IngestDecoder(IngestSettings(max_future_skew_s=1e12))
    m = emu.public_model()
    mirror = ClusterMirror(m["cluster_id"])
    records = emu.initial_records()
    ends = []
    for _ in range(periods):
        records += emu.step()
        ends.append(round(emu.period_end.timestamp()))
    for r in records:
        if r.topic in (topics.PM_CELL, topics.CM_SNAPSHOT, topics.CM_NOTIFICATIONS):
            out = decoder.decode(r.topic, r.key, r.value)
            assert not isinstance(out, Rejection), out
            mirror.apply(out)
    predictor = ClusterPredictor(PredictConfig(scenario=m["scenario"], n_ues=m["n_ues"], demand_bps=m["demand_bps"],
                                               indoor_fraction=m["indoor_fraction"], seed=m["seed"]))
    errors = []
    for end in ends:
        p = predictor.predict(mirror, GP, end)
        assert p is not None
        for key, predicted in p.values.items():
            real = {name: series[end] for name, series in mirror.cells[key].pm[GP].items() if end in series}
            e = cell_error(predicted, real)
            if e is not None:
                errors.append(e)
    assert errors
    return statistics.fmean(errors)


def test_twin_error_is_near_zero_without_hidden_truth_and_clearly_not_with_it() -> None:
    for name in ("fault-midrun", "urban-hotspots"):
        exact = mean_twin_error(NetworkEmulator(load_scenario(name).without_truth(), seed=4, start=START,
                                                granularity_s=GP, mr_per_cell=1), periods=4)
        hidden = mean_twin_error(NetworkEmulator(name, seed=4, start=START, granularity_s=GP, mr_per_cell=1),
                                 periods=4)
        print(f"{name}: twin error without truth {exact:.4f}, with truth {hidden:.4f}")
        assert exact < 0.02, (name, exact)
        assert hidden > 0.05 and hidden > 5 * exact, (name, exact, hidden)
