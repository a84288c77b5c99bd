"""Turn the SOURCE arguments (files, folders, zip archives) into named byte inputs.

Folders are walked recursively in sorted order and zip archives are read member by member, both
skipping macOS litter (``__MACOSX/``, ``._*``, ``.DS_Store``) so an archive unpacked on a Mac
replays the same as the original.
"""

from __future__ import annotations

import gzip
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["Input", "expand", "maybe_gunzip"]


@dataclass(frozen=True, slots=True)
class Input:
    """One file to read: ``name`` identifies it in reports, ``read`` returns its (decompressed) bytes."""

    name: str
    read: Callable[[], bytes]


def _is_litter(parts: Sequence[str]) -> bool:
    return any(p == "__MACOSX" or p.startswith("._") or p == ".DS_Store" for p in parts)


def _matches(name: str, suffixes: Sequence[str]) -> bool:
    lower = name.lower()
    return any(lower.endswith(s) or lower.endswith(s + ".gz") for s in suffixes)


def maybe_gunzip(data: bytes) -> bytes:
    """Decompress gzip data (by magic number, whatever the name says); pass anything else through.

    >>> maybe_gunzip(gzip.compress(b"abc")), maybe_gunzip(b"abc")
    (b'abc', b'abc')
    """
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _file_input(path: Path, name: str) -> Input:
    return Input(name, lambda: maybe_gunzip(path.read_bytes()))


def _zip_inputs(path: Path, suffixes: Sequence[str]) -> Iterator[Input]:
    with zipfile.ZipFile(path) as zf:
        members = sorted(
            m
            for m in zf.namelist()
            if not m.endswith("/") and not _is_litter(PurePosixPath(m).parts) and _matches(m, suffixes)
        )

    def reader(member: str) -> Callable[[], bytes]:
        def read() -> bytes:
            with zipfile.ZipFile(path) as zf:
                return maybe_gunzip(zf.read(member))

        return read

    for member in members:
        yield Input(f"{path.name}!{member}", reader(member))


def expand(sources: Sequence[Path], suffixes: Sequence[str]) -> list[Input]:
    """All readable inputs under ``sources``; raise ``FileNotFoundError`` naming a missing source."""
    inputs: list[Input] = []
    for source in sources:
        if source.is_dir():
            for path in sorted(source.rglob("*")):
                rel = path.relative_to(source)
                if path.is_file() and not _is_litter(rel.parts) and _matches(path.name, suffixes):
                    inputs.append(_file_input(path, str(rel)))
        elif source.is_file() and zipfile.is_zipfile(source) and not _matches(source.name, suffixes):
            inputs.extend(_zip_inputs(source, suffixes))
        elif source.is_file():
            inputs.append(_file_input(source, source.name))
        else:
            raise FileNotFoundError(f"source {str(source)!r} does not exist")
    return inputs
