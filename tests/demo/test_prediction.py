"""Twin prediction without a broker: from a mirrored cluster to per-cell KPIs, idempotent."""

from __future__ import annotations

from twin.gap import RSRP_MEAN, SINR_MEAN
from twin.mirror.cluster import ClusterMirror
from twin.prediction import ClusterPredictor, PredictConfig, PredictionService, cell_error, due_periods
from twin.sim import KPI_NAMES, Simulator, TrafficMap, hex_cluster


def _mirror(periods: int = 3) -> tuple[ClusterMirror, list[dict[str, dict[str, float]]]]:
    cl = hex_cluster(rings=1)
    truth = Simulator(cl, TrafficMap(n_ues=1500), seed=5)
    m = ClusterMirror("c1")
    for s in cl.sectors:
        m.apply(["cm", s.cell_key, {"dn": f"dn-{s.cell_key}", "cls": "NRCellDU", "t": 0.0, "a": {
            "x": s.x_m, "y": s.y_m, "azimuth": s.azimuth_deg, "siteId": s.site_id,
            "digitalTilt": round(s.elec_tilt_deg * 10)}}])
    real = []
    for k in range(periods):
        kpis = truth.evaluate(hour=8 + 4 * k).kpis
        real.append(kpis)
        for key, v in kpis.items():
            m.apply(["pm", key, {"gp": 900, "t": 900.0 * (k + 1), "v": v, "s": False}])
    return m, real


def test_prediction_per_cell_and_kpi_close_to_a_similar_network() -> None:
    m, real = _mirror()
    p = ClusterPredictor(PredictConfig(n_ues=1500)).predict(m, 900, 1800)
    assert p is not None and p.rebuilt
    assert set(p.values) == set(real[1])
    assert all(set(v) == {*KPI_NAMES, RSRP_MEAN, SINR_MEAN} for v in p.values.values())
    # traffic comes from the cluster's mirrored RRC.ConnMean: its total is reproduced exactly, the
    # split over cells is the twin's own coverage
    total = sum(v["RRC.ConnMean"] for v in real[1].values())
    assert abs(sum(v["RRC.ConnMean"] for v in p.values.values()) - total) < 1e-6 * total
    errors = [cell_error(p.values[k], real[1][k]) for k in real[1]]
    assert 0 < sum(e for e in errors if e is not None) / len(errors) < 0.3


def test_simulator_is_cached_until_cm_changes_and_predictions_repeat() -> None:
    m, _ = _mirror()
    predictor = ClusterPredictor(PredictConfig(n_ues=1500))
    a = predictor.predict(m, 900, 2700)
    b = predictor.predict(m, 900, 2700)
    assert a is not None and b is not None and not b.rebuilt and a.values == b.values
    key = sorted(m.cells)[0]
    m.apply(["cmn", key, {"dn": f"dn-{key}", "cls": "NRCellDU", "t": 10.0, "a": {"digitalTilt": 150}}])
    c = predictor.predict(m, 900, 2700)
    assert c is not None and c.rebuilt and c.values[key] != a.values[key]
    assert predictor.builds == 2


def test_service_predicts_complete_periods_once_and_stores_them() -> None:
    m, _ = _mirror(periods=2)
    expected = {"c1": sorted(m.cells)}
    service = PredictionService(PredictConfig(n_ues=1500), expected, timeout_periods=2)
    out = service.on_applied(m)
    assert [p.period_end for p in out] == [900, 1800]
    assert service.on_applied(m) == [] and due_periods(m, expected["c1"]) == []
    cell = m.cells[sorted(m.cells)[0]]
    assert set(cell.predicted[900]["DRB.UEThpDl"]) == {900, 1800}
    # a redelivered PM record for a predicted period triggers nothing
    m.apply(["pm", cell.cell_key, {"gp": 900, "t": 900.0, "v": {"RRC.ConnMean": 1.0}, "s": False}])
    assert service.on_applied(m) == []
    # checkpoint round trip keeps predictions and bookkeeping
    again = ClusterMirror.from_dict(m.to_dict())
    assert again.to_dict() == m.to_dict() and again.predicted_through == {900: 1800}


def test_incomplete_period_waits_for_the_timeout_in_event_time() -> None:
    m, _ = _mirror(periods=1)
    cells = sorted(m.cells)
    expected = [*cells, "nr:00101-000009991"]  # one cell that never reports
    assert due_periods(m, expected, timeout_periods=2) == []
    for k in (2, 3):
        m.apply(["pm", cells[0], {"gp": 900, "t": 900.0 * k, "v": {}, "s": False}])
    assert due_periods(m, expected, timeout_periods=2) == [(900, 900)]
