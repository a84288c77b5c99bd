"""Clusters and cells with their mirror state; real, predicted and calibrated KPIs over a time
range; the gap, DT-BSM and resync history of a cluster. Read-only, for viewers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from twin.api.deps import State, Viewer
from twin.api.errors import ApiError, err
from twin.digital_twin import Twin
from twin.gap.error import cell_error
from twin.metrics import gap_errors
from twin.mirror.cell import CellMirror
from twin.prediction.service import CALIBRATED

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["network"], responses={422: err("a bad field or value (named)")})

MAX_POINTS = 5000
#: path parameters, bounded like the query's: a long one is refused (422, the value truncated)
ClusterId = Annotated[str, Path(max_length=200, description="a cluster of the topology")]
CellKey = Annotated[str, Path(max_length=200, description="a cell key, e.g. nr:00101-000000101")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: err("no or unknown bearer token"),
    404: err("unknown cluster or cell (the field is named)"),
    503: err("the worker has not checkpointed a mirror yet"),
}


def _twin(s: Any) -> Twin:
    twin = s.twin()
    if twin is None:
        raise ApiError(503, f"no mirror yet: the worker has not checkpointed into {s.directory}")
    return twin


def _cluster(twin: Twin, cluster: str) -> None:
    if cluster not in twin.clusters:
        known = ", ".join(twin.clusters[:20]) or "none"
        raise ApiError(404, f"cluster {cluster!r} is not in the twin (clusters: {known})", "cluster")


def _cell(twin: Twin, cell: str) -> tuple[str, CellMirror | None]:
    try:
        cluster = twin.cluster_of(cell)
    except LookupError:
        raise ApiError(404, f"cell {cell!r} is in no cluster of the twin", "cell") from None
    return cluster, twin.mirror(cluster).cells.get(cell)


def _latest(cell: CellMirror) -> dict[str, Any]:
    """The newest period with both real and predicted KPIs: values and the twin's error."""
    for gp in sorted(cell.predicted):
        names = cell.predicted[gp]
        ends = sorted({e for n, per in names.items() if not n.endswith(CALIBRATED) for e in per}, reverse=True)
        for end in ends:
            pred = {n: per[end] for n, per in names.items() if not n.endswith(CALIBRATED) and end in per}
            real = {n: per[end] for n, per in cell.pm.get(gp, {}).items() if end in per and n in pred}
            if real:
                cal = {n[:-len(CALIBRATED)]: per[end] for n, per in names.items()
                       if n.endswith(CALIBRATED) and end in per}
                return {"gp": gp, "periodEnd": end, "real": real, "predicted": pred, "calibrated": cal,
                        "error": cell_error(pred, real), "errorCalibrated": cell_error(cal, real) if cal else None}
    return {"gp": None, "periodEnd": None, "real": {}, "predicted": {}, "calibrated": {}, "error": None,
            "errorCalibrated": None}


def _cluster_summary(twin: Twin, cluster: str) -> dict[str, Any]:
    mirror = twin.mirror(cluster)
    verdict = twin.trust(cluster)
    periods = [e for c in mirror.cells.values() for ends in c.periods.values() for e in ends]
    return {"cluster": cluster, "cells": len(twin.cells(cluster)), "mirroredCells": len(mirror.cells),
            "latestPeriodEnd": max(periods) if periods else None,
            "predictedThrough": {str(k): v for k, v in mirror.predicted_through.items()},
            "dtbsm": {"value": verdict.value, "lower": verdict.lower, "upper": verdict.upper,
                      "coverage": verdict.coverage, "threshold": verdict.tau, "trusted": verdict.trusted,
                      "reasons": verdict.reasons, "periodEnd": verdict.period_end},
            "gap": gap_errors(twin, cluster), "resyncs": len(mirror.resyncs)}


@router.get("/clusters", responses=_ERRORS, summary="Clusters with DT-BSM, trust and gap")
def clusters(s: State, _: Viewer) -> dict[str, Any]:
    with s.locked_twin():
        twin = _twin(s)
        return {"clusters": [_cluster_summary(twin, c) for c in twin.clusters]}


@router.get("/clusters/{cluster}", responses=_ERRORS, summary="One cluster and its cells' latest error")
def cluster(cluster: ClusterId, s: State, _: Viewer) -> dict[str, Any]:
    with s.locked_twin():
        twin = _twin(s)
        _cluster(twin, cluster)
        mirror = twin.mirror(cluster)
        cells = [{"cellKey": k, "mirrored": k in mirror.cells,
                  **(_latest(mirror.cells[k]) if k in mirror.cells else {})} for k in twin.cells(cluster)]
        return {**_cluster_summary(twin, cluster), "cellList": cells}


@router.get("/cells", responses=_ERRORS, summary="Cells with their mirror state (latest KPIs, twin error)")
def cells(s: State, _: Viewer, cluster: Annotated[str | None, Query(max_length=200)] = None) -> dict[str, Any]:
    with s.locked_twin():
        twin = _twin(s)
        names = [cluster] if cluster is not None else list(twin.clusters)
        if cluster is not None:
            _cluster(twin, cluster)
        out = []
        for cid in names:
            mirror = twin.mirror(cid)
            for key in twin.cells(cid):
                cell = mirror.cells.get(key)
                out.append({"cellKey": key, "cluster": cid, "mirrored": cell is not None,
                            "freshness": cell.freshness() if cell is not None else None,
                            "latest": _latest(cell) if cell is not None else None})
        return {"cells": out}


