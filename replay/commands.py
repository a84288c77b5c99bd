"""CLI commands contributed by the replay layer."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the replay commands to the ``twin`` CLI."""
