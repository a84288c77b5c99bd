"""``twin cm serve``: the CM change service. Change requests in, guarded pushes out.

It consumes ``ran.cm.change.requests.v1`` (from ``twin cm propose --publish``, or any system that
writes the schema), runs each request through the guard and the ledger (``twin.rollout.
ChangeRunner``) and pushes it with the configured adapter (``[cm] adapter``, ``adapter_options``);
it reads the worker's checkpointed mirror (``twin.Twin.from_state``) every ``[cm] poll_s`` for the
trust gate, the calibrated error and each new period's KPIs, which the verification observes;
results go to ``ran.cm.change.results.v1``, alerts to ``ran.alerts.v1``, invalid requests to
the dead-letter topic with the reason. Results and alerts are sent from the ledger's outbox,
where each step recorded them in its own transaction, and marked there once the broker has them:
a crash between a step and its send loses neither (the next run sends them first). Offsets are
committed once a request is in the ledger or dead-lettered (at-least-once; the ledger is
idempotent by change id), and on start every change a previous run left unsettled is reconciled
against the device.

One request or one change never stops the service: a change id already recorded with another
request, or a request whose handling fails, is dead-lettered with the reason (and committed, so a
restart does not meet it again); a start-up reconcile, a tick or a period's observation that fails
is logged with the change it was working on and the traceback, counted (``failures``), and tried
again after a backoff that doubles up to 64 polls (one cluster's failure does not stop the
observation of the others). A step of one change that fails (its reconcile, its verdict) is
logged and counted the same way, and that change alone sits out a doubling number of reconciles
(``ChangeRunner._attempt``): the other changes go on at the usual pace.

The guard, the ledger and the adapter run on one thread of their own, one step at a time, never on
the event loop: a push or a read can take minutes (a bulk CM import waits up to its
``apply_timeout_s``; NETCONF and REST wait for their peers), and on the loop that would stop the
consumer's heartbeats (Apache Kafka would drop the member and refuse its next commit) and the alert
webhook's and time series' flushes. While a step runs the
loop keeps polling with the partitions paused, so the group keeps the service as a member however
long the step takes (``max_poll_interval_ms``); records that arrive anyway (a rebalance assigned new
partitions mid-step) are handled after it, and offsets are committed only once every record
consumed is handled. A stop waits for the step in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from streams.envelopes import value_limit
from streams.kafka_io import KafkaSink, make_consumer
from streams.outputs import Outputs
from streams.rekey import dead_letter
from twin import metrics, topics
from twin.api import journal
from twin.config import TwinSettings
from twin.digital_twin import Twin
from twin.errors import UnknownCellError
from twin.guard import GuardContext
from twin.ingest import Rejection, describe_validation_error
from twin.ledger import ChangeView, Event, OutboxRecord, open_ledger
from twin.logs import traceback_field
from twin.ports import CmAdapter, OutRecord, open_adapter
from twin.rollout import ChangeRunner, cluster_kpis, whatif_scope
from twin.schemas import Alert, CmChangeRequest, CmChangeResult

__all__ = ["CmService"]

log = structlog.get_logger("twin.cm")

MAX_BACKOFF = 6
"""A failing housekeeping step is tried again after poll_s * 2**n, n growing by one per failure up to this."""


def change_in(exc: BaseException) -> str | None:
    """The id of the change the innermost frame holding one was working on when ``exc`` was raised
    (among its locals a ``ChangeView``, else a request, result or ledger event, else a ``change_id``
    string); None when no frame held one. For the log line of a failure the runner did not attribute.

    >>> def judge(change_id: str) -> None:
    ...     raise ZeroDivisionError("float division by zero")
    >>> try:
    ...     judge("0b7e7d1c-6f0a-4b8e-9a51-3f4f5d6e7a8b")
    ... except ZeroDivisionError as exc:
    ...     change_in(exc)
    '0b7e7d1c-6f0a-4b8e-9a51-3f4f5d6e7a8b'
    """
    found = None
    tb = exc.__traceback__
    while tb is not None:  # outermost first: the last frame that holds one is the innermost
        values = tb.tb_frame.f_locals
        ids = [v.request.change_id for v in values.values() if isinstance(v, ChangeView)]
        ids += [v.change_id for v in values.values() if isinstance(v, CmChangeRequest | CmChangeResult | Event)]
        ids += [v for k, v in values.items() if k == "change_id" and isinstance(v, str)]
        found = ids[0] if ids else found
        tb = tb.tb_next
    return found


class CmService:
    """One service per ledger; ``run(stop)`` until ``stop`` is set."""

    def __init__(self, settings: TwinSettings, servers: str, state_dir: Path | None = None,
                 adapter: CmAdapter | None = None, wall_clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self._wall = wall_clock or (lambda: datetime.now(UTC))
        self.servers = servers
        self.state_dir = state_dir
        self.adapter = adapter or open_adapter(settings.cm.adapter, **settings.cm.adapter_options)
        self.twin: Twin | None = None
        self.runner = ChangeRunner(open_ledger(settings.cm.ledger_url(settings.state_dir)), settings.guard,
                                   self.adapter, context=self._context, scope=self._scope)
        self._seen: dict[str, int] = {}
        self.side = Outputs(settings)  # time series and the alert webhook, as the worker's
        self.handled = 0
        self.dead_lettered = 0
        self.failures = 0  # requests whose handling failed, and failed housekeeping steps
        self._backoff = 0
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-cm-runner")

    # -- the worker's mirror ---------------------------------------------------------------------------
    def _open_twin(self) -> Twin | None:
        if self.twin is None:
            try:
                self.twin = Twin.from_state(self.state_dir, self.settings)
            except FileNotFoundError:
                return None  # the worker has not checkpointed yet
        else:
            self.twin.refresh()
        return self.twin

    def _journal_dir(self) -> Path:
        """The worker's checkpoint folder, where the alert journal lives beside the mirror."""
        if self.state_dir is not None:
            return self.state_dir
        return self.settings.state_dir / self.settings.kafka.group_id

    def _context(self, cluster: str, now: datetime) -> GuardContext:
        twin = self.twin
        if twin is None or cluster not in twin.clusters:
            return GuardContext(now=now, cluster=cluster, trusted=False,
                                trust_reasons=["no mirror of the cluster yet"])
        verdict = twin.trust(cluster)
        return GuardContext(now=now, cluster=cluster, trusted=verdict.trusted, trust_reasons=verdict.reasons,
                            calibrated_error=twin.calibrated_error(cluster))

    def _scope(self, request: CmChangeRequest, cluster: str) -> tuple[list[str], float | None]:
        """The cells the change moves, by a what-if on the worker's twin (``twin.rollout.whatif_scope``)."""
        if self.twin is None:
            return [request.cell_key], None
        return whatif_scope(self.twin)(request, cluster)

    def _now(self, cluster: str | None = None) -> datetime:
        """The service's time (``[cm] clock``). Wall: now. A window, an interval or an expiry judged
        on the newest period's end would lag the real time by a period and its delivery (a push at
        05:20 judged at 04:45, inside a window that closed at 05:00), and stand still while telemetry
        does; a change pushed at 05:20 would count the period ending 05:00, all before it, as
        observed. Event (history replayed): the newest period the mirror has (of ``cluster``, else
        of any), else the wall clock."""
        if self.settings.cm.clock == "wall":
            return self._wall()
        ends = [e for c, e in self._seen.items() if cluster is None or c == cluster]
        return datetime.fromtimestamp(max(ends), UTC) if ends else self._wall()

    def observe_new_periods(self) -> int:
        """Feed each cluster's new periods to the verification; returns how many."""
        twin = self._open_twin()
        if twin is None:
            return 0
        n = 0
        for cluster in twin.clusters:
            try:
                for end, real, predicted, by_cell, pred_by_cell in cluster_kpis(twin.mirror(cluster),
                                                                                after=self._seen.get(cluster)):
                    self.runner.observe(cluster, datetime.fromtimestamp(end, UTC), real, predicted, by_cell,
                                        pred_by_cell)
                    self._seen[cluster] = end
                    n += 1
            except Exception as exc:  # this cluster's period is observed again at the next try
                self._failed("observe", exc, cluster=cluster)
        return n

    # -- requests ------------------------------------------------------------------------------------------
    def _letter(self, msg: Any, why: Rejection) -> bytes:
        """The dead letter of ``msg``, truncated to what the broker takes (a letter it refused would
        stop the service on the same message at every restart)."""
        limit = self.settings.kafka.max_message_bytes
        return dead_letter(msg.topic, msg.partition, msg.offset, msg.key, msg.value, why,
                           max_bytes=value_limit(limit, msg.key), message_limit=limit)

    def handle(self, msg: Any) -> bytes | None:
        """Submit one consumed request; the dead letter when it is not one."""
        size, most = len(msg.value or b""), self.settings.ingest.max_payload_bytes
        if size > most:
            return self._letter(msg, Rejection(f"CM change request of {size} bytes is larger than "
                                               f"ingest.max_payload_bytes {most}", "oversized"))
        try:
            req = CmChangeRequest.model_validate_json(msg.value or b"")
        except ValidationError as exc:
            return self._letter(msg, Rejection(f"not a CM change request: {describe_validation_error(exc)}",
                                               "schema"))
        try:
            return self._submit(msg, req)
        except Exception as exc:  # the last line of defence: this request is set aside, the service goes on
            self.failures += 1
            metrics.CM_FAILURES.labels(kind="request").inc()
            state = self._state_of(req.change_id)
            log.error("cm.request_failed", change_id=req.change_id, cell=req.cell_key, ledger_state=state,
                      error=f"{type(exc).__name__}: {exc}", traceback=traceback_field(exc))
            held = f"; the ledger holds it as {state}" if state else "; not recorded in the ledger"
            return self._letter(msg, Rejection(f"changeId {req.change_id}: handling failed: {type(exc).__name__}: "
                                               f"{exc}{held}", "failed"))

    def handle_all(self, msgs: list[Any]) -> list[OutRecord]:
        """``handle`` each of ``msgs`` in order; the dead letters to send."""
        letters = []
        for msg in msgs:
            letter = self.handle(msg)
            if letter is not None:
                letters.append(OutRecord(topics.DLQ, msg.key, letter))
                self.dead_lettered += 1
                metrics.CM_REQUESTS.labels(outcome="dead_lettered").inc()
        return letters

    def _submit(self, msg: Any, req: CmChangeRequest) -> bytes | None:
        twin = self.twin
        try:
            if twin is None:
                raise UnknownCellError("no mirror yet")
            cluster = twin.cluster_of(req.cell_key)
        except UnknownCellError as exc:
            return self._letter(msg, Rejection(f"cellKey {req.cell_key!r} is not in any cluster of the mirror "
                                               f"({exc})", "unknown_cell"))
        conflict = self._conflict(req)
        if conflict is not None:
            log.warning("cm.request_conflict", change_id=req.change_id, cell=req.cell_key, reason=conflict)
            return self._letter(msg, Rejection(conflict, "change_id_conflict"))
        view = self.runner.submit(req, cluster, self._now(cluster))
        log.info("cm.request", change_id=req.change_id, cell=req.cell_key, cluster=cluster, state=view.state.value,
                 reason=view.reason)
        self.handled += 1
        metrics.CM_REQUESTS.labels(outcome="handled").inc()
        return None

    def _conflict(self, req: CmChangeRequest) -> str | None:
        """Why ``req`` cannot be recorded: its change id names another request in the ledger (left
        untouched); None when the id is new or names this very request (a redelivery)."""
        try:
            known = self.runner.ledger.request(req.change_id)
        except KeyError:
            return None
        if known == req:
            return None
        state = self._state_of(req.change_id)
        return (f"changeId {req.change_id} is already recorded with a different request (cellKey "
                f"{known.cell_key}, {known.class_}.{known.attribute} {known.from_!r} -> {known.to!r}, now {state}): "
                "a change id names one request; send this one under a new changeId")

    def _state_of(self, change_id: str) -> str | None:
        """The change's state in the ledger, None when it is not there (for the message of a failure)."""
        try:
            return self.runner.ledger.get(change_id).state.value
        except KeyError:
            return None
        except Exception as exc:  # the ledger holds it but cannot say: the failure being reported says so
            return f"unknown ({type(exc).__name__} reading it)"

    def _failed(self, step: str, exc: Exception, **where: Any) -> None:
        """A housekeeping step that raised (a change the runner could not move on): logged, counted."""
        self.failures += 1
        metrics.CM_FAILURES.labels(kind="housekeeping").inc()
        log.error("cm.housekeeping_failed", step=step, change_id=change_in(exc), **where,
                  error=f"{type(exc).__name__}: {exc}", traceback=traceback_field(exc))

    def housekeep(self, settle: Callable[[datetime], object], step: str) -> bool:
        """Observe the new periods, then ``settle`` (the runner's ``reconcile`` at start, ``tick``
        after), each failure logged and counted without stopping the service; after a failure the
        next try waits ``poll_s * 2**n`` (n up to ``MAX_BACKOFF``). False when something failed."""
        before, changes_before = self.failures, self.runner.change_failures
        self.observe_new_periods()
        try:
            settle(self._now())
        except Exception as exc:  # the last line of defence: the service goes on handling requests
            self._failed(step, exc)
        failed = self.failures > before
        # one change's failed step: logged by the runner, and that change sits out a while; no backoff
        if self.runner.change_failures > changes_before:
            self.failures += self.runner.change_failures - changes_before
            metrics.CM_FAILURES.labels(kind="change").inc(self.runner.change_failures - changes_before)
        self._backoff = min(self._backoff + 1, MAX_BACKOFF) if failed else 0
        if failed:
            log.warning("cm.housekeeping_backoff", retry_in_s=self.settings.cm.poll_s * 2**self._backoff)
        return not failed

    def pending(self) -> tuple[list[OutboxRecord], list[tuple[CmChangeResult, datetime]], list[Alert]]:
        """The ledger's outbox beyond its published mark (``twin.ledger.OutboxRecord``: the results and
        alerts of recorded steps, those of a run that crashed before sending them included), with
        the results (each with the time its step was recorded) and alerts among them parsed."""
        self.runner.results.clear()  # in the outbox too: sent from there
        self.runner.alerts.clear()
        ledger = self.runner.ledger
        records = ledger.outbox(after=ledger.published())
        results, alerts = [], []
        for r in records:
            try:
                if r.topic == topics.CHANGE_RESULTS:
                    results.append((CmChangeResult.model_validate_json(r.body), r.recorded_at or self._wall()))
                elif r.topic == topics.ALERTS:
                    alerts.append(Alert.model_validate_json(r.body))
            except ValidationError as exc:  # recorded by another version: sent as it is, no side outputs
                log.warning("cm.outbox_record_unparsed", seq=r.seq, change_id=r.change_id, topic=r.topic,
                            error=describe_validation_error(exc))
        return records, results, alerts

    def outputs(self, results: list[tuple[CmChangeResult, datetime]], alerts: list[Alert]) -> None:
        """The side outputs of results and alerts about to be sent: the alert journal the API lists
        (``twin.api.journal``), the time series' change markers and the alert webhook. A marker
        stands at its change's apply time, else at the time its step was recorded, to the
        microsecond: whole seconds let two changes of a cell in one second share a point (the
        second overwrote the first), and "now" put a result sent again after a crash at a second
        point."""
        journal.append(self._journal_dir(), alerts)
        for r, recorded in results:
            self.side.change(r, round((r.applied_at or recorded).timestamp() * 1e6) * 1000)
        for a in alerts:
            self.side.alert(a)

    async def _off_loop(self, consumer: Any, held: list[Any], step: Callable[..., Any], *args: Any) -> Any:
        """``step(*args)`` on the runner's thread; meanwhile the loop polls ``consumer`` with its
        partitions paused (the group keeps the member however long the step takes) and keeps in
        ``held`` what a poll returns anyway, for the caller to handle next."""
        done = asyncio.get_running_loop().run_in_executor(self._thread, step, *args)
        while not (await asyncio.wait({done}, timeout=0.2))[0]:
            assigned = consumer.assignment()
            if assigned:
                consumer.pause(*assigned)
            for msgs in (await consumer.getmany(timeout_ms=200)).values():
                held.extend(msgs)
        if consumer.paused():
            consumer.resume(*consumer.paused())
        return done.result()

    async def run(self, stop: asyncio.Event) -> None:
        sink = KafkaSink(self.servers, ensure=(topics.CHANGE_REQUESTS, topics.CHANGE_RESULTS, topics.ALERTS,
                                               topics.DLQ), partitions=self.settings.kafka.partitions,
                         max_request_size=self.settings.kafka.max_message_bytes)
        await sink.start()
        await self.side.start()
        consumer = make_consumer(self.servers, topics.CHANGE_REQUESTS, group_id=self.settings.cm.group_id,
                                 session_timeout_ms=self.settings.kafka.session_timeout_ms,
                                 heartbeat_interval_ms=self.settings.kafka.heartbeat_interval_ms)
        await consumer.start()
        held: list[Any] = []  # consumed while a step ran, not handled yet
        try:
            # no request is judged without the mirror
            while await self._off_loop(consumer, held, self._open_twin) is None and not stop.is_set():
                log.info("cm.waiting_for_mirror", state_dir=str(self.state_dir or self.settings.state_dir))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.cm.poll_s)
            await self._off_loop(consumer, held, self.housekeep, self.runner.reconcile, "reconcile")
            last = asyncio.get_running_loop().time()
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=500)
                msgs = held + [m for ms in batch.values() for m in ms]
                held = []
                letters = await self._off_loop(consumer, held, self.handle_all, msgs)
                now = asyncio.get_running_loop().time()
                if now - last >= self.settings.cm.poll_s * 2**self._backoff:
                    last = now
                    await self._off_loop(consumer, held, self.housekeep, self.runner.tick, "tick")
                owed, results, alerts = await self._off_loop(consumer, held, self.pending)
                metrics.CM_OUTBOX_PENDING.set(len(owed))
                self.outputs(results, alerts)
                out = letters + [OutRecord(r.topic, r.key.encode(), r.body.encode()) for r in owed]
                if out:
                    await sink.send_many(out)
                    await sink.flush()
                if owed:  # on the broker: marked (a crash before the mark sends them again, at least once)
                    await self._off_loop(consumer, held, self.runner.ledger.mark_published, owed[-1].seq,
                                         "cm-service", datetime.now(UTC))
                    metrics.CM_OUTBOX_PENDING.set(0)
                if msgs and not held:  # the positions hold nothing unhandled
                    await consumer.commit()
        finally:
            self._thread.shutdown(wait=True)  # the step in flight ends before the ledger closes
            await consumer.stop()
            await sink.stop()
            await self.side.close()
            self.runner.ledger.close()
