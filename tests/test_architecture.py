"""The architecture rules: ``twin/`` is the core and imports no transport; the outer layers import
each other only as the rule table allows; the core's modules import each other without cycles.

The outer layers (``streams``, ``adapters``, ``replay``) and the Kafka/NETCONF client libraries
plug into the core through entry points (``twin.commands``, ``twin.sinks``, ``twin.adapters``); the
core never imports them, not even lazily inside a function.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Collection, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TWIN = ROOT / "twin"
FORBIDDEN = frozenset({"streams", "adapters", "replay", "aiokafka", "confluent_kafka", "faust", "ncclient"})


def transport_imports(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, module) of every import of a forbidden top-level package in ``source``.

    Catches ``import x``, ``import x.y as z``, ``from x import y``, ``from x.y import z`` at any
    depth (inside functions, ``if TYPE_CHECKING:`` blocks, try/except), and
    ``importlib.import_module("x...")`` / ``__import__("x...")`` with a literal name.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        line = getattr(node, "lineno", 0)
        found += [(line, name) for name in names if name.split(".")[0] in FORBIDDEN]
    return found


def test_twin_imports_no_transport() -> None:
    files = sorted(TWIN.rglob("*.py"))
    assert len(files) > 10 and TWIN / "ingest.py" in files  # really scanning the core
    violations = [f"{path.relative_to(TWIN.parent)}:{line}: imports {module}"
                  for path in files for line, module in transport_imports(path.read_text(), str(path))]
    assert not violations, "twin/ must not import a transport:\n" + "\n".join(violations)


@pytest.mark.parametrize(("source", "expected"), [
    ("import aiokafka", ["aiokafka"]),
    ("import streams.worker as w", ["streams.worker"]),
    ("from confluent_kafka import Producer", ["confluent_kafka"]),
    ("from replay.readers import jsonl", ["replay.readers"]),
    ("def f():\n    from adapters.netconf import x\n", ["adapters.netconf"]),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import faust\n", ["faust"]),
    ("try:\n    import ncclient\nexcept ImportError:\n    pass\n", ["ncclient"]),
    ("import importlib\nimportlib.import_module('streams.kafka_io')\n", ["streams.kafka_io"]),
    ("__import__('aiokafka')", ["aiokafka"]),
    ("import os, json\nfrom twin import topics\nfrom . import cells\nfrom .streams import x\n", []),
    ("import streamsx\nimport replayer\nfrom faustian import y\n", []),
])
def test_the_scanner_finds_what_it_must(source: str, expected: list[str]) -> None:
    assert [module for _line, module in transport_imports(source)] == expected


# -- the outer layers -------------------------------------------------------------------------

# Which of the repository's top-level packages each layer may import besides itself (any depth,
# lazy imports too). ``streams`` drives the emulator (the demo, the end-to-end benchmark); the
# others stand on ``twin`` alone; nothing imports ``tests``.
LAYERS = ("twin", "streams", "replay", "adapters", "tests")
MAY_IMPORT: dict[str, frozenset[str]] = {
    "twin": frozenset(),
    "streams": frozenset({"twin", "replay"}),
    "replay": frozenset({"twin"}),
    "adapters": frozenset({"twin"}),
}


def imported_modules(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, module) of every absolute import in ``source``, at any depth, as ``transport_imports`` sees them."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (name := _import_call(node)) is not None:
            found.append((getattr(node, "lineno", 0), name))
    return found


def _import_call(node: ast.AST) -> str | None:
    """The literal module name of ``importlib.import_module("x")`` / ``__import__("x")``, else None."""
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)):
        return None
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return node.args[0].value if called in ("import_module", "__import__") else None


def layer_violations(layer: str, source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, module) of every import in ``source`` (a module of ``layer``) that the rule table forbids."""
    allowed = MAY_IMPORT[layer] | {layer}
    return [(line, module) for line, module in imported_modules(source, filename)
            if module.split(".")[0] in LAYERS and module.split(".")[0] not in allowed]


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_each_layer_imports_only_what_the_rule_table_allows(layer: str) -> None:
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files and (ROOT / layer / "__init__.py") in files  # really scanning the layer
    violations = [f"{path.relative_to(ROOT)}:{line}: imports {module}"
                  for path in files for line, module in layer_violations(layer, path.read_text(), str(path))]
    allowed = ", ".join(sorted(MAY_IMPORT[layer])) or "no other layer"
    assert not violations, f"{layer}/ may import {allowed} (README: How it fits together):\n" + "\n".join(violations)


