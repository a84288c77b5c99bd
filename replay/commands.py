"""CLI commands contributed by the replay layer: ``twin replay``.

Replay depends on ``twin`` only: it reaches Kafka through ``twin.ports.open_sink`` and never starts
the embedded broker itself. The broker address comes from ``--bootstrap`` or the settings
(``kafka.bootstrap_servers`` / ``TWIN_KAFKA__BOOTSTRAP_SERVERS``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from replay.publisher import Publisher, ReplayReport
from replay.readers import TOPICS, Format, ReaderOptions, open_sources
from replay.readers.dn import DnError
from replay.readers.vector_rules import RuleError
from twin import topics
from twin.cells import is_cell_key
from twin.ports import open_sink

__all__ = ["register", "replay"]

NO_BROKER = (
    "no Kafka broker to publish to: pass --bootstrap HOST:PORT, set kafka.bootstrap_servers "
    "(TWIN_KAFKA__BOOTSTRAP_SERVERS or --config FILE), or use --dry-run to only read and validate. "
    "(`twin broker` runs the embedded broker in the foreground.)"
)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"twin replay: {message}", err=True)
    return typer.Exit(code)


def _settings(config: Path | None) -> Any:
    """The settings (``--config``, the environment); exits 2 saying why they cannot be loaded."""
    from twin.config import load_settings

    try:
        return load_settings(config)
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot load settings: {exc}") from exc


def _sink_options(fmt: Format, bootstrap: str | None, settings: Any, prefix: str) -> dict[str, Any]:
    """Options of the Kafka sink; exits 2 with advice when no broker is configured."""
    bootstrap = bootstrap or settings.kafka.bootstrap_servers
    if not bootstrap:
        raise _fail(NO_BROKER)
    return {
        "bootstrap_servers": bootstrap,
        "idempotent": settings.kafka.idempotent_producer,
        "client_id": f"{settings.kafka.client_id}-replay",
        "ensure": [prefix + t for t in (*TOPICS[fmt], topics.DLQ)],
        "partitions": settings.kafka.partitions,
        "kafka": settings.kafka,  # its TLS/SASL settings secure the sink's clients
    }


def _print_summary(report: ReplayReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="twin replay" + (" (dry run)" if report.dry_run else ""))
    table.add_column("topic")
    table.add_column("records", justify="right")
    for topic, count in sorted(report.published.items()):
        table.add_row(topic, f"{count:,}")
    if report.dead_lettered:
        table.add_row(topics.DLQ + " (rejected)", f"{report.dead_lettered:,}")
    console.print(table)
    say = functools.partial(console.print, markup=False, highlight=False)  # reasons quote raw input
    say(
        f"rows read {report.rows_read:,} = published {report.rows_published:,} + rejected "
        f"{report.rows_rejected:,}; event time {report.first_event_time} .. {report.last_event_time}; "
        f"{report.wall_s:.1f} s"
    )
    reasons = report.reasons()
    for reason in reasons[:20]:
        say(f"  rejected {reason['rows']:>7,}  [{reason['errorClass']}] {reason['example']}")
    if len(reasons) > 20:
        say(f"  ... {len(reasons) - 20} more kinds of rejection (--json lists them all)")
    for warning in report.warnings:
        say(f"warning: {warning}")


def replay(
    sources: Annotated[list[Path], typer.Argument(help="files, folders or zip archives", show_default=False)],
    fmt: Annotated[Format, typer.Option("--format", "-f", help="input format", case_sensitive=False)],
    speed: Annotated[float, typer.Option(min=0, help="X times real time; 0 = as fast as possible")] = 0.0,
    bootstrap: Annotated[str | None, typer.Option(help="HOST:PORT of the Kafka broker")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="read and validate only, no broker")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    plmn: Annotated[
        str | None, typer.Option(help="PLMN (MCC+MNC) of derived cell keys (raca: 27203, pm-xml: 00101)")
    ] = None,
    dn_map: Annotated[Path | None, typer.Option(help="pm-xml: JSON object mapping DN -> cell key")] = None,
    vector_rules: Annotated[
        Path | None, typer.Option(help="pm-xml: TOML/JSON rules for splitting vector counters (docs/replay.md)")
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            help="IANA zone of times written without an offset (raca: Europe/Dublin; pm-xml: none, such "
            "times are rejected)"
        ),
    ] = None,
    max_gap: Annotated[
        float | None, typer.Option(min=0, help="pacing: shorten event-time gaps to at most this many s")
    ] = None,
    topic_prefix: Annotated[str, typer.Option(help="prepended to every topic name")] = "",
    batch_size: Annotated[int, typer.Option(min=1, help="records per send")] = 1000,
    max_input_mib: Annotated[int, typer.Option(min=1, help="one input file's most MiB once decompressed; a "
                                               "larger one is rejected whole (the others go on)")] = 2048,
    config: Annotated[Path | None, typer.Option(help="TOML settings file")] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="exit 1 if any input unit was rejected (not only when none published)")
    ] = False,
) -> None:
    """Replay historical telemetry into the topics, paced by event time, keeping per-cell order."""
    if plmn is not None and not is_cell_key(f"nr:{plmn}-000000000"):
        raise _fail(f"--plmn {plmn!r} is not MCC+MNC (5 or 6 digits)")
    try:
        if timezone is not None:
            ZoneInfo(timezone)
    except (ValueError, KeyError):
        raise _fail(f"--timezone {timezone!r} is not an IANA time zone") from None
    options = ReaderOptions(plmn=plmn, dn_map=dn_map, timezone=timezone, vector_rules=vector_rules,
                            max_input_bytes=max_input_mib << 20)
    try:
        streams = open_sources(fmt, sources, options)
    except (OSError, ValueError, DnError, RuleError) as exc:
        raise _fail(str(exc)) from exc
    if not streams:
        raise _fail(f"no {fmt.value} input files found in {', '.join(map(str, sources))}")
    settings = _settings(config)  # the ingest's limits check every record, in a dry run too
    sink_options = None if dry_run else _sink_options(fmt, bootstrap, settings, topic_prefix)

    async def main() -> ReplayReport:
        sink = None if sink_options is None else open_sink("kafka", **sink_options)  # needs a running loop
        publisher = Publisher(
            sink,
            speed=speed,
            batch_size=batch_size,
            topic_prefix=topic_prefix,
            max_gap_s=max_gap,
            progress=sys.stdout.isatty() and not as_json,
            ingest=settings.ingest,
        )
        return await publisher.run(streams)

    try:
        report = asyncio.run(main())
    except Exception as exc:  # the sink's transport errors are its own types; replay does not import them
        if sink_options is None:
            raise
        where = sink_options["bootstrap_servers"]
        raise _fail(f"publishing to {where} failed: {type(exc).__name__}: {exc}", 1) from exc
    if as_json:
        out = report.to_dict()
        out = {"format": fmt.value, "sources": [str(s) for s in sources], **out}
        typer.echo(json.dumps(out, indent=None))
    else:
        _print_summary(report)
    if report.rows_read and not report.rows_published:
        raise _fail(f"nothing published: all {report.rows_read:,} input units were rejected", 1)
    if strict and report.rows_rejected:
        raise _fail(f"--strict: {report.rows_rejected:,} of {report.rows_read:,} input units were rejected", 1)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the replay commands to the ``twin`` CLI ``app`` and ``twin bench gap-models`` / ``fidelity`` /
    ``prefilter`` / ``optimize`` / ``sim2real`` / ``mr-ceiling``, deferred: each imports the emulator
    and most of the runtime, only when the command line names it (``twin.deferred_commands``)."""
    from twin.deferred_commands import defer

    if not any(c.name == "replay" for c in app.registered_commands):
        app.command("replay")(replay)
    defer(bench_app, "gap-models", "replay.bench_gap:bench_gap_models_command")
    defer(bench_app, "fidelity", "replay.bench_fidelity:bench_fidelity_command")
    defer(bench_app, "prefilter", "replay.bench_prefilter:bench_prefilter_command")
    defer(bench_app, "optimize", "replay.bench_optimize:bench_optimize_command")
    defer(bench_app, "sim2real", "replay.bench_sim2real:bench_sim2real_command")
    defer(bench_app, "mr-ceiling", "replay.bench_mr_ceiling:bench_mr_ceiling_command")