@router.get("/cells/{cell}", responses=_ERRORS, summary="One cell's mirror state (CM, PM, MR, freshness)")
def cell(cell: CellKey, s: State, _: Viewer) -> dict[str, Any]:
    with s.locked_twin():
        twin = _twin(s)
        cluster, mirrored = _cell(twin, cell)
        return {"cellKey": cell, "cluster": cluster, "mirror": mirrored.view() if mirrored is not None else None,
                "latest": _latest(mirrored) if mirrored is not None else None}


@router.get("/cells/{cell}/kpis", responses={**_ERRORS, 422: err("bad range or KPI (named)")},
            summary="Real, predicted and calibrated KPIs of a cell over a time range")
def cell_kpis(cell: CellKey, s: State, _: Viewer,
              start: Annotated[int | None, Query(ge=0, le=2**40, description="epoch s, first period end")] = None,
              end: Annotated[int | None, Query(ge=0, le=2**40, description="epoch s, last period end")] = None,
              kpi: Annotated[list[str] | None, Query(max_length=32, description="KPI names (default: all "
                                                     "predicted)")] = None,
              gp: Annotated[int | None, Query(gt=0, le=86400, description="granularity period (s)")] = None,
              ) -> dict[str, Any]:
    if start is not None and end is not None and start > end:
        raise ApiError(422, f"start={start} is after end={end}", "start")
    with s.locked_twin():
        twin = _twin(s)
        cluster, mirrored = _cell(twin, cell)
        if mirrored is None:
            return {"cellKey": cell, "cluster": cluster, "gp": gp, "series": {}}
        gps = sorted(set(mirrored.pm) | set(mirrored.predicted))
        if gp is None:
            gp = gps[0] if gps else None
        elif gp not in gps:
            raise ApiError(422, f"gp={gp}: cell {cell} reports gp {gps or 'none'}", "gp")
        if gp is None:
            return {"cellKey": cell, "cluster": cluster, "gp": None, "series": {}}
        real, pred = mirrored.pm.get(gp, {}), mirrored.predicted.get(gp, {})
        names = kpi or sorted(n for n in pred if not n.endswith(CALIBRATED))
        known = set(real) | {n for n in pred if not n.endswith(CALIBRATED)}
        for i, name in enumerate(names):
            if name not in known:
                raise ApiError(422, f"kpi[{i}]={name!r}: cell {cell} has no such KPI (it has "
                               f"{', '.join(sorted(known)[:30])})", f"kpi[{i}]")
        series: dict[str, list[dict[str, Any]]] = {}
        for name in names:
            r, p, c = real.get(name, {}), pred.get(name, {}), pred.get(name + CALIBRATED, {})
            ends = sorted(e for e in set(r) | set(p) | set(c)
                          if (start is None or e >= start) and (end is None or e <= end))[-MAX_POINTS:]
            series[name] = [{"periodEnd": e, "real": r.get(e), "predicted": p.get(e), "calibrated": c.get(e)}
                            for e in ends]
        return {"cellKey": cell, "cluster": cluster, "gp": gp, "series": series}


@router.get("/clusters/{cluster}/gap", responses=_ERRORS, summary="Gap learners' rolling error per cell and KPI")
def cluster_gap(cluster: ClusterId, s: State, _: Viewer) -> dict[str, Any]:
    from twin.gap.tracker import GapTracker

    with s.locked_twin():
        twin = _twin(s)
        _cluster(twin, cluster)
        state = twin.mirror(cluster).gap_state
        figures = GapTracker.from_bytes(state, twin.settings.gap).figures() if state is not None else {}
        return {"cluster": cluster, "summary": gap_errors(twin, cluster), "cells": figures}


@router.get("/clusters/{cluster}/fidelity", responses=_ERRORS, summary="DT-BSM history and the trust verdict")
def cluster_fidelity(cluster: ClusterId, s: State, _: Viewer) -> dict[str, Any]:
    with s.locked_twin():
        twin = _twin(s)
        _cluster(twin, cluster)
        verdict = twin.trust(cluster)
        return {"cluster": cluster, "threshold": verdict.tau, "minCoverage": verdict.min_coverage,
                "trusted": verdict.trusted, "reasons": verdict.reasons, "history": twin.fidelity(cluster)}


@router.get("/clusters/{cluster}/resyncs", responses=_ERRORS, summary="Resync and calibration history")
def cluster_resyncs(cluster: ClusterId, s: State, _: Viewer) -> dict[str, Any]:
    with s.locked_twin():
        twin = _twin(s)
        _cluster(twin, cluster)
        mirror = twin.mirror(cluster)
        return {"cluster": cluster, "resyncs": list(mirror.resyncs), "calibrations": list(mirror.calibrations)}