@pytest.mark.parametrize(("layer", "source", "expected"), [
    ("replay", "import streams.kafka_io", ["streams.kafka_io"]),
    ("replay", "from twin import topics\nfrom twin.ports import open_sink\nimport replay.model\n", []),
    ("replay", "from .readers import raca\nfrom . import model\n", []),
    ("replay", "import importlib\nimportlib.import_module('adapters.emulator')\n", ["adapters.emulator"]),
    ("streams", "def f():\n    from replay.emulator import NetworkEmulator\n", []),
    ("streams", "from tests.helpers import settings_for", ["tests.helpers"]),
    ("streams", "import adapters.emulator as a", ["adapters.emulator"]),
    ("adapters", "from replay.emulator.oss import EmulatedOss", ["replay.emulator.oss"]),
    ("adapters", "class A:\n    def f(self):\n        import streams\n", ["streams"]),
    ("adapters", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from replay import x\n", ["replay"]),
    ("twin", "try:\n    import tests.helpers\nexcept ImportError:\n    pass\n", ["tests.helpers"]),
    ("twin", "__import__('streams.worker')", ["streams.worker"]),
    ("replay", "import streamsx, twinkle, testsuite\nfrom replayer import y\n", []),
])
def test_the_layer_scanner_finds_what_it_must(layer: str, source: str, expected: list[str]) -> None:
    assert [module for _line, module in layer_violations(layer, source)] == expected


def imports_twin_cli(source: str) -> bool:
    """True when ``source`` imports ``twin.cli`` in any spelling, at any depth."""
    tree = ast.parse(source)
    return any(module == "twin.cli" or module.startswith("twin.cli.") for _line, module in imported_modules(source)) \
        or any(isinstance(node, ast.ImportFrom) and node.module == "twin" and any(a.name == "cli" for a in node.names)
               for node in ast.walk(tree))


@pytest.mark.parametrize("path", ["twin/sim/cli.py", "streams/commands.py", "replay/commands.py"])
def test_command_groups_get_the_cli_as_arguments_and_do_not_import_it(path: str) -> None:
    """``twin.cli`` calls ``register(app, bench_app)``; a group importing ``twin.cli`` back would be a cycle."""
    source = (ROOT / path).read_text()
    assert "def register(app: typer.Typer, bench_app: typer.Typer) -> None:" in source
    assert not imports_twin_cli(source), f"{path} imports twin.cli"


@pytest.mark.parametrize(("source", "expected"), [
    ("def register(app):\n    from twin.cli import bench_app\n", True),
    ("from twin import cli", True),
    ("import twin.cli as c", True),
    ("__import__('twin.cli', fromlist=['app'])", True),
    ("from twin import topics\nfrom twin.sim.cli import sim_app\nimport twin.clix\n", False),
])
def test_the_twin_cli_scanner(source: str, expected: bool) -> None:
    assert imports_twin_cli(source) is expected


# -- no import cycles inside twin/ ------------------------------------------------------------


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(sources: Mapping[str, str], packages: Collection[str]) -> dict[str, dict[str, int]]:
    """``{module: {imported module: first line}}`` among the modules of ``sources``.

    ``sources`` maps every module's dotted name to its text, ``packages`` names those that are
    packages (an ``__init__.py``). ``import B`` and ``from B import x`` give the edge to ``B``, or
    to ``B.x`` where that is itself a module; relative imports are resolved against the importing
    module's package; imports at any depth count (inside functions, ``if TYPE_CHECKING:``,
    try/except), and ``importlib.import_module("B")`` / ``__import__("B")`` with a literal name.
    Imports of anything outside ``sources`` are left out.
    """
    graph: dict[str, dict[str, int]] = {}
    for module, source in sources.items():
        package = module if module in packages else module.rpartition(".")[0]
        edges = graph.setdefault(module, {})
        for node in ast.walk(ast.parse(source, module)):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in sources else origin for a in node.names]
            elif (name := _import_call(node)) is not None:
                targets = [name]
            for target in targets:
                if target in sources and target != module:
                    edges.setdefault(target, getattr(node, "lineno", 0))
    return graph


