"""DN to ProvMnS URI, and the vendor attribute map from the twin's names to the 3GPP NRM's.

The twin names an attribute by its class and name as ``telemetry.md`` section 2 and the emulator
do (``SectorEquipmentFunction.digitalTilt``, ``NRCellRelation.cellIndividualOffset``); a ProvMnS
server speaks the TS 28.541 OpenAPI NRM (``CommonBeamformingFunction.digitalTilt``,
``cellIndividualOffset.rsrpOffsetSSB``). ``AttributeMapping`` is one entry of that translation;
``DEFAULT_ATTRIBUTE_MAP`` is the documented default that a deployment overrides per vendor.

>>> uri_path("SubNetwork=Emulator,ManagedElement=gnb-001,GNBDUFunction=1,NRSectorCarrier=2")
'SubNetwork=Emulator/ManagedElement=gnb-001/GNBDUFunction=1/NRSectorCarrier=2'
>>> m = DEFAULT_ATTRIBUTE_MAP["SectorEquipmentFunction.digitalTilt"]
>>> m.target_dn("SubNetwork=Emulator,ManagedElement=gnb-001,SectorEquipmentFunction=2")
'SubNetwork=Emulator,ManagedElement=gnb-001,GNBDUFunction=1,NRSectorCarrier=2,CommonBeamformingFunction=1'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

__all__ = [
    "DEFAULT_ATTRIBUTE_MAP", "NOT_MAPPED", "AttributeMapping", "dn_from_uri_path", "parse_dn", "uri_path",
]

# RFC 3986 unreserved characters plus the sub-delimiters TS 32.158 leaves alone in a path segment;
# ``=``, ``,``, ``/``, ``%``, ``?``, ``#`` and spaces inside an id are percent-encoded so that the
# last ``=`` of a segment always separates className from id.
_ID_SAFE = "-._~!$&'()*+;:@"


def parse_dn(dn: str) -> list[tuple[str, str]]:
    """``[(className, id), ...]`` of a DN; ``ValueError`` for anything that is not ``A=x,B=y``.

    >>> parse_dn("ManagedElement=gnb-001,GNBDUFunction=1")
    [('ManagedElement', 'gnb-001'), ('GNBDUFunction', '1')]
    >>> parse_dn("ManagedElement")
    Traceback (most recent call last):
    ...
    ValueError: not a DN: 'ManagedElement' (expected ClassName=id pairs separated by commas)
    """
    rdns: list[tuple[str, str]] = []
    for part in dn.split(","):
        cls, sep, ident = part.strip().partition("=")
        if not sep or not cls or not ident or not cls.isidentifier():
            raise ValueError(f"not a DN: {dn!r} (expected ClassName=id pairs separated by commas)")
        rdns.append((cls, ident))
    return rdns


def uri_path(dn: str) -> str:
    """The ProvMnS resource path of ``dn`` (after ``/ProvMnS/{version}/``): one segment per RDN.

    TS 32.158 clause 4.4.2 maps each RDN ``className=id`` of the DN to one path segment; an id's
    reserved characters are percent-encoded.

    >>> uri_path("ManagedElement=me 1/a,NRCellDU=7")
    'ManagedElement=me%201%2Fa/NRCellDU=7'
    """
    return "/".join(f"{cls}={quote(ident, safe=_ID_SAFE)}" for cls, ident in parse_dn(dn))


def dn_from_uri_path(path: str) -> str:
    """Inverse of ``uri_path``.

    >>> dn_from_uri_path("ManagedElement=me%201%2Fa/NRCellDU=7")
    'ManagedElement=me 1/a,NRCellDU=7'
    """
    out = []
    for seg in path.strip("/").split("/"):
        cls, sep, ident = seg.rpartition("=")
        if not sep:
            raise ValueError(f"not a ProvMnS resource path segment: {seg!r}")
        out.append(f"{unquote(cls)}={unquote(ident)}")
    return ",".join(out)


@dataclass(frozen=True)
class AttributeMapping:
    """How one twin ``(class, attribute)`` is written and read over ProvMnS.

    - ``mns_class``: the ProvMnS (TS 28.541 OpenAPI) class that carries the attribute.
    - ``path``: where the value sits under the resource's ``attributes``; more than one name for a
      field of a structured attribute (``("cellIndividualOffset", "rsrpOffsetSSB")``).
    - ``moi``: how to find the MOI from the twin's DN, or None when the twin's DN is already the
      MOI. A template relative to the parent of the twin's DN with ``{id}`` the twin DN's last id:
      ``"GNBDUFunction=1,NRSectorCarrier={id},CommonBeamformingFunction=1"``.
    - ``unit``: the twin's unit (a request's ``unit``, when given, must be one of ``units``);
      ``scale``: the ProvMnS value is the twin's value times ``scale`` (integers both ways).
    """

    mns_class: str
    path: tuple[str, ...]
    moi: str | None = None
    unit: str | None = None
    units: tuple[str, ...] = ()
    scale: int = 1

    def target_dn(self, twin_dn: str) -> str:
        """The DN of the ProvMnS MOI that holds the attribute of the twin's instance ``twin_dn``.

        >>> m = AttributeMapping("NRSectorCarrier", ("configuredMaxTxPower",))
        >>> m.target_dn("ManagedElement=1,NRSectorCarrier=2")
        'ManagedElement=1,NRSectorCarrier=2'
        """
        rdns = parse_dn(twin_dn)
        if self.moi is None:
            return ",".join(f"{c}={i}" for c, i in rdns)
        parent = ",".join(f"{c}={i}" for c, i in rdns[:-1])
        rel = self.moi.format(id=rdns[-1][1])
        return f"{parent},{rel}" if parent else rel

    def to_mns(self, value: Any) -> Any:
        """The twin's value in ProvMnS units."""
        return value * self.scale if self.scale != 1 else value

    def to_twin(self, value: Any) -> Any:
        """A ProvMnS value in the twin's units (an integer where the division is exact)."""
        if self.scale == 1 or not isinstance(value, int | float) or isinstance(value, bool):
            return value
        q = value / self.scale
        return int(q) if float(q).is_integer() else q

    def accepts_unit(self, unit: str | None) -> bool:
        """Whether a request stated in ``unit`` means this mapping's unit (no unit: yes)."""
        return unit is None or unit in (self.unit, *self.units)

    def get(self, attributes: Mapping[str, Any]) -> Any:
        """The value at ``path`` in a resource's ``attributes`` (``KeyError`` when absent).

        >>> AttributeMapping("NRCellRelation", ("cellIndividualOffset", "rsrpOffsetSSB")).get(
        ...     {"cellIndividualOffset": {"rsrpOffsetSSB": -2}})
        -2
        """
        node: Any = attributes
        for name in self.path:
            if not isinstance(node, Mapping):
                raise KeyError(name)
            node = node[name]
        return node

    def merge_patch(self, value: Any) -> dict[str, Any]:
        """The RFC 7396 body that sets the attribute to ``value`` (ProvMnS units) and nothing else.

        >>> AttributeMapping("NRCellRelation", ("cellIndividualOffset", "rsrpOffsetSSB")).merge_patch(2)
        {'attributes': {'cellIndividualOffset': {'rsrpOffsetSSB': 2}}}
        """
        node: Any = value
        for name in reversed(self.path):
            node = {name: node}
        return {"attributes": node}

    def pointer(self) -> str:
        """The RFC 6901 JSON pointer of the attribute in the resource (RFC 6902 ``path``).

        >>> AttributeMapping("NRCellRelation", ("cellIndividualOffset", "rsrpOffsetSSB")).pointer()
        '/attributes/cellIndividualOffset/rsrpOffsetSSB'
        """
        return "/attributes/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in self.path)


