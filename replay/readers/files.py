"""Turn the SOURCE arguments (files, folders, zip archives) into named byte inputs.

Folders are walked recursively in sorted order and zip archives are read member by member, both
skipping macOS litter (``__MACOSX/``, ``._*``, ``.DS_Store``) so an archive unpacked on a Mac
replays the same as the original.

A ``x.gz`` beside an ``x`` of the same name (in one folder or one archive, or both given) is a copy
of it: when the decompressed bytes are the same it is left out and the plain file's input carries a
note saying so; when they differ the ``.gz`` input carries a ``conflict`` (the reader rejects it whole,
so its bytes reach the dead-letter topic rather than being published twice or lost).
"""

from __future__ import annotations

import gzip
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from replay.model import Outcomes, Rejection

__all__ = ["Input", "expand", "guarded", "maybe_gunzip"]


@dataclass(frozen=True, slots=True)
class Input:
    """One file to read: ``name`` identifies it in reports, ``read`` returns its (decompressed) bytes."""

    name: str
    read: Callable[[], bytes]
    notes: tuple[str, ...] = ()  # things the reader should report as notices
    conflict: str | None = None  # set: the reader rejects this input whole with this reason


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
    try:
        with zipfile.ZipFile(path) as zf:
            members = sorted(
                m
                for m in zf.namelist()
                if not m.endswith("/") and not _is_litter(PurePosixPath(m).parts) and _matches(m, suffixes)
            )
    except (zipfile.BadZipFile, OSError) as exc:  # a cut central directory: the reader rejects it whole
        problem = exc

        def unreadable() -> bytes:
            raise problem

        yield Input(path.name, unreadable)
        return

    def reader(member: str) -> Callable[[], bytes]:
        def read() -> bytes:
            with zipfile.ZipFile(path) as zf:
                return maybe_gunzip(zf.read(member))

        return read

    for member in members:
        yield Input(f"{path.name}!{member}", reader(member))


def guarded(inp: Input, outcomes: Outcomes, topic: str) -> Outcomes:
    """``outcomes`` of ``inp``, ended by one rejection naming the input when reading or parsing it
    fails in a way its reader did not foresee (a truncated gzip or zip member, a corrupt Parquet page,
    an unknown XML encoding, a pathological nesting): what it yielded before stands, the rest of the
    file is dead-lettered as one unit, and the replay goes on with the other inputs instead of ending
    in a traceback.

    >>> def broken():
    ...     yield Rejection("f", "line 1", "bad", "schema", b"x", "t")
    ...     raise EOFError("Compressed file ended before the end-of-stream marker was reached")
    >>> [r.describe() for r in guarded(Input("f.csv.gz", bytes), broken(), "t")]  # doctest: +NORMALIZE_WHITESPACE
    ['f line 1: bad', 'f.csv.gz file: cannot be read further (EOFError: Compressed file ended before the
     end-of-stream marker was reached); what was read before stands']
    """
    try:
        yield from outcomes
    except Exception as exc:  # whatever the input does to its reader, it is reported, not raised
        yield Rejection(inp.name, "file", f"cannot be read further ({type(exc).__name__}: {exc}); what was read "
                        "before stands", "unreadable", b"", topic)


def _twins(inputs: list[Input]) -> list[Input]:
    """Leave out ``x.gz`` copies of an ``x`` among ``inputs``; mark differing ones as conflicts."""
    by_name = {i.name: n for n, i in enumerate(inputs)}
    out = list(inputs)
    drop: set[int] = set()
    for n, inp in enumerate(inputs):
        if not inp.name.lower().endswith(".gz"):
            continue
        plain_at = by_name.get(inp.name[:-3])
        if plain_at is None:
            continue
        plain = inputs[plain_at]
        if inp.read() == plain.read():
            drop.add(n)
            note = f"{inp.name} left out: the same content as {plain.name}, compressed (read once)"
            out[plain_at] = replace(out[plain_at], notes=(*out[plain_at].notes, note))
        else:
            conflict = (
                f"{inp.name} and {plain.name} have one name but different content: {plain.name} was "
                "read, this copy is dead-lettered rather than published twice"
            )
            out[n] = replace(inp, conflict=conflict)
    return [i for n, i in enumerate(out) if n not in drop]


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
    return _twins(inputs)
