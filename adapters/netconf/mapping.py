"""The vendor attribute map and the XML the NETCONF adapter sends: DNs to 3GPP YANG instance trees.

A twin attribute is named ``(class, attribute)`` in the twin's units (``telemetry.md`` section 2;
the emulator adds its own class ``SectorEquipmentFunction`` for tilt). An ``AttributeMapping``
says which YANG list carries it, the leaf path under that list's ``attributes`` container, the
unit, the factor from the twin's unit to the YANG unit, and the rule that turns the request's DN
into YANG list instances:

``same``
    the DN names the YANG instance itself (``...,GNBDUFunction=1,NRSectorCarrier=2``).
``beamforming``
    ``CommonBeamformingFunction`` under the ``NRSectorCarrier`` of the same local id: a DN ending
    in ``NRSectorCarrier=k`` or the emulator's ``SectorEquipmentFunction=k`` (directly under the
    ManagedElement) maps to ``GNBDUFunction=<du_id>,NRSectorCarrier=k,CommonBeamformingFunction=
    <cbf_id>`` (both ids default to ``1``); a DN already ending in ``CommonBeamformingFunction=j``
    is taken as it is.
``inbound-relations``
    the emulator's per-cell CIO (``NRCellDU.cellIndividualOffset``: one offset that biases every
    handover *into* the cell) becomes ``cellIndividualOffset/rsrpOffsetSsb`` of every
    ``NRCellRelation`` on the same ManagedElement whose ``adjacentNRCellRef`` names the cell
    (``NRCellCU=n`` or ``NRCellDU=n`` of that ManagedElement). It is found by reading the device;
    relations held by other gNBs (other NETCONF servers) are outside this adapter.

>>> parse_dn("SubNetwork=Emulator,ManagedElement=gnb-001,GNBDUFunction=1,NRSectorCarrier=2")
(('ManagedElement', 'gnb-001'), ('GNBDUFunction', '1'), ('NRSectorCarrier', '2'))
>>> m = DEFAULT_ATTRIBUTE_MAP["SectorEquipmentFunction", "digitalTilt"]
>>> format_path(resolve_static(m, parse_dn("SubNetwork=E,ManagedElement=gnb-001,SectorEquipmentFunction=3")))
'ManagedElement=gnb-001,GNBDUFunction=1,NRSectorCarrier=3,CommonBeamformingFunction=1'
>>> encode_value(-30, m), encode_value(2.0, DEFAULT_ATTRIBUTE_MAP["NRCellRelation", "cellIndividualOffset"])
('-30', '2')
>>> encode_value("high", DEFAULT_ATTRIBUTE_MAP["NRSectorCarrier", "configuredMaxTxPower"])
'high'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lxml import etree

__all__ = [
    "DEFAULT_ATTRIBUTE_MAP", "MODULES", "PARENT", "AttributeMapping", "MoPath", "Target", "attribute_leaves",
    "build_tree", "decode_value", "encode_value", "find_instance", "format_path", "parse_dn", "read_leaf",
    "relation_points_at", "resolve_static",
]

Rdn = tuple[str, str]
MoPath = tuple[Rdn, ...]
"""A managed object instance from its ManagedElement down: ``(("ManagedElement", "gnb-001"), ...)``."""

MODULES: dict[str, str] = {
    "ManagedElement": "_3gpp-common-managed-element",
    "GNBDUFunction": "_3gpp-nr-nrm-gnbdufunction",
    "NRSectorCarrier": "_3gpp-nr-nrm-nrsectorcarrier",
    "CommonBeamformingFunction": "_3gpp-nr-nrm-commonbeamformingfunction",
    "NRCellDU": "_3gpp-nr-nrm-nrcelldu",
    "GNBCUCPFunction": "_3gpp-nr-nrm-gnbcucpfunction",
    "NRCellCU": "_3gpp-nr-nrm-nrcellcu",
    "NRCellRelation": "_3gpp-nr-nrm-nrcellrelation",
}
"""The YANG module that defines (augments in) each list the adapter writes or reads."""

PARENT: dict[str, str] = {
    "GNBDUFunction": "ManagedElement", "NRSectorCarrier": "GNBDUFunction",
    "CommonBeamformingFunction": "NRSectorCarrier", "NRCellDU": "GNBDUFunction",
    "GNBCUCPFunction": "ManagedElement", "NRCellCU": "GNBCUCPFunction", "NRCellRelation": "NRCellCU",
}
"""Containment in the YANG tree (the augment targets of ``MODULES``)."""

Rule = Literal["same", "beamforming", "inbound-relations"]


@dataclass(frozen=True)
class AttributeMapping:
    """Where a twin attribute lives in the 3GPP YANG and how its value converts.

    ``yang value = twin value * scale``; ``default`` is the YANG default used when the device
    omits the leaf.
    """

    yang_class: str
    leaf: tuple[str, ...]
    unit: str
    rule: Rule = "same"
    scale: int = 1
    default: int | None = None

    @property
    def yang_name(self) -> str:
        """``Class.attributes/leaf/path``, for messages."""
        return f"{self.yang_class}/attributes/{'/'.join(self.leaf)}"


_TILT = AttributeMapping("CommonBeamformingFunction", ("digitalTilt",), "0.1 deg", rule="beamforming")
_CIO = ("cellIndividualOffset", "rsrpOffsetSsb")

DEFAULT_ATTRIBUTE_MAP: dict[tuple[str, str], AttributeMapping] = {
    ("NRSectorCarrier", "configuredMaxTxPower"): AttributeMapping("NRSectorCarrier", ("configuredMaxTxPower",), "mW"),
    ("CommonBeamformingFunction", "digitalTilt"): _TILT,
    ("SectorEquipmentFunction", "digitalTilt"): _TILT,
    ("NRCellRelation", "cellIndividualOffset"): AttributeMapping("NRCellRelation", _CIO, "dB", default=0),
    ("NRCellDU", "cellIndividualOffset"): AttributeMapping("NRCellRelation", _CIO, "dB", rule="inbound-relations",
                                                           default=0),
}
"""The documented default vendor attribute map: ``(twin class, twin attribute) -> AttributeMapping``."""


@dataclass(frozen=True)
class Target:
    """One YANG leaf instance to write or read."""

    path: MoPath
    mapping: AttributeMapping


def parse_dn(dn: str) -> MoPath:
    """The RDNs of ``dn`` from ``ManagedElement`` down (anything above it, e.g. ``SubNetwork``, dropped).

    >>> parse_dn("ManagedElement=1,GNBCUCPFunction=1,NRCellCU=1,NRCellRelation=7")[-1]
    ('NRCellRelation', '7')
    >>> parse_dn("SubNetwork=Europe,NRCellDU=1")
    Traceback (most recent call last):
    ...
    ValueError: DN 'SubNetwork=Europe,NRCellDU=1' names no ManagedElement
    """
    rdns: list[Rdn] = []
    for part in dn.split(","):
        cls, sep, ident = part.strip().partition("=")
        if not sep or not cls or not ident:
            raise ValueError(f"DN {dn!r}: {part!r} is not Class=id")
        rdns.append((cls, ident))
    start = next((i for i, (cls, _) in enumerate(rdns) if cls == "ManagedElement"), None)
    if start is None:
        raise ValueError(f"DN {dn!r} names no ManagedElement")
    return tuple(rdns[start:])


def format_path(path: MoPath) -> str:
    """``ManagedElement=x,GNBDUFunction=1,...``."""
    return ",".join(f"{cls}={ident}" for cls, ident in path)


def resolve_static(mapping: AttributeMapping, path: MoPath, du_id: str = "1", cbf_id: str = "1") -> MoPath:
    """The YANG instance a ``same`` or ``beamforming`` mapping writes for the instance ``path``
    (``ValueError`` when the DN does not fit the rule)."""
    last = path[-1][0]
    if mapping.rule == "same":
        if last != mapping.yang_class:
            raise ValueError(f"DN {format_path(path)} is not a {mapping.yang_class}")
        return path
    if mapping.rule == "beamforming":
        if last == "CommonBeamformingFunction":
            return path
        if last == "NRSectorCarrier":
            return (*path, ("CommonBeamformingFunction", cbf_id))
        if last == "SectorEquipmentFunction" and len(path) == 2:
            return (path[0], ("GNBDUFunction", du_id), ("NRSectorCarrier", path[1][1]),
                    ("CommonBeamformingFunction", cbf_id))
        raise ValueError(f"DN {format_path(path)} names no NRSectorCarrier, SectorEquipmentFunction or "
                         "CommonBeamformingFunction")
    raise ValueError(f"rule {mapping.rule!r} needs the device's relations")


def relation_points_at(adjacent_ref: str, cell: MoPath) -> bool:
    """Whether ``adjacentNRCellRef`` names the cell ``cell`` (its NRCellDU or NRCellCU, same ManagedElement).

    >>> cell = parse_dn("SubNetwork=E,ManagedElement=gnb-001,GNBDUFunction=1,NRCellDU=2")
    >>> relation_points_at("SubNetwork=E,ManagedElement=gnb-001,GNBCUCPFunction=1,NRCellCU=2", cell)
    True
    >>> relation_points_at("SubNetwork=E,ManagedElement=gnb-002,GNBCUCPFunction=1,NRCellCU=2", cell)
    False
    """
    try:
        ref = parse_dn(adjacent_ref)
    except ValueError:
        return False
    return ref[0] == cell[0] and ref[-1][0] in ("NRCellCU", "NRCellDU") and ref[-1][1] == cell[-1][1]


def encode_value(value: Any, mapping: AttributeMapping) -> str:
    """The YANG text of a twin value: integers (and integral floats) scaled by ``mapping.scale``;
    anything else as its text, for yanglint to judge."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value * mapping.scale)
    if isinstance(value, float):
        scaled = value * mapping.scale
        return str(int(scaled)) if scaled.is_integer() else repr(scaled)
    return str(value)


