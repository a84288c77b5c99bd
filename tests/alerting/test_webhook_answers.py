"""The alert webhook against receivers that answer oddly: a redirect (3xx, with and without a
``Location``), an answer dribbled a byte at a time (each read within the timeout, the whole never
done), and no answer at all. Real: the delivery task, its dead-letter file, ``redeliver``, and a
loopback HTTP server the test starts (``http.server`` in a thread) that answers as scripted."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from streams.webhook import WebhookDelivery, redeliver
from tests.alerting.receiver import receiver
from tests.loopback_http import serving
from twin.config import WebhookSettings
from twin.schemas import Alert

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
TOKEN = "s3cret-token"


def _alert(n: int) -> Alert:
    return Alert(alert_id=f"0b6e5f2a-7a1c-5c6e-9d2e-0f9e1b2c3d{n:02x}", raised_at=T0 + timedelta(minutes=n),
                 cell_key="nr:00101-000000101", cluster_id="c1", severity="MAJOR", type="TWIN_DIVERGENCE",
                 text=f"alert {n}")


def _settings(url: str, **kw: Any) -> WebhookSettings:
    base: dict[str, Any] = {"url": url, "receiver": "noc", "retry_initial_s": 0.02, "retry_max_s": 0.05,
                            "max_attempts": 3, "timeout_s": 0.5, "bearer_token": TOKEN}
    return WebhookSettings(**{**base, **kw})


class Scripted:
    """What the server got (the number of requests) and the event that ends its slow answers."""

    def __init__(self) -> None:
        self.requests = 0
        self.stop = threading.Event()
        self.url = ""


Answer = Callable[[BaseHTTPRequestHandler, Scripted], None]


@contextmanager
def scripted(answer: Answer) -> Iterator[Scripted]:
    """A loopback HTTP server whose every POST is answered by ``answer(handler, state)``."""
    state = Scripted()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            state.requests += 1
            try:
                answer(self, state)
            except OSError:  # the client gave up and closed the connection
                self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        state.url = f"{url}/hook"
        try:
            yield state
        finally:
            state.stop.set()  # ends the slow answers before the server shuts down


def _redirect(status: int, location: str | None) -> Answer:
    def answer(h: BaseHTTPRequestHandler, _: Scripted) -> None:
        h.send_response(status)
        if location is not None:
            h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()
    return answer


def _dribble(h: BaseHTTPRequestHandler, state: Scripted) -> None:
    """Status and headers at once, then the body a byte every 0.1 s (under the 0.5 s read timeout)."""
    h.send_response(200)
    h.send_header("Content-Length", "1000")
    h.end_headers()
    h.wfile.flush()
    while not state.stop.wait(0.1):
        h.wfile.write(b" ")
        h.wfile.flush()
    h.close_connection = True


def _silent(h: BaseHTTPRequestHandler, state: Scripted) -> None:
    """The request is read, nothing is ever answered."""
    state.stop.wait(10)
    h.close_connection = True


def _dead_letters(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("with_location", [True, False])
def test_a_redirect_is_not_delivered_not_followed_and_dead_lettered_naming_status_and_location(
        tmp_path: Path, status: int, with_location: bool) -> None:
    dead = tmp_path / "dead.jsonl"

    async def run() -> tuple[WebhookDelivery, str | None]:
        with receiver([200]) as elsewhere:
            location = elsewhere.url if with_location else None
            with scripted(_redirect(status, location)) as rx:
                hook = WebhookDelivery(_settings(rx.url), dead)
                await hook.start()
                hook.submit(_alert(1))
                assert await hook.flush(4)
                await hook.close()
                assert rx.requests == 1, "a redirect is not retried: the same URL answers the same"
            assert elsewhere.requests == [], "the redirect is not followed (nor the bearer token sent there)"
        return hook, location

    hook, location = asyncio.run(run())
    s = hook.stats
    assert (s.attempts, s.failures, s.delivered, s.notifications, s.dead_lettered) == (1, 1, 0, 0, 1)
    (entry,) = _dead_letters(dead)
    assert entry["attempts"] == 1 and entry["payload"]["alerts"][0]["labels"]["alert_id"] == str(_alert(1).alert_id)
    assert entry["reason"].startswith(f"the receiver redirected the notification (HTTP {status}, a redirect")
    assert (f"Location: {location}" if location else "no Location") in entry["reason"]


def test_redeliver_reports_a_redirect_with_its_location_and_keeps_the_letter(tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"
    dead.write_text(json.dumps({"reason": "x", "attempts": 1, "payload": {"version": "4", "alerts": []}}) + "\n")

    async def run() -> Any:
        with receiver([200]) as elsewhere, scripted(_redirect(308, elsewhere.url)) as rx:
            done = await redeliver(dead, rx.url, timeout_s=0.5, bearer_token=TOKEN)
            assert elsewhere.requests == []
            return done, elsewhere.url

    done, location = asyncio.run(run())
    assert (done.delivered, done.still_dead) == (0, 1)
    ((line, status, why),) = done.failed
    assert (line, status) == (1, 308) and f"Location: {location}" in why
    assert len(dead.read_text().splitlines()) == 1


@pytest.mark.parametrize("answer", [_dribble, _silent], ids=["dribbled", "silent"])
def test_a_receiver_too_slow_to_answer_fails_the_attempt_within_the_timeout(tmp_path: Path, answer: Answer) -> None:
    """timeout_s 0.5 and 2 attempts: the notification is dead-lettered within ~1 s (plus backoff);
    without a deadline on the whole attempt a dribbled answer holds the delivery task forever."""
    dead = tmp_path / "dead.jsonl"

    async def run() -> tuple[WebhookDelivery, float]:
        with scripted(answer) as rx:
            hook = WebhookDelivery(_settings(rx.url, max_attempts=2), dead)
            await hook.start()
            t0 = time.monotonic()
            hook.submit(_alert(1))
            flushed = await hook.flush(3)
            took = time.monotonic() - t0
            await hook.close(timeout_s=0)
            assert flushed, f"the delivery is still waiting on the receiver after {took:.1f} s"
            assert rx.requests == 2
        return hook, took

    hook, took = asyncio.run(run())
    assert took < 2.5
    s = hook.stats
    assert (s.attempts, s.failures, s.delivered, s.dead_lettered) == (2, 2, 0, 1)
    (entry,) = _dead_letters(dead)
    assert entry["attempts"] == 2 and "did not take it in 2 attempts" in entry["reason"]
    if answer is _dribble:
        assert "no complete answer within 0.5 s" in entry["reason"]


def test_redeliver_moves_on_from_a_receiver_that_dribbles(tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"
    letter = json.dumps({"reason": "x", "attempts": 1, "payload": {"version": "4", "alerts": []}})
    dead.write_text(letter + "\n" + letter + "\n")

    async def run() -> Any:
        with scripted(_dribble) as rx:
            return await asyncio.wait_for(redeliver(dead, rx.url, timeout_s=0.5), 4)

    t0 = time.monotonic()
    done = asyncio.run(run())
    assert time.monotonic() - t0 < 3
    assert (done.delivered, done.still_dead) == (0, 2)
    assert [(n, s) for n, s, _ in done.failed] == [(1, None), (2, None)]
    assert "no complete answer within 0.5 s" in done.failed[0][2]
    assert len(dead.read_text().splitlines()) == 2