TILT_UNITS = ("0.1deg", "0.1°", "0.1 deg", "deci-degree")

DEFAULT_ATTRIBUTE_MAP: Mapping[str, AttributeMapping] = {
    # TS 28.541 NRSectorCarrier.configuredMaxTxPower: integer mW, same as the twin.
    "NRSectorCarrier.configuredMaxTxPower": AttributeMapping(
        "NRSectorCarrier", ("configuredMaxTxPower",), unit="mW"),
    # The emulator keeps the antenna's digital tilt on SectorEquipmentFunction=<n>; the 3GPP NRM has
    # it on the CommonBeamformingFunction (single instance, id 1) of the sector carrier with the
    # same local id under GNBDUFunction=1. 0.1 degree in both.
    "SectorEquipmentFunction.digitalTilt": AttributeMapping(
        "CommonBeamformingFunction", ("digitalTilt",),
        moi="GNBDUFunction=1,NRSectorCarrier={id},CommonBeamformingFunction=1", unit="0.1deg", units=TILT_UNITS),
    "CommonBeamformingFunction.digitalTilt": AttributeMapping(
        "CommonBeamformingFunction", ("digitalTilt",), unit="0.1deg", units=TILT_UNITS),
    # TS 28.541 CellIndividualOffset is a structure; the twin's CIO is its SSB RSRP offset, in dB
    # (QOffsetRange). The OpenAPI spells it rsrpOffsetSSB (the YANG: rsrpOffsetSsb).
    "NRCellRelation.cellIndividualOffset": AttributeMapping(
        "NRCellRelation", ("cellIndividualOffset", "rsrpOffsetSSB"), unit="dB"),
}
"""The default vendor attribute map, keyed ``"TwinClass.attribute"``."""

NOT_MAPPED: Mapping[str, str] = {
    "NRCellDU.cellIndividualOffset": (
        "TS 28.541 has no per-cell CIO: it is NRCellRelation.cellIndividualOffset, one per neighbour; "
        "address the NRCellRelation instead of writing every relation of the cell non-atomically"),
}
"""Why some twin attributes the emulator knows are deliberately left out of the default map."""
