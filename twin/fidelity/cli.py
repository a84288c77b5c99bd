"""``twin bench bisim``: the DT-BSM benchmark (``twin.fidelity.bench``).

``twin.cli`` defers ``bisim`` to this function (``twin.deferred_commands``): importing
``twin.fidelity`` imports numba and the solvers, which only this command needs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from twin.bench_output import echo_result

__all__ = ["bench_bisim"]


def bench_bisim(
    states: Annotated[int, typer.Option(min=1, help="states of the random sparse MDP pair")] = 100,
    actions: Annotated[int, typer.Option(min=1, help="actions")] = 7,
    gamma: Annotated[float, typer.Option(min=0.0, max=1.0, help="discount, in (0, 1)")] = 0.9,
    seed: Annotated[int, typer.Option(help="random seed of the pair")] = 0,
    pot_states: Annotated[int, typer.Option(min=1, help="states of the smaller pair the POT reference runs on")] = 20,
    repeats: Annotated[int, typer.Option(min=1, help="timed calls per figure (the best is reported)")] = 3,
    threads: Annotated[int, typer.Option(min=1, help="numba threads of the timed calls (also timed with 2, or 1)")] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Time the exact DT-BSM (fast and POT reference), the TV bounds and a cold start."""
    from twin.fidelity.bench import run

    result = run(states=states, actions=actions, gamma=gamma, seed=seed, pot_states=pot_states, repeats=repeats,
                 threads=threads)
    echo_result(result, json_out)
