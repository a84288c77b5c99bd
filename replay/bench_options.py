"""What the emulator benchmarks' command lines share: the shipped scenarios and the check of
``--scenario``.

>>> chosen_scenarios(None) == SHIPPED_SCENARIOS
True
>>> chosen_scenarios(["fault-midrun"])
('fault-midrun',)
"""

from __future__ import annotations

import typer

__all__ = ["SHIPPED_SCENARIOS", "chosen_scenarios"]

SHIPPED_SCENARIOS = ("urban-hotspots", "suburban-quiet", "fault-midrun")


def chosen_scenarios(scenario: list[str] | None) -> tuple[str, ...]:
    """The scenarios a ``--scenario`` option names (all shipped ones when none); a name that is not
    shipped ends the command with exit code 2 and a message naming it and the shipped ones."""
    chosen = tuple(scenario or SHIPPED_SCENARIOS)
    bad = [name for name in chosen if name not in SHIPPED_SCENARIOS]
    if bad:
        typer.echo(f"error: --scenario {bad[0]!r} is not a shipped scenario ({', '.join(SHIPPED_SCENARIOS)})",
                   err=True)
        raise typer.Exit(2)
    return chosen
