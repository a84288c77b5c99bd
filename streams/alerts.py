"""``twin alerts list``: the twin's alerts as ``ran.alerts.v1`` holds them, folded per alert id.

Reads the topic from its start (no consumer group: nothing is committed, nothing is taken from a
running deployment) until it has been idle for a moment, validates each record (a record that is
not an alert is counted and shown, never fatal), and folds raises and clears per id
(``twin.alert_log``). Active alerts first, then the recent cleared ones.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from aiokafka import TopicPartition
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from streams.commands import _settings
from streams.kafka_io import make_consumer
from twin import topics
from twin.alert_log import AlertState, fold
from twin.schemas import Alert

__all__ = ["alerts_list_command", "alerts_redeliver_command", "read_alerts"]


async def read_alerts(bootstrap: str, topic: str = topics.ALERTS, idle_s: float = 1.0,
                      timeout_s: float = 30.0) -> tuple[list[Alert], int]:
    """Every alert on ``topic`` (and the number of records that were not valid alerts).

    Reads every partition up to the end offsets seen at the start, then until the topic has been
    quiet for ``idle_s``: a slow first fetch never ends the read early with a raise read and its
    clear not yet (an idle timer alone did, on a loaded machine)."""
    consumer = make_consumer(bootstrap, group_id=None)
    await consumer.start()
    alerts: list[Alert] = []
    invalid = 0
    deadline = time.monotonic() + timeout_s
    try:
        await consumer.topics()  # fetches the metadata
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not parts:
            return alerts, invalid
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            behind = [tp for tp in parts if await consumer.position(tp) < ends[tp]]
            if not behind and time.monotonic() - quiet_since >= idle_s:
                break
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                for m in messages:
                    quiet_since = time.monotonic()
                    try:
                        alerts.append(Alert.model_validate_json(m.value or b""))
                    except ValidationError:
                        invalid += 1
    finally:
        await consumer.stop()
    return alerts, invalid


def alerts_list_command(
    bootstrap: Annotated[str | None, typer.Option(help="Kafka bootstrap servers; default: the config's")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML settings file")] = None,
    active: Annotated[bool, typer.Option("--active", help="only the alerts not cleared")] = False,
    limit: Annotated[int, typer.Option(min=1, help="the most recent cleared alerts shown")] = 50,
    json_out: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """The twin's active and recent alerts (divergence, resyncs, data gaps, unknown cells)."""
    settings = _settings(config)
    server = bootstrap or settings.kafka.bootstrap_servers
    if not server:
        typer.echo("twin alerts: no Kafka broker: pass --bootstrap HOST:PORT or set kafka.bootstrap_servers "
                   "(TWIN_KAFKA__BOOTSTRAP_SERVERS or --config FILE)", err=True)
        raise typer.Exit(2)
    try:
        alerts, invalid = asyncio.run(read_alerts(server))
    except Exception as exc:  # the broker unreachable: say so, no traceback
        typer.echo(f"twin alerts: cannot read {topics.ALERTS} from {server}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from exc
    states = fold(alerts)
    shown: list[AlertState] = [s for s in states if s.active]
    if not active:
        shown += sorted((s for s in states if not s.active), key=lambda s: s.cleared_at or s.raised_at)[-limit:]
    if json_out:
        print(json.dumps({"topic": topics.ALERTS, "records": len(alerts), "invalidRecords": invalid,
                          "active": sum(s.active for s in states), "alerts": [s.to_dict() for s in shown]}))
        return
    table = Table(title=f"{sum(s.active for s in states)} active of {len(states)} alerts on {topics.ALERTS}")
    for col in ("state", "severity", "type", "cell / cluster", "raised", "cleared", "text"):
        table.add_column(col)
    for s in shown:
        table.add_row("active" if s.active else "cleared", s.severity, s.type, s.cell_key or s.cluster_id or "",
                      s.raised_at.isoformat(), s.cleared_at.isoformat() if s.cleared_at else "", s.text or "")
    Console().print(table)
    if invalid:
        typer.echo(f"{invalid} record(s) on {topics.ALERTS} were not valid alerts", err=True)


def alerts_redeliver_command(
    config: Annotated[Path | None, typer.Option(help="TOML settings file (its webhook section and state_dir)")] = None,
    file: Annotated[Path | None, typer.Option(help="dead-letter file; default: the config's")] = None,
    url: Annotated[str | None, typer.Option(help="receiver URL; default: the config's webhook.url. The bearer "
                                            "token (webhook.bearer_token) is sent only to webhook.url, never "
                                            "to another URL")] = None,
) -> None:
    """Send the alert webhook's dead-lettered notifications again; the file keeps those that fail again.

    To the configured webhook.url the bearer token (webhook.bearer_token, TWIN_WEBHOOK__BEARER_TOKEN)
    is sent as the worker sends it; to another --url it is not. A notification that fails again is
    reported (line number, HTTP status or error); a line that is not a dead letter is reported
    (line number, why) and moved to FILE.malformed; the exit code is 1 when a notification failed
    again or a line was malformed."""
    from streams.webhook import redeliver

    settings = _settings(config)
    target = url or settings.webhook.url
    path = file or settings.webhook.dead_letter_file(settings.state_dir)
    if not target:
        typer.echo("twin alerts redeliver: no receiver: pass --url or set webhook.url", err=True)
        raise typer.Exit(2)
    if not path.is_file():
        typer.echo(f"twin alerts redeliver: no dead-letter file {path}", err=True)
        raise typer.Exit(2)
    secret = settings.webhook.bearer_token
    token = secret.get_secret_value() if secret is not None and target == settings.webhook.url else None
    done = asyncio.run(redeliver(path, target, settings.webhook.timeout_s, bearer_token=token))
    for number, status, why in done.failed[:20]:
        hint = ""
        if status in (401, 403):
            hint = ("; the bearer token was sent" if token is not None else
                    "; no bearer token was sent (it is sent only to the configured webhook.url)"
                    if secret is not None else "; no bearer token is configured (webhook.bearer_token)")
        typer.echo(f"twin alerts redeliver: {path} line {number} failed again: {why}{hint}", err=True)
    if len(done.failed) > 20:
        typer.echo(f"twin alerts redeliver: and {len(done.failed) - 20} more failed again", err=True)
    for number, why in done.malformed:
        typer.echo(f"twin alerts redeliver: {path} line {number} is not a dead letter ({why}); moved to "
                   f"{done.set_aside}", err=True)
    typer.echo(json.dumps({"file": str(path), "url": target, "delivered": done.delivered,
                           "stillDead": done.still_dead, "malformed": len(done.malformed),
                           "failedStatus": dict(Counter("error" if st is None else str(st)
                                                        for _, st, _ in done.failed)),
                           "malformedFile": None if done.set_aside is None else str(done.set_aside)}))
    if done.still_dead or done.malformed:
        raise typer.Exit(1)
