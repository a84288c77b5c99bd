"""Structured logs: JSON lines on stderr for machines, readable lines on a terminal.

Log lines about a cell, a cluster or a CM change carry ``cell``, ``cluster`` and ``change_id``;
``structlog.contextvars.bound_contextvars(change_id=...)`` adds them to every line of a block (the
API binds the caller's ``principal`` name per request, never a token)."""

from __future__ import annotations

import logging
import sys
import traceback
from typing import TextIO

import structlog

__all__ = ["configure", "traceback_field"]


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written, not the stream it was at ``configure``
    (an embedding program, or a test runner, may swap it for one it later closes)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "INFO", json: bool | None = None, stream: TextIO | None = None) -> None:
    """Set up structlog; ``json=None`` picks JSON unless stderr is a terminal; ``stream``: where the
    lines go (default: the process's stderr at the time of each line).

    Loggers are not cached on first use: a later ``configure`` (another level, another stream, a
    command run inside a program that already logs) applies to every logger, including those
    already used, at the cost of a few microseconds per line."""
    out = sys.stderr if stream is None else stream
    as_json = (not out.isatty()) if json is None else json
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr() if stream is None else stream),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def traceback_field(exc: BaseException) -> str:
    """``exc``'s traceback as one log field (the JSON renderer prints no ``exc_info``), its last
    8000 characters: for the failures a loop logs and goes on after.

    >>> try:
    ...     1 / 0
    ... except ZeroDivisionError as exc:
    ...     traceback_field(exc).splitlines()[-1]
    'ZeroDivisionError: division by zero'
    """
    return "".join(traceback.format_exception(exc))[-8000:]
