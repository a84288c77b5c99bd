"""``python -m streams.run_cli run ...``: the ``twin run`` command alone.

``twin run`` starts its re-keying member this way. The full ``twin`` command line registers every
command group when it starts, and their imports (the simulator, the gap learners' river, numba for
DT-BSM, the emulator) hold about 250 MB that a process which only validates and re-keys never uses
(``tests/integration/test_worker_processes.py`` checks the member's memory map).
"""

from __future__ import annotations

from collections.abc import Sequence

import typer

from streams.commands import run_command
from twin.logs import configure

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    configure()  # as twin.cli.main: log lines to stderr
    app = typer.Typer(add_completion=False, no_args_is_help=True)

    @app.callback()
    def _twin() -> None:
        """The ``twin run`` command alone (``twin --help`` lists the others)."""

    app.command("run")(run_command)
    app(args=None if argv is None else list(argv), prog_name="twin")


if __name__ == "__main__":
    main()