def find_cycles(graph: Mapping[str, Mapping[str, int]]) -> list[list[str]]:
    """One cycle ``[a, b, ..., a]`` per strongly connected component with more than one module.

    Tarjan's algorithm finds the components; within each, a breadth-first search from its first
    module (sorted) back to itself gives the shortest cycle through that module.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    cycles = []
    for component in sorted(components):
        members, start = set(component), component[0]
        parent: dict[str, str] = {}
        queue = [start]
        while queue and start not in parent:
            v = queue.pop(0)
            for w in sorted(graph[v]):
                if w in members and w not in parent:
                    parent[w] = v
                    queue.append(w)
        path = [start]
        while path[-1] != start or len(path) == 1:
            path.append(parent[path[-1]])
        cycles.append(path[::-1])
    return cycles


def test_twin_has_no_import_cycles() -> None:
    """No module of ``twin/`` imports, directly or through others, a module that imports it.

    A cycle is a closed path in the graph of ``import_graph``: node = module (a package is its
    ``__init__``), an edge for every import at any depth, lazy ones inside functions included, as
    a lazy import only hides a cycle from the interpreter, not from the design. An edge from a
    package's ``__init__`` to a submodule it re-exports is an ordinary edge: it closes a cycle only
    when that submodule (or one it imports) imports the package itself, which is a real cycle.
    """
    files = sorted(TWIN.rglob("*.py"))
    sources = {module_name(p): p.read_text() for p in files}
    packages = {module_name(p) for p in files if p.name == "__init__.py"}
    assert {"twin", "twin.sim", "twin.schemas"} <= packages and "twin.ingest" in sources  # the whole core
    graph = import_graph(sources, packages)
    cycles = find_cycles(graph)

    def where(a: str, b: str) -> str:
        path = TWIN.parent / (a.replace(".", "/") + ("/__init__.py" if a in packages else ".py"))
        return f"{path.relative_to(ROOT)}:{graph[a][b]}"

    described = ["\n    ".join([" -> ".join(c), *(f"{a} -> {b} ({where(a, b)})" for a, b in itertools.pairwise(c))])
                 for c in cycles]
    assert not cycles, f"{len(cycles)} import cycle(s) in twin/:\n  " + "\n  ".join(described)


SOURCES = {"twin": "", "twin.a": "", "twin.b": "", "twin.pkg": "", "twin.pkg.c": "", "twin.pkg.d": ""}
PACKAGES = {"twin", "twin.pkg"}


@pytest.mark.parametrize(("module", "source", "expected"), [
    ("twin.a", "import twin.b", ["twin.b"]),
    ("twin.a", "from twin import b", ["twin.b"]),
    ("twin.a", "from twin import __version__", ["twin"]),
    ("twin.a", "from twin.b import thing, other", ["twin.b"]),
    ("twin.a", "from . import b", ["twin.b"]),
    ("twin.a", "from .b import thing", ["twin.b"]),
    ("twin.a", "from .pkg import c, d", ["twin.pkg.c", "twin.pkg.d"]),
    ("twin.pkg.c", "from .. import a\nfrom ..b import x\nfrom . import d\n", ["twin.a", "twin.b", "twin.pkg.d"]),
    ("twin.pkg", "from . import c\nfrom .d import y\n", ["twin.pkg.c", "twin.pkg.d"]),
    ("twin.pkg", "from twin.pkg.c import x", ["twin.pkg.c"]),
    ("twin.a", "def f():\n    from twin.b import x\n", ["twin.b"]),
    ("twin.a", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from twin.pkg import c\n", ["twin.pkg.c"]),
    ("twin.a", "import importlib\nimportlib.import_module('twin.pkg.d')\n", ["twin.pkg.d"]),
    ("twin.a", "import os, numpy\nfrom twin.a import y\nfrom twin.zzz import q\nimport twinkle\n", []),
])
def test_the_graph_has_the_edges_it_must(module: str, source: str, expected: list[str]) -> None:
    graph = import_graph({**SOURCES, module: source}, PACKAGES)
    assert sorted(graph[module]) == expected


@pytest.mark.parametrize(("graph", "expected"), [
    ({"a": {"b": 1}, "b": {"c": 1}, "c": {}}, []),
    ({"a": {"b": 1}, "b": {"a": 1}}, [["a", "b", "a"]]),
    ({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1, "d": 1}, "d": {}}, [["a", "b", "c", "a"]]),
    ({"x": {"y": 1}, "y": {"x": 1}, "a": {"b": 1}, "b": {"a": 1, "x": 1}}, [["a", "b", "a"], ["x", "y", "x"]]),
    ({"a": {"b": 1, "c": 1}, "b": {"d": 1}, "c": {"d": 1}, "d": {}}, []),  # a diamond is no cycle
])
def test_find_cycles(graph: dict[str, dict[str, int]], expected: list[list[str]]) -> None:
    assert find_cycles(graph) == expected
