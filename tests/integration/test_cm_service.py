"""``twin cm serve`` end to end: change requests on the real broker, the guard and the ledger, the
ProvMnS adapter pushing to its test peer (requests checked against the official TS 28.532
document), results and dead letters back on the broker, on the mirror a real worker checkpointed."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.broker import EmbeddedBroker
from streams.cm_service import CmService
from tests.adapters.provmns_peer import ProvMnsPeer
from tests.helpers import consume_all
from tests.library.worker_run import GROUP
from twin import topics
from twin.config import TwinSettings, load_settings
from twin.ledger import State, open_ledger
from twin.ports import OutRecord, open_adapter, open_sink
from twin.rollout import ChangeRunner
from twin.schemas import ChangeState, CmChangeRequest, DeadLetter
from twin.schemas.change import GuardSpec
from twin.timeseries import LocalStore

DN = "SubNetwork=Emulator,ManagedElement=gnb-001,GNBDUFunction=1,NRSectorCarrier=1"


@pytest.fixture()
def peer() -> Iterator[ProvMnsPeer]:
    with ProvMnsPeer() as running:
        yield running


def request(cell: str, to: Any, frm: Any = 19000) -> CmChangeRequest:
    return CmChangeRequest(change_id=str(uuid.uuid4()), requested_at=datetime.now(UTC), requester="noc-script",
                           cell_key=cell, target_dn=DN, class_="NRSectorCarrier", attribute="configuredMaxTxPower",
                           from_=frm, to=to)


def cm_settings(run: Any, peer: ProvMnsPeer, tmp_path: Path, guard: str = "") -> TwinSettings:
    """The worker run's settings plus ``[cm]`` on ``peer`` with this test's own ledger and time series
    (the worker run is shared by the session), ``[guard]`` in auto mode and the ``guard`` lines. The
    run's telemetry is from 2024: the service takes its time from it (``clock = "event"``)."""
    config = tmp_path / "cm.toml"
    config.write_text(run.config_file.read_text() + f"""
[cm]
ledger = "{tmp_path / 'ledger.sqlite'}"
adapter = "provmns"
adapter_options = {{base_url = "{peer.base_url}"}}
poll_s = 0.5
clock = "event"

[guard]
mode = "auto"
{guard}
[timeseries]
local_path = "{tmp_path / 'timeseries.sqlite'}"
""")
    return load_settings(config)


async def send(servers: str, records: list[OutRecord]) -> None:
    sink = open_sink("kafka", bootstrap_servers=servers, ensure=[topics.CHANGE_REQUESTS], partitions=4)
    await sink.start()
    try:
        await sink.send_many(records)
        await sink.flush()
    finally:
        await sink.stop()


def test_requests_are_guarded_pushed_recorded_and_answered(emulated_worker_run: Any, fresh_broker: EmbeddedBroker,
                                                           peer: ProvMnsPeer, tmp_path: Path) -> None:
    run = emulated_worker_run
    settings = cm_settings(run, peer, tmp_path)
    servers = fresh_broker.bootstrap_servers
    cell = run.clusters["west"][0]
    good, too_far = request(cell, 17000), request(run.clusters["west"][1], 4000)
    records = [OutRecord(topics.CHANGE_REQUESTS, r.cell_key.encode(), r.to_json_bytes()) for r in (good, too_far)]
    records += [OutRecord(topics.CHANGE_REQUESTS, b"x", b'{"changeId": "nope"}'),
                OutRecord(topics.CHANGE_REQUESTS, b"y", request("nr:00101-00000ffff", 17000).to_json_bytes()),
                OutRecord(topics.CHANGE_REQUESTS, b"z", b'{"reason": "' + b"x" * 2_000_000 + b'"}')]

    async def scenario() -> tuple[list[bytes | None], list[bytes | None], CmService]:
        await send(servers, records)
        service = CmService(settings, servers, run.state_dir / GROUP)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        results = await consume_all(servers, topics.CHANGE_RESULTS, 2, timeout_s=40)
        letters = await consume_all(servers, topics.DLQ, 3, timeout_s=20)
        stop.set()
        await asyncio.wait_for(task, 20)
        return results, letters, service

    results, letters, service = asyncio.run(scenario())
    answered = {json.loads(v or b"{}")["changeId"]: json.loads(v or b"{}")["state"] for v in results}
    assert answered == {good.change_id: "APPLIED", too_far.change_id: "REJECTED"}
    assert peer.value(DN, "/attributes/configuredMaxTxPower") == 17000
    assert peer.validation_errors() == []
    dead = sorted((DeadLetter.model_validate_json(v or b"") for v in letters), key=lambda d: d.reason)
    assert dead[0].reason == "CM change request of 2000014 bytes is larger than " \
        "ingest.max_payload_bytes 1048576"
    assert dead[0].truncated and dead[0].original_size == 2_000_014  # within the broker's limit, not lost
    assert all(len(v or b"") <= settings.kafka.max_message_bytes for v in letters)
    assert dead[1].reason.startswith("cellKey 'nr:00101-00000ffff' is not in any cluster")
    assert dead[2].reason.startswith("not a CM change request: field ")
    ledger = open_ledger(tmp_path / "ledger.sqlite")
    assert ledger.get(good.change_id).state is State.OBSERVING  # waits for the next periods of the network
    assert "max_step" in (ledger.get(too_far.change_id).reason or "")
    assert service.handled == 2 and service.dead_lettered == 3
    # the results also reach the time series (the dashboard's and Grafana's change markers)
    store = LocalStore(settings.timeseries.local_file(settings.state_dir), readonly=True)
    marked = {str(p.fields["changeId"]): p.tags["state"] for p in store.query("twin_change", 0, 2**62)}
    assert marked == {good.change_id: "APPLIED", too_far.change_id: "REJECTED"}
    assert {p.tags["source"] for p in store.query("twin_change", 0, 2**62)} == {"cm"}