def decode_value(text: str | None, mapping: AttributeMapping) -> Any:
    """The twin value of a YANG leaf text (``mapping.default`` when the leaf is absent)."""
    if text is None:
        return mapping.default
    try:
        number = int(text.strip())
    except ValueError:
        return text
    if mapping.scale == 1:
        return number
    return number // mapping.scale if number % mapping.scale == 0 else number / mapping.scale


def build_tree(entries: Iterable[tuple[MoPath, Sequence[str] | None, str | None]],
               namespace: Callable[[str], str]) -> etree._Element:
    """One ``ManagedElement`` tree holding every ``(path, leaf, text)``: list entries keyed by ``id``
    in their modules' namespaces, ``attributes/<leaf...>`` set to ``text`` where ``leaf`` is given
    (a key-only entry, as a subtree filter selecting the whole instance, where it is None)."""
    root: etree._Element | None = None
    made: dict[MoPath, etree._Element] = {}
    for path, leaf, text in entries:
        parent: etree._Element | None = None
        for i, (cls, ident) in enumerate(path):
            if cls not in MODULES:
                raise ValueError(f"{cls} is not a class the NETCONF adapter knows (known: {', '.join(MODULES)})")
            if i == 0 and cls != "ManagedElement":
                raise ValueError(f"{format_path(path)} does not start at ManagedElement")
            if i > 0 and PARENT.get(cls) != path[i - 1][0]:
                raise ValueError(f"{cls} is not contained in {path[i - 1][0]} in the 3GPP YANG")
            key = path[: i + 1]
            node = made.get(key)
            if node is None:
                ns = namespace(MODULES[cls])
                if parent is None:
                    if root is not None:
                        raise ValueError("one payload holds one ManagedElement")
                    node = root = etree.Element(f"{{{ns}}}{cls}", nsmap={None: ns})
                else:
                    node = etree.SubElement(parent, f"{{{ns}}}{cls}", nsmap={None: ns})
                etree.SubElement(node, f"{{{ns}}}id").text = ident
                made[key] = node
            parent = node
        if leaf is not None and parent is not None:
            ns = namespace(MODULES[path[-1][0]])
            node = parent
            for name in ("attributes", *leaf):
                child = node.find(f"{{{ns}}}{name}")
                node = child if child is not None else etree.SubElement(node, f"{{{ns}}}{name}")
            node.text = text
    if root is None:
        raise ValueError("nothing to build")
    return root


