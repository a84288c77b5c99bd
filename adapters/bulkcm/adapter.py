"""``BulkCmAdapter``: the ``CmAdapter`` in front of an OSS that imports bulk CM files and exports its configuration.

The protocol is a file drop, the way file-based OSS northbound interfaces work: the adapter writes
one ``bulkCmConfigDataFile`` per change into ``import_dir``; the OSS imports it, writes an import
result file into ``result_dir`` (by default ``export_dir``), and writes a new full export file into
``export_dir``. Only the export says what the network runs, so a change is APPLIED when the newest
export shows the new value, REJECTED when the OSS's result file says it refused the file, and
FAILED (value unknown) when neither happens in time.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from adapters.bulkcm.fileformat import (
    DEFAULT_ATTRIBUTE_MAP,
    BulkCmFile,
    BulkCmFormatError,
    FileAttribute,
    MoWrite,
    build_bulkcm_file,
    check_structure,
    parse_bulkcm,
    parse_dn,
    parse_xml,
)
from twin.ports import AdapterUnavailable, restore_through
from twin.schemas import ChangeState, CmChangeRequest, CmChangeResult, Transport

__all__ = ["BulkCmAdapter", "ImportResult", "import_file_name", "result_file_name"]

IMPORT_PREFIX = "bulkcm-"
RESULT_SUFFIX = ".result.json"


def import_file_name(change_id: str) -> str:
    """The import file of a change: the changeId is in the name, so a repeat is recognisable.

    >>> import_file_name("0b7e7d1c-6f0a-4b8e-9a51-3f4f5d6e7a8b")
    'bulkcm-0b7e7d1c-6f0a-4b8e-9a51-3f4f5d6e7a8b.xml'
    """
    return f"{IMPORT_PREFIX}{change_id}.xml"


def result_file_name(import_name: str) -> str:
    """The OSS's import result file of the import file ``import_name``.

    >>> result_file_name("bulkcm-x.xml")
    'bulkcm-x.xml.result.json'
    """
    return f"{import_name}{RESULT_SUFFIX}"


@dataclass(frozen=True)
class ImportResult:
    """What the OSS said about one import file: ``state`` IMPORTED or REJECTED, and its reasons."""

    file: str
    state: str
    errors: tuple[str, ...]

    @classmethod
    def load(cls, path: Path) -> ImportResult | None:
        """The result in ``path``; None while it is absent or not yet a complete JSON document."""
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("state") not in ("IMPORTED", "REJECTED"):
            return None
        errors = doc.get("errors") or []
        return cls(str(doc.get("file", path.name)), str(doc["state"]),
                   tuple(str(e) for e in errors) if isinstance(errors, list) else (str(errors),))


def _newer(a: Path, b: Path) -> bool:
    """Whether file ``a`` was written after file ``b`` (False when either cannot be read)."""
    try:
        return a.stat().st_mtime_ns > b.stat().st_mtime_ns
    except OSError:
        return False


def _is_complete_name(name: str) -> bool:
    """Temp and partial files are not exports (the OSS renames a finished export into place)."""
    return not name.startswith(".") and not name.endswith((".tmp", ".part", ".partial"))


class BulkCmAdapter:
    """``twin.ports.CmAdapter`` over bulk CM files (TS 32.616 ``bulkCmConfigDataFile``).

    ``attribute_map`` (``{(twin class, twin attribute): FileAttribute}``) defaults to
    ``DEFAULT_ATTRIBUTE_MAP``; ``poll_s`` is how often the export is looked at while a change waits,
    ``apply_timeout_s`` how long ``apply`` waits for the export to show the value, ``timezone`` (a
    ``tzinfo`` or an IANA name such as ``"Europe/Paris"``) the offset written in
    ``fileFooter/@dateTime``; ``dn_prefix`` goes in ``configData/@dnPrefix`` and is cut from the
    DNs written below it; ``result_dir`` is where the OSS writes import results (``export_dir``).

    >>> import tempfile
    >>> from twin.ports import CmAdapter
    >>> d = tempfile.mkdtemp()
    >>> isinstance(BulkCmAdapter(import_dir=d, export_dir=d), CmAdapter)
    True
    """

    transport = Transport.BULKCM

    def __init__(self, import_dir: str | os.PathLike[str], export_dir: str | os.PathLike[str],
                 sender_name: str = "ran-twin", attribute_map: Mapping[tuple[str, str], FileAttribute] | None = None,
                 *, result_dir: str | os.PathLike[str] | None = None, vendor_name: str = "ran-twin",
                 dn_prefix: str = "", poll_s: float = 2.0, apply_timeout_s: float = 600.0,
                 timezone: tzinfo | str = UTC, export_glob: str = "*.xml",
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.import_dir = Path(import_dir)
        self.export_dir = Path(export_dir)
        self.result_dir = Path(result_dir) if result_dir is not None else self.export_dir
        self.sender_name = sender_name
        self.vendor_name = vendor_name
        self.dn_prefix = dn_prefix
        self.attribute_map: dict[tuple[str, str], FileAttribute] = dict(
            DEFAULT_ATTRIBUTE_MAP if attribute_map is None else attribute_map)
        if poll_s <= 0 or apply_timeout_s < 0:
            raise ValueError(f"poll_s must be > 0 and apply_timeout_s >= 0 (got {poll_s}, {apply_timeout_s})")
        self.poll_s = poll_s
        self.apply_timeout_s = apply_timeout_s
        self.timezone: tzinfo = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
        self.export_glob = export_glob
        self._sleep = sleep
        self._results: dict[str, CmChangeResult] = {}
        self._lock = threading.Lock()
        self._in_flight: dict[str, threading.Lock] = {}
        self._cache: tuple[tuple[str, int, int], BulkCmFile] | None = None

    # --- results -------------------------------------------------------------------------------------

    def _result(self, req: CmChangeRequest, state: ChangeState, **kw: Any) -> CmChangeResult:
        return CmChangeResult(change_id=req.change_id, cell_key=req.cell_key, state=state,
                              transport=Transport.BULKCM, **kw)

    def _mapping(self, req: CmChangeRequest) -> FileAttribute | None:
        return self.attribute_map.get((req.class_, req.attribute))

    # --- the export -------------------------------------------------------------------------------------

    def latest_export(self) -> BulkCmFile:
        """The newest complete export file, parsed (cached while the file is unchanged).

        ``AdapterUnavailable`` when the folder cannot be listed, holds no export, or the newest one
        is malformed (named with the parse error: an older export would be a stale answer).
        """
        try:
            candidates = [p for p in self.export_dir.glob(self.export_glob) if _is_complete_name(p.name)
                          and p.is_file()]
            stats = [(p.stat().st_mtime_ns, p.name, p) for p in candidates]
        except OSError as exc:
            raise AdapterUnavailable(f"bulk CM export folder {self.export_dir}: {exc}") from exc
        if not stats:
            raise AdapterUnavailable(f"bulk CM export folder {self.export_dir} holds no export file")
        mtime, _name, path = max(stats)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise AdapterUnavailable(f"bulk CM export {path}: {exc}") from exc
        key = (str(path), mtime, len(data))
        cached = self._cache
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            export = parse_bulkcm(data, str(path))
        except BulkCmFormatError as exc:
            raise AdapterUnavailable(f"bulk CM export {path} is malformed: {exc}") from exc
        self._cache = (key, export)
        return export

    def _local_dn(self, dn: str, export: BulkCmFile) -> str:
        prefix = export.dn_prefix
        return dn[len(prefix) + 1:] if prefix and dn.startswith(prefix + ",") else dn

    def _observe(self, mapping: FileAttribute, twin_dn: str) -> tuple[Any, BulkCmFile]:
        """(the twin's value, the export) of the attribute ``mapping`` names on ``twin_dn``.

        ``KeyError`` when the export has no such object or attribute; ``AdapterUnavailable`` as
        ``latest_export``, or when the export holds a value the codec cannot read.
        """
        export = self.latest_export()
        file_dn = self._local_dn(mapping.file_dn(twin_dn), export)
        mo = export.objects.get(file_dn)
        if mo is None:
            raise KeyError(f"no managed object {file_dn!r} in bulk CM export {export.source}")
        if mapping.file_attribute not in mo.attributes:
            raise KeyError(f"{file_dn} has no attribute {mapping.file_attribute} in bulk CM export {export.source}")
        raw = mo.attributes[mapping.file_attribute]
        try:
            return mapping.codec.decode(raw), export
        except ValueError as exc:
            raise AdapterUnavailable(f"bulk CM export {export.source}: {file_dn} {mapping.file_attribute}="
                                     f"{raw!r}: {exc}") from exc

    def read(self, dn: str) -> dict[str, Any]:
        """Current attributes of the instance ``dn`` from the newest export, in twin names and units.

        Mapped attributes are translated (including those the map keeps on another object, such
        as the tilt of a ``SectorEquipmentFunction`` on its ``CommonBeamformingFunction``); the
        object's other attributes come as the file spells them (text, or ``{member: text}``).
        ``KeyError`` when neither the object nor a mapped object of it is in the export.
        """
        export = self.latest_export()
        try:
            cls = parse_dn(dn)[-1][0]
        except ValueError as exc:
            raise KeyError(str(exc)) from exc
        out: dict[str, Any] = {}
        found = False
        mo = export.objects.get(self._local_dn(dn, export))
        if mo is not None:
            found = True
            for name, raw in mo.attributes.items():
                entry = next((m for (c, _), m in self.attribute_map.items() if c == cls and m.path is None
                              and m.file_class == mo.cls and m.file_attribute == name), None)
                twin_name = next((a for (c, a), m in self.attribute_map.items() if m is entry), name)
                out[twin_name] = self._decode(entry, raw, export, dn, name) if entry is not None else raw
        for (c, twin_name), entry in self.attribute_map.items():
            if c != cls or entry.path is None:
                continue
            other = export.objects.get(self._local_dn(entry.file_dn(dn), export))
            if other is None:
                continue
            found = True
            if entry.file_attribute in other.attributes:
                out[twin_name] = self._decode(entry, other.attributes[entry.file_attribute], export, dn, twin_name)
        if not found:
            raise KeyError(f"no managed object {dn!r} in bulk CM export {export.source}")
        return out

    @staticmethod
    def _decode(entry: FileAttribute, raw: Any, export: BulkCmFile, dn: str, name: str) -> Any:
        try:
            return entry.codec.decode(raw)
        except ValueError as exc:
            raise AdapterUnavailable(f"bulk CM export {export.source}: {dn} {name}={raw!r}: {exc}") from exc

    # --- writing -------------------------------------------------------------------------------------------

    def change_file(self, req: CmChangeRequest, current: Any = None) -> bytes:
        """The ``bulkCmConfigDataFile`` of ``req`` (``ValueError`` naming attribute and value when it cannot be one).

        ``current`` is the attribute's file form in the export now (kept members of structures).
        """
        mapping = self._mapping(req)
        if mapping is None:
            raise ValueError(f"{req.class_}.{req.attribute}={req.to!r}: attribute {req.attribute!r} of "
                             f"{req.class_} has no entry in the bulk CM attribute map")
        try:
            value = mapping.codec.encode(req.to, current)
        except ValueError as exc:
            raise ValueError(f"{req.class_}.{req.attribute}={req.to!r}: {exc}") from exc
        file_dn = mapping.file_dn(req.target_dn)
        if self.dn_prefix and file_dn.startswith(self.dn_prefix + ","):
            file_dn = file_dn[len(self.dn_prefix) + 1:]  # the prefix goes in configData/@dnPrefix
        data = build_bulkcm_file([MoWrite(file_dn, mapping.file_class, {mapping.file_attribute: value})],
                                 sender_name=self.sender_name, vendor_name=self.vendor_name,
                                 dn_prefix=self.dn_prefix, when=datetime.now(self.timezone))
        problems = check_structure(parse_xml(data, import_file_name(req.change_id)))
        if problems:  # the writer's own output must pass its own check
            raise ValueError(f"{req.class_}.{req.attribute}={req.to!r}: the file fails the structural check: "
                             + "; ".join(problems))
        return data

    def _write_atomically(self, name: str, data: bytes) -> None:
        """Temp file, fsync, rename, fsync the folder: the OSS never sees half a file."""
        self.import_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.import_dir / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.import_dir / name)
        fd = os.open(self.import_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _already_sent(self, name: str) -> bool:
        return (self.import_dir / name).exists() or (self.result_dir / result_file_name(name)).exists()

    # --- the protocol ----------------------------------------------------------------------------------------

    def apply(self, request: CmChangeRequest) -> CmChangeResult:
        """Write ``request.to`` as one import file, then wait for the export to show it (see the module doc)."""
        try:
            with self._lock:
                one = self._in_flight.setdefault(request.change_id, threading.Lock())
            with one:  # a second caller with the same changeId waits for the first one's result
                with self._lock:
                    done = self._results.get(request.change_id)
                if done is not None:
                    return done
                result = self._apply(request)
                if result.state != ChangeState.ACCEPTED:
                    with self._lock:
                        self._results[request.change_id] = result
                return result
        except Exception as exc:  # never raise into the reconciler's loop
            return self._result(request, ChangeState.FAILED, error=f"bulk CM adapter: {type(exc).__name__}: {exc}")

    def _apply(self, req: CmChangeRequest) -> CmChangeResult:
        mapping = self._mapping(req)
        name = import_file_name(req.change_id)
        current: Any = None
        observed: Any = None
        if mapping is not None:
            try:  # read first: after a restart, the export may already hold the value
                observed, export = self._observe(mapping, req.target_dn)
                current = export.objects[self._local_dn(mapping.file_dn(req.target_dn), export)].attributes.get(
                    mapping.file_attribute)
            except (KeyError, AdapterUnavailable, ValueError):
                observed = current = None
        try:
            data = self.change_file(req, current)
        except ValueError as exc:
            return self._result(req, ChangeState.REJECTED, error=str(exc),
                                device_response="not written: the bulk CM file would be invalid")
        assert mapping is not None
        to = mapping.codec.decode(mapping.codec.encode(req.to, current))
        if req.dry_run:
            return self._result(req, ChangeState.ACCEPTED, device_response=f"dry run: {name} valid, not written")
        if observed is not None and observed == to and not self._already_sent(name):
            return self._result(req, ChangeState.APPLIED, observed_value=observed, applied_at=datetime.now(UTC),
                                device_response="the export already holds the value; no file written")
        if self._already_sent(name):
            how = f"{name} was already written; not written again"
        else:
            self._write_atomically(name, data)
            how = f"{name} written"
        return self._await(req, mapping, name, to, how)

    def _await(self, req: CmChangeRequest, mapping: FileAttribute, name: str, to: Any, how: str) -> CmChangeResult:
        """Poll the OSS's result file and newest export until the value shows, the import is refused, or time is up."""
        deadline = time.monotonic() + self.apply_timeout_s
        last = "no export read yet"
        result_path = self.result_dir / result_file_name(name)
        while True:
            outcome = ImportResult.load(result_path)
            if outcome is not None and outcome.state == "REJECTED":
                reasons = "; ".join(outcome.errors) or "no reason given"
                return self._result(req, ChangeState.REJECTED, device_response=f"{how}; import rejected",
                                    error=f"{req.attribute}={req.to!r}: the OSS rejected {name}: {reasons}")
            try:
                value, export = self._observe(mapping, req.target_dn)
                if value == to:
                    return self._result(req, ChangeState.APPLIED, observed_value=value, applied_at=export.footer_time,
                                        device_response=f"{how}; export {Path(export.source).name} shows "
                                                        f"{req.attribute}={value!r}")
                last = f"export {Path(export.source).name} shows {req.attribute}={value!r}"
                if outcome is not None and _newer(Path(export.source), result_path):
                    # imported, and an export written after that shows another value: overwritten since
                    return self._result(req, ChangeState.FAILED, observed_value=value,
                                        device_response=f"{how}; the OSS reports the file imported",
                                        error=f"{req.attribute}={req.to!r}: {name} was imported but {last}, "
                                              "written after the import; value changed since (or not applied)")
            except (KeyError, AdapterUnavailable) as exc:
                last = str(exc)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                imported = " (the OSS reports the file imported)" if outcome is not None else ""
                return self._result(req, ChangeState.FAILED, device_response=f"{how}{imported}",
                                    error=f"{req.attribute}={req.to!r}: not confirmed by the export within "
                                          f"{self.apply_timeout_s:g} s; value unknown (last: {last})")
            self._sleep(min(self.poll_s, remaining))

    def verify(self, request: CmChangeRequest) -> CmChangeResult:
        """Read the attribute back from the newest export: APPLIED when it is ``request.to``, else FAILED
        naming both values (or the read failure)."""
        try:
            mapping = self._mapping(request)
            if mapping is None:
                return self._result(request, ChangeState.FAILED,
                                    error=f"read-back of {request.attribute} failed: {request.class_}."
                                          f"{request.attribute} has no entry in the bulk CM attribute map")
            try:
                value, export = self._observe(mapping, request.target_dn)
            except (KeyError, AdapterUnavailable) as exc:
                return self._result(request, ChangeState.FAILED,
                                    error=f"read-back of {request.attribute} failed: {exc}")
            try:
                to = mapping.codec.decode(mapping.codec.encode(request.to))
            except ValueError:
                to = request.to
            if value != to:
                return self._result(request, ChangeState.FAILED, observed_value=value,
                                    error=f"read-back {request.attribute}={value!r}, expected {request.to!r} "
                                          f"(export {Path(export.source).name})")
            return self._result(request, ChangeState.APPLIED, observed_value=value)
        except Exception as exc:
            return self._result(request, ChangeState.FAILED, error=f"bulk CM adapter: {type(exc).__name__}: {exc}")

    def restore(self, request: CmChangeRequest) -> CmChangeResult:
        """Put ``request.from_`` back through a file of its own (at most once: its changeId is derived)."""
        return restore_through(self.apply, request, self.transport)
