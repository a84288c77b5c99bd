"""A small file-importing OSS for the bulk CM adapter's tests.

It stands in for an OSS because none can run here: no bulk-CM OSS (vendor OSS, ONAP, ...)
installs on the development machines. It does what such an OSS does with a file drop, in a
background thread: it watches ``import_dir``, reads each new ``*.xml`` file with the 32.615 rules
(hardened parser, structural check), refuses the whole file when an object's DN is unknown, a
modifier is not ``update``, an attribute is not writable or a value is out of range (a result file
naming DN, attribute and value), otherwise applies it to its in-memory tree and writes a new full
export (temp file, then rename) into ``export_dir``. Its export writer is its own lxml code, not
the adapter's, so the adapter's reader is tested against a second writer.

Fault switches: ``importing = False`` (files wait in the folder), ``truncate_exports = True``
(the next exports are cut in half and written in place, as a crashed exporter leaves them),
``reject_all = True`` (every file refused).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lxml import etree

from adapters.bulkcm.fileformat import CONFIG_NS, NN, XN, BulkCmFormatError, parse_bulkcm

__all__ = ["BulkCmPeerOss", "PeerMo", "running_peer"]

GENERIC = {"SubNetwork", "ManagedElement"}
QOFFSET = {f"dB{n}" for n in (-24, -22, -20, -18, -16, -14, -12, -10, -8, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6,
                              8, 10, 12, 14, 16, 18, 20, 22, 24)}
CIO_MEMBERS = ("rsrpOffsetSSB", "rsrqOffsetSSB", "sinrOffsetSSB", "rsrpOffsetCSI-RS", "rsrqOffsetCSI-RS",
               "sinrOffsetCSI-RS")


@dataclass
class PeerMo:
    """One object of the OSS's tree."""

    cls: str
    attributes: dict[str, Any] = field(default_factory=dict)


