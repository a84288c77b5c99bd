"""``twin cm serve`` against poison requests, on the real components of ``test_cm_service``: the
embedded broker, a real worker's mirror, the SQLite ledger and the ProvMnS peer.

One bad request used to crash-loop the service: nothing in ``run()`` caught an exception and the
offset was not committed, so every restart met the same message. A change id reused with another
body (``LedgerError``), a ``guard.allowedWindow`` of ``24:00-06:00`` (the guard's ``ValueError``)
and an ``expectedKpiImpact`` of -100 % (a ``ZeroDivisionError`` in the verification) each did it.
Now each is dead-lettered with the reason, the offset is committed, the good request behind it is
handled, and a restart starts clean.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams.broker import EmbeddedBroker
from streams.cm_service import CmService
from tests.adapters.provmns_peer import ProvMnsPeer
from tests.helpers import consume_all
from tests.integration.test_cm_service import cm_settings, send
from tests.library.worker_run import GROUP
from twin import topics
from twin.config import TwinSettings
from twin.ledger import State, open_ledger
from twin.ports import OutRecord
from twin.schemas import CmChangeRequest, DeadLetter
from twin.schemas.change import STORED

DN = "SubNetwork=Emulator,ManagedElement=gnb-001,GNBDUFunction=1,NRSectorCarrier={}"
KEY = b"poison"  # one key, one partition: the requests are consumed in the order sent


@pytest.fixture()
def peer() -> Iterator[ProvMnsPeer]:
    with ProvMnsPeer() as running:
        yield running


def request(cell: str, carrier: int, to: int, frm: int, **kw: Any) -> CmChangeRequest:
    return CmChangeRequest(change_id=kw.pop("change_id", str(uuid.uuid4())), requested_at=datetime.now(UTC),
                           requester="noc-script", cell_key=cell, target_dn=DN.format(carrier),
                           class_="NRSectorCarrier", attribute="configuredMaxTxPower", from_=frm, to=to, **kw)


def wire(req: CmChangeRequest, **changes: Any) -> bytes:
    """``req`` on the wire with ``changes`` made to its JSON (values the schema refuses)."""
    doc = json.loads(req.to_json_bytes())
    doc.update(changes)
    return json.dumps(doc).encode()


async def serve(settings: TwinSettings, servers: str, run: Any, sent: list[bytes], results: int, letters: int
                ) -> tuple[CmService, list[bytes | None], list[bytes | None]]:
    """Send ``sent`` (key ``KEY``), run a service until ``results`` results and ``letters`` dead letters
    are on the broker (counted from the topics' start), check it is still running, stop it."""
    await send(servers, [OutRecord(topics.CHANGE_REQUESTS, KEY, v) for v in sent])
    service = CmService(settings, servers, run.state_dir / GROUP)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    got = await consume_all(servers, topics.CHANGE_RESULTS, results, timeout_s=40)
    dead = await consume_all(servers, topics.DLQ, letters, timeout_s=20)
    await asyncio.sleep(1.5)  # three more polls: the service goes on after the poison
    assert not task.done(), task.exception() if task.done() else None
    stop.set()
    await asyncio.wait_for(task, 20)
    return service, got, dead


def answered(values: list[bytes | None]) -> dict[str, str]:
    return {json.loads(v or b"{}")["changeId"]: json.loads(v or b"{}")["state"] for v in values}


def test_poison_requests_are_dead_lettered_and_the_service_goes_on(emulated_worker_run: Any,
                                                                   fresh_broker: EmbeddedBroker, peer: ProvMnsPeer,
                                                                   tmp_path: Path) -> None:
    run = emulated_worker_run
    settings = cm_settings(run, peer, tmp_path, guard="max_cells_per_cluster = 5")
    servers = fresh_broker.bootstrap_servers
    west = run.clusters["west"]
    original = request(west[0], 1, 17000, 19000)
    reused = request(west[0], 1, 18000, 19000, change_id=original.change_id)  # same id, another body
    window = request(west[1], 2, 16000, 18000)
    impact = request(west[1], 2, 16000, 18000)
    good = request(west[1], 2, 16000, 18000)
    sent = [original.to_json_bytes(), reused.to_json_bytes(),
            wire(window, guard={"allowedWindow": "24:00-06:00"}),
            wire(impact, expectedKpiImpact={"DRB.UEThpDl": -100}), good.to_json_bytes()]

    service, results, letters = asyncio.run(serve(settings, servers, run, sent, 2, 3))
    assert answered(results) == {original.change_id: "APPLIED", good.change_id: "APPLIED"}
    dead = [DeadLetter.model_validate_json(v or b"") for v in letters]
    assert [d.error_class for d in dead] == ["change_id_conflict", "schema", "schema"]
    assert dead[0].reason.startswith(f"changeId {original.change_id} is already recorded with a different request "
                                     f"(cellKey {west[0]}, NRSectorCarrier.configuredMaxTxPower 19000 -> 17000, ")
    assert "field guard.allowedWindow: " in dead[1].reason and "'24:00-06:00'" in dead[1].reason
    assert "field expectedKpiImpact.DRB.UEThpDl: " in dead[2].reason and "(value -100)" in dead[2].reason
    assert (service.handled, service.dead_lettered, service.failures) == (2, 3, 0)

    # the original change is untouched: its body, its history, the device's value
    ledger = open_ledger(tmp_path / "ledger.sqlite")
    assert ledger.request(original.change_id) == original
    view = ledger.get(original.change_id)
    assert view.state is State.OBSERVING
    assert [e.step for e in view.history] == ["REQUESTED", "APPROVED", "APPLYING", "APPLIED", "OBSERVING"]
    assert peer.value(DN.format(1), "/attributes/configuredMaxTxPower") == 17000
    assert peer.value(DN.format(2), "/attributes/configuredMaxTxPower") == 16000
    for refused in (window, impact):
        with pytest.raises(KeyError):
            ledger.get(refused.change_id)
    ledger.close()

    # a restart: the poison was committed, so it is not met again; a new request is handled
    later = request(west[2], 3, 15000, 17000)
    again, results, letters = asyncio.run(serve(settings, servers, run, [later.to_json_bytes()], 3, 3))
    assert answered(results)[later.change_id] == "APPLIED"
    assert len(letters) == 3  # no new dead letter: nothing was consumed twice
    assert (again.handled, again.dead_lettered, again.failures) == (1, 0, 0)


def test_a_change_the_ledger_cannot_settle_does_not_stop_the_service(emulated_worker_run: Any,
                                                                      fresh_broker: EmbeddedBroker,
                                                                      peer: ProvMnsPeer, tmp_path: Path) -> None:
    """A ledger written before the schema checked windows holds a REQUESTED change with
    ``allowedWindow`` 24:00-06:00 (the guard raised on it, so it was never decided). The start-up
    reconcile meets it: the ledger reads it (``STORED``), the guard refuses it with rule
    ``request_window``, and the service goes on, handles new requests and restarts cleanly."""
    run = emulated_worker_run
    settings = cm_settings(run, peer, tmp_path, guard="max_cells_per_cluster = 5")
    servers = fresh_broker.bootstrap_servers
    west = run.clusters["west"]
    old = request(west[0], 1, 17000, 19000)
    stored = CmChangeRequest.model_validate_json(wire(old, guard={"allowedWindow": "24:00-06:00"}), context=STORED)
    ledger = open_ledger(tmp_path / "ledger.sqlite")
    assert ledger.record_request(stored, "west", at=datetime.now(UTC))
    ledger.close()

    good = request(west[1], 2, 16000, 18000)
    first, results, _ = asyncio.run(serve(settings, servers, run, [good.to_json_bytes()], 2, 0))
    # the start-up reconcile reads the stored request (the ledger reads with STORED) and the guard refuses it
    assert answered(results) == {good.change_id: "APPLIED", old.change_id: "REJECTED"}
    later = request(west[2], 3, 15000, 17000)
    second, results, _ = asyncio.run(serve(settings, servers, run, [later.to_json_bytes()], 3, 0))
    assert answered(results)[later.change_id] == "APPLIED"
    assert first.handled == second.handled == 1 and first.dead_lettered == second.dead_lettered == 0
    assert first.failures == second.failures == 0

    ledger = open_ledger(tmp_path / "ledger.sqlite")
    steps = ledger.history(old.change_id)
    ledger.close()
    assert steps[-1].state is State.REJECTED and "request_window" in str(steps[-1].detail.get("reason"))
    assert peer.value(DN.format(1), "/attributes/configuredMaxTxPower") == 19000  # never pushed
