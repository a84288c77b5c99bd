"""The REST API against a real worker's checkpoints and a real SQLite ledger, over HTTP (uvicorn)."""

from __future__ import annotations

import json
import time

import orjson
import pytest

from tests.api.conftest import Served
from twin.api import journal
from twin.ledger import open_ledger
from twin.ledger.states import State
from twin.prediction.service import CALIBRATED
from twin.schemas import Alert, Severity


def test_health_openapi_and_no_token(served: Served) -> None:
    with served.client(None) as c:
        assert c.get("/api/v1/health").json()["status"] == "ok"
        doc = c.get("/api/v1/openapi.json").json()
        assert {"/api/v1/cells", "/api/v1/whatif", "/api/v1/changes/{change_id}/approve"} <= set(doc["paths"])
        r = c.get("/api/v1/clusters")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["field"] == "Authorization"
        assert c.get("/api/v1/clusters", headers={"Authorization": "Bearer " + "x" * 30}).status_code == 401
        assert c.post(f"/api/v1/changes/{served.changes['approve']}/approve").status_code == 401
        root = c.get("/")  # the dashboard's static files are served at /
        assert root.status_code == 200 and root.headers["content-type"].startswith("text/html")
    with served.client("viewer") as c:
        assert c.get("/api/v1/me").json() == {"name": "demo-viewer", "role": "viewer"}


def test_clusters_and_cells_match_the_mirror(served: Served) -> None:
    twin = served.twin()
    with served.client("viewer") as c:
        clusters = {x["cluster"]: x for x in c.get("/api/v1/clusters").json()["clusters"]}
        assert set(clusters) == {"east", "west"}
        verdict = twin.trust("west")
        assert clusters["west"]["dtbsm"]["value"] == pytest.approx(verdict.value)
        assert clusters["west"]["dtbsm"]["trusted"] is verdict.trusted
        assert clusters["west"]["cells"] == len(twin.cells("west"))
        cells = c.get("/api/v1/cells", params={"cluster": "east"}).json()["cells"]
        assert [x["cellKey"] for x in cells] == list(twin.cells("east"))
        one = cells[0]
        p = twin.predict("east")
        assert one["latest"]["periodEnd"] == p.period_end
        assert one["latest"]["predicted"]["DRB.UEThpDl"] == pytest.approx(p.values[one["cellKey"]]["DRB.UEThpDl"])
        assert one["latest"]["error"] is not None
        detail = c.get(f"/api/v1/cells/{one['cellKey']}").json()
        assert detail["cluster"] == "east" and detail["mirror"]["cellKey"] == one["cellKey"]
        r = c.get("/api/v1/cells/nr:00101-00000ffff")
        assert r.status_code == 404 and r.json()["field"] == "cell" and "nr:00101-00000ffff" in r.json()["error"]
        r = c.get("/api/v1/clusters/north")
        assert r.status_code == 404 and r.json()["field"] == "cluster" and "'north'" in r.json()["error"]


def test_kpis_over_a_range(served: Served) -> None:
    twin = served.twin()
    cell = twin.cells("west")[0]
    mirror = twin.mirror("west").cells[cell]
    ends = served.run.period_ends
    with served.client("viewer") as c:
        r = c.get(f"/api/v1/cells/{cell}/kpis", params={"kpi": ["DRB.UEThpDl"], "start": ends[2], "end": ends[5]})
        assert r.status_code == 200, r.text
        rows = r.json()["series"]["DRB.UEThpDl"]
        assert [row["periodEnd"] for row in rows] == ends[2:6]
        for row in rows:
            e = row["periodEnd"]
            assert row["real"] == mirror.pm[900]["DRB.UEThpDl"][e]
            assert row["predicted"] == mirror.predicted[900]["DRB.UEThpDl"][e]
            assert row["calibrated"] == mirror.predicted[900].get("DRB.UEThpDl" + CALIBRATED, {}).get(e)
        assert any(row["calibrated"] is not None for row in rows)  # the gap learners' values are served
        r = c.get(f"/api/v1/cells/{cell}/kpis", params={"start": ends[5], "end": ends[2]})
        assert r.status_code == 422 and r.json()["field"] == "start"
        r = c.get(f"/api/v1/cells/{cell}/kpis", params={"kpi": ["DRB.UEThpDl", "Nope.Kpi"]})
        assert r.status_code == 422 and r.json()["field"] == "kpi[1]" and "Nope.Kpi" in r.json()["error"]
        r = c.get(f"/api/v1/cells/{cell}/kpis", params={"start": "yesterday"})
        assert r.status_code == 422 and r.json()["field"] == "start" and "'yesterday'" in r.json()["error"]
        gap = c.get("/api/v1/clusters/west/gap").json()
        assert cell in gap["cells"] and gap["summary"]["calibrated"] is not None
        fid = c.get("/api/v1/clusters/west/fidelity").json()
        assert fid["history"] == twin.fidelity("west") and fid["threshold"] == twin.trust("west").tau
        assert c.get("/api/v1/clusters/west/resyncs").json()["resyncs"] == list(twin.mirror("west").resyncs)


