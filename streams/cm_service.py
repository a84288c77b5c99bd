"""``twin cm serve``: the CM change service. Change requests in, guarded pushes out.

It consumes ``ran.cm.change.requests.v1`` (from ``twin cm propose --publish``, or any system that
writes the schema), runs each request through the guard and the ledger (``twin.rollout.
ChangeRunner``) and pushes it with the configured adapter (``[cm] adapter``, ``adapter_options``);
it reads the worker's checkpointed mirror (``twin.Twin.from_state``) every ``[cm] poll_s`` for the
trust gate, the calibrated error and each new period's KPIs, which the verification observes;
results go to ``ran.cm.change.results.v1``, alerts to ``ran.alerts.v1``, invalid requests to
the dead-letter topic with the reason. Offsets are committed once a request is in the ledger
(at-least-once; the ledger is idempotent by change id), and on start every change a previous run
left unsettled is reconciled against the device.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from twin.ledger import open_ledger
from twin.ports import CmAdapter, OutRecord, open_adapter
from twin.rollout import ChangeRunner, cluster_kpis, whatif_scope
from twin.schemas import CmChangeRequest

__all__ = ["CmService"]

log = structlog.get_logger("twin.cm")


class CmService:
    """One service per ledger; ``run(stop)`` until ``stop`` is set."""

    def __init__(self, settings: TwinSettings, servers: str, state_dir: Path | None = None,
                 adapter: CmAdapter | None = None) -> None:
        self.settings = settings
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
        """Event time: the newest period the mirror has (of ``cluster``, else of any), else the clock."""
        ends = [e for c, e in self._seen.items() if cluster is None or c == cluster]
        return datetime.fromtimestamp(max(ends), UTC) if ends else datetime.now(UTC)

    def observe_new_periods(self) -> int:
        """Feed each cluster's new periods to the verification; returns how many."""
        twin = self._open_twin()
        if twin is None:
            return 0
        n = 0
        for cluster in twin.clusters:
            for end, real, predicted, by_cell, pred_by_cell in cluster_kpis(twin.mirror(cluster),
                                                                            after=self._seen.get(cluster)):
                self.runner.observe(cluster, datetime.fromtimestamp(end, UTC), real, predicted, by_cell, pred_by_cell)
                self._seen[cluster] = end
                n += 1
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
        twin = self.twin
        try:
            if twin is None:
                raise UnknownCellError("no mirror yet")
            cluster = twin.cluster_of(req.cell_key)
        except UnknownCellError as exc:
            return self._letter(msg, Rejection(f"cellKey {req.cell_key!r} is not in any cluster of the mirror "
                                               f"({exc})", "unknown_cell"))
        view = self.runner.submit(req, cluster, self._now(cluster))
        log.info("cm.request", change_id=req.change_id, cell=req.cell_key, cluster=cluster, state=view.state.value,
                 reason=view.reason)
        self.handled += 1
        metrics.CM_REQUESTS.labels(outcome="handled").inc()
        return None

    def outputs(self) -> list[OutRecord]:
        out = [OutRecord(topics.CHANGE_RESULTS, r.cell_key.encode(), r.to_json_bytes()) for r in self.runner.results]
        out += [OutRecord(topics.ALERTS, (a.cell_key or a.cluster_id or "").encode(), a.to_json_bytes())
                for a in self.runner.alerts]
        journal.append(self._journal_dir(), self.runner.alerts)  # what the API lists (twin.api.journal)
        for r in self.runner.results:
            self.side.change(r, int((r.applied_at or datetime.now(UTC)).timestamp()) * 10**9)
        for a in self.runner.alerts:
            self.side.alert(a)
        self.runner.results.clear()
        self.runner.alerts.clear()
        return out

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
        try:
            while self._open_twin() is None and not stop.is_set():  # no request is judged without the mirror
                log.info("cm.waiting_for_mirror", state_dir=str(self.state_dir or self.settings.state_dir))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.cm.poll_s)
            self.observe_new_periods()
            self.runner.reconcile(self._now())
            last = asyncio.get_running_loop().time()
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=500)
                letters = []
                for msgs in batch.values():
                    for msg in msgs:
                        letter = self.handle(msg)
                        if letter is not None:
                            letters.append(OutRecord(topics.DLQ, msg.key, letter))
                            self.dead_lettered += 1
                            metrics.CM_REQUESTS.labels(outcome="dead_lettered").inc()
                now = asyncio.get_running_loop().time()
                if now - last >= self.settings.cm.poll_s:
                    last = now
                    self.observe_new_periods()
                    self.runner.tick(self._now())
                out = letters + self.outputs()
                if out:
                    await sink.send_many(out)
                    await sink.flush()
                if batch:
                    await consumer.commit()
        finally:
            await consumer.stop()
            await sink.stop()
            await self.side.close()
            self.runner.ledger.close()
