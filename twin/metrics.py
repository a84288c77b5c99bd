"""Prometheus metrics of the runtime: one registry per process, updated by the worker, the CM
service and the API, served at ``/metrics`` (the API) or on ``twin run --metrics-port`` (a worker).

Why one registry per process and not one for the deployment: every process (worker, re-keying
child, ``twin cm serve``, ``twin api``) counts what it does itself, and Prometheus scrapes each
of them (a worker's counters live in its memory; reading them through a file would lose them
between two writes and double them when two processes read the same file). Figures that are
*state* rather than activity (gap and DT-BSM per cluster, the CM ledger's decisions, pushes and
roll backs) are computed from that state when scraped: :class:`StateCollector` reads the
checkpointed mirror and the ledger, so they are exact across restarts and the same whichever
process serves them (the API does).

The names are fixed here; ``docs/operations.md`` lists them for dashboards.

>>> from prometheus_client import generate_latest
>>> WHATIF_SECONDS.labels(caller="doctest").observe(0.004)
>>> b'twin_whatif_seconds_count{caller="doctest"} 1.0' in generate_latest(REGISTRY)
True
>>> fake = _Fake()
>>> worker_collector.add("doctest-worker", fake)
>>> text = generate_latest(REGISTRY).decode()
>>> 'twin_dlq_records_total{reason="schema",worker="doctest-worker"} 2.0' in text
True
>>> 'twin_consumer_lag_records{stage="mirror",worker="doctest-worker"} 7.0' in text
True
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "API_REQUESTS", "API_SECONDS", "CM_FAILURES", "CM_OUTBOX_PENDING", "CM_REQUESTS", "LATENCY_BUCKETS",
    "PREDICTION_SECONDS", "REGISTRY", "RESYNCS", "WHATIF_SECONDS", "StateCollector", "WorkerCollector", "serve",
    "worker_collector",
]

REGISTRY = CollectorRegistry(auto_describe=True)
"""This process's metrics (not prometheus-client's global registry: tests start many apps in one process)."""

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

PREDICTION_SECONDS = Histogram(
    "twin_prediction_seconds", "Time to predict one cluster's due periods after records were applied (worker)",
    buckets=LATENCY_BUCKETS, registry=REGISTRY)
WHATIF_SECONDS = Histogram(
    "twin_whatif_seconds", "Time of one what-if (Twin.whatif) by caller (api, optimizer)", ["caller"],
    buckets=LATENCY_BUCKETS, registry=REGISTRY)
RESYNCS = Counter("twin_resyncs_finished_total", "Resyncs this worker finished, by status", ["status"],
                  registry=REGISTRY)
CM_REQUESTS = Counter("twin_cm_requests_total", "CM change requests consumed by twin cm serve, by outcome "
                      "(handled: recorded in the ledger and judged by the guard; dead_lettered: invalid)",
                      ["outcome"], registry=REGISTRY)
CM_FAILURES = Counter("twin_cm_failures_total", "Failures twin cm serve logged and went on after, by kind (request: "
                      "a request whose handling raised, dead-lettered; housekeeping: an observation, reconcile or "
                      "tick that raised, backed off; change: one change's step that raised, the change set aside a "
                      "while)", ["kind"], registry=REGISTRY)
CM_OUTBOX_PENDING = Gauge("twin_cm_outbox_pending", "Change results and alerts recorded in the CM ledger's outbox "
                          "and not yet on the broker (twin cm serve)", registry=REGISTRY)
API_REQUESTS = Counter("twin_api_requests_total", "REST API requests by method, route template and status",
                       ["method", "route", "status"], registry=REGISTRY)
API_SECONDS = Histogram("twin_api_request_seconds", "REST API request time by route template", ["route"],
                        buckets=LATENCY_BUCKETS, registry=REGISTRY)


class _Stats(Protocol):
    """What :class:`WorkerCollector` reads of a worker (``streams.worker.IngestWorker`` has it)."""

    def metrics_snapshot(self) -> dict[str, Any]: ...


class _Fake:
    def metrics_snapshot(self) -> dict[str, Any]:
        return {"consumed": 5, "accepted": 3, "applied": 3, "deadLettered": {"schema": 2}, "alerts": 0,
                "checkpoints": 1, "lag": {"mirror": 7}, "ready": True, "brokerReachable": True}


class WorkerCollector(Collector):
    """The counters of the workers running in this process, read from them when scraped (the hot
    path only increments plain integers; nothing is copied per record). Workers are held weakly
    and summed by worker name."""

    def __init__(self) -> None:
        self._workers: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self._names: dict[int, str] = {}
        self._lock = threading.Lock()

    def add(self, name: str, worker: _Stats) -> None:
        with self._lock:
            self._workers[id(worker)] = worker
            self._names[id(worker)] = name

    def remove(self, worker: _Stats) -> None:
        with self._lock:
            self._workers.pop(id(worker), None)
            self._names.pop(id(worker), None)

    def describe(self) -> Iterable[Metric]:
        return []  # the families are known only when scraped (per worker)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            live = [(self._names[k], w) for k, w in list(self._workers.items()) if k in self._names]
        counters = {
            "consumed": CounterMetricFamily("twin_ingest_consumed_records", "Telemetry records consumed from the "
                                            "input topics (re-keying stage)", labels=["worker"]),
            "accepted": CounterMetricFamily("twin_ingest_accepted_records", "Input records that passed validation",
                                            labels=["worker"]),
            "applied": CounterMetricFamily("twin_ingest_applied_records", "Records applied to the mirror "
                                           "(mirror stage)", labels=["worker"]),
            "alerts": CounterMetricFamily("twin_alerts_published", "Alerts the worker published on ran.alerts.v1",
                                          labels=["worker"]),
            "checkpoints": CounterMetricFamily("twin_checkpoints", "Partition checkpoints written", labels=["worker"]),
        }
        dlq = CounterMetricFamily("twin_dlq_records", "Records dead-lettered to ran.dlq.v1, by reason (error class)",
                                  labels=["worker", "reason"])
        lag = GaugeMetricFamily("twin_consumer_lag_records", "Records behind the end of the log, per stage "
                                "(high watermark minus position, summed over the assigned partitions)",
                                labels=["worker", "stage"])
        ready = GaugeMetricFamily("twin_worker_ready", "1 while the worker is ready (broker reachable, partitions "
                                  "assigned)", labels=["worker"])
        reachable = GaugeMetricFamily("twin_broker_reachable", "1 while the broker answers the worker's probe",
                                      labels=["worker"])
        sums: dict[tuple[str, ...], float] = {}
        for name, worker in live:
            snap = worker.metrics_snapshot()
            for counter in counters:
                sums[(counter, name)] = sums.get((counter, name), 0.0) + float(snap.get(counter, 0))
            for reason, n in snap.get("deadLettered", {}).items():
                sums[("dlq", name, reason)] = sums.get(("dlq", name, reason), 0.0) + float(n)
            for stage, n in snap.get("lag", {}).items():
                sums[("lag", name, stage)] = sums.get(("lag", name, stage), 0.0) + float(n)
            sums[("ready", name)] = float(bool(snap.get("ready")))
            sums[("reachable", name)] = float(bool(snap.get("brokerReachable")))
        others: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            "dlq": dlq, "lag": lag, "ready": ready, "reachable": reachable}
        for series, value in sorted(sums.items()):
            kind, labels = series[0], list(series[1:])
            (counters[kind] if kind in counters else others[kind]).add_metric(labels, value)
        yield from counters.values()
        yield from (dlq, lag, ready, reachable)


worker_collector = WorkerCollector()
REGISTRY.register(worker_collector)


class StateCollector(Collector):
    """Figures read from state when scraped: gap, DT-BSM and trust per cluster from the checkpointed
    mirror (``twin()`` returns a ``twin.Twin``, or None before the worker checkpointed), and the CM
    ledger's decisions by rule, pushes, roll backs and the kill switch (``ledger()`` returns a
    ``twin.ledger.Ledger``, or None). Registered in a registry of its own (one per API)."""

    def __init__(self, twin: Callable[[], Any], ledger: Callable[[], Any]) -> None:
        self._twin = twin
        self._ledger = ledger

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._network()
        yield from self._cm()

    def _network(self) -> Iterator[Metric]:
        gap = GaugeMetricFamily("twin_gap_error", "Rolling mean relative error (MAPE, a fraction) of the twin's "
                                "prediction of DRB.UEThpDl over the cluster's cells: raw and calibrated by the gap "
                                "learners", labels=["cluster", "kind"])
        dtbsm = GaugeMetricFamily("twin_dtbsm", "Latest DT-BSM estimate (DTBSM_sup) of the cluster",
                                  labels=["cluster"])
        upper = GaugeMetricFamily("twin_dtbsm_upper", "Upper bound of the latest DT-BSM estimate", labels=["cluster"])
        lower = GaugeMetricFamily("twin_dtbsm_lower", "Lower bound of the latest DT-BSM estimate (above the resync "
                                  "threshold: confident drift)", labels=["cluster"])
        tv = GaugeMetricFamily("twin_dtbsm_tv_bound", "TV bound of the latest DT-BSM point estimate (the early "
                               "warning between computations, spec 9.3)", labels=["cluster"])
        tau = GaugeMetricFamily("twin_dtbsm_threshold", "The trust gate's threshold on the DT-BSM upper bound",
                                labels=["cluster"])
        trusted = GaugeMetricFamily("twin_trusted", "1 while the cluster's twin passes the trust gate",
                                    labels=["cluster"])
        resyncs = GaugeMetricFamily("twin_resyncs", "Resyncs recorded in the cluster's mirror, by status",
                                    labels=["cluster", "status"])
        twin = self._twin()
        for cluster in (twin.clusters if twin is not None else ()):
            for kind, value in gap_errors(twin, cluster).items():
                if value is not None:
                    gap.add_metric([cluster, kind], value)
            verdict = twin.trust(cluster)
            if verdict.value is not None:
                dtbsm.add_metric([cluster], float(verdict.value))
            if verdict.upper is not None:
                upper.add_metric([cluster], float(verdict.upper))
            if verdict.lower is not None:
                lower.add_metric([cluster], float(verdict.lower))
            if verdict.record is not None and verdict.record.get("tvBound") is not None:
                tv.add_metric([cluster], float(verdict.record["tvBound"]))
            if verdict.tau is not None:
                tau.add_metric([cluster], float(verdict.tau))
            trusted.add_metric([cluster], float(verdict.trusted))
            counts: dict[str, int] = {}
            for r in twin.mirror(cluster).resyncs:
                counts[str(r.get("status"))] = counts.get(str(r.get("status")), 0) + 1
            for status, n in sorted(counts.items()):
                resyncs.add_metric([cluster, status], n)
        yield from (gap, dtbsm, upper, lower, tv, tau, trusted, resyncs)

    def _cm(self) -> Iterator[Metric]:
        decisions = CounterMetricFamily("twin_cm_guard_decisions", "Guard decisions recorded in the ledger by "
                                        "outcome and refusing rule (rule 'none' for an allowed change)",
                                        labels=["outcome", "rule"])
        pushes = CounterMetricFamily("twin_cm_pushes", "Pushes to the network by result (applied, failed)",
                                     labels=["result"])
        rollbacks = CounterMetricFamily("twin_cm_rollbacks", "Roll backs started, by who asked (operator, or "
                                        "runtime: the verification or a failed push)", labels=["trigger"])
        states = GaugeMetricFamily("twin_cm_changes", "Changes in the ledger by current state", labels=["state"])
        kill = GaugeMetricFamily("twin_cm_kill_switch", "1 while the kill switch is on")
        ledger = self._ledger()
        if ledger is not None:
            figures = ledger_figures(ledger)
            for (outcome, rule), n in sorted(figures["decisions"].items()):
                decisions.add_metric([outcome, rule], n)
            for result, n in sorted(figures["pushes"].items()):
                pushes.add_metric([result], n)
            for trigger, n in sorted(figures["rollbacks"].items()):
                rollbacks.add_metric([trigger], n)
            for state, n in sorted(figures["states"].items()):
                states.add_metric([state], n)
            kill.add_metric([], float(bool(ledger.control("kill_switch", False))))
        yield from (decisions, pushes, rollbacks, states, kill)


_GAP_FIGURES: dict[str, tuple[bytes, dict[str, Any]]] = {}


def gap_errors(twin: Any, cluster: str, kpi: str = "DRB.UEThpDl") -> dict[str, float | None]:
    """Mean over the cluster's cells of the gap learners' raw and calibrated MAPE of ``kpi``."""
    from twin.gap.tracker import GapTracker

    state = twin.mirror(cluster).gap_state
    if state is None:
        return {"raw": None, "calibrated": None}
    cached = _GAP_FIGURES.get(cluster)
    if cached is not None and cached[0] is state:  # unpickling the learners costs milliseconds
        figures = cached[1]
    else:
        figures = GapTracker.from_bytes(state, twin.settings.gap).figures()
        _GAP_FIGURES[cluster] = (state, figures)
    rows = [f[kpi] for f in figures.values() if kpi in f and f[kpi].get("n", 0) > 0]
    return {kind: (sum(r[key] for r in rows) / len(rows) if rows else None)
            for kind, key in (("raw", "mapeRaw"), ("calibrated", "mapeCalibrated"))}


_OPERATOR_SKIP = {"runner", "device", "guard", "verify", "verification", "reconcile"}


def ledger_figures(ledger: Any) -> dict[str, dict[Any, int]]:
    """Counts over the ledger's events: guard decisions by (outcome, rule), pushes by result, roll
    backs by trigger, changes by current state. The ledger is append-only, so the counts only grow."""
    from twin.ledger.states import State

    decisions: dict[tuple[str, str], int] = {}
    pushes: dict[str, int] = {}
    rollbacks: dict[str, int] = {}
    states: dict[str, int] = {}
    for view in ledger.changes():
        states[view.state.value] = states.get(view.state.value, 0) + 1
        for e in ledger.history(view.request.change_id):
            if e.actor == "guard" and e.state in (State.REJECTED, State.PENDING_APPROVAL, State.APPROVED,
                                                  State.DRY_RUN):
                outcome = e.state.value.lower()
                rules = [str(v.get("rule")) for v in e.detail.get("violations", [])] or ["none"]
                for rule in rules:
                    decisions[(outcome, rule)] = decisions.get((outcome, rule), 0) + 1
            elif e.state is State.APPLIED:
                pushes["applied"] = pushes.get("applied", 0) + 1
            elif e.state is State.FAILED:
                pushes["failed"] = pushes.get("failed", 0) + 1
            elif e.state is State.ROLLING_BACK:
                trigger = "runtime" if e.actor in _OPERATOR_SKIP else "operator"
                rollbacks[trigger] = rollbacks.get(trigger, 0) + 1
    return {"decisions": decisions, "pushes": pushes, "rollbacks": rollbacks, "states": states}


def serve(port: int, host: str = "127.0.0.1") -> tuple[Any, Any]:
    """Serve this process's registry on ``host:port`` (``twin run --metrics-port``); returns the
    server and its thread (``server.shutdown()`` stops it)."""
    from prometheus_client import start_http_server

    return start_http_server(port, addr=host, registry=REGISTRY)
