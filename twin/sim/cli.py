"""``twin sim`` commands and ``twin bench sim``.

``register(app, bench_app)`` adds the ``sim`` group to the ``twin`` app and the ``sim`` command
to its ``bench`` group; ``twin.cli`` calls it at start-up and passes both, so this module does
not import ``twin.cli``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from twin.bench_output import echo_result

__all__ = ["register", "sim_app"]

sim_app = typer.Typer(help="Network simulation model: TR 38.901 + load coupling + link abstraction.",
                      no_args_is_help=True)


@sim_app.command("export-link-table")
def export_link_table_cmd(
    out: Annotated[Path | None, typer.Option(help="where to write (default: the package data file)")] = None,
) -> None:
    """Regenerate the SINR -> spectral-efficiency table from Sionna (needs the sionna extra)."""
    from twin.sim.sionna_ref import export_link_table, sionna_available

    if not sionna_available():
        typer.echo("Sionna is not installed: pip install -e '.[sionna]' (torch==2.13.0 first)", err=True)
        raise typer.Exit(2)
    doc = export_link_table(out)
    from twin.sim.link import _data_path

    typer.echo(json.dumps({"path": str(out or _data_path()), "tables": sorted(doc["tables"]),
                           "points": len(next(iter(doc["tables"].values()))["se_per_re"]),
                           "sionna_version": doc["sionna_version"]}))


@sim_app.command("evaluate")
def evaluate_cmd(
    rings: Annotated[int, typer.Option(min=0, help="hexagonal rings around the centre site")] = 1,
    ues: Annotated[int, typer.Option(min=1, help="number of UE points")] = 1000,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    hour: Annotated[float | None, typer.Option(help="hour of day for the traffic profile")] = None,
) -> None:
    """Simulate a synthetic hexagonal cluster and print its per-cell KPIs as JSON."""
    from twin.sim import Simulator, TrafficMap, hex_cluster

    sim = Simulator(hex_cluster(rings=rings), TrafficMap(n_ues=ues), seed=seed)
    typer.echo(json.dumps(sim.evaluate(hour=hour).to_dict(), indent=1, allow_nan=True))


def bench_sim(
    cells: Annotated[int, typer.Option(min=1, help="number of cells (hexagonal layout, 3 per site)")] = 57,
    ues: Annotated[int, typer.Option(min=1, help="number of UE points")] = 5000,
    repeats: Annotated[int, typer.Option(min=3, help="what-if repetitions (the first 3 changes also warm up)")] = 50,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    sionna: Annotated[bool, typer.Option(help="also time the Sionna pipeline (when installed)")] = True,
    sionna_precision: Annotated[
        str, typer.Option(help="Sionna's precision: double (as the twin's state) or single")
    ] = "double",
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Time a full snapshot and single-cell what-ifs (and the Sionna pipeline for the same change)."""
    from twin.sim.bench import run

    if sionna_precision not in ("double", "single"):
        typer.echo(f"error: --sionna-precision {sionna_precision!r} is not 'double' or 'single'", err=True)
        raise typer.Exit(2)
    result = run(cells=cells, ues=ues, repeats=repeats, seed=seed, sionna=None if sionna else False,
                 sionna_precision=sionna_precision)
    echo_result(result, json_out)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add ``twin sim ...`` to ``app`` and ``sim`` to its ``bench`` group ``bench_app`` (idempotent)."""
    if not any(g.name == "sim" for g in app.registered_groups):
        app.add_typer(sim_app, name="sim")
    if not any(c.name == "sim" for c in bench_app.registered_commands):
        bench_app.command("sim")(bench_sim)
