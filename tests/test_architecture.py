"""The architecture rule: ``twin/`` is the core and imports no transport.

The outer layers (``streams``, ``adapters``, ``replay``) and the Kafka/NETCONF client libraries
plug into the core through entry points (``twin.commands``, ``twin.sinks``); the core never
imports them, not even lazily inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TWIN = Path(__file__).resolve().parent.parent / "twin"
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
