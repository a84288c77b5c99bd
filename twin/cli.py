"""The ``twin`` command line.

Core commands live here; the outer layers (``streams``, ``replay``) contribute their commands
through the ``twin.commands`` entry-point group, so this module imports no transport. A command
group's ``register(app, bench_app)`` receives the app and the ``bench`` group it may extend, so
no command group imports this module.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer

from twin import topics

__all__ = ["app", "bench_app", "main"]

app = typer.Typer(
    name="twin",
    help="Streaming digital twin of a radio access network.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
schema_app = typer.Typer(help="Message schemas of the Kafka topics.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks; each prints one JSON object.", no_args_is_help=True)
mirror_app = typer.Typer(help="The mirror of the network held by the workers.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")
app.add_typer(bench_app, name="bench")
app.add_typer(mirror_app, name="mirror")


@schema_app.command("export")
def schema_export(directory: Annotated[Path, typer.Argument(help="where to write *.schema.json")]) -> None:
    """Write one JSON Schema file per topic."""
    if directory.exists() and not directory.is_dir():
        typer.echo(f"error: DIRECTORY {str(directory)!r} exists and is not a folder", err=True)
        raise typer.Exit(2)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a parent is a file, no permission ...
        typer.echo(f"error: DIRECTORY {str(directory)!r} cannot be created: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from exc
    for topic, model in topics.SCHEMAS.items():
        schema = model.model_json_schema(by_alias=True)
        schema["$id"] = f"urn:twin:schema:{topic.removesuffix('.v1')}:1"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        path = directory / f"{topic}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        typer.echo(str(path))


@mirror_app.command("show")
def mirror_show(
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings of the worker")] = None,
    state_dir: Annotated[Path | None, typer.Option(help="checkpoint folder (default: from settings)")] = None,
    cell: Annotated[str | None, typer.Option("--cell", help="only this cell key")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Print the mirror as last checkpointed by a running or stopped worker."""
    from twin.config import load_settings
    from twin.mirror.store import CheckpointStore, CheckpointStoreError
    from twin.mirror.view import mirror_view, render_table

    try:
        settings = load_settings(config)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    directory = state_dir or settings.state_dir / settings.kafka.group_id
    if not directory.is_dir():
        typer.echo(f"error: no checkpoints in {directory}", err=True)
        raise typer.Exit(1)
    store = CheckpointStore(directory, read_only=True)
    try:
        clusters = store.load_all()
        held = store.load_unassigned().summary()
    except CheckpointStoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if cell is not None and not any(cell in c.cells for c in clusters.values()) and cell not in held:
        typer.echo(f"error: cell {cell!r} is not in the mirror ({directory})", err=True)
        raise typer.Exit(1)
    view = mirror_view(clusters, cell, unassigned=held)
    if as_json:
        typer.echo(json.dumps(view, indent=2, sort_keys=True, default=str))
    else:
        render_table(view)


def _load_plugins(argv: Sequence[str] | None = None) -> None:
    """Let ``twin.sim.cli``, ``twin.sim2real.cli``, the ledger, the API and every ``twin.commands``
    entry point add their commands, and import the deferred ones ``argv`` can reach (all of them
    when ``argv`` is None; ``twin.deferred_commands``)."""
    from twin import deferred_commands
    from twin.api.cli import api_command
    from twin.ledger.cli import cm_app
    from twin.sim.cli import register  # imported here: numpy and the model load only for a full CLI
    from twin.sim2real.cli import register as register_sim2real

    register(app, bench_app)
    deferred_commands.defer(bench_app, "bisim", "twin.fidelity.cli:bench_bisim")
    register_sim2real(app)
    if not any(g.name == "cm" for g in app.registered_groups):
        app.add_typer(cm_app, name="cm")
    if not any(c.name == "api" for c in app.registered_commands):
        app.command("api")(api_command)
    for ep in entry_points(group="twin.commands"):
        ep.load()(app, bench_app)
    deferred_commands.load(argv, {id(app): (), id(bench_app): ("bench",)})


def main() -> None:
    from twin.logs import configure

    configure()  # log lines go to stderr (JSON unless a terminal): stdout is the commands' output (JSON results)
    # shell completion (click's _<PROG>_COMPLETE variable) passes the words in the environment: load all
    completing = any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ)
    _load_plugins(None if completing else sys.argv[1:])
    app()
