"""Change requests that used to pass the schema and then raise deep inside the service: a change
window that is no time of day (the guard's ``ValueError``) and an expected KPI impact of -100 % or
less (a ``ZeroDivisionError`` in the verification). The schema refuses both at the edge, naming the
field and the value, and the exported JSON Schema says the same; a request recorded before (read
with ``STORED``) is refused by the guard, not raised on, and its verification rolls it back."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from streams.cm_service import change_in
from twin.guard import Guard, GuardContext, GuardPolicy, parse_window
from twin.ingest import describe_validation_error
from twin.ledger import open_ledger
from twin.rollout import control_verdict, kpi_verdict
from twin.schemas import CmChangeRequest
from twin.schemas.change import STORED

BASE: dict[str, Any] = {
    "changeId": "0b7e7d1c-6f0a-4b8e-9a51-3f4f5d6e7a8b", "requestedAt": "2026-01-01T00:00:00Z", "requester": "noc",
    "cellKey": "nr:00101-000000102", "targetDn": "ManagedElement=1,NRSectorCarrier=1", "class": "NRSectorCarrier",
    "attribute": "configuredMaxTxPower", "from": 20000, "to": 15849}
SCHEMA = Draft202012Validator(CmChangeRequest.model_json_schema(by_alias=True))


def body(**changes: Any) -> str:
    return json.dumps({**BASE, **changes})


def refusal(raw: str) -> str:
    with pytest.raises(ValidationError) as err:
        CmChangeRequest.model_validate_json(raw)
    return describe_validation_error(err.value)


# -- guard.allowedWindow ---------------------------------------------------------------------------------

@pytest.mark.parametrize("window", ["24:00-06:00", "22:00-24:00", "12:60-13:00", "1:00-02:00", "aa:bb-cc:dd",
                                    "22:00-05:00 ", "٢٢:00-05:00"])
def test_a_window_that_is_no_time_of_day_is_refused_at_the_edge_naming_field_and_value(window: str) -> None:
    raw = body(guard={"allowedWindow": window})
    assert refusal(raw) == (f"field guard.allowedWindow: Value error, change window {window!r} must be HH:MM-HH:MM "
                            f"with hours 00-23 and minutes 00-59 (value {window!r})")
    assert not SCHEMA.is_valid(json.loads(raw))  # the exported schema says so too


@pytest.mark.parametrize("window", ["00:00-23:59", "22:00-05:00", "23:59-00:00", "09:30-09:30"])
def test_real_windows_pass_the_schema_and_the_guard_reads_them(window: str) -> None:
    raw = body(guard={"allowedWindow": window})
    req = CmChangeRequest.model_validate_json(raw)
    assert req.guard.allowed_window == window and SCHEMA.is_valid(json.loads(raw))
    start, end = parse_window(window)
    assert f"{start:%H:%M}-{end:%H:%M}" == window


def test_the_policy_and_a_request_share_one_window_parser() -> None:
    with pytest.raises(ValidationError, match="change window '24:00-06:00' must be HH:MM-HH:MM"):
        GuardPolicy(windows=["24:00-06:00"])
    with pytest.raises(ValueError, match="hours 00-23 and minutes 00-59"):
        parse_window("24:00-06:00")


def test_a_recorded_request_with_a_bad_window_is_refused_by_the_guard_not_raised_on() -> None:
    stored = CmChangeRequest.model_validate_json(body(guard={"allowedWindow": "24:00-06:00"}), context=STORED)
    assert stored.guard.allowed_window == "24:00-06:00"
    guard = Guard(GuardPolicy(mode="auto"), open_ledger(":memory:"))
    decision = guard.decide(stored, GuardContext(now=datetime(2026, 1, 1, 3, tzinfo=UTC), cluster="c1"))
    assert decision.outcome == "rejected"
    window = [v for v in decision.violations if v.rule == "request_window"]
    assert len(window) == 1 and window[0].values == {"window": "24:00-06:00"}
    assert window[0].message == ("guard.allowedWindow '24:00-06:00' is not a change window: change window "
                                 "'24:00-06:00' must be HH:MM-HH:MM with hours 00-23 and minutes 00-59")


# -- expectedKpiImpact -----------------------------------------------------------------------------------

@pytest.mark.parametrize("pct", [-100, -100.0, -150.5, -1e9])
def test_an_impact_of_minus_100_percent_or_less_is_refused_naming_field_and_value(pct: float) -> None:
    raw = body(expectedKpiImpact={"objective": 2.0, "DRB.UEThpDl": pct})
    assert refusal(raw) == (f"field expectedKpiImpact.DRB.UEThpDl: Value error, expected impact {pct:g} % is not a "
                            "relative change: a KPI cannot fall by 100 % or more (the verification divides by 1 + "
                            f"impact / 100) (value {pct!r})")
    assert not SCHEMA.is_valid(json.loads(raw))


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_an_impact_that_is_not_a_finite_number_is_refused(token: str) -> None:
    raw = body().removesuffix("}") + f', "expectedKpiImpact": {{"DRB.UEThpDl": {token}}}}}'
    assert refusal(raw).startswith("field expectedKpiImpact.DRB.UEThpDl: Input should be a finite number")


@pytest.mark.parametrize("pct", [-99.99, 0, 3.5, 250.0])
def test_impacts_above_minus_100_percent_pass(pct: float) -> None:
    raw = body(expectedKpiImpact={"DRB.UEThpDl": pct})
    assert CmChangeRequest.model_validate_json(raw).expected_kpi_impact == {"DRB.UEThpDl": pct}
    assert SCHEMA.is_valid(json.loads(raw))


def test_a_recorded_request_with_an_impact_of_minus_100_stays_readable() -> None:
    stored = CmChangeRequest.model_validate_json(body(expectedKpiImpact={"DRB.UEThpDl": -100}), context=STORED)
    assert stored.expected_kpi_impact == {"DRB.UEThpDl": -100.0}
    again = CmChangeRequest.model_validate_json(stored.model_dump_json(by_alias=True), context=STORED)
    assert again == stored


# -- the verification with no counterfactual: the safe side ------------------------------------------------

@pytest.mark.parametrize("pct", [-100.0, -150.0, -math.inf, math.nan])
def test_an_impact_that_leaves_no_counterfactual_is_judged_degraded(pct: float) -> None:
    v = kpi_verdict("DRB.UEThpDl", real_before=50.0, real_after=55.0, predicted_before=40.0, predicted_after=40.0,
                    expected_pct=pct, max_degradation_pct=5.0)
    assert v.degraded and v.counterfactual == 50.0 and v.effect_pct == pytest.approx(10.0)
    assert v.note is not None and "leaves no counterfactual" in v.note and "judged degraded" in str(v)
    assert json.loads(json.dumps(v.as_dict()))["note"] == v.note  # the ledger records it as JSON


def test_a_scope_whose_kpi_fell_to_nothing_is_judged_not_raised_on() -> None:
    for kw in ({}, {"log_effect": -60.0, "log_se": 0.1}):
        v = control_verdict("DRB.UEThpDl", 3e5, 0.0, 1e6, 1.1e6, 5.0, **kw)
        assert v.effect_pct == -100.0 and v.degraded and v.counterfactual == pytest.approx(3.3e5)
        assert math.isfinite(v.counterfactual)


# -- the service's log names the change a failure was about --------------------------------------------

def test_the_change_a_failure_was_about_is_found_in_the_innermost_frame() -> None:
    stored = CmChangeRequest.model_validate_json(body(), context=STORED)
    other = stored.model_copy(update={"change_id": "5f1c0a52-3d7e-4b8e-9a51-000000000001"})

    def judge(request: CmChangeRequest) -> None:
        raise ZeroDivisionError("float division by zero")

    def reconcile(req: CmChangeRequest) -> None:
        judge(other)

    with pytest.raises(ZeroDivisionError) as err:
        reconcile(stored)
    assert change_in(err.value) == other.change_id
    assert change_in(ValueError("no traceback")) is None