def test_whatif_is_twin_whatif(served: Served) -> None:
    twin = served.twin()
    cells = twin.cells("west")
    changes = [{"cellKey": cells[0], "attribute": "digitalTilt", "to": 90},
               {"cellKey": cells[1], "attribute": "configuredMaxTxPower", "to": 10000}]
    expected = twin.whatif("west", changes)
    with served.client("viewer") as c:
        r = c.post("/api/v1/whatif", json={"cluster": "west", "changes": changes})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["periodEnd"] == expected.period_end and out["modelVersion"] == expected.model_version
        assert len(out["rows"]) == len(expected.rows())
        for got, want in zip(out["rows"], expected.rows(), strict=True):
            assert (got["cell"], got["kpi"]) == (want["cell"], want["kpi"])
            assert got["delta"] == pytest.approx(want["delta"], rel=1e-9, abs=1e-9)
        bad = [{"cellKey": cells[0], "attribute": "digitalTilt", "to": 1200}]
        r = c.post("/api/v1/whatif", json={"cluster": "west", "changes": bad})
        assert r.status_code == 422 and r.json()["field"] == "changes[0].to" and "1200" in r.json()["error"]
        r = c.post("/api/v1/whatif", json={"cluster": "west", "changes": [{"attribute": "digitalTilt", "to": 9}]})
        assert r.status_code == 422 and r.json()["field"] == "changes[0].cellKey"
        r = c.post("/api/v1/whatif", json={"cluster": "west", "changes": changes, "colour": "red"})
        assert r.status_code == 422 and r.json()["field"] == "colour"
        r = c.post("/api/v1/whatif", json={"cluster": "west", "changes": [{**changes[0], "to": "steep"}]})
        assert r.status_code == 422 and r.json()["field"] == "changes[0].to" and "'steep'" in r.json()["error"]
        # the OpenAPI document's JSON types, not Python's coercions: a numeric string or a boolean is no number
        for coercible in ("90", True):
            r = c.post("/api/v1/whatif", json={"cluster": "west", "changes": [{**changes[0], "to": coercible}]})
            assert r.status_code == 422 and r.json()["field"] == "changes[0].to", (coercible, r.text)
            assert repr(coercible) in r.json()["error"]
        r = c.post("/api/v1/whatif", json={"cluster": "west", "changes": changes, "periodEnd": "0"})
        assert r.status_code == 422 and r.json()["field"] == "periodEnd"
        # JSON Schema's integer is any number without a fraction: 1709285400.0 is one, 0.5 is not
        r = c.post("/api/v1/whatif", json={"cluster": "west", "changes": changes, "periodEnd": float(out["periodEnd"]),
                                           "gp": float(out["gp"])})
        assert r.status_code == 200 and r.json()["periodEnd"] == out["periodEnd"], r.text
        r = c.post("/api/v1/whatif", json={"cluster": "west", "changes": changes, "gp": 900.5})
        assert r.status_code == 422 and r.json()["field"] == "gp"
        r = c.post("/api/v1/whatif", json={"cluster": "north", "changes": changes})
        assert r.status_code == 404 and r.json()["field"] == "cluster"
        east = twin.cells("east")[0]
        r = c.post("/api/v1/whatif", json={"cluster": "west", "changes": [{**changes[0], "cellKey": east}]})
        assert r.status_code == 404 and r.json()["field"] == "changes[0].cellKey" and "'east'" in r.json()["error"]
        r = c.post("/api/v1/whatif", json={"cluster": "west", "changes": []})
        assert r.status_code == 422 and r.json()["field"] == "changes"
        assert out["outOfRange"] == {}  # the simulation engine flags nothing
        r = c.post("/api/v1/whatif", json={"cluster": "west", "changes": changes, "model": "neural"})
        assert r.status_code == 422 and r.json()["field"] == "model"
        r = c.post("/api/v1/whatif", json={"cluster": "west", "changes": changes, "model": "sim2real"})
        assert r.status_code == 422 and r.json()["field"] == "model" and "sim2real_model" in r.json()["error"]


