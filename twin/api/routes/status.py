"""Health, readiness, who am I, and alerts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from twin.api.deps import State, Viewer
from twin.api.errors import err
from twin.api.models import Health, Me, ReadyOut

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["status"], responses={422: err("a bad field or value (named)")})


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ran-twin")
    except PackageNotFoundError:
        return "unknown"


@router.get("/health", summary="Liveness: the API process answers (no token needed)")
def health() -> Health:
    return Health(status="ok", version=_version())


@router.get("/ready", summary="Readiness: false while the worker lags, is not running or its broker is "
            "unreachable (no token needed)", responses={503: {"model": ReadyOut, "description": "not ready"}})
def ready(s: State) -> JSONResponse:
    with s.lock:
        r = s.readiness()
    body = ReadyOut(ready=r.ready, reasons=r.reasons, workers=r.workers).model_dump()
    return JSONResponse(body, status_code=200 if r.ready else 503)


@router.get("/me", summary="The caller's name and role", responses={401: err("no or unknown token")})
def me(who: Viewer) -> Me:
    return Me(name=who.name, role=who.role)


@router.get("/alerts", summary="The twin's alerts (journaled beside the checkpoints), folded per alert id",
            responses={401: err("no or unknown bearer token")})
def alerts(s: State, _: Viewer,
           active: Annotated[bool, Query(description="only the alerts not cleared")] = False,
           cluster: Annotated[str | None, Query(max_length=200)] = None,
           cell: Annotated[str | None, Query(max_length=200)] = None,
           limit: Annotated[int, Query(ge=1, le=10_000, description="most recent first, at most")] = 500,
           ) -> dict[str, Any]:
    states = s.alerts()
    rows = [a for a in states if (not active or a.active) and (cluster is None or a.cluster_id == cluster)
            and (cell is None or a.cell_key == cell)]
    rows.sort(key=lambda a: a.raised_at, reverse=True)
    return {"active": sum(a.active for a in states), "alerts": [a.to_dict() for a in rows[:limit]]}
