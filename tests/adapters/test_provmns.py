"""``adapters.provmns.ProvMnsAdapter`` against a real HTTP ProvMnS server (``provmns_peer``).

Every request the adapter sends is validated by the peer against the official 3GPP
``TS28532_ProvMnS.yaml``; the ``peer`` fixture fails a test that caused any validation error, and
``test_the_official_document_catches_a_malformed_request`` shows that the check can fail.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.provmns import DEFAULT_ATTRIBUTE_MAP, AttributeMapping, ProvMnsAdapter
from adapters.provmns.mapping import dn_from_uri_path, uri_path
from tests.adapters.provmns_peer import ProvMnsPeer
from twin.ports import AdapterUnavailable, CmAdapter, open_adapter
from twin.schemas import ChangeState, CmChangeRequest, rollback_of

ME = "SubNetwork=Emulator,ManagedElement=gnb-001"
CARRIER = f"{ME},GNBDUFunction=1,NRSectorCarrier=2"
SEF = f"{ME},SectorEquipmentFunction=2"
CBF = f"{CARRIER},CommonBeamformingFunction=1"
RELATION = f"{ME},GNBCUCPFunction=1,NRCellCU=2,NRCellRelation=1"
BASE = "/ProvMnS/v1800/"

# (twin DN, twin class, attribute, from, to, ProvMnS DN, JSON pointer there)
CASES = {
    "power": (CARRIER, "NRSectorCarrier", "configuredMaxTxPower", 18000, 15849, CARRIER,
              "/attributes/configuredMaxTxPower"),
    "tilt": (SEF, "SectorEquipmentFunction", "digitalTilt", 50, 80, CBF, "/attributes/digitalTilt"),
    "cio": (RELATION, "NRCellRelation", "cellIndividualOffset", 0, 2, RELATION,
            "/attributes/cellIndividualOffset/rsrpOffsetSSB"),
}


def change(dn: str, cls: str, attribute: str, frm: Any, to: Any, **kw: Any) -> CmChangeRequest:
    return CmChangeRequest(change_id=str(uuid.uuid4()), requested_at=datetime.now(UTC), requester="test",
                           cell_key="nr:00101-000000102", target_dn=dn, class_=cls, attribute=attribute,
                           from_=frm, to=to, **kw)


def case(name: str, **kw: Any) -> CmChangeRequest:
    dn, cls, attribute, frm, to, _, _ = CASES[name]
    return change(dn, cls, attribute, frm, to, **kw)


def patches(peer: ProvMnsPeer) -> list[Any]:
    return [r for r in peer.requests if r.method == "PATCH"]


CHECKED: list[int] = []
"""Requests validated without error, per test that used the peer."""


@pytest.fixture(scope="module")
def server() -> Iterator[ProvMnsPeer]:
    with ProvMnsPeer() as running:
        yield running
    if len(CHECKED) >= 30:  # the whole module ran: the check saw the adapter's traffic, not a handful
        assert sum(CHECKED) >= 100, CHECKED


@pytest.fixture()
def peer(server: ProvMnsPeer) -> Iterator[ProvMnsPeer]:
    """The module's server, reset; after the test: zero official-document errors over its requests."""
    server.reset()
    yield server
    assert server.validation_errors() == []
    CHECKED.append(len(server.requests))


@pytest.fixture()
def make(peer: ProvMnsPeer) -> Iterator[Callable[..., ProvMnsAdapter]]:
    made: list[ProvMnsAdapter] = []

    def factory(**kw: Any) -> ProvMnsAdapter:
        made.append(ProvMnsAdapter(peer.base_url, **kw))
        return made[-1]

    yield factory
    for adapter in made:
        adapter.close()


