"""Commands named at start-up and imported only when a command line needs them.

Why: the benchmarks and the demo import most of the runtime (numpy, scipy, river, numba, the
simulator); registered eagerly, they made every ``twin`` call, ``twin cm list`` included, spend
about 1.5 s importing modules it never runs. A command group's ``register(app, bench_app)`` calls
``defer(group, name, "module:function")`` for such a command instead of importing it;
``twin.cli.main`` then calls ``load(argv, paths)``, which imports and registers the deferred
commands the arguments can reach:

- the command the arguments name (``twin bench e2e ...`` imports ``e2e`` only);
- every deferred command of a group when the arguments name one the group does not know, so
  click's "No such command" and its suggestions still see them all;
- for a listing of a group (``twin --help``, ``twin bench``), its deferred commands appear by name
  with the first line of their docstring, read from the module's source without importing it.

``load(None, paths)`` imports every deferred command (tests; shell completion).

>>> import typer
>>> bench = typer.Typer()
>>> deferred = DeferredCommands()
>>> deferred.defer(bench, "fidelity", "twin.no_such_module:run")
>>> deferred.defer(bench, "short-help", "twin.deferred_commands:short_help")
>>> deferred.load(["bench", "short-help", "--json"], {id(bench): ("bench",)})  # that one only
>>> [c.name for c in bench.registered_commands]
['short-help']
>>> deferred.load(["bench", "fidelity", "--seed", "1"], {id(bench): ("bench",)})
Traceback (most recent call last):
...
ModuleNotFoundError: No module named 'twin.no_such_module'
>>> deferred.defer(bench, "fidelity", "no colon")
Traceback (most recent call last):
...
ValueError: deferred command target 'no colon' is not 'module:function'
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

__all__ = ["DeferredCommands", "defer", "load", "short_help"]


@dataclass(frozen=True)
class _Deferred:
    group: typer.Typer
    name: str
    target: str  # "package.module:function"


def _split(target: str) -> tuple[str, str]:
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"deferred command target {target!r} is not 'module:function'")
    return module, attr


def short_help(target: str) -> str:
    """The first line of the target function's docstring, read from its module's source (no import).

    >>> short_help("twin.deferred_commands:short_help")
    "The first line of the target function's docstring, read from its module's source (no import)."
    >>> short_help("twin.deferred_commands:nothing_here")
    ''
    """
    module, attr = _split(target)
    source = _source(module)
    if source is None:
        return ""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == attr:
            doc = (ast.get_docstring(node) or "").strip()
            return doc.splitlines()[0] if doc else ""
    return ""


def _source(module: str) -> Path | None:
    """The module's source file, found without importing its packages (``find_spec`` of a dotted
    name imports the parents, and ``twin.fidelity``'s ``__init__`` is what deferring avoids)."""
    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    dirs = [Path(d) for d in spec.submodule_search_locations or ()]
    for part in rest[:-1]:
        dirs = [d / part for d in dirs if (d / part / "__init__.py").is_file()]
    for d in dirs:
        for candidate in (d / f"{rest[-1]}.py", d / rest[-1] / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _leading_words(argv: Sequence[str]) -> list[str]:
    """The command path the arguments name: the words before the first option."""
    words: list[str] = []
    for arg in argv:
        if arg.startswith("-"):
            break
        words.append(arg)
    return words


def _known(group: typer.Typer) -> set[str]:
    names = {c.name for c in group.registered_commands if c.name}
    return names | {g.name for g in group.registered_groups if g.name}


def _drop(group: typer.Typer, name: str) -> None:
    group.registered_commands[:] = [c for c in group.registered_commands if c.name != name]


class DeferredCommands:
    """Deferred commands by group and name; see the module's docstring."""

    def __init__(self) -> None:
        self._items: dict[tuple[int, str], _Deferred] = {}

    def defer(self, group: typer.Typer, name: str, target: str) -> None:
        """Name ``target`` ("module:function") as command ``name`` of ``group`` (idempotent)."""
        _split(target)
        if name in _known(group) and (id(group), name) not in self._items:
            return  # already registered for real (by an earlier load)
        self._items[(id(group), name)] = _Deferred(group, name, target)

    def load(self, argv: Sequence[str] | None, paths: Mapping[int, tuple[str, ...]]) -> None:
        """Register the deferred commands ``argv`` can reach (all of them when ``argv`` is None).

        ``paths`` gives each group's words on the command line, by ``id`` of the group (the root
        app: ``()``); a group missing from it has all its deferred commands imported.
        """
        words = None if argv is None else _leading_words(argv)
        for key, item in list(self._items.items()):
            path = paths.get(id(item.group))
            if words is None or path is None:
                self._register(key, item)
            elif len(words) < len(path) or tuple(words[:len(path)]) != path:
                continue  # the arguments are elsewhere in the tree
            elif len(words) == len(path):
                self._list(item)  # a listing of this group
            elif (asked := words[len(path)]) == item.name or (
                    asked not in _known(item.group) and (id(item.group), asked) not in self._items):
                self._register(key, item)

    def _register(self, key: tuple[int, str], item: _Deferred) -> None:
        module, attr = _split(item.target)
        command: Callable[..., Any] = getattr(importlib.import_module(module), attr)
        del self._items[key]
        _drop(item.group, item.name)  # its stand-in, if a listing showed it
        item.group.command(item.name)(command)

    def _list(self, item: _Deferred) -> None:
        """A stand-in that shows the command in its group's listing; the command stays deferred."""

        def listed_only() -> None:  # pragma: no cover - the arguments that would run it import the real one
            raise typer.Exit(2)

        _drop(item.group, item.name)
        item.group.command(item.name, help=short_help(item.target), add_help_option=False)(listed_only)


_registry = DeferredCommands()
defer = _registry.defer
load = _registry.load