class BulkCmPeerOss:
    """The stand-in OSS: ``cells`` NR cells under ``SubNetwork=Emulator,ManagedElement=gnb-001``."""

    def __init__(self, import_dir: Path, export_dir: Path, cells: int = 3, poll_s: float = 0.01,
                 max_power_mw: int = 80_000, neighbours: int = 2) -> None:
        self.import_dir = import_dir
        self.export_dir = export_dir
        self.poll_s = poll_s
        self.max_power_mw = max_power_mw
        self.importing = True
        self.truncate_exports = False
        self.reject_all = False
        self.imported: list[str] = []
        self.tree: dict[str, PeerMo] = build_tree(cells, neighbours)
        self._seen: set[str] = set()
        self._seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
        import_dir.mkdir(parents=True, exist_ok=True)
        export_dir.mkdir(parents=True, exist_ok=True)

    # --- life cycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self.write_export()
        self._thread = threading.Thread(target=self._run, name="bulkcm-peer-oss", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.importing:
                    self.import_pending()
            except Exception as exc:  # keep the OSS up; the tests look at .errors
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.poll_s)

    # --- importing ------------------------------------------------------------------------------------

    def import_pending(self) -> None:
        """Import every complete file not imported yet, oldest first."""
        files = sorted((p for p in self.import_dir.glob("*.xml") if not p.name.startswith(".")),
                       key=lambda p: (p.stat().st_mtime_ns, p.name))
        for path in files:
            if path.name in self._seen or (self.export_dir / f"{path.name}.result.json").exists():
                continue
            self._seen.add(path.name)
            errors = self.check(path)
            if not errors:
                self.imported.append(path.name)
                self.write_export()
            self._write_result(path.name, errors)

    def check(self, path: Path) -> list[str]:
        """Validate and, when the whole file is valid, apply it; the reasons it was refused otherwise."""
        if self.reject_all:
            return [f"{path.name}: imports are suspended by the operator"]
        try:
            doc = parse_bulkcm(path.read_bytes(), path.name, strict=True)
        except BulkCmFormatError as exc:
            return [str(exc)]
        errors: list[str] = []
        staged: list[tuple[PeerMo, dict[str, Any]]] = []
        for dn, mo in doc.objects.items():
            full = f"{doc.dn_prefix},{dn}" if doc.dn_prefix else dn
            if mo.modifier is None and not mo.attributes:
                continue  # a containing object
            if mo.modifier != "update":
                errors.append(f"{full}: modifier {mo.modifier!r} is not supported (only update)")
                continue
            target = self.tree.get(full)
            if target is None or target.cls != mo.cls:
                errors.append(f"{full}: unknown managed object")
                continue
            new: dict[str, Any] = {}
            for name, value in mo.attributes.items():
                problem = self.value_problem(mo.cls, name, value, target.attributes.get(name))
                if problem:
                    errors.append(f"{full}: {name}={value!r}: {problem}")
                else:
                    new[name] = value
            staged.append((target, new))
        if not errors:
            for target, new in staged:
                for name, value in new.items():
                    old = target.attributes.get(name)
                    target.attributes[name] = {**old, **value} if isinstance(old, dict) else value
        return errors

    def value_problem(self, cls: str, name: str, value: Any, old: Any) -> str | None:
        """Why ``value`` cannot be written to ``cls.name`` (None when it can)."""
        if (cls, name) == ("NRSectorCarrier", "configuredMaxTxPower"):
            return _int_problem(value, 1, self.max_power_mw, "mW")
        if (cls, name) == ("CommonBeamformingFunction", "digitalTilt"):
            return _int_problem(value, -900, 900, "0.1 degree")
        if (cls, name) == ("CommonBeamformingFunction", "digitalAzimuth"):
            return _int_problem(value, -1800, 1800, "0.1 degree")
        if (cls, name) == ("NRCellRelation", "cellIndividualOffset"):
            if not isinstance(value, dict) or not value:
                return "must be a structure of offsets"
            bad = {k: v for k, v in value.items() if k not in CIO_MEMBERS or v not in QOFFSET}
            return f"members {bad} are not QOffsetRange offsets" if bad else None
        return "not writable through bulk CM in this OSS"

    def _write_result(self, name: str, errors: list[str]) -> None:
        doc = {"file": name, "state": "REJECTED" if errors else "IMPORTED", "errors": errors,
               "finishedAt": datetime.now(UTC).isoformat()}
        _atomic_write(self.export_dir / f"{name}.result.json", json.dumps(doc).encode())

    # --- exporting ------------------------------------------------------------------------------------

    def export_bytes(self) -> bytes:
        """The full configuration as a ``bulkCmConfigDataFile`` (no modifiers)."""
        root = etree.Element(f"{{{CONFIG_NS}}}bulkCmConfigDataFile", nsmap={None: CONFIG_NS, "xn": XN, "nn": NN})
        etree.SubElement(root, f"{{{CONFIG_NS}}}fileHeader", fileFormatVersion="32.615 V9.2",
                         senderName="peer-oss", vendorName="test-peer")
        config = etree.SubElement(root, f"{{{CONFIG_NS}}}configData", dnPrefix="")
        made: dict[str, etree._Element] = {}
        for dn, mo in self.tree.items():  # parents come before children in the tree's order
            parent_dn, _, rdn = dn.rpartition(",")
            cls, _, ident = rdn.partition("=")
            ns = XN if cls in GENERIC else NN
            el = etree.SubElement(made[parent_dn] if parent_dn else config, f"{{{ns}}}{cls}", id=ident)
            if mo.attributes:
                attrs = etree.SubElement(el, f"{{{ns}}}attributes")
                for name, value in mo.attributes.items():
                    a = etree.SubElement(attrs, f"{{{ns}}}{name}")
                    if isinstance(value, dict):
                        for member, text in value.items():
                            etree.SubElement(a, f"{{{ns}}}{member}").text = str(text)
                    else:
                        a.text = str(value)
            made[dn] = el
        etree.SubElement(root, f"{{{CONFIG_NS}}}fileFooter", dateTime=datetime.now(UTC).isoformat(timespec="seconds"))
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))

    def write_export(self) -> Path:
        """A new export file named by time and sequence; cut in half and written in place when truncating."""
        self._seq += 1
        path = self.export_dir / f"export-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{self._seq:06d}.xml"
        data = self.export_bytes()
        if self.truncate_exports:
            path.write_bytes(data[: len(data) // 2])
        else:
            _atomic_write(path, data)
        return path

    def value(self, dn: str, name: str) -> Any:
        """What the OSS's tree holds (for the tests' assertions)."""
        return self.tree[dn].attributes.get(name)


def _int_problem(value: Any, lo: int, hi: int, unit: str) -> str | None:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return "not an integer"
    return None if lo <= n <= hi else f"outside {lo}..{hi} {unit}"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def build_tree(cells: int, neighbours: int = 2) -> dict[str, PeerMo]:
    """The initial configuration: one gNB with ``cells`` cells, each with carrier, beamforming and relations."""
    me = "SubNetwork=Emulator,ManagedElement=gnb-001"
    du, cu = f"{me},GNBDUFunction=1", f"{me},GNBCUCPFunction=1"
    tree: dict[str, PeerMo] = {
        "SubNetwork=Emulator": PeerMo("SubNetwork"),
        me: PeerMo("ManagedElement", {"userLabel": "gnb-001"}),
        du: PeerMo("GNBDUFunction", {"gnbDuId": 1, "gnbId": 1, "gnbIdLength": 28}),
    }
    for i in range(1, cells + 1):
        tree[f"{du},NRCellDU={i}"] = PeerMo("NRCellDU", {"cellLocalId": i, "nRPCI": i % 1008, "arfcnDL": 630000,
                                                         "bSChannelBwDL": 100, "administrativeState": "UNLOCKED"})
        tree[f"{du},NRSectorCarrier={i}"] = PeerMo(
            "NRSectorCarrier", {"txDirection": "DL_AND_UL", "configuredMaxTxPower": 20000, "arfcnDL": 630000})
        tree[f"{du},NRSectorCarrier={i},CommonBeamformingFunction=1"] = PeerMo(
            "CommonBeamformingFunction", {"coverageShape": 1, "digitalTilt": 40, "digitalAzimuth": 0})
    tree[cu] = PeerMo("GNBCUCPFunction", {"gnbId": 1, "gnbIdLength": 28})
    for i in range(1, cells + 1):
        tree[f"{cu},NRCellCU={i}"] = PeerMo("NRCellCU", {"cellLocalId": i})
        for k in range(1, min(neighbours, cells - 1) + 1):
            j = (i - 1 + k) % cells + 1
            tree[f"{cu},NRCellCU={i},NRCellRelation={j}"] = PeerMo("NRCellRelation", {
                "cellIndividualOffset": dict.fromkeys(CIO_MEMBERS, "dB0"),
                "adjacentNRCellRef": f"{cu},NRCellCU={j}", "isHOAllowed": "true"})
    return tree


@contextmanager
def running_peer(import_dir: Path, export_dir: Path, **kw: Any) -> Iterator[BulkCmPeerOss]:
    """The peer started for a test and stopped after it."""
    peer = BulkCmPeerOss(import_dir, export_dir, **kw)
    peer.start()
    try:
        yield peer
    finally:
        peer.stop()


def wait_for(predicate: Any, timeout_s: float = 5.0) -> bool:
    """Poll ``predicate`` until true or the time is up (for tests that wait on the peer)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())