def find_instance(data: etree._Element, path: MoPath, namespace: Callable[[str], str]) -> etree._Element | None:
    """The list entry ``path`` under ``data`` (a ``<data>`` reply), or None."""
    nodes = [data]
    for cls, ident in path:
        ns = namespace(MODULES[cls])
        nodes = [child for node in nodes for child in node.iterchildren(f"{{{ns}}}{cls}")
                 if child.findtext(f"{{{ns}}}id") == ident]
        if not nodes:
            return None
    return nodes[0]


def read_leaf(instance: etree._Element, cls: str, leaf: Sequence[str], namespace: Callable[[str], str]) -> str | None:
    """The text of ``attributes/<leaf...>`` of a list entry (None when absent)."""
    ns = namespace(MODULES[cls])
    node: etree._Element | None = instance
    for name in ("attributes", *leaf):
        node = node.find(f"{{{ns}}}{name}") if node is not None else None
    return node.text.strip() if node is not None and node.text is not None else None


def attribute_leaves(instance: etree._Element) -> dict[str, Any]:
    """The direct leaves of the entry's ``attributes`` container, integers parsed (containers skipped)."""
    out: dict[str, Any] = {}
    for container in instance:
        if etree.QName(container).localname != "attributes":
            continue
        for leaf in container:
            if not isinstance(leaf.tag, str) or len(leaf):
                continue
            text = (leaf.text or "").strip()
            try:
                out[etree.QName(leaf).localname] = int(text)
            except ValueError:
                out[etree.QName(leaf).localname] = text
    return out

