"""What the deployment files ask of the ``twin`` CLI, checked against the real command tree: a
manifest or compose service that passes an option the CLI does not have fails at start-up, which
no YAML check would see."""

from __future__ import annotations

from functools import cache
from typing import Any

import typer


@cache
def twin_command() -> Any:
    """The ``twin`` command with every plug-in's commands loaded (as ``twin.cli.main`` loads them).
    Typed ``Any``: typer vendors its own click, whose classes are private; groups have ``commands``."""
    from twin.cli import _load_plugins, app

    _load_plugins()
    return typer.main.get_command(app)


def resolve(argv: list[str]) -> tuple[Any, list[str]]:
    """The (sub)command ``argv`` names (without the leading ``twin``) and the arguments left for it.

    >>> cmd, rest = resolve(["cm", "serve", "--config", "x.toml"])
    >>> cmd.name, rest
    ('serve', ['--config', 'x.toml'])
    >>> resolve(["no-such-command"])
    Traceback (most recent call last):
    ...
    LookupError: twin has no command 'no-such-command' (argv ['no-such-command'])
    """
    command = twin_command()
    rest = list(argv)
    path = ["twin"]
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        sub = command.commands.get(rest[0])
        if sub is None:
            raise LookupError(f"{' '.join(path)} has no command {rest[0]!r} (argv {argv})")
        path.append(rest.pop(0))
        command = sub
    if hasattr(command, "commands"):
        raise LookupError(f"argv {argv} names the group {' '.join(path)}, not a command")
    return command, rest


def problems(argv: list[str]) -> list[str]:
    """Options in ``argv`` that its command does not have, and options that are given no value."""
    command, rest = resolve(argv)
    options = {name: p for p in command.params if p.param_type_name == "option"
               for name in p.opts + p.secondary_opts}
    found = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg.startswith("--"):
            name = arg.split("=", 1)[0]
            param = options.get(name)
            if param is None:
                found.append(f"{command.name}: no option {name} (has {', '.join(sorted(options))})")
            elif not param.is_flag and "=" not in arg:
                if i + 1 >= len(rest) or rest[i + 1].startswith("--"):
                    found.append(f"{command.name}: {name} needs a value")
                i += 1
        i += 1
    return found
