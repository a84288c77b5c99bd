"""How a ``twin bench`` command prints its one result: one JSON object, or one aligned line per key."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import typer

__all__ = ["echo_result"]


def echo_result(result: Mapping[str, Any], as_json: bool) -> None:
    """Print ``result`` as one JSON object (``--json``) or as ``key: value`` lines for a person."""
    if as_json:
        typer.echo(json.dumps(result))
        return
    for k, v in result.items():
        typer.echo(f"{k:>28}: {v}")
