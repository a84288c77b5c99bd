"""``twin cm serve`` with a device that takes longer to answer than the consumer group waits.

A push or a read can take minutes (a bulk CM import waits for the OSS up to ``apply_timeout_s``;
a NETCONF or REST peer under load). The service used to call the adapter on the event loop, which
then stood still: no heartbeats (Apache Kafka drops a member silent for ``session.timeout.ms`` and
refuses its next commit), no polls (aiokafka leaves the group after ``max_poll_interval_ms``), no
alert webhook or time-series flushes, no reaction to a stop. The embedded broker here did not drop
the member (measured on the old code: both requests answered and committed, the loop still for the
device's whole answer), so the test asserts the cause: the loop keeps running while the device is
slow, and the requests are still answered and committed. Real components as in
``test_cm_service``: the embedded broker, a real worker's mirror, the SQLite ledger and the ProvMnS
peer; the only thing added is a wait in front of the real adapter's ``apply`` (a slow device).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from streams.broker import EmbeddedBroker
from streams.cm_service import CmService
from streams.kafka_io import make_consumer
from tests.adapters.provmns_peer import ProvMnsPeer
from tests.helpers import consume_all
from tests.integration.test_cm_service import cm_settings, send
from tests.integration.test_cm_service_poison import DN, request
from tests.library.worker_run import GROUP
from twin import topics
from twin.ports import CmAdapter, OutRecord, open_adapter
from twin.schemas import CmChangeRequest, CmChangeResult

SESSION_MS = 6_000  # the group drops a member that sent no heartbeat for this long (the Kafka minimum)
SLOW_S = SESSION_MS / 1000 + 1  # the device's answer takes longer than that


class SlowDevice:
    """The real ProvMnS adapter, whose ``apply`` first waits ``SLOW_S`` (a device slow to answer)."""

    def __init__(self, adapter: CmAdapter) -> None:
        self.adapter = adapter
        self.transport = adapter.transport
        self.applying = threading.Event()

    def read(self, dn: str) -> dict[str, Any]:
        return self.adapter.read(dn)

    def apply(self, req: CmChangeRequest) -> CmChangeResult:
        self.applying.set()
        time.sleep(SLOW_S)
        return self.adapter.apply(req)

    def verify(self, req: CmChangeRequest) -> CmChangeResult:
        return self.adapter.verify(req)

    def restore(self, req: CmChangeRequest) -> CmChangeResult:
        return self.adapter.restore(req)


@pytest.fixture()
def peer() -> Iterator[ProvMnsPeer]:
    with ProvMnsPeer() as running:
        yield running


async def committed(servers: str, group: str) -> int:
    """The sum of ``group``'s committed offsets on the requests topic's 4 partitions."""
    consumer = make_consumer(servers, group_id=group)
    await consumer.start()
    try:
        return sum([await consumer.committed(TopicPartition(topics.CHANGE_REQUESTS, p)) or 0 for p in range(4)])
    finally:
        await consumer.stop()


def test_a_slow_device_does_not_cost_the_group_membership(emulated_worker_run: Any, fresh_broker: EmbeddedBroker,
                                                           peer: ProvMnsPeer, tmp_path: Path) -> None:
    run = emulated_worker_run
    settings = cm_settings(run, peer, tmp_path)
    settings.kafka.session_timeout_ms, settings.kafka.heartbeat_interval_ms = SESSION_MS, 2_000
    servers = fresh_broker.bootstrap_servers
    slow = SlowDevice(open_adapter("provmns", base_url=peer.base_url))
    first, second = (request(run.clusters["west"][i], i + 1, 17000, 19000 - 1000 * i) for i in (0, 1))

    async def scenario() -> tuple[list[bytes | None], float, int, bool]:
        await send(servers, [OutRecord(topics.CHANGE_REQUESTS, b"k", first.to_json_bytes())])
        service = CmService(settings, servers, run.state_dir / GROUP, adapter=slow)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        lag = 0.0  # the longest the event loop did not run a ready task

        async def ticker() -> None:
            nonlocal lag
            while True:
                before = time.monotonic()
                await asyncio.sleep(0.05)
                lag = max(lag, time.monotonic() - before - 0.05)

        ticking = asyncio.create_task(ticker())
        while not slow.applying.is_set():
            await asyncio.sleep(0.05)
        # a request that arrives while the device is busy with the first
        await send(servers, [OutRecord(topics.CHANGE_REQUESTS, b"k", second.to_json_bytes())])
        results = await consume_all(servers, topics.CHANGE_RESULTS, 2, timeout_s=3 * SLOW_S + 30)
        deadline = time.monotonic() + 20
        while await committed(servers, settings.cm.group_id) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        done = await committed(servers, settings.cm.group_id)
        alive = not task.done()
        ticking.cancel()
        stop.set()
        await asyncio.wait_for(task, 3 * SLOW_S)
        return results, lag, done, alive

    results, lag, done, alive = asyncio.run(scenario())
    assert alive, "the service ended"
    assert sorted(b'"APPLIED"' in (v or b"") for v in results) == [True, True], results
    assert done == 2, f"{done} of the 2 requests' offsets committed"
    assert lag < 2.5, f"the event loop stood still for {lag:.1f} s during the device's {SLOW_S} s answer"
    assert [peer.value(DN.format(i), "/attributes/configuredMaxTxPower") for i in (1, 2)] == [17000, 17000]
