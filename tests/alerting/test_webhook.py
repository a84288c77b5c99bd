"""Alert delivery to a real HTTP receiver the test starts: Alertmanager's webhook JSON (checked
against a JSON Schema of the documented version-4 payload), retries on 5xx, the dead-letter file
when the receiver stays down or refuses, and its redelivery."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from streams.webhook import WebhookDelivery, redeliver
from tests.alerting.receiver import receiver
from twin.alerting import fingerprint
from twin.config import WebhookSettings
from twin.schemas import Alert

# Alertmanager's webhook_config payload, version 4 (prometheus.io/docs/alerting/latest/configuration)
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_TIME = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"}
PAYLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels",
                 "commonAnnotations", "externalURL", "alerts"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": "4"}, "groupKey": {"type": "string"}, "truncatedAlerts": {"type": "integer", "minimum": 0},
        "status": {"enum": ["firing", "resolved"]}, "receiver": {"type": "string"},
        "groupLabels": _STR_MAP, "commonLabels": _STR_MAP, "commonAnnotations": _STR_MAP,
        "externalURL": {"type": "string"},
        "alerts": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False,
            "required": ["status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"],
            "properties": {"status": {"enum": ["firing", "resolved"]}, "labels": _STR_MAP, "annotations": _STR_MAP,
                           "startsAt": _TIME, "endsAt": _TIME, "generatorURL": {"type": "string"},
                           "fingerprint": {"type": "string", "pattern": "^[0-9a-f]{16}$"}}}},
    },
}

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
CELL = "nr:00101-000000101"


def _alert(n: int = 0, type_: str = "TWIN_DIVERGENCE", cluster: str = "c1", severity: str = "MAJOR") -> Alert:
    return Alert(alert_id=f"0b6e5f2a-7a1c-5c6e-9d2e-0f9e1b2c3d{n:02x}", raised_at=T0 + timedelta(minutes=n),
                 cell_key=CELL, cluster_id=cluster, severity=severity, type=type_, text=f"alert {n}",
                 kpis={"DRB.UEThpDl": 1234.5})


def _settings(url: str, **kw: Any) -> WebhookSettings:
    base: dict[str, Any] = {"url": url, "receiver": "noc", "external_url": "http://twin.example:8080",
                            "retry_initial_s": 0.02, "retry_max_s": 0.1, "max_attempts": 4, "timeout_s": 2.0}
    return WebhookSettings(**{**base, **kw})


def test_alertmanager_fingerprint_matches_prometheus() -> None:
    # prometheus/common model's TestMetricToFingerprint (the hash Alertmanager uses for alerts)
    assert int(fingerprint({"name": "garland, briggs", "fear": "love is not enough"}), 16) == 5799056148416392346
    assert int(fingerprint({}), 16) == 14695981039346656037


def test_payload_is_alertmanager_v4_and_resolve_matches_fire(tmp_path: Path) -> None:
    async def run() -> None:
        with receiver([200]) as rx:
            hook = WebhookDelivery(_settings(rx.url, bearer_token="s3cret"), tmp_path / "dead.jsonl")
            await hook.start()
            fire = [_alert(1), _alert(2), _alert(3, type_="DATA_GAP", severity="WARNING")]
            for a in fire:
                hook.submit(a)
            assert await hook.flush(10)
            hook.submit(fire[0].model_copy(update={"severity": "CLEARED", "cleared_at": T0 + timedelta(hours=1)}))
            assert await hook.flush(10)
            await hook.close()
            bodies = rx.accepted
            headers = [h for _, h, _ in rx.requests]
        assert all(h["Authorization"] == "Bearer s3cret" and h["Content-Type"] == "application/json" for h in headers)
        for body in bodies:
            jsonschema.validate(body, PAYLOAD_SCHEMA)
        by_type = {b["groupLabels"]["alertname"] + ":" + b["status"]: b for b in bodies}
        assert sorted(by_type) == ["DATA_GAP:firing", "TWIN_DIVERGENCE:firing", "TWIN_DIVERGENCE:resolved"]
        div = by_type["TWIN_DIVERGENCE:firing"]
        assert div["groupLabels"] == {"alertname": "TWIN_DIVERGENCE", "cluster": "c1"}
        assert div["groupKey"] == '{}:{alertname="TWIN_DIVERGENCE", cluster="c1"}'
        assert (div["receiver"], div["externalURL"], div["truncatedAlerts"]) == ("noc", "http://twin.example:8080", 0)
        assert div["commonLabels"] == {"alertname": "TWIN_DIVERGENCE", "cell": CELL, "cluster": "c1",
                                       "source": "ran-twin"}
        assert div["commonAnnotations"]["severity"] == "major"
        first = div["alerts"][0]
        assert first["labels"]["alert_id"] == str(_alert(1).alert_id)
        assert first["startsAt"] == "2026-03-01T12:01:00Z" and first["endsAt"] == "0001-01-01T00:00:00Z"
        assert first["generatorURL"] == f"http://twin.example:8080/api/v1/alerts/{_alert(1).alert_id}"
        assert first["fingerprint"] == fingerprint(first["labels"])
        assert first["annotations"]["description"] == "alert 1"
        assert json.loads(first["annotations"]["kpis"]) == {"DRB.UEThpDl": 1234.5}
        (resolved,) = by_type["TWIN_DIVERGENCE:resolved"]["alerts"]
        assert resolved["status"] == "resolved" and resolved["endsAt"] == "2026-03-01T13:00:00Z"
        assert resolved["fingerprint"] == first["fingerprint"], "a receiver matches the resolve to its fire"
        assert not (tmp_path / "dead.jsonl").exists()

    asyncio.run(run())


def test_retries_5xx_then_delivers(tmp_path: Path) -> None:
    async def run() -> None:
        with receiver([500, 503, 200]) as rx:
            hook = WebhookDelivery(_settings(rx.url), tmp_path / "dead.jsonl")
            await hook.start()
            hook.submit(_alert(1))
            assert await hook.flush(10)
            await hook.close()
            assert [s for s, _, _ in rx.requests] == [500, 503, 200]
            assert rx.requests[0][2] == rx.requests[2][2], "the same notification is sent again"
        s = hook.stats
        assert (s.attempts, s.failures, s.delivered, s.dead_lettered) == (3, 2, 1, 0)
        assert not (tmp_path / "dead.jsonl").exists()

    asyncio.run(run())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("down", ["503", "refused"])
def test_dead_letter_when_the_receiver_stays_down_then_redelivered(tmp_path: Path, down: str) -> None:
    dead = tmp_path / "dead.jsonl"

    async def run() -> None:
        if down == "503":
            with receiver([503]) as rx:
                hook = WebhookDelivery(_settings(rx.url, max_attempts=3), dead)
                await hook.start()
                hook.submit(_alert(1))
                assert await hook.flush(10)
                await hook.close()
                assert len(rx.requests) == 3
        else:
            hook = WebhookDelivery(_settings(f"http://127.0.0.1:{_free_port()}/hook", max_attempts=3), dead)
            await hook.start()
            hook.submit(_alert(1))
            assert await hook.flush(10)
            await hook.close()
        assert (hook.stats.attempts, hook.stats.delivered, hook.stats.dead_lettered) == (3, 0, 1)
        (entry,) = [json.loads(x) for x in dead.read_text().splitlines()]
        assert entry["attempts"] == 3 and "did not take it in 3 attempts" in entry["reason"]
        jsonschema.validate(entry["payload"], PAYLOAD_SCHEMA)
        assert entry["payload"]["alerts"][0]["labels"]["alert_id"] == str(_alert(1).alert_id)
        # the receiver is back: the dead letter goes out, the file is emptied
        with receiver([200]) as rx:
            done = await redeliver(dead, rx.url)
            assert (done.delivered, done.still_dead, done.malformed) == (1, 0, [])
            assert rx.accepted == [entry["payload"]]
        assert dead.read_text() == ""

    asyncio.run(run())


def test_a_refusal_is_dead_lettered_at_once_and_close_keeps_the_queue(tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"

    async def run() -> None:
        with receiver([400]) as rx:
            hook = WebhookDelivery(_settings(rx.url), dead)
            await hook.start()
            hook.submit(_alert(1))
            assert await hook.flush(10)
            assert len(rx.requests) == 1, "a 400 is not retried"
            await hook.close()
        # a receiver that never answers in time: what is queued at stop is dead-lettered, not lost
        stuck = WebhookDelivery(_settings(f"http://127.0.0.1:{_free_port()}/hook", retry_initial_s=30,
                                          retry_max_s=30), dead)
        await stuck.start()
        for n in range(2, 5):
            stuck.submit(_alert(n))
        await asyncio.sleep(0.2)
        await stuck.close(timeout_s=0.2)
        assert stuck.stats.dead_lettered == 3

    asyncio.run(run())
    entries = [json.loads(x) for x in dead.read_text().splitlines()]
    assert "refused the notification (HTTP 400" in entries[0]["reason"] and entries[0]["attempts"] == 1
    later = [a["labels"]["alert_id"] for e in entries[1:] for a in e["payload"]["alerts"]]
    assert sorted(later) == sorted(str(_alert(n).alert_id) for n in range(2, 5))
    assert all("stopped before the receiver took them" in e["reason"] for e in entries[1:])


def test_a_full_queue_is_dead_lettered(tmp_path: Path) -> None:
    async def run() -> WebhookDelivery:
        hook = WebhookDelivery(_settings("http://127.0.0.1:9/hook", queue_max=2), tmp_path / "dead.jsonl")
        for n in range(5):  # not started: nothing drains the queue
            hook.submit(_alert(n))
        await hook.close(timeout_s=0)
        return hook

    hook = asyncio.run(run())
    assert hook.stats.submitted == 5 and hook.stats.dead_lettered == 5
    assert "queue is full" in (tmp_path / "dead.jsonl").read_text().splitlines()[0]


def test_no_url_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"webhook\.url is not set"):
        WebhookDelivery(WebhookSettings(), tmp_path / "dead.jsonl")


def test_twin_alerts_redeliver_command(tmp_path: Path) -> None:
    """``twin alerts redeliver``, the real CLI in a process of its own."""
    dead = tmp_path / "dead.jsonl"

    async def fail_once() -> None:
        hook = WebhookDelivery(_settings(f"http://127.0.0.1:{_free_port()}/hook", max_attempts=1), dead)
        await hook.start()
        hook.submit(_alert(7))
        assert await hook.flush(10)
        await hook.close()

    asyncio.run(fail_once())
    twin = [sys.executable, "-m", "twin", "alerts", "redeliver"]
    with receiver([200]) as rx:
        done = subprocess.run([*twin, "--file", str(dead), "--url", rx.url], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.splitlines()[-1])["delivered"] == 1
        assert rx.accepted[0]["alerts"][0]["labels"]["alert_id"] == str(_alert(7).alert_id)
    missing = subprocess.run([*twin, "--file", str(tmp_path / "nope.jsonl"), "--url", "http://x"],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no dead-letter file" in missing.stderr
