"""Turn the SOURCE arguments (files, folders, zip archives) into named byte inputs.

Folders are walked recursively in sorted order and zip archives are read member by member, both
skipping macOS litter (``__MACOSX/``, ``._*``, ``.DS_Store``) so an archive unpacked on a Mac
replays the same as the original.

A ``x.gz`` beside an ``x`` of the same name (in one folder or one archive, or both given) is a copy
of it: when the decompressed bytes are the same it is left out and the plain file's input carries a
note saying so; when they differ the ``.gz`` input carries a ``conflict`` (the reader rejects it whole,
so its bytes reach the dead-letter topic rather than being published twice or lost).

Each input is read whole (the readers parse a file at once), so its size is bounded: a file, a zip
member (by its declared size, which ``zipfile`` enforces) or a gzip stream (by what it decompresses
to, read up to the bound and no further) larger than ``max_bytes`` raises :class:`InputTooLarge`,
which the reader's guard (:func:`guarded`) turns into one rejection of that file; the other files go
on. A few kilobytes of gzip can decompress to gigabytes.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from replay.model import Outcomes, Rejection

__all__ = ["DEFAULT_MAX_INPUT_BYTES", "Input", "InputTooLarge", "expand", "guarded", "maybe_gunzip"]

DEFAULT_MAX_INPUT_BYTES = 2 << 30
"""The most bytes one input may hold once decompressed (``twin replay --max-input-mib``): 2 GiB."""


class InputTooLarge(ValueError):
    """An input (decompressed) larger than the bound: rejected whole, the others read on."""


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


def maybe_gunzip(data: bytes, max_bytes: int = DEFAULT_MAX_INPUT_BYTES) -> bytes:
    """Decompress gzip data (by magic number, whatever the name says); pass anything else through.
    More than ``max_bytes`` decompressed raises ``InputTooLarge`` (nothing beyond is decompressed).

    >>> maybe_gunzip(gzip.compress(b"abc")), maybe_gunzip(b"abc")
    (b'abc', b'abc')
    >>> maybe_gunzip(gzip.compress(bytes(10_000)), max_bytes=4096)
    Traceback (most recent call last):
    ...
    replay.readers.files.InputTooLarge: decompresses to more than 4,096 bytes (the replay's --max-input-mib)
    """
    if data[:2] != b"\x1f\x8b":
        return data
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
        out = stream.read(max_bytes + 1)
    if len(out) > max_bytes:
        raise InputTooLarge(f"decompresses to more than {max_bytes:,} bytes (the replay's --max-input-mib)")
    return out


def _too_large(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise InputTooLarge(f"holds {size:,} bytes, more than {max_bytes:,} (the replay's --max-input-mib)")


def _file_input(path: Path, name: str, max_bytes: int) -> Input:
    def read() -> bytes:
        _too_large(path.stat().st_size, max_bytes)
        return maybe_gunzip(path.read_bytes(), max_bytes)

    return Input(name, read)


def _zip_inputs(path: Path, suffixes: Sequence[str], max_bytes: int) -> Iterator[Input]:
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
                _too_large(zf.getinfo(member).file_size, max_bytes)  # zipfile reads no more than it declares
                return maybe_gunzip(zf.read(member), max_bytes)

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
        try:
            same = inp.read() == plain.read()
        except Exception:  # an unreadable or too large copy: both stay, each reader's guard rejects its own
            continue
        if same:
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


def expand(sources: Sequence[Path], suffixes: Sequence[str], max_bytes: int = DEFAULT_MAX_INPUT_BYTES) -> list[Input]:
    """All readable inputs under ``sources``, each at most ``max_bytes`` once read; raise
    ``FileNotFoundError`` naming a missing source."""
    inputs: list[Input] = []
    for source in sources:
        if source.is_dir():
            for path in sorted(source.rglob("*")):
                rel = path.relative_to(source)
                if path.is_file() and not _is_litter(rel.parts) and _matches(path.name, suffixes):
                    inputs.append(_file_input(path, str(rel), max_bytes))
        elif source.is_file() and zipfile.is_zipfile(source) and not _matches(source.name, suffixes):
            inputs.extend(_zip_inputs(source, suffixes, max_bytes))
        elif source.is_file():
            inputs.append(_file_input(source, source.name, max_bytes))
        else:
            raise FileNotFoundError(f"source {str(source)!r} does not exist")
    return _twins(inputs)