# -- round trips -------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["merge", "json-patch"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_round_trip_apply_verify_read_restore(peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter],
                                              name: str, fmt: str) -> None:
    dn, _cls, attribute, frm, to, mns_dn, pointer = CASES[name]
    adapter = make(patch_format=fmt)
    request = case(name)
    assert adapter.read(dn)[attribute] == frm

    applied = adapter.apply(request)
    assert applied.state == ChangeState.APPLIED, applied
    assert applied.observed_value == to and applied.applied_at is not None
    assert peer.value(mns_dn, pointer) == to
    (patch,) = patches(peer)
    assert patch.raw_path == BASE + mns_dn.replace(",", "/")
    body = json.loads(patch.body)
    if fmt == "merge":
        assert patch.content_type == "application/merge-patch+json"
        assert "id" not in body and list(body) == ["attributes"]
    else:
        assert patch.content_type == "application/json-patch+json"
        assert body == [{"op": "test", "path": pointer, "value": frm}, {"op": "replace", "path": pointer, "value": to}]

    verified = adapter.verify(request)
    assert (verified.state, verified.observed_value) == (ChangeState.APPLIED, to)
    assert adapter.read(dn)[attribute] == to

    restored = adapter.restore(request)
    assert (restored.state, restored.observed_value, restored.change_id) == (ChangeState.ROLLED_BACK, frm,
                                                                            request.change_id)
    assert peer.value(mns_dn, pointer) == frm and adapter.read(dn)[attribute] == frm
    assert adapter.restore(request) == restored and len(patches(peer)) == 2  # at most once


def test_read_gives_twin_names_and_units(peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter]) -> None:
    adapter = make()
    relation = adapter.read(RELATION)
    assert relation["cellIndividualOffset"] == 0 and relation["isHOAllowed"] is True
    assert adapter.read(SEF)["digitalTilt"] == 50
    assert adapter.read(CARRIER)["configuredMaxTxPower"] == 18000
    get = peer.requests[-1]
    assert get.method == "GET" and ("scopeType", "BASE_ONLY") in get.query
    with pytest.raises(KeyError):
        adapter.read(f"{ME},GNBDUFunction=1,NRSectorCarrier=9")


def test_ids_are_percent_encoded_in_the_uri(peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter]) -> None:
    with pytest.raises(KeyError):
        make().read("SubNetwork=Emulator,ManagedElement=gnb 001/a,GNBDUFunction=1")
    assert peer.requests[-1].raw_path == BASE + "SubNetwork=Emulator/ManagedElement=gnb%20001%2Fa/GNBDUFunction=1"


IDS = st.text(st.characters(codec="utf-8", exclude_characters=","), min_size=1, max_size=12).filter(
    lambda t: t == t.strip())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["SubNetwork", "ManagedElement", "NRCellDU"]), IDS), min_size=1, max_size=4))
def test_the_uri_of_any_dn_has_one_segment_per_rdn_and_maps_back(rdns: list[tuple[str, str]]) -> None:
    dn = ",".join(f"{c}={i}" for c, i in rdns)
    path = uri_path(dn)
    segments = path.split("/")
    assert len(segments) == len(rdns) and all(seg.count("=") == 1 for seg in segments)
    assert not any(ch in path for ch in " ?#,") and dn_from_uri_path(path) == dn


def test_verify_fails_when_the_read_back_fails(peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter]) -> None:
    peer.faults.fail_next = 1
    result = make().verify(case("power"))
    assert result.state == ChangeState.FAILED and "HTTP 500" in (result.error or "")
    unmapped = make().verify(case("power").model_copy(update={"attribute": "arfcnDL"}))
    assert unmapped.state == ChangeState.FAILED and "no ProvMnS mapping" in (unmapped.error or "")


def test_an_integral_float_is_sent_as_an_integer(peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter]) -> None:
    result = make(patch_format="json-patch").apply(case("power").model_copy(update={"to": 15849.0, "from_": 18000.0}))
    assert result.state == ChangeState.APPLIED and result.observed_value == 15849
    assert json.loads(patches(peer)[0].body)[1]["value"] == 15849 and b"15849.0" not in patches(peer)[0].body


def test_dry_run_is_accepted_and_changes_nothing(peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter]) -> None:
    result = make().apply(case("power", dry_run=True))
    assert result.state == ChangeState.ACCEPTED and patches(peer) == []
    assert peer.value(CARRIER, "/attributes/configuredMaxTxPower") == 18000