def test_changes_roles_guard_and_ledger(served: Served) -> None:
    ids = served.changes
    led = open_ledger(served.ledger_url)
    assert led.get(ids["too-far"]).state is State.REJECTED  # refused by the guard when submitted
    with served.client("viewer") as viewer, served.client("operator") as op:
        listed = {x["changeId"]: x for x in viewer.get("/api/v1/changes").json()["changes"]}
        assert set(listed) == set(ids.values())
        assert listed[ids["approve"]]["state"] == "PENDING_APPROVAL"
        r = viewer.get("/api/v1/changes", params={"state": ["APPROVED", "pending"]})
        assert r.status_code == 422 and r.json()["field"] == "state[1]" and "'pending'" in r.json()["error"]
        r = viewer.get("/api/v1/changes", params={"cel": "nr:00101-000000101"})  # a misspelt filter
        assert r.status_code == 422 and r.json()["field"] == "cel"
        pending = viewer.get("/api/v1/changes", params={"state": "PENDING_APPROVAL"}).json()["changes"]
        assert {x["changeId"] for x in pending} == set(ids.values()) - {ids["too-far"]}
        shown = viewer.get(f"/api/v1/changes/{ids['too-far']}").json()
        assert shown["history"][-1]["detail"]["violations"][0]["rule"] == "max_step"

        # a viewer may not decide: 403, and the ledger is unchanged
        r = viewer.post(f"/api/v1/changes/{ids['approve']}/approve")
        assert r.status_code == 403 and "operator" in r.json()["error"]
        assert led.get(ids["approve"]).state is State.PENDING_APPROVAL
        assert viewer.put("/api/v1/kill-switch", json={"on": True}).status_code == 403

        # an operator's approval passes the guard and lands in the ledger
        r = op.post(f"/api/v1/changes/{ids['approve']}/approve", json={"reason": "night window"})
        assert r.status_code == 200, r.text
        view = led.get(ids["approve"])
        assert view.state is State.APPROVED and view.decided_by == "demo-operator" and view.reason == "night window"
        # ... and a second approval is refused: the change is no longer pending
        r = op.post(f"/api/v1/changes/{ids['approve']}/approve")
        assert r.status_code == 409 and r.json()["detail"] == {"state": "APPROVED"}

        # the guard refuses a second change on a cell with one in flight: 409 naming the rule, nothing recorded
        r = op.post(f"/api/v1/changes/{ids['same-cell']}/approve")
        assert r.status_code == 409, r.text
        assert [x["rule"] for x in r.json()["detail"]["rules"]] == ["one_in_flight"]
        assert led.get(ids["same-cell"]).state is State.PENDING_APPROVAL

        # the kill switch: flipped by an operator, it makes the guard refuse every approval
        assert op.put("/api/v1/kill-switch", json={"on": True}).json()["on"] is True
        assert led.control("kill_switch") is True
        r = op.post(f"/api/v1/changes/{ids['kill']}/approve")
        assert r.status_code == 409 and "kill_switch" in [x["rule"] for x in r.json()["detail"]["rules"]]
        assert op.put("/api/v1/kill-switch", json={"on": False}).json()["history"][-1]["by"] == "demo-operator"
        r = op.put("/api/v1/kill-switch", json={"on": "maybe"})
        assert r.status_code == 422 and r.json()["field"] == "on"
        for coercible in ("yes", "true", 1):  # what Python-mode validation would take for True
            r = op.put("/api/v1/kill-switch", json={"on": coercible})
            assert r.status_code == 422 and r.json()["field"] == "on", (coercible, r.text)
        assert led.control("kill_switch") is False

        r = op.post(f"/api/v1/changes/{ids['reject']}/reject", json={"reason": "not tonight"})
        assert r.status_code == 200 and led.get(ids["reject"]).state is State.DENIED
        [owed] = [json.loads(o.body) for o in led.outbox(after=0) if o.change_id == ids["reject"]]
        assert (owed["state"], owed["error"]) == ("REJECTED", "rejected by demo-operator: not tonight")
        r = op.post(f"/api/v1/changes/{ids['kill']}/rollback")
        assert r.status_code == 409 and "PENDING_APPROVAL" in r.json()["error"]
        r = op.post("/api/v1/changes/no-such-change/approve")
        assert r.status_code == 404 and r.json()["field"] == "change_id"
    led.close()


