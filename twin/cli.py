"""The ``twin`` command line.

Core commands live here; the outer layers (``streams``, ``replay``) contribute their commands
through the ``twin.commands`` entry-point group, so this module imports no transport.
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer

from twin import topics

app = typer.Typer(
    name="twin",
    help="Streaming digital twin of a radio access network.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
schema_app = typer.Typer(help="Message schemas of the Kafka topics.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks; each prints one JSON object.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")
app.add_typer(bench_app, name="bench")


@schema_app.command("export")
def schema_export(directory: Annotated[Path, typer.Argument(help="where to write *.schema.json")]) -> None:
    """Write one JSON Schema file per topic."""
    directory.mkdir(parents=True, exist_ok=True)
    for topic, model in topics.SCHEMAS.items():
        schema = model.model_json_schema(by_alias=True)
        schema["$id"] = f"urn:twin:schema:{topic.removesuffix('.v1')}:1"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        path = directory / f"{topic}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        typer.echo(str(path))


def _load_plugins() -> None:
    for ep in entry_points(group="twin.commands"):
        ep.load()(app)


def main() -> None:
    _load_plugins()
    app()