# -- refusals ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["merge", "json-patch"])
@pytest.mark.parametrize(("name", "bad", "words"), [
    ("tilt", 1200, ["digitalTilt=1200", "-900..900"]),
    ("power", 0, ["configuredMaxTxPower=0"]),
    ("cio", 7, ["rsrpOffsetSSB=7", "QOffsetRange"]),
])
def test_a_value_the_device_refuses_is_rejected_naming_attribute_and_value(
        peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter], fmt: str, name: str, bad: int,
        words: list[str]) -> None:
    dn, cls, attribute, frm, _to, mns_dn, pointer = CASES[name]
    result = make(patch_format=fmt).apply(change(dn, cls, attribute, frm, bad))
    assert result.state == ChangeState.REJECTED
    assert result.error is not None and "HTTP 400" in result.error and f"{cls}.{attribute}={bad}" in result.error
    assert all(w in result.error for w in words), result.error
    assert peer.value(mns_dn, pointer) == frm


@pytest.mark.parametrize(("kw", "words"), [
    ({"class_": "NRCellDU", "target_dn": f"{ME},GNBDUFunction=1,NRCellDU=2", "attribute": "cellIndividualOffset",
      "to": 3}, ["NRCellDU.cellIndividualOffset=3", "no ProvMnS mapping", "NRCellRelation"]),
    ({"attribute": "arfcnDL", "to": 1}, ["NRSectorCarrier.arfcnDL=1", "no ProvMnS mapping"]),
    ({"to": "high"}, ["configuredMaxTxPower='high'", "not an integer"]),
    ({"to": 15000, "unit": "dBm"}, ["unit 'dBm'"]),
    ({"target_dn": f"{ME},GNBDUFunction=1,NRCellDU=2"}, ["is not a NRSectorCarrier"]),
])
def test_an_invalid_request_is_rejected_without_writing(peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter],
                                                        kw: dict[str, Any], words: list[str]) -> None:
    request = case("power").model_copy(update=kw)
    result = make().apply(request)
    assert result.state == ChangeState.REJECTED and result.error is not None
    assert all(w in result.error for w in words), result.error
    assert patches(peer) == []


@pytest.mark.parametrize("fmt", ["merge", "json-patch"])
def test_a_device_holding_another_value_refuses(peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter],
                                                fmt: str) -> None:
    """The adapter reads first: a device that does not hold ``from`` is not written."""
    result = make(patch_format=fmt).apply(case("power").model_copy(update={"from_": 20000}))
    assert result.state == ChangeState.REJECTED and result.observed_value == 18000
    assert result.error is not None and "precondition failed: the device held 18000, not from=20000" in result.error
    assert patches(peer) == []


def test_json_patch_test_op_refuses_a_value_moved_by_another_system(
        peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter]) -> None:
    """Between the adapter's read and its PATCH, a SON function sets the power: the ``test`` op fails."""
    peer.faults.concurrent_value = 17000
    result = make(patch_format="json-patch").apply(case("power"))
    assert result.state == ChangeState.REJECTED
    assert result.error is not None
    assert "precondition failed: the device held another value than from=18000; it holds 17000 now" in result.error
    assert "HTTP 409" in result.error
    assert peer.value(CARRIER, "/attributes/configuredMaxTxPower") == 17000


def test_merge_patch_cannot_see_that_race(peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter]) -> None:
    """The documented limit of merge patch: no compare-and-set, the concurrent write is overwritten."""
    peer.faults.concurrent_value = 17000
    result = make(patch_format="merge").apply(case("power"))
    assert result.state == ChangeState.APPLIED and result.observed_value == 15849


# -- transport failures -------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["500", "close"])
def test_a_broken_patch_is_failed_and_a_later_read_gives_the_value(
        peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter], fault: str) -> None:
    peer.faults.only_method = "PATCH"
    if fault == "500":
        peer.faults.fail_next = 1
    else:
        peer.faults.close_next = 1
    adapter = make()
    request = case("power")
    result = adapter.apply(request)
    assert result.state == ChangeState.FAILED and result.observed_value is None
    assert result.error is not None and "value unknown" in result.error
    assert ("HTTP 500" if fault == "500" else "RemoteProtocolError") in result.error
    assert adapter.read(CARRIER)["configuredMaxTxPower"] == 18000
    retried = adapter.apply(request)  # a FAILED change is not remembered: the retry goes through
    assert retried.state == ChangeState.APPLIED and retried.observed_value == 15849


