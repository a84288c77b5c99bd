"""The declared public surface: every public module of the four packages states ``__all__``.

A public module is every ``.py`` file under ``twin``, ``streams``, ``replay`` and ``adapters``
whose name, and the names of the folders above it, do not start with an underscore; a package's
``__init__.py`` counts (it is the package's surface), ``__main__.py`` does not. ``__all__`` lists
what other modules and users are meant to use; everything it lists must exist, once.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("twin", "streams", "replay", "adapters")


def public_modules() -> list[str]:
    """Dotted names of the public modules of ``PACKAGES``, sorted."""
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__" or any(p.startswith("_") and p != "__init__" for p in parts):
                continue
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


MODULES = public_modules()


@pytest.fixture(scope="module")
def imported() -> dict[str, ModuleType]:
    return {name: importlib.import_module(name) for name in MODULES}


def test_the_walk_finds_the_public_modules() -> None:
    assert len(MODULES) > 50
    assert {"twin", "twin.mirror", "twin.ports", "streams.worker", "replay.readers.raca", "adapters.emulator"} \
        <= set(MODULES)
    assert not any(m.endswith("__main__") for m in MODULES)


def test_every_package_folder_is_a_regular_package() -> None:
    """No namespace packages: a folder of modules has an ``__init__.py`` to state its surface in."""
    folders = {p.parent for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    missing = sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").is_file())
    assert not missing, "package folders without __init__.py:\n  " + "\n  ".join(missing)


def test_every_public_module_states_all(imported: dict[str, ModuleType]) -> None:
    missing = [name for name, module in imported.items() if "__all__" not in vars(module)]
    assert not missing, f"{len(missing)} public module(s) without __all__:\n  " + "\n  ".join(missing)


def test_every_name_in_all_exists_once(imported: dict[str, ModuleType]) -> None:
    problems = []
    for name, module in imported.items():
        declared = vars(module).get("__all__")
        if declared is None:
            continue  # reported by test_every_public_module_states_all
        if not isinstance(declared, list | tuple) or not all(isinstance(n, str) for n in declared):
            problems.append(f"{name}: __all__ is not a list of strings: {declared!r}")
            continue
        absent = [n for n in declared if not hasattr(module, n)]
        twice = sorted({n for n in declared if declared.count(n) > 1})
        if absent:
            problems.append(f"{name}: __all__ names what the module does not define: {', '.join(absent)}")
        if twice:
            problems.append(f"{name}: __all__ lists more than once: {', '.join(twice)}")
    assert not problems, "\n  ".join(["__all__ problems:", *problems])


def test_mirror_package_re_exports_its_building_blocks() -> None:
    import twin.mirror as mirror
    from twin.mirror.cell import CellMirror
    from twin.mirror.store import CheckpointStore
    from twin.mirror.view import mirror_view

    assert sorted(mirror.__all__) == sorted(
        ["CellMirror", "ClusterMirror", "MrStats", "CheckpointStore", "PartitionState", "mirror_view"])
    assert (mirror.CellMirror, mirror.CheckpointStore, mirror.mirror_view) == (CellMirror, CheckpointStore,
                                                                                mirror_view)
