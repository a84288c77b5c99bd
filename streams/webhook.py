"""Alert delivery to an HTTP receiver in Alertmanager's webhook format (``twin.alerting``), beside
the Kafka alert topic.

``submit`` never waits: alerts queue (bounded) and one task POSTs them, grouped by type and
cluster, in order. A notification that fails (connection refused, timeout, 408, 429, 5xx) is tried
again with exponential backoff up to ``max_attempts``; one the receiver refuses (another 4xx) is
not retried, nor is one it redirects (3xx: not followed, see ``_answer``). Each attempt has a
deadline of ``timeout_s`` for the whole exchange, the answer's body included: httpx's timeout is
per read, so a receiver that dribbles its answer a byte at a time would otherwise hold the
delivery forever; past the deadline the attempt failed (and is retried, like a timeout). Either
way, a notification not delivered is appended to the dead-letter file (one JSON object per line:
when, why, how many attempts, the payload), counted and logged, as are alerts that find the queue
full and those still queued when the worker stops: nothing is lost silently, and the file can be
replayed to the receiver (``redeliver``). When the dead-letter file cannot be written (disk full,
read-only state dir) the notifications are counted as ``lost`` and logged as an error, and
delivery goes on: neither the delivery task nor ``submit``/``close`` fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import structlog

from twin.alerting import groups, notification
from twin.config import WebhookSettings
from twin.schemas import Alert

__all__ = ["RETRYABLE", "Redelivery", "WebhookDelivery", "WebhookStats", "redeliver"]

log = structlog.get_logger(__name__)

RETRYABLE = frozenset({408, 425, 429})  # and every 5xx


def _answer(r: httpx.Response) -> str:
    """Why an answer that is not 2xx is not a delivery: its status and body, or for a redirect its
    ``Location``. A redirect (3xx) is never followed (``follow_redirects=False``): it would POST the
    notification, bearer token included, to wherever the receiver points, perhaps another host;
    and it is not taken as delivered (httpx's ``is_error`` is False for a 3xx, 2xx alone counts)."""
    if 300 <= r.status_code < 400:
        location = r.headers.get("Location")
        where = f"Location: {location[:300]}" if location is not None else "no Location"
        return f"HTTP {r.status_code}, a redirect, not followed ({where}); set webhook.url to the receiver's address"
    return f"HTTP {r.status_code}: {r.text[:300]}"


def _too_slow(timeout_s: float) -> str:
    return f"no complete answer within {timeout_s:g} s (the receiver answered too slowly or not at all)"


@dataclass
class WebhookStats:
    submitted: int = 0  # alerts given to submit()
    delivered: int = 0  # alerts in notifications the receiver acknowledged (2xx)
    notifications: int = 0  # notifications acknowledged
    attempts: int = 0  # POSTs made
    failures: int = 0  # POSTs that failed (each retried or dead-lettered)
    dead_lettered: int = 0  # alerts written to the dead-letter file
    lost: int = 0  # alerts not delivered whose dead letter could not be written either

    def as_dict(self) -> dict[str, int]:
        """The stats file's keys: ``webhook`` and the field in camel case (``webhookDeadLettered``)."""
        return {"webhook" + "".join(w.capitalize() for w in k.split("_")): v for k, v in vars(self).items()}


class WebhookDelivery:
    """``start``, ``submit`` alerts, ``close``; undelivered notifications go to ``dead_letter``."""

    def __init__(self, settings: WebhookSettings, dead_letter: Path) -> None:
        if not settings.url:
            raise ValueError("webhook.url is not set: there is no receiver to deliver to")
        self.settings = settings
        self.url = settings.url
        self.dead_letter = dead_letter
        self.stats = WebhookStats()
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(settings.queue_max)
        self._task: asyncio.Task[None] | None = None
        self._inflight: list[Alert] = []
        headers = {"Content-Type": "application/json", "User-Agent": "ran-twin-webhook"}
        if settings.bearer_token is not None:
            headers["Authorization"] = f"Bearer {settings.bearer_token.get_secret_value()}"
        self._client = httpx.AsyncClient(headers=headers, timeout=settings.timeout_s, follow_redirects=False)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="alert-webhook")

    def submit(self, alert: Alert) -> None:
        """Queue an alert for delivery (dead-lettered at once when the queue is full)."""
        self.stats.submitted += 1
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self._dead([alert], f"the delivery queue is full ({self.settings.queue_max} alerts waiting)", 0)

    async def flush(self, timeout_s: float = 10.0) -> bool:
        """Until everything submitted is delivered or dead-lettered (True), or ``timeout_s`` (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self._queue.empty() or self._inflight:
            if loop.time() > deadline or self._task is None or self._task.done():
                return False
            await asyncio.sleep(0.02)
        return True

    async def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued for up to ``timeout_s``; dead-letter the rest."""
        await self.flush(timeout_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        left = list(self._inflight)
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
        self._inflight = []
        if left:
            self._dead(left, "the worker stopped before the receiver took them", 0)
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._inflight = batch  # what close() dead-letters if it stops this task
            for group in groups(batch):
                for i in range(0, len(group), self.settings.max_alerts):
                    chunk = group[i:i + self.settings.max_alerts]
                    await self._deliver(chunk)
                    done = {id(a) for a in chunk}
                    self._inflight = [a for a in self._inflight if id(a) not in done]

    async def _deliver(self, alerts: list[Alert]) -> None:
        payload = notification(alerts, self.settings.receiver, self.settings.external_url)
        body = json.dumps(payload).encode()
        reason = ""
        for attempt in range(1, self.settings.max_attempts + 1):
            self.stats.attempts += 1
            try:
                async with asyncio.timeout(self.settings.timeout_s):  # the whole attempt, not each read
                    r = await self._client.post(self.url, content=body)
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except TimeoutError:
                reason = _too_slow(self.settings.timeout_s)
            else:
                if 200 <= r.status_code < 300:
                    self.stats.delivered += len(alerts)
                    self.stats.notifications += 1
                    if attempt > 1:
                        log.info("webhook.delivered_after_retries", url=self.url, attempts=attempt,
                                 alerts=len(alerts))
                    return
                reason = _answer(r)
                # 3xx, like a 4xx other than RETRYABLE, is not retried: the same URL would answer the
                # same until webhook.url is corrected, and the dead letter can then be redelivered
                if r.status_code < 500 and r.status_code not in RETRYABLE:
                    self.stats.failures += 1
                    verb = "redirected" if 300 <= r.status_code < 400 else "refused"
                    self._dead(alerts, f"the receiver {verb} the notification ({reason})", attempt, payload)
                    return
            self.stats.failures += 1
            if attempt == self.settings.max_attempts:
                break
            delay = min(self.settings.retry_max_s, self.settings.retry_initial_s * 2 ** (attempt - 1))
            delay *= 0.75 + random.random() / 4  # jitter
            log.warning("webhook.delivery_failed", url=self.url, attempt=attempt, retry_in_s=round(delay, 3),
                        alerts=len(alerts), reason=reason[:300])
            await asyncio.sleep(delay)
        self._dead(alerts, f"the receiver did not take it in {self.settings.max_attempts} attempts "
                           f"(last: {reason})", self.settings.max_attempts, payload)

    def _dead(self, alerts: list[Alert], reason: str, attempts: int, payload: dict[str, Any] | None = None) -> None:
        """Append the undelivered notification(s) to the dead-letter file; count and log them.

        Never raises for the file: when it cannot be written (disk full, read-only, ...) the alerts
        are counted as ``lost`` and logged as an error, and the caller (the delivery task,
        ``submit``, ``close``) goes on. A partial last line (a crash mid-append) is ended first, so
        that only it is malformed, not the letter appended after it."""
        payloads = [payload] if payload is not None else [
            notification(g, self.settings.receiver, self.settings.external_url) for g in groups(alerts)]
        at = datetime.now(UTC).isoformat()
        text = "".join(json.dumps({"deadLetteredAt": at, "url": self.url, "reason": reason, "attempts": attempts,
                                   "payload": p}) + "\n" for p in payloads).encode("utf-8")
        try:
            self.dead_letter.parent.mkdir(parents=True, exist_ok=True)
            with _locked_for_append(self.dead_letter) as out:  # appends; reads the last byte
                if out.seek(0, os.SEEK_END) > 0:
                    out.seek(-1, os.SEEK_END)
                    if out.read(1) != b"\n":
                        text = b"\n" + text
                out.write(text)
        except OSError as exc:
            self.stats.lost += len(alerts)
            log.error("webhook.dead_letter_failed", url=self.url, alerts=len(alerts), notifications=len(payloads),
                      lost=len(alerts), lost_total=self.stats.lost, file=str(self.dead_letter),
                      error=f"{type(exc).__name__}: {exc}", reason=reason[:300], attempts=attempts)
            return
        self.stats.dead_lettered += len(alerts)
        log.error("webhook.dead_lettered", url=self.url, alerts=len(alerts), attempts=attempts, reason=reason[:300],
                  file=str(self.dead_letter), dead_lettered_total=self.stats.dead_lettered)


@dataclass(frozen=True)
class Redelivery:
    """What :func:`redeliver` did: notifications delivered (and removed from the file), those that
    failed again (kept in it; ``failed``: line number, the receiver's HTTP status or None when it
    did not answer, why), and the malformed lines (line number, why) moved to ``set_aside``."""

    delivered: int
    still_dead: int
    malformed: list[tuple[int, str]]
    set_aside: Path | None  # where the malformed lines went (None: there were none)
    failed: list[tuple[int, int | None, str]] = field(default_factory=list)


def _dead_letter_payload(line: str) -> dict[str, Any] | str:
    """A dead-letter line's ``payload``, or why the line is not a dead letter."""
    try:
        entry = json.loads(line)
    except ValueError as exc:
        return f"not JSON ({exc})"
    if not isinstance(entry, dict):
        return f"not a JSON object but {type(entry).__name__}"
    payload = entry.get("payload")
    if not isinstance(payload, dict):
        return "no 'payload' object" if payload is None else f"'payload' is {type(payload).__name__}, not an object"
    return payload


async def redeliver(dead_letter: Path, url: str, timeout_s: float = 10.0,
                    bearer_token: str | None = None) -> Redelivery:
    """POST each dead-lettered notification of ``dead_letter`` to ``url`` once; the file keeps the
    ones that failed again (and lines appended meanwhile, by a running worker). ``bearer_token``
    is sent as ``Authorization: Bearer``, as the worker sends it (give it only for the configured
    receiver: the caller decides).

    A line that is not a dead letter (not JSON, no ``payload`` object) is not sent: it moves, as it
    was, to ``<file>.malformed`` (appended), so it neither blocks the others nor is tried again and
    again, and is reported by line number. The file is rewritten even when the run stops half-way
    (an interrupt, an unexpected error): what was delivered is never sent again. A redirect is not
    followed, and each POST has ``timeout_s`` for the whole exchange, as the worker's attempts."""
    old = dead_letter.read_bytes()
    lines = old.decode("utf-8", errors="replace").split("\n")
    kept: list[str] = []
    malformed: list[tuple[int, str]] = []
    failed: list[tuple[int, int | None, str]] = []
    bad_lines: list[str] = []
    delivered = 0
    done = 0  # lines dealt with (delivered, kept or set aside)
    headers = {"User-Agent": "ran-twin-webhook"}
    if bearer_token is not None:
        headers["Authorization"] = f"Bearer {bearer_token}"
    try:
        async with httpx.AsyncClient(timeout=timeout_s, headers=headers, follow_redirects=False) as client:
            for number, ln in enumerate(lines, 1):
                if not ln.strip():
                    done = number
                    continue
                payload = _dead_letter_payload(ln)
                if isinstance(payload, str):
                    malformed.append((number, payload))
                    bad_lines.append(ln)
                    done = number
                    continue
                try:
                    async with asyncio.timeout(timeout_s):  # the whole exchange, not each read
                        r = await client.post(url, json=payload)
                except httpx.HTTPError as exc:
                    failed.append((number, None, f"{type(exc).__name__}: {exc}"[:300]))
                    kept.append(ln)
                except TimeoutError:
                    failed.append((number, None, _too_slow(timeout_s)))
                    kept.append(ln)
                else:
                    if 200 <= r.status_code < 300:
                        delivered += 1
                    else:
                        failed.append((number, r.status_code, _answer(r)))
                        kept.append(ln)
                done = number
    finally:
        kept += [ln for ln in lines[done:] if ln.strip()]  # not tried (the run stopped): still dead
        set_aside = dead_letter.with_name(dead_letter.name + ".malformed") if bad_lines else None
        if set_aside is not None:
            with set_aside.open("a", encoding="utf-8") as f:
                f.write("".join(b + "\n" for b in bad_lines))
        # a worker appending meanwhile takes the same lock: what it appended is read and kept, and
        # it cannot append between that read and the replace (its letter would go to the old file)
        with dead_letter.open("rb") as current:
            fcntl.flock(current, fcntl.LOCK_EX)
            now = current.read()
            appended = now[len(old):] if now.startswith(old) else b""  # by a worker while this ran
            tmp = dead_letter.with_name(dead_letter.name + ".tmp")
            tmp.write_bytes("".join(k + "\n" for k in kept).encode("utf-8") + appended)
            os.replace(tmp, dead_letter)
    return Redelivery(delivered, len(kept), malformed, set_aside, failed)


@contextlib.contextmanager
def _locked_for_append(path: Path) -> Iterator[BinaryIO]:
    """``path`` open for appending under an exclusive ``flock``, the file the path names now:
    ``redeliver`` replaces the file under the same lock, and a writer that waited for it reopens
    the new file rather than appending to the replaced one (which nobody reads again)."""
    while True:
        out = path.open("a+b")
        try:
            fcntl.flock(out, fcntl.LOCK_EX)
            if os.fstat(out.fileno()).st_ino == os.stat(path).st_ino:
                yield out
                return
        finally:
            out.close()  # the lock goes with it