def test_a_timeout_is_failed_then_read_shows_it_took_effect_and_a_retry_writes_nothing(
        peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter]) -> None:
    peer.faults.only_method, peer.faults.delay_next, peer.faults.delay_s = "PATCH", 1, 0.6
    adapter = make(timeout_s=0.2)
    request = case("power")
    handled = peer.handled
    result = adapter.apply(request)
    assert result.state == ChangeState.FAILED and result.error is not None and "timed out" in result.error
    deadline = time.monotonic() + 5
    while peer.handled < handled + 2 and time.monotonic() < deadline:  # the GET, then the late PATCH
        time.sleep(0.02)
    assert adapter.read(CARRIER)["configuredMaxTxPower"] == 15849  # the late PATCH did take effect
    retried = adapter.apply(request)
    assert retried.state == ChangeState.APPLIED and "already holds" in (retried.device_response or "")
    assert len(patches(peer)) == 1


def test_read_raises_adapter_unavailable_when_the_server_fails(peer: ProvMnsPeer,
                                                               make: Callable[..., ProvMnsAdapter]) -> None:
    adapter = make()
    peer.faults.fail_next = 1
    with pytest.raises(AdapterUnavailable, match="HTTP 500"):
        adapter.read(CARRIER)
    peer.faults.close_next = 1
    with pytest.raises(AdapterUnavailable, match="RemoteProtocolError"):
        adapter.read(CARRIER)
    assert adapter.read(CARRIER)["configuredMaxTxPower"] == 18000


def test_an_unreachable_server_fails_and_never_raises() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    adapter = ProvMnsAdapter(f"http://127.0.0.1:{port}", timeout_s=1.0)
    request = case("power")
    for call in (adapter.apply, adapter.verify, adapter.restore):
        result = call(request)
        assert result.state == ChangeState.FAILED and "ConnectError" in (result.error or "")
    with pytest.raises(AdapterUnavailable):
        adapter.read(CARRIER)
    adapter.close()


def test_a_partial_apply_is_caught_by_verify(peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter]) -> None:
    peer.faults.store_instead = 12345
    adapter = make()
    request = case("power")
    applied = adapter.apply(request)
    assert applied.state == ChangeState.APPLIED and applied.observed_value == 12345
    verified = adapter.verify(request)
    assert verified.state == ChangeState.FAILED and verified.observed_value == 12345
    assert verified.error == "read-back NRSectorCarrier.configuredMaxTxPower=12345, expected 15849"
    restored = adapter.restore(request)  # no test on the forward value: the roll back still goes through
    assert restored.state == ChangeState.ROLLED_BACK and restored.observed_value == 18000


# -- at most once, token, discovery ----------------------------------------------------------------

def test_a_repeated_change_id_is_applied_once_even_after_a_restart(
        peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter]) -> None:
    request = case("tilt")
    first = make().apply(request)
    assert first.state == ChangeState.APPLIED
    adapter = make()
    again = adapter.apply(request)  # a fresh adapter (a restart) reads first: the device holds `to`
    assert again.state == ChangeState.APPLIED and again.observed_value == 80
    assert "already holds" in (again.device_response or "")
    assert adapter.apply(request) is again
    assert len(patches(peer)) == 1


