"""``POST /api/v1/whatif``: CM changes in, predicted KPI deltas out, through ``Twin.whatif``."""

from __future__ import annotations

import time
from typing import Any

import structlog
from fastapi import APIRouter

from twin.api.deps import State, Viewer
from twin.api.errors import ApiError, err
from twin.api.models import WhatIfIn, WhatIfOut, WhatIfRow
from twin.errors import NoDataError, UnknownCellError, UnknownClusterError
from twin.metrics import WHATIF_SECONDS

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["what-if"], responses={422: err("a bad field or value (named)")})
log = structlog.get_logger("twin.api")


@router.post("/whatif", responses={401: err("no or unknown bearer token"),
                                   404: err("unknown cluster or cell (named)"),
                                   409: err("the cluster has no data to simulate yet"),
                                   422: err("a bad field or value (named)"),
                                   503: err("no mirror yet")},
             summary="Predicted KPI deltas of CM changes (nothing is applied)")
def whatif(body: WhatIfIn, s: State, _: Viewer) -> WhatIfOut:
    changes: list[dict[str, Any]] = [{"cellKey": c.cell_key, "attribute": c.attribute,
                                      "to": int(c.to) if float(c.to).is_integer() else c.to} for c in body.changes]
    with s.lock:
        twin = s.twin()
        if twin is None:
            raise ApiError(503, f"no mirror yet: the worker has not checkpointed into {s.directory}")
        if body.cluster not in twin.clusters:
            raise ApiError(404, f"cluster {body.cluster!r} is not in the twin (clusters: "
                           f"{', '.join(twin.clusters[:20]) or 'none'})", "cluster")
        started = time.perf_counter()
        try:
            w = twin.whatif(body.cluster, changes, period_end=body.period_end, gp=body.gp, model=body.model)
        except (UnknownCellError, UnknownClusterError) as exc:
            raise ApiError(404, str(exc), _which(str(exc), body)) from None
        except NoDataError as exc:
            raise ApiError(409, str(exc), "periodEnd" if body.period_end is not None else "cluster") from None
        except (FileNotFoundError, RuntimeError) as exc:  # a configured Sim2Real model that cannot load
            raise ApiError(422, str(exc), "model") from None
        except ValueError as exc:
            raise ApiError(422, str(exc), _which(str(exc), body)) from None
        seconds = time.perf_counter() - started
    WHATIF_SECONDS.labels(caller="api").observe(seconds)
    log.info("api.whatif", cluster=body.cluster, cells=sorted({c["cellKey"] for c in changes}),
             ms=round(seconds * 1000, 1))
    return WhatIfOut(cluster=w.cluster_id, gp=w.gp, periodEnd=w.period_end, modelVersion=w.model_version,
                     converged=w.converged, changes=w.changes, rows=[WhatIfRow(**r) for r in w.rows()],
                     outOfRange=w.out_of_range)


def _which(message: str, body: WhatIfIn) -> str:
    """The body field a what-if error is about: the first change whose cell and attribute it names."""
    for i, c in enumerate(body.changes):
        if repr(c.cell_key) in message or c.cell_key in message:
            if c.attribute in message:
                return f"changes[{i}].{'to' if 'range' in message or 'outside' in message else 'attribute'}"
            return f"changes[{i}].cellKey"
    if "sim2real" in message or message.startswith("model="):
        return "model"
    if "gp=" in message:
        return "gp"
    if "period_end" in message:
        return "periodEnd"
    return "changes"
