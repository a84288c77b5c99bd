"""Schemathesis against the live API's served OpenAPI document, with a viewer's token, an
operator's token and none: every operation, generated valid and invalid inputs, each answer
checked against the document (status codes, content types, schemas) and never a 5xx.

Kept bounded (a few examples per operation and role) so the module runs in well under a minute.
``/api/v1/events`` streams until the client leaves, so it is tested in test_api.py, not here.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from tests.api.conftest import Served
from twin.metrics import API_REQUESTS


def _check(case: Any, role: str | None, served: Served, mode: GenerationMode) -> None:
    headers = {} if role is None else {"Authorization": f"Bearer {getattr(served, role)}"}
    response = case.call(headers=headers, timeout=30)
    if case.path == "/api/v1/ready":  # 503 is its documented "not ready" (no worker runs beside this API)
        case.validate_response(response, excluded_checks=[not_a_server_error])
        assert response.status_code in (200, 503)
    else:
        case.validate_response(response)
    if role is None and case.path not in ("/api/v1/health", "/api/v1/ready"):
        # 422 only for a generated invalid request (FastAPI may reject its input before the missing token)
        allowed = (401,) if mode is GenerationMode.POSITIVE else (401, 422)
        assert response.status_code in allowed, (case.path, response.status_code)
    if role == "viewer" and (case.method.upper() == "PUT" or case.path.endswith(("/approve", "/reject", "/rollback"))):
        # 401 where a generated invalid case dropped the Authorization header
        assert response.status_code in (401, 403, 422), (case.path, response.status_code, response.text)


def _requests() -> float:
    """Requests the API in this process has answered (``twin_api_requests_total``, all labels)."""
    return sum(s.value for m in API_REQUESTS.collect() for s in m.samples if s.name.endswith("_total"))


def _runner(operation: Any, mode: GenerationMode, role: str | None, served: Served) -> Any:
    """A Hypothesis test of ``operation`` in ``mode`` as ``role``: a few examples, no shrinking database."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def run(case: Any) -> None:
        _check(case, role, served, mode)

    return run


@pytest.mark.parametrize("role", ["viewer", "operator", None])
def test_every_operation(served: Served, role: str | None) -> None:
    schema = schemathesis.openapi.from_url(served.url + "/api/v1/openapi.json").exclude(path="/api/v1/events")
    failures: list[str] = []
    operations = 0
    before = _requests()
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            run = _runner(operation, mode, role, served)
            started = time.perf_counter()
            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # an operation without inputs has no invalid ones
            except (Exception, BaseExceptionGroup) as exc:  # every operation's failures, reported together
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}"[:2000])
            print(f"{operation.method.upper()} {operation.path} {mode.value}: {time.perf_counter() - started:.2f} s")
    assert operations >= 19
    assert _requests() - before >= 3 * operations  # the generated requests did reach the live API
    assert not failures, "\n\n".join(failures)