def test_what_a_crashed_run_recorded_is_sent_by_the_next(emulated_worker_run: Any, fresh_broker: EmbeddedBroker,
                                                         peer: ProvMnsPeer, tmp_path: Path) -> None:
    """A run that recorded a change's steps and died before sending their results: the next run
    sends them from the ledger's outbox first and marks them (what a later run reads from)."""
    run = emulated_worker_run
    settings = cm_settings(run, peer, tmp_path)
    servers = fresh_broker.bootstrap_servers
    req = request(run.clusters["west"][0], 17000)
    # the run that died: the change decided and recorded (refused: the run had no KPI history for
    # a baseline), its result never sent (runner.results dropped)
    crashed = ChangeRunner(open_ledger(tmp_path / "ledger.sqlite"), settings.guard,
                           open_adapter("provmns", base_url=peer.base_url))
    assert crashed.submit(req, "west", datetime.now(UTC)).state is State.REJECTED
    assert [r.state for r in crashed.results] == [ChangeState.REJECTED]
    crashed.ledger.close()

    async def serve_once() -> None:
        service = CmService(settings, servers, run.state_dir / GROUP)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        await asyncio.sleep(0.2)
        while service.twin is None or service.runner.ledger.published() == 0:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # a few more polls
        stop.set()
        await asyncio.wait_for(task, 20)

    asyncio.run(asyncio.wait_for(serve_once(), 60))
    first = asyncio.run(consume_all(servers, topics.CHANGE_RESULTS, 1, timeout_s=20))
    assert [(json.loads(v or b"{}")["changeId"], json.loads(v or b"{}")["state"]) for v in first] == [
        (req.change_id, "REJECTED")]
    ledger = open_ledger(tmp_path / "ledger.sqlite")  # marked: the next run sends nothing of it again
    assert ledger.published() == ledger.outbox(after=0)[-1].seq and not ledger.outbox(after=ledger.published())


@pytest.mark.parametrize("clock", ["wall", "event"])
def test_a_change_window_is_judged_on_the_services_clock(emulated_worker_run: Any, fresh_broker: EmbeddedBroker,
                                                         peer: ProvMnsPeer, tmp_path: Path, clock: str) -> None:
    """A request allowed 30 minutes around the newest period's end, arriving six hours later by the
    wall clock (the wall clock is injected): a live service (``clock = "wall"``, the default) refuses
    it outside its window; one replaying history (``clock = "event"``) judges it on the period's
    time and pushes it. The service used to judge every window on the period's time, so a live
    push came a period and its delivery after the window had closed, or any time while telemetry
    stalled."""
    run = emulated_worker_run
    settings = cm_settings(run, peer, tmp_path)
    settings.cm.clock = clock
    servers = fresh_broker.bootstrap_servers
    latest = CmService(settings.model_copy(update={"cm": settings.cm.model_copy(update={"clock": "event"})}),
                       servers, run.state_dir / GROUP)
    latest.observe_new_periods()
    event = latest._now()
    latest.runner.ledger.close()
    window = f"{(event - timedelta(minutes=15)):%H:%M}-{(event + timedelta(minutes=15)):%H:%M}"
    req = request(run.clusters["west"][0], 17000).model_copy(update={"guard": GuardSpec(allowed_window=window)})

    async def scenario() -> list[bytes | None]:
        await send(servers, [OutRecord(topics.CHANGE_REQUESTS, b"k", req.to_json_bytes())])
        service = CmService(settings, servers, run.state_dir / GROUP, wall_clock=lambda: event + timedelta(hours=6))
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        results = await consume_all(servers, topics.CHANGE_RESULTS, 1, timeout_s=40)
        stop.set()
        await asyncio.wait_for(task, 20)
        return results

    results = asyncio.run(scenario())
    view = open_ledger(tmp_path / "ledger.sqlite").get(req.change_id)
    if clock == "wall":
        assert [json.loads(v or b"{}")["state"] for v in results] == ["REJECTED"]
        assert view.state is State.REJECTED and "outside the request's own allowedWindow" in (view.reason or "")
        assert peer.value(DN, "/attributes/configuredMaxTxPower") == 19000  # nothing pushed
    else:
        assert [json.loads(v or b"{}")["state"] for v in results] == ["APPLIED"]
        assert view.state is State.OBSERVING and peer.value(DN, "/attributes/configuredMaxTxPower") == 17000