def test_alerts_from_the_journal(served: Served) -> None:
    cell = served.twin().cells("west")[4]
    raised = Alert.model_validate({"alertId": "0b6e5f2a-7a1c-5c6e-9d2e-0f9e1b2c3d4e",
                                   "raisedAt": "2024-03-01T13:00:00Z", "cellKey": cell, "clusterId": "west",
                                   "severity": "MAJOR",
                                   "type": "TWIN_DIVERGENCE", "text": "the twin diverges"})
    cleared = raised.model_copy(update={"severity": Severity.CLEARED, "cleared_at": raised.raised_at})
    directory = served.run.state_dir / "twin-library"
    path = directory / journal.FILE
    kept = path.read_bytes() if path.exists() else None  # the session's worker run: restored after
    journal.append(directory, [raised])  # what the worker does when it publishes an alert
    try:
        with served.client("viewer") as c:
            out = c.get("/api/v1/alerts", params={"active": True}).json()
            assert out["active"] == 1 and out["alerts"][0]["cellKey"] == cell
            journal.append(directory, [cleared])
            assert c.get("/api/v1/alerts", params={"active": True}).json()["alerts"] == []
            assert c.get("/api/v1/alerts", params={"cell": cell}).json()["alerts"][0]["active"] is False
    finally:
        if kept is None:
            path.unlink()
        else:
            path.write_bytes(kept)


def test_events_stream(served: Served) -> None:
    with served.client(None) as c:  # EventSource clients pass the token in the query
        started = time.monotonic()
        r = c.get("/api/v1/events", params={"timeout": 1.5, "access_token": served.viewer})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert time.monotonic() - started < 10
        events = [block for block in r.text.split("\n\n") if block.startswith("event: ")]
        kinds = {}
        for block in events:
            head, data = block.split("\n", 1)
            kinds.setdefault(head.removeprefix("event: "), []).append(orjson.loads(data.removeprefix("data: ")))
        assert {k["cluster"] for k in kinds["kpi"]} == {"east", "west"}
        assert {x["changeId"] for x in kinds["change"]} == set(served.changes.values())
        assert c.get("/api/v1/events", params={"timeout": 1}).status_code == 401


def test_metrics_endpoint(served: Served) -> None:
    with served.client(None) as c:
        c.get("/api/v1/health")
        text = c.get("/metrics").text
    verdict = served.twin().trust("west")
    assert f'twin_dtbsm{{cluster="west"}} {verdict.value}' in text
    assert f'twin_dtbsm_lower{{cluster="west"}} {verdict.lower}' in text
    assert verdict.record is not None
    assert f'twin_dtbsm_tv_bound{{cluster="west"}} {float(verdict.record["tvBound"])}' in text
    assert 'twin_cm_guard_decisions_total{outcome="rejected",rule="max_step"} 1.0' in text
    assert 'twin_api_requests_total{method="GET",route="/api/v1/health",status="200"}' in text
    assert "twin_prediction_seconds_count" in text
