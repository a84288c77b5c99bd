"""CLI commands contributed by the streams layer."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the streams commands to the ``twin`` CLI."""