def test_the_bearer_token_is_sent_and_never_logged(peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    peer.token = "s3cret-token"
    caplog.set_level(logging.DEBUG)
    adapter = make(token="s3cret-token")
    assert adapter.apply(case("power")).state == ChangeState.APPLIED
    assert {r.authorization for r in peer.requests} == {"Bearer s3cret-token"}
    assert "s3cret" not in caplog.text and "s3cret" not in repr(adapter)
    refused = make().apply(case("tilt"))
    assert refused.state == ChangeState.REJECTED and "HTTP 401" in (refused.error or "")


def test_open_adapter_finds_it(peer: ProvMnsPeer) -> None:
    adapter = open_adapter("provmns", base_url=peer.base_url, patch_format="json-patch", timeout_s=2.0)
    assert isinstance(adapter, ProvMnsAdapter) and isinstance(adapter, CmAdapter)
    assert adapter.read(CARRIER)["configuredMaxTxPower"] == 18000
    adapter.close()


def test_the_attribute_map_is_overridable(peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter]) -> None:
    """A vendor that keeps the power in watts x 1000 under another name: the map says so."""
    custom = {**DEFAULT_ATTRIBUTE_MAP, "Carrier.power": AttributeMapping(
        "NRSectorCarrier", ("configuredMaxTxPower",), moi="GNBDUFunction=1,NRSectorCarrier={id}", unit="W", scale=1000)}
    adapter = make(attribute_map=custom)
    request = change(f"{ME},Carrier=2", "Carrier", "power", 18, 16, unit="W")
    assert adapter.apply(request).observed_value == 16
    assert peer.value(CARRIER, "/attributes/configuredMaxTxPower") == 16000
    assert adapter.read(f"{ME},Carrier=2")["power"] == 16


def test_restore_without_from_is_rejected(make: Callable[..., ProvMnsAdapter]) -> None:
    result = make().restore(case("power").model_copy(update={"from_": None}))
    assert result.state == ChangeState.REJECTED and "nothing to roll back to" in (result.error or "")


def test_restore_is_keyed_by_the_derived_change_id(peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter]) -> None:
    request = case("cio")
    adapter = make()
    adapter.apply(request)
    assert adapter.restore(request).state == ChangeState.ROLLED_BACK
    fresh = make().restore(request)  # after a restart: the device holds `from` again, nothing is written
    assert fresh.state == ChangeState.ROLLED_BACK and "already holds" in (fresh.device_response or "")
    assert rollback_of(request).change_id != request.change_id and len(patches(peer)) == 2


# -- the check itself --------------------------------------------------------------------------------

def test_the_official_document_catches_a_malformed_request(peer: ProvMnsPeer) -> None:
    url = peer.base_url + BASE + CARRIER.replace(",", "/")
    bad = [
        ("PATCH", {"Content-Type": "application/json-patch+json"}, b'[{"op": "bogus", "path": "/attributes/x"}]'),
        ("PATCH", {"Content-Type": "application/json-patch+json"}, b'[{"op": "replace", "value": 1}]'),
        ("PATCH", {"Content-Type": "text/plain"}, b'{"attributes": {"configuredMaxTxPower": 1}}'),
        ("PUT", {"Content-Type": "application/xml"}, b"<NRSectorCarrier/>"),
    ]
    with httpx.Client() as client:
        for method, headers, body in bad:
            resp = client.request(method, url, headers=headers, content=body)
            assert resp.status_code == 400 and "TS28532_ProvMnS.yaml" in resp.json()["error"]["errorInfo"]
    errors = peer.validation_errors()
    assert len({e.split(":")[0] for e in errors}) >= 2 and len([r for r in peer.requests if r.errors]) == 4
    assert any("'bogus' is not one of" in e for e in errors) and any("'path' is a required property" in e
                                                                    for e in errors)
    assert any("text/plain" in e for e in errors) and any("application/xml" in e for e in errors)
    assert peer.value(CARRIER, "/attributes/configuredMaxTxPower") == 18000
    peer.requests.clear()  # caught as intended: not the adapter's


@pytest.mark.slow
def test_the_peers_answers_conform_too(peer: ProvMnsPeer, make: Callable[..., ProvMnsAdapter]) -> None:
    """Responses, 200 bodies included (slow: the document's Resource is a oneOf over every NRM, several
    seconds per body; error bodies are checked in every test)."""
    peer.validate_responses = True
    adapter = make(timeout_s=60.0)
    adapter.read(RELATION)
    with pytest.raises(KeyError):
        adapter.read(f"{ME},GNBDUFunction=1,NRSectorCarrier=9")
    assert [r.status for r in peer.requests] == [200, 404]
    assert peer.validation_errors() == []
