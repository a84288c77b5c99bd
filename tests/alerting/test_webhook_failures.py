"""The alert webhook when things around it fail. Real: the delivery task and its dead-letter file on
disk, a full disk (the dead-letter file is a symlink to ``/dev/full``, which answers every write
with ENOSPC), the HTTP receiver (``tests.alerting.receiver``: a loopback server that keeps the
headers it got), ``twin alerts redeliver`` run as the real CLI in a process of its own, its settings
from a TOML file and the environment, and structlog's events (``structlog.testing.capture_logs``).
Simulated: only a crash mid-append, by cutting the file's last line short."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from streams.webhook import WebhookDelivery, redeliver
from tests.alerting.receiver import receiver
from twin.alerting import notification
from twin.config import WebhookSettings
from twin.schemas import Alert

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
TOKEN = "s3cret-token"
TWIN = [sys.executable, "-m", "twin", "alerts", "redeliver"]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"

needs_dev_full = pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full (not Linux)")


def _alert(n: int, type_: str = "TWIN_DIVERGENCE") -> Alert:
    return Alert(alert_id=f"0b6e5f2a-7a1c-5c6e-9d2e-0f9e1b2c3d{n:02x}", raised_at=T0 + timedelta(minutes=n),
                 cell_key="nr:00101-000000101", cluster_id="c1", severity="MAJOR", type=type_, text=f"alert {n}")


def _settings(url: str, **kw: Any) -> WebhookSettings:
    base: dict[str, Any] = {"url": url, "receiver": "noc", "retry_initial_s": 0.02, "retry_max_s": 0.05,
                            "max_attempts": 1, "timeout_s": 2.0}
    return WebhookSettings(**{**base, **kw})


def _ids(body: Any) -> list[str]:
    return [a["labels"]["alert_id"] for a in body["alerts"]]


@needs_dev_full
def test_a_dead_letter_that_cannot_be_written_is_lost_counted_logged_and_delivery_goes_on(tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"
    dead.symlink_to("/dev/full")  # the disk is full

    async def run() -> None:
        with receiver([400, 200]) as rx, capture_logs() as logs:
            hook = WebhookDelivery(_settings(rx.url), dead)
            await hook.start()
            hook.submit(_alert(1))  # refused (400): its dead letter cannot be written
            assert await hook.flush(10), "the delivery task died"
            assert hook._task is not None and not hook._task.done()
            hook.submit(_alert(2))  # a later alert is still delivered
            assert await hook.flush(10)
            await hook.close()
            assert [s for s, _, _ in rx.requests] == [400, 200]
            assert _ids(rx.accepted[0]) == [str(_alert(2).alert_id)]
        assert (hook.stats.lost, hook.stats.dead_lettered, hook.stats.delivered) == (1, 0, 1)
        assert hook.stats.as_dict()["webhookLost"] == 1
        (failed,) = [e for e in logs if e["event"] == "webhook.dead_letter_failed"]
        assert failed["log_level"] == "error" and failed["lost"] == 1 and failed["notifications"] == 1
        assert os.strerror(errno.ENOSPC) in failed["error"] and "refused the notification" in failed["reason"]

        # the queue full and the worker stopping with alerts queued: neither submit nor close raises
        stuck = WebhookDelivery(_settings("http://127.0.0.1:9/hook", queue_max=1), dead)  # not started
        for n in range(3, 6):
            stuck.submit(_alert(n))
        await stuck.close(timeout_s=0)
        assert (stuck.stats.submitted, stuck.stats.lost, stuck.stats.dead_lettered) == (3, 3, 0)

        # the disk has room again: dead letters are written again
        dead.unlink()
        again = WebhookDelivery(_settings("http://127.0.0.1:9/hook", queue_max=1), dead)
        again.submit(_alert(6))
        again.submit(_alert(7))
        await again.close(timeout_s=0)
        assert (again.stats.lost, again.stats.dead_lettered) == (0, 2)
        assert len(dead.read_text().splitlines()) == 2

    asyncio.run(run())


def test_a_partial_last_line_does_not_swallow_the_next_dead_letter(tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"

    async def run() -> None:
        with receiver([400]) as rx:
            hook = WebhookDelivery(_settings(rx.url), dead)
            await hook.start()
            hook.submit(_alert(1))
            assert await hook.flush(10)
            written = dead.read_bytes()
            dead.write_bytes(written[:len(written) // 2])  # the worker was killed mid-append
            hook.submit(_alert(2, type_="DATA_GAP"))  # the next dead letter
            assert await hook.flush(10)
            await hook.close()
        assert hook.stats.dead_lettered == 2
        with receiver([200]) as rx:
            done = await redeliver(dead, rx.url)
            assert [n for n, _ in done.malformed] == [1] and (done.delivered, done.still_dead) == (1, 0)
            assert [_ids(b) for b in rx.accepted] == [[str(_alert(2).alert_id)]]
        assert done.set_aside is not None
        assert done.set_aside.read_bytes() == written[:len(written) // 2] + b"\n", "only the partial line set aside"
        assert dead.read_text() == ""

    asyncio.run(run())


def test_the_stats_keys_are_the_documented_camel_case(tmp_path: Path) -> None:
    async def run() -> dict[str, int]:
        hook = WebhookDelivery(_settings("http://127.0.0.1:9/hook", queue_max=1), tmp_path / "dead.jsonl")
        hook.submit(_alert(1))
        hook.submit(_alert(2))  # the queue is full: dead-lettered
        await hook.close(timeout_s=0)
        return hook.stats.as_dict()

    stats = asyncio.run(run())
    assert stats["webhookDeadLettered"] == 2 and stats["webhookLost"] == 0
    assert all("_" not in k for k in stats)
    docs = DOCS.read_text()
    assert "`webhookDeadLettered`" in docs and "`webhookLost`" in docs


def _dead_letter_file(path: Path, *alerts: Alert) -> None:
    path.write_text("".join(json.dumps({"deadLetteredAt": T0.isoformat(), "url": "http://old", "reason": "down",
                                        "attempts": 6, "payload": notification([a], "noc", "")}) + "\n"
                            for a in alerts))


def _redeliver(tmp_path: Path, config_url: str, *args: str,
               token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    dead = tmp_path / "dead.jsonl"
    _dead_letter_file(dead, _alert(1))
    config = tmp_path / "twin.toml"
    config.write_text(f'state_dir = "{tmp_path}"\n[webhook]\nurl = "{config_url}"\ndead_letter = "{dead}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    if token is not None:
        env["TWIN_WEBHOOK__BEARER_TOKEN"] = token
    return subprocess.run([*TWIN, "--config", str(config), *args], capture_output=True, text=True, timeout=120,
                          env=env)


def test_redeliver_sends_the_bearer_token_to_the_configured_receiver_only(tmp_path: Path) -> None:
    with receiver([200]) as configured, receiver([200]) as other:
        default = _redeliver(tmp_path, configured.url)
        same = _redeliver(tmp_path, configured.url, "--url", configured.url)
        elsewhere = _redeliver(tmp_path, configured.url, "--url", other.url)
        for done in (default, same, elsewhere):
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout.splitlines()[-1])["delivered"] == 1
        assert [h.get("Authorization") for _, h, _ in configured.requests] == [f"Bearer {TOKEN}"] * 2
        (other_headers,) = [h for _, h, _ in other.requests]
        assert "Authorization" not in other_headers, "the token must not leak to another receiver"
    helped = subprocess.run([*TWIN, "--help"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COLUMNS": "200"})
    assert "sent only to webhook.url" in " ".join(helped.stdout.replace("│", " ").split())


def test_redeliver_reports_a_refusal_with_its_status(tmp_path: Path) -> None:
    with receiver([401]) as rx:
        done = _redeliver(tmp_path, rx.url, token=None)
    assert done.returncode == 1
    out = json.loads(done.stdout.splitlines()[-1])
    assert (out["delivered"], out["stillDead"], out["failedStatus"]) == (0, 1, {"401": 1})
    assert "line 1 failed again: HTTP 401" in done.stderr and "no bearer token is configured" in done.stderr
    assert len((tmp_path / "dead.jsonl").read_text().splitlines()) == 1, "kept for the next try"


def test_redeliver_beside_a_worker_appending_loses_no_dead_letter(tmp_path: Path) -> None:
    """A worker dead-letters notifications (its own ``_dead``, in a thread) while ``redeliver``
    runs rounds over the same file: every letter the worker wrote is afterwards in the file or was
    delivered. Both take the file's lock; without it a letter appended between redeliver's last
    read and its replace, or into the file it had just replaced, was lost (88 of 147,000 in an
    audit's stress run)."""
    dead = tmp_path / "dead.jsonl"
    hook = WebhookDelivery(_settings("http://127.0.0.1:9/unused"), dead)
    written: list[str] = []
    stop = threading.Event()

    def worker() -> None:
        for n in range(1500):
            if stop.is_set():
                return
            hook._dead([_alert(n % 200)], "refused", 1)
            written.append(f"{n}")
            time.sleep(0.0005)

    with receiver([200]) as rx:
        thread = threading.Thread(target=worker)
        thread.start()
        try:
            while thread.is_alive():
                if dead.exists():
                    asyncio.run(redeliver(dead, rx.url, 2.0))
        finally:
            stop.set()
            thread.join()
        delivered = len(rx.requests)
    kept = [ln for ln in dead.read_text().splitlines() if ln.strip()]
    assert all(json.loads(ln)["payload"]["alerts"] for ln in kept)  # whole lines only
    assert len(written) == 1500 and delivered + len(kept) == len(written), (delivered, len(kept), len(written))
