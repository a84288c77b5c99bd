"""The bulk CM file (TS 32.616 / 32.615 ``bulkCmConfigDataFile``): DNs, the vendor attribute map,
the writer, a structural check and a hardened reader.

One module for both directions so that what the adapter writes and what it reads back from the
OSS's export follow the same rules. The files are plain XML in the 32.615 ``configData``
namespace; the NRM classes sit in the generic NRM namespace (``xn``, TS 28.623) or the NR NRM
namespace (``nn``, TS 28.541), and each class's ``attributes`` element is in its class's own
namespace (the NR NRM XSD declares it locally with ``elementFormDefault="qualified"``).

>>> dn = "SubNetwork=Emulator,ManagedElement=gnb-001,GNBDUFunction=1,NRSectorCarrier=2"
>>> data = build_bulkcm_file([MoWrite(dn, "NRSectorCarrier", {"configuredMaxTxPower": "15849"})],
...     sender_name="ran-twin", when=datetime(2026, 1, 1, tzinfo=UTC))
>>> check_structure(parse_xml(data, "change.xml"))
[]
>>> mo = parse_bulkcm(data, "change.xml").objects[dn]
>>> (mo.cls, mo.modifier, mo.attributes)
('NRSectorCarrier', 'update', {'configuredMaxTxPower': '15849'})
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from lxml import etree

__all__ = [
    "CONFIG_NS", "DEFAULT_ATTRIBUTE_MAP", "FILE_FORMAT_VERSION", "GENERIC_CLASSES", "NN", "NR_CLASSES", "QOFFSET_DB",
    "XN", "BulkCmFile", "BulkCmFormatError", "Codec", "FileAttribute", "IntCodec", "MoData", "MoWrite", "QOffsetCodec",
    "build_bulkcm_file", "check_structure", "class_namespace", "join_dn", "parse_bulkcm", "parse_dn", "parse_xml",
]

CONFIG_NS = "http://www.3gpp.org/ftp/specs/archive/32_series/32.615#configData"
"""Namespace of ``bulkCmConfigDataFile``, ``fileHeader``, ``configData`` and ``fileFooter``."""
XN = "http://www.3gpp.org/ftp/specs/archive/28_series/28.623#genericNrm"
"""Generic NRM (TS 28.623): ``SubNetwork``, ``ManagedElement``, ``VsDataContainer``."""
NN = "http://www.3gpp.org/ftp/specs/archive/28_series/28.541#nrNrm"
"""NR NRM (TS 28.541): ``GNBDUFunction``, ``NRSectorCarrier``, ``NRCellRelation``, ..."""
FILE_FORMAT_VERSION = "32.615 V9.2"
"""What the writer puts in ``fileHeader/@fileFormatVersion`` (not checked against the standard's list)."""

GENERIC_CLASSES = frozenset({"SubNetwork", "ManagedElement", "MeContext", "ManagementNode", "VsDataContainer"})
NR_CLASSES = frozenset({
    "GNBDUFunction", "GNBCUCPFunction", "GNBCUUPFunction", "NRCellDU", "NRCellCU", "NRSectorCarrier",
    "CommonBeamformingFunction", "Beam", "BWP", "NRCellRelation", "NRFreqRelation", "NRFrequency", "RRMPolicyRatio",
    "ExternalGNBCUCPFunction", "ExternalNRCellCU", "EUtranCellRelation", "EUtranFreqRelation", "DMROFunction",
    "DLBOFunction", "DESManagementFunction", "DPCIConfigurationFunction", "CPCIConfigurationFunction", "NRNetwork",
})
MODIFIERS = frozenset({"create", "delete", "update"})
QOFFSET_DB = (-24, -22, -20, -18, -16, -14, -12, -10, -8, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 14,
              16, 18, 20, 22, 24)
"""``QOffsetRange`` (dB) as the YANG ``_3gpp-common-yang-types`` defines it; the NR NRM XSD spells
them ``dB-24``..``dB24``."""

_CLASS = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_ID = re.compile(r"^[^,=\s][^,=]*$")


class BulkCmFormatError(ValueError):
    """A file is not well-formed XML or not a ``bulkCmConfigDataFile`` of the shape this package reads."""


def parse_dn(dn: str) -> list[tuple[str, str]]:
    """``[(class, id), ...]`` of a DN ``Class=id,Class=id``; ``ValueError`` for anything else.

    Escaped commas or equals signs inside ids are not supported (the twin's DNs have none).

    >>> parse_dn("SubNetwork=Emulator,ManagedElement=gnb-001")
    [('SubNetwork', 'Emulator'), ('ManagedElement', 'gnb-001')]
    >>> parse_dn("ManagedElement")
    Traceback (most recent call last):
    ...
    ValueError: DN 'ManagedElement': 'ManagedElement' is not Class=id
    """
    if not dn:
        raise ValueError("empty DN")
    rdns: list[tuple[str, str]] = []
    for part in dn.split(","):
        cls, sep, ident = part.strip().partition("=")
        if not sep or not _CLASS.match(cls) or not _ID.match(ident) or ident != ident.strip():
            raise ValueError(f"DN {dn!r}: {part!r} is not Class=id")
        rdns.append((cls, ident))
    return rdns


def join_dn(rdns: Iterable[tuple[str, str]]) -> str:
    """The DN text of ``[(class, id), ...]`` (inverse of ``parse_dn``)."""
    return ",".join(f"{cls}={ident}" for cls, ident in rdns)


def class_namespace(cls: str) -> str:
    """The namespace an NRM class's element is written in; ``ValueError`` for a class this package does not know."""
    if cls in GENERIC_CLASSES:
        return XN
    if cls in NR_CLASSES:
        return NN
    raise ValueError(f"class {cls!r} has no bulk CM namespace in this adapter (known: generic NRM "
                     f"{sorted(GENERIC_CLASSES)}, NR NRM {sorted(NR_CLASSES)})")


# --- values -----------------------------------------------------------------------------------------

FileValue = str | dict[str, str]
"""An attribute as the file carries it: a leaf's text, or a structure's ``{member: text}``."""


class Codec(Protocol):
    """Converts one attribute between the twin's value and unit and the file's text."""

    def encode(self, value: Any, current: Any = None) -> FileValue:
        """The file form of ``value`` (``ValueError`` naming the problem); ``current`` is the value the
        export holds now, for structures whose other members must be kept."""
        ...

    def decode(self, raw: Any) -> Any:
        """The twin's value of the file form ``raw`` (``ValueError`` when it is not one)."""
        ...

    def describe(self) -> str:
        """One line for the docs: type, range, unit."""
        ...


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or (isinstance(value, float)
                                                                          and not value.is_integer()):
        raise ValueError(f"value {value!r} is not an integer")
    return int(value)


@dataclass(frozen=True)
class IntCodec:
    """An integer leaf in ``[lo, hi]`` (the twin's unit is the file's unit).

    >>> IntCodec(-900, 900, "0.1 degree").encode(45.0)
    '45'
    >>> IntCodec(-900, 900, "0.1 degree").encode(1200)
    Traceback (most recent call last):
    ...
    ValueError: value 1200 outside -900..900 (0.1 degree)
    """

    lo: int
    hi: int
    unit: str

    def encode(self, value: Any, current: Any = None) -> FileValue:
        n = _as_int(value)
        if not self.lo <= n <= self.hi:
            raise ValueError(f"value {value!r} outside {self.lo}..{self.hi} ({self.unit})")
        return str(n)

    def decode(self, raw: Any) -> Any:
        if not isinstance(raw, str) or not re.fullmatch(r"\s*[-+]?\d+\s*", raw):
            raise ValueError(f"{raw!r} is not an integer")
        return int(raw)

    def describe(self) -> str:
        return f"integer {self.lo}..{self.hi}, {self.unit}"


@dataclass(frozen=True)
class QOffsetCodec:
    """The twin's CIO in dB as one member of the ``cellIndividualOffset`` structure (``dB-24``..``dB24``).

    The other members are copied from the export's current structure, so writing the structure
    whole changes only ``member``.

    >>> QOffsetCodec().encode(2, {"rsrpOffsetSSB": "dB0", "rsrqOffsetSSB": "dB1"})
    {'rsrpOffsetSSB': 'dB2', 'rsrqOffsetSSB': 'dB1'}
    >>> QOffsetCodec().decode({"rsrpOffsetSSB": "dB-3"})
    -3
    >>> QOffsetCodec().encode(7)
    Traceback (most recent call last):
    ...
    ValueError: value 7 is not a QOffsetRange value (dB: -24..24, steps of 1 within ±6, else 2)
    """

    member: str = "rsrpOffsetSSB"

    def encode(self, value: Any, current: Any = None) -> FileValue:
        if isinstance(value, Mapping):
            if set(value) != {self.member}:
                raise ValueError(f"value {value!r}: only the member {self.member!r} can be written")
            value = value[self.member]
        n = _as_int(value)
        if n not in QOFFSET_DB:
            raise ValueError(f"value {value!r} is not a QOffsetRange value (dB: -24..24, steps of 1 within ±6, else 2)")
        kept = {k: v for k, v in current.items() if isinstance(v, str)} if isinstance(current, Mapping) else {}
        return {**kept, self.member: f"dB{n}"}

    def decode(self, raw: Any) -> Any:
        text = raw.get(self.member) if isinstance(raw, Mapping) else None
        m = re.fullmatch(r"\s*dB(-?\d+)\s*", text) if isinstance(text, str) else None
        if m is None or int(m.group(1)) not in QOFFSET_DB:
            raise ValueError(f"{raw!r} has no {self.member} of dB-24..dB24")
        return int(m.group(1))

    def describe(self) -> str:
        return f"structure member {self.member}, QOffsetRange dB (-24..24), written dB<n>"


@dataclass(frozen=True)
class FileAttribute:
    """Where the file keeps one twin attribute: class, attribute, value codec, and the DN rewrite.

    ``path`` replaces the last RDN of the twin's DN (``{id}`` is that RDN's id); None keeps the DN and
    only renames the class when ``file_class`` differs.

    >>> tilt = DEFAULT_ATTRIBUTE_MAP[("SectorEquipmentFunction", "digitalTilt")]
    >>> tilt.file_dn("SubNetwork=Emulator,ManagedElement=gnb-001,SectorEquipmentFunction=2")
    'SubNetwork=Emulator,ManagedElement=gnb-001,GNBDUFunction=1,NRSectorCarrier=2,CommonBeamformingFunction=1'
    """

    file_class: str
    file_attribute: str
    codec: Codec
    path: str | None = None

    def file_dn(self, twin_dn: str) -> str:
        """The DN of the file object that carries the attribute of the twin's instance ``twin_dn``."""
        rdns = parse_dn(twin_dn)
        parent, (_, ident) = rdns[:-1], rdns[-1]
        if self.path is None:
            rdns_out = [*parent, (self.file_class, ident)]
        else:
            rdns_out = [*parent, *parse_dn(self.path.format(id=ident))]
        if rdns_out[-1][0] != self.file_class:
            raise ValueError(f"map entry path {self.path!r} does not end in a {self.file_class} instance")
        return join_dn(rdns_out)


AttributeMap = Mapping[tuple[str, str], FileAttribute]

DEFAULT_ATTRIBUTE_MAP: dict[tuple[str, str], FileAttribute] = {
    ("NRSectorCarrier", "configuredMaxTxPower"):
        FileAttribute("NRSectorCarrier", "configuredMaxTxPower", IntCodec(0, 2**31 - 1, "mW")),
    ("SectorEquipmentFunction", "digitalTilt"):
        FileAttribute("CommonBeamformingFunction", "digitalTilt", IntCodec(-900, 900, "0.1 degree"),
                      path="GNBDUFunction=1,NRSectorCarrier={id},CommonBeamformingFunction=1"),
    ("CommonBeamformingFunction", "digitalTilt"):
        FileAttribute("CommonBeamformingFunction", "digitalTilt", IntCodec(-900, 900, "0.1 degree")),
    ("NRCellRelation", "cellIndividualOffset"):
        FileAttribute("NRCellRelation", "cellIndividualOffset", QOffsetCodec("rsrpOffsetSSB")),
}
"""The default vendor attribute map: ``(twin class, twin attribute) -> FileAttribute``.

- power: ``NRSectorCarrier.configuredMaxTxPower``, int mW both sides;
- tilt: the emulator's ``SectorEquipmentFunction=N.digitalTilt`` is the NR NRM's
  ``GNBDUFunction=1,NRSectorCarrier=N,CommonBeamformingFunction=1.digitalTilt`` (0.1 degree; the
  emulator numbers a sector's carrier like the sector); a request that already names the
  ``CommonBeamformingFunction`` passes through;
- CIO: ``NRCellRelation.cellIndividualOffset`` in dB is the structure's ``rsrpOffsetSSB`` member.
"""


# --- writing -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MoWrite:
    """One object to put in a file: its DN (after ``dnPrefix``), class, attributes, modifier."""

    dn: str
    cls: str
    attributes: Mapping[str, FileValue]
    modifier: str | None = "update"


def _attr_element(parent: etree._Element, ns: str, name: str, value: FileValue) -> None:
    el = etree.SubElement(parent, f"{{{ns}}}{name}")
    if isinstance(value, Mapping):
        for member, text in value.items():
            etree.SubElement(el, f"{{{ns}}}{member}").text = text
    else:
        el.text = value


def build_bulkcm_file(objects: Sequence[MoWrite], *, sender_name: str, vendor_name: str = "ran-twin",
                      dn_prefix: str = "", when: datetime | None = None) -> bytes:
    """The UTF-8 bytes of a ``bulkCmConfigDataFile`` holding ``objects`` (ancestors shared, no modifier on them).

    ``ValueError`` for a DN that does not end in the object's class or a class without a namespace.
    """
    if when is None or when.tzinfo is None:
        raise ValueError("the footer needs a timezone-aware time")
    nsmap = {None: CONFIG_NS, "xn": XN, "nn": NN}
    root = etree.Element(f"{{{CONFIG_NS}}}bulkCmConfigDataFile", nsmap=nsmap)
    etree.SubElement(root, f"{{{CONFIG_NS}}}fileHeader", fileFormatVersion=FILE_FORMAT_VERSION,
                     senderName=sender_name, vendorName=vendor_name)
    config = etree.SubElement(root, f"{{{CONFIG_NS}}}configData", dnPrefix=dn_prefix)
    made: dict[tuple[tuple[str, str], ...], etree._Element] = {}
    for mo in objects:
        rdns = parse_dn(mo.dn)
        if rdns[-1][0] != mo.cls:
            raise ValueError(f"DN {mo.dn!r} does not name a {mo.cls} instance")
        parent = config
        for depth, (cls, ident) in enumerate(rdns):
            key = tuple(rdns[: depth + 1])
            el = made.get(key)
            if el is None:
                el = etree.SubElement(parent, f"{{{class_namespace(cls)}}}{cls}", id=ident)
                made[key] = el
            parent = el
        if mo.modifier is not None:
            if mo.modifier not in MODIFIERS:
                raise ValueError(f"modifier {mo.modifier!r} is not one of {sorted(MODIFIERS)}")
            parent.set("modifier", mo.modifier)
        if mo.attributes:
            ns = class_namespace(mo.cls)
            attrs = etree.Element(f"{{{ns}}}attributes")
            parent.insert(0, attrs)  # attributes come before contained classes
            for name, value in mo.attributes.items():
                _attr_element(attrs, ns, name, value)
    etree.SubElement(root, f"{{{CONFIG_NS}}}fileFooter", dateTime=when.isoformat(timespec="seconds"))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


# --- reading ------------------------------------------------------------------------------------------

_PARSER_OPTIONS: dict[str, Any] = {"resolve_entities": False, "no_network": True, "load_dtd": False,
                                   "dtd_validation": False, "huge_tree": False, "remove_comments": True,
                                   "remove_pis": True}


def parse_xml(data: bytes, source: str) -> etree._Element:
    """The root of ``data`` through a hardened parser: no entities, no network, no DTD at all.

    ``BulkCmFormatError`` naming ``source`` and the parser's message.

    >>> parse_xml(b"<a><b></a>", "x.xml")
    Traceback (most recent call last):
    ...
    adapters.bulkcm.fileformat.BulkCmFormatError: x.xml: not well-formed XML: ...
    """
    parser = etree.XMLParser(**_PARSER_OPTIONS)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise BulkCmFormatError(f"{source}: not well-formed XML: {exc}") from exc
    if root.getroottree().docinfo.doctype:
        raise BulkCmFormatError(f"{source}: a DOCTYPE is not accepted in a bulk CM file")
    return root


def _local(el: etree._Element) -> str:
    return str(el.tag).rpartition("}")[2]


def _ns(el: etree._Element) -> str | None:
    tag = str(el.tag)
    return tag[1:tag.index("}")] if tag.startswith("{") else None


def _elements(el: etree._Element) -> list[etree._Element]:
    return list(el.iterchildren(etree.Element))  # elements only, no comments or processing instructions


def _check_footer_time(text: str | None) -> str | None:
    try:
        t = datetime.fromisoformat(text or "")
    except ValueError:
        return f"fileFooter dateTime {text!r} is not an ISO 8601 time"
    return None if t.tzinfo is not None else f"fileFooter dateTime {text!r} has no UTC offset"


def _check_attributes(attrs: etree._Element, where: str, strict: bool) -> list[str]:
    problems: list[str] = []
    for a in _elements(attrs):
        for member in (_elements(a) if len(a) else ()):
            if len(member) and _elements(member):
                problems.append(f"{where}: attribute {_local(a)}.{_local(member)} nests deeper than one structure")
        if strict and _ns(a) != _ns(attrs):
            problems.append(f"{where}: attribute {_local(a)} is not in its class's namespace")
    return problems


def _check_mo(el: etree._Element, where: str, strict: bool) -> list[str]:
    problems: list[str] = []
    cls, ident, ns = _local(el), el.get("id"), _ns(el)
    here = f"{where},{cls}={ident}" if where else f"{cls}={ident}"
    if strict:
        try:
            if class_namespace(cls) != ns:
                problems.append(f"{here}: class {cls} is not in namespace {class_namespace(cls)}")
        except ValueError as exc:
            problems.append(f"{here}: {exc}")
    elif ns in (CONFIG_NS, None):
        problems.append(f"{here}: NRM element {cls} has no NRM namespace")
    if not _CLASS.match(cls):
        problems.append(f"{here}: {cls!r} is not a class name")
    if ident is None or not _ID.match(ident):
        problems.append(f"{here}: missing or invalid id {ident!r}")
    modifier = el.get("modifier")
    if modifier is not None and modifier not in MODIFIERS:
        problems.append(f"{here}: modifier {modifier!r} is not one of create, delete, update")
    children = _elements(el)
    for i, child in enumerate(children):
        if _local(child) == "attributes":
            if i != 0:
                problems.append(f"{here}: attributes must be the first child")
            problems += _check_attributes(child, here, strict)
        else:
            problems += _check_mo(child, here, strict)
    return problems


def check_structure(root: etree._Element, *, strict: bool = True) -> list[str]:
    """The structural problems of a ``bulkCmConfigDataFile`` (empty when it has the shape this package writes).

    This is this package's own check, not an XSD: the root and its ``fileHeader`` (with
    ``fileFormatVersion``), one or more ``configData``, ``fileFooter`` (with an ISO 8601
    ``dateTime`` carrying an offset), in that order; every NRM element has a valid ``id``, an
    optional ``modifier`` of create/delete/update, at most one ``attributes`` as its first child,
    and attributes that are leaves or one-level structures. ``strict`` (what the writer must meet)
    also requires each known class in its 3GPP namespace and each attribute in its class's
    namespace; ``strict=False`` (what the reader accepts from an OSS) lets vendor namespaces through.
    """
    problems: list[str] = []
    if root.tag != f"{{{CONFIG_NS}}}bulkCmConfigDataFile":
        return [f"root element is {root.tag!r}, not bulkCmConfigDataFile in {CONFIG_NS}"]
    children = _elements(root)
    names = [(_ns(c), _local(c)) for c in children]
    if not names or names[0] != (CONFIG_NS, "fileHeader"):
        problems.append("the first element is not fileHeader")
    elif not children[0].get("fileFormatVersion"):
        problems.append("fileHeader has no fileFormatVersion")
    if not names or names[-1] != (CONFIG_NS, "fileFooter"):
        problems.append("the last element is not fileFooter (truncated file?)")
    else:
        bad = _check_footer_time(children[-1].get("dateTime"))
        if bad:
            problems.append(bad)
    start = 1 if names and names[0] == (CONFIG_NS, "fileHeader") else 0
    end = -1 if len(names) > start and names[-1] == (CONFIG_NS, "fileFooter") else len(children)
    middle = children[start:end]
    if not middle:
        problems.append("no configData")
    for c in middle:
        if (_ns(c), _local(c)) != (CONFIG_NS, "configData"):
            problems.append(f"unexpected element {c.tag!r} between fileHeader and fileFooter")
            continue
        for mo in _elements(c):
            problems += _check_mo(mo, "", strict)
    return problems


@dataclass
class MoData:
    """One object read from a file: class, modifier, and attributes as the file spells them."""

    cls: str
    modifier: str | None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class BulkCmFile:
    """A parsed ``bulkCmConfigDataFile``: header, ``dnPrefix``, footer time, and objects by DN (after the prefix)."""

    source: str
    header: dict[str, str]
    dn_prefix: str
    footer_time: datetime
    objects: dict[str, MoData]


def _attribute_value(el: etree._Element) -> Any:
    members = _elements(el) if len(el) else []
    if not members:
        return (el.text or "").strip()
    out: dict[str, Any] = {}
    for m in members:
        name, text = _local(m), (m.text or "").strip()
        if name in out:  # a repeated member is a list
            prev = out[name]
            out[name] = [*prev, text] if isinstance(prev, list) else [prev, text]
        else:
            out[name] = text
    return out


def _collect(el: etree._Element, parent: list[tuple[str, str]], out: dict[str, MoData], source: str) -> None:
    rdns = [*parent, (_local(el), el.get("id", ""))]
    dn = join_dn(rdns)
    if dn in out:
        raise BulkCmFormatError(f"{source}: object {dn} appears twice")
    mo = MoData(_local(el), el.get("modifier"))
    out[dn] = mo
    for child in _elements(el):
        if _local(child) == "attributes":
            mo.attributes = {_local(a): _attribute_value(a) for a in _elements(child)}
        else:
            _collect(child, rdns, out, source)


def parse_bulkcm(data: bytes, source: str, *, strict: bool = False) -> BulkCmFile:
    """Read a ``bulkCmConfigDataFile`` (hardened parser, then ``check_structure``).

    ``BulkCmFormatError`` naming ``source`` and the first problems. A file with several
    ``configData`` elements must give them one ``dnPrefix``.
    """
    root = parse_xml(data, source)
    problems = check_structure(root, strict=strict)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise BulkCmFormatError(f"{source}: not a valid bulkCmConfigDataFile: {'; '.join(problems[:3])}{more}")
    children = _elements(root)
    header = {str(k): str(v) for k, v in children[0].attrib.items()}
    footer_time = datetime.fromisoformat(children[-1].get("dateTime", ""))
    prefixes = {c.get("dnPrefix", "") for c in children[1:-1]}
    if len(prefixes) != 1:
        raise BulkCmFormatError(f"{source}: configData elements with different dnPrefix {sorted(prefixes)}")
    objects: dict[str, MoData] = {}
    for config in children[1:-1]:
        for mo in _elements(config):
            _collect(mo, [], objects, source)
    return BulkCmFile(source, header, prefixes.pop(), footer_time.astimezone(UTC), objects)
