"""DN -> cell key resolution for PM files, which name objects by DN, never by NCGI.

The real identity (gNB id, gnbIdLength, PLMN) lives in CM, not in the PM file. So the resolver
first looks the DN up in a configurable map (e.g. exported from ``ran.topology.cells.v1``); only
when the map has no entry does it derive a key deterministically, under a configurable PLMN
(default ``00101``, the 3GPP test network, since PM files carry no PLMN):

- gNB id = CRC-32 of the ``ManagedElement`` id, truncated to ``gnb_id_length`` bits (default 24);
- ``NRCellDU=n`` and ``NRCellCU=n`` of one ManagedElement are the same cell (the usual vendor
  convention, true in both real files): cellLocalId = n when numeric, else a CRC-32 of n;
- ``NRSectorCarrier=n`` and ``Beam`` (under a sector carrier) belong to cell n;
- node-level objects (ManagedElement, GNBDUFunction, GNBCUCPFunction, GNBCUUPFunction) get the
  node's reserved key: the highest cellLocalId (all ones), which the derivation never gives a cell;
- ``EUtranCellFDD/TDD=n`` -> ECGI with eNB id = CRC-32 of the ManagedElement id (20 bits), cell n;
- cell relations, whatever the nesting: ``NRCellCU=x,NRCellRelation=r`` (3GPP),
  ``EUtranCellFDD=x,EUtranFreqRelation=f,EUtranCellRelation=r`` (Ericsson LTE),
  ``NRCellCU=x,NRFreqRelation=f,NRCellRelation=r`` and the inter-RAT ``GUtranFreqRelation`` /
  ``GUtranCellRelation`` (LTE -> NR) and ``EUtranCellRelation`` under an NR cell (NR -> LTE). The
  source is the nearest cell RDN above the relation (frequency-relation RDNs in between are
  skipped); the record's class names the *target* RAT (``NRCellRelation``: an NR target,
  ``EUtranCellRelation``: an LTE target; the DN keeps the vendor's class). The target cannot be
  known without CM (nRTCI), so unless the map names the relation DN it is a synthetic key of the
  target's RAT derived from the source key and the RDNs below the source cell (distinct per
  relation, stable across replays). Relations to UTRAN/GERAN cells (``UtranCellRelation``,
  ``GeranCellRelation``) are refused: the twin keys only LTE and NR cells.

Map keys are DNs, compared without the file's ``dnPrefix`` and without spaces, so either the full
or the local DN works.

>>> r = DnResolver(plmn="00101")
>>> du = r.cell("ManagedElement=gnb-001,GNBDUFunction=1,NRCellDU=1")
>>> du
('NRCellDU', 'nr:00101-da43a8001')
>>> r.cell("SubNetwork=X,ManagedElement=gnb-001,GNBCUCPFunction=1,NRCellCU=1")[1] == du[1]
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from twin.cells import is_cell_key, lte_cell_key, nr_cell_key
from twin.derived_ids import derived_eci, derived_nci, name_hash

__all__ = [
    "LEGACY_RELATION_CLASSES", "LTE_CELL_CLASSES", "NODE_CLASSES", "NR_CELL_CLASSES", "RELATION_CLASSES",
    "RELATION_TARGET", "DnError", "DnResolver", "parse_dn",
]

NR_CELL_CLASSES = frozenset({"NRCellDU", "NRCellCU", "NRSectorCarrier"})
NODE_CLASSES = frozenset({"ManagedElement", "GNBDUFunction", "GNBCUCPFunction", "GNBCUUPFunction"})
LTE_CELL_CLASSES = frozenset({"EUtranCellFDD", "EUtranCellTDD"})
# Relation class in the DN -> the record's class, which names the target RAT.
RELATION_TARGET: dict[str, str] = {
    "NRCellRelation": "NRCellRelation",
    "EUtranCellRelation": "EUtranCellRelation",
    "GUtranCellRelation": "NRCellRelation",  # Ericsson LTE -> NR (EN-DC) neighbour
}
# Relations to 2G/3G cells: the twin has no key for their targets.
LEGACY_RELATION_CLASSES = frozenset({"UtranCellRelation", "GeranCellRelation"})
RELATION_CLASSES = frozenset(RELATION_TARGET) | LEGACY_RELATION_CLASSES


class DnError(ValueError):
    """A DN that cannot be turned into a cell key; the message names the DN and the rule."""


def parse_dn(dn: str) -> list[tuple[str, str]]:
    """``A=1,B=x`` -> ``[("A", "1"), ("B", "x")]``; raises ``DnError`` on an RDN without ``=``.

    >>> parse_dn("ManagedElement=GNB-1, GNBDUFunction=1")
    [('ManagedElement', 'GNB-1'), ('GNBDUFunction', '1')]
    """
    rdns = []
    for part in dn.split(","):
        cls, sep, value = part.strip().partition("=")
        if not sep or not cls or not value:
            raise DnError(f"DN {dn!r}: RDN {part.strip()!r} is not Class=id")
        rdns.append((cls, value))
    return rdns


def _norm(dn: str) -> str:
    return ",".join(f"{c}={v}" for c, v in parse_dn(dn)) if dn.strip() else ""


class DnResolver:
    """Resolves measured-object DNs to (class, cell key) as the module docstring describes."""

    def __init__(
        self, plmn: str = "00101", mapping: Mapping[str, str] | None = None, gnb_id_length: int = 24
    ) -> None:
        self.plmn = plmn
        self.gnb_id_length = gnb_id_length
        self.cell_bits = 36 - gnb_id_length
        nr_cell_key(plmn, 0, gnb_id_length, 0)  # validates plmn and length early
        self.mapping: dict[str, str] = {}
        for dn, key in (mapping or {}).items():
            if not is_cell_key(key):
                raise DnError(f"dn map: {key!r} (for {dn!r}) is not a canonical cell key")
            self.mapping[_norm(dn)] = key

    @classmethod
    def from_file(cls, path: Path, plmn: str = "00101", gnb_id_length: int = 24) -> DnResolver:
        """A map file is a JSON object ``{"<DN>": "<cellKey>", ...}``."""
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise DnError(f"dn map {str(path)!r} must be a JSON object of DN -> cell key")
        return cls(plmn=plmn, mapping={str(k): str(v) for k, v in data.items()}, gnb_id_length=gnb_id_length)

    def _mapped(self, rdns: list[tuple[str, str]]) -> str | None:
        # The longest suffix of the DN present in the map wins (so dnPrefix does not matter).
        for start in range(len(rdns)):
            key = self.mapping.get(",".join(f"{c}={v}" for c, v in rdns[start:]))
            if key is not None:
                return key
        return None

    def _me(self, rdns: list[tuple[str, str]], dn: str) -> str:
        for cls, value in rdns:
            if cls == "ManagedElement":
                return value
        raise DnError(f"DN {dn!r} has no ManagedElement RDN to derive a node id from")

    def _nr_key(self, me: str, cell: str | None) -> str:
        nci = derived_nci(me, cell, self.gnb_id_length)
        return nr_cell_key(self.plmn, nci >> self.cell_bits, self.gnb_id_length, nci & ((1 << self.cell_bits) - 1))

    def cell(self, dn: str) -> tuple[str, str]:
        """(object class, cell key) of a cell-, carrier-, beam- or node-level DN."""
        rdns = parse_dn(dn)
        cls = rdns[-1][0]
        mapped = self._mapped(rdns)
        if mapped is not None:
            return cls, mapped
        owner = [(c, v) for c, v in rdns if c in NR_CELL_CLASSES | LTE_CELL_CLASSES]
        if cls in NR_CELL_CLASSES or (cls == "Beam" and owner):
            return cls, self._nr_key(self._me(rdns, dn), owner[-1][1])
        if cls in NODE_CLASSES:
            return cls, self._nr_key(self._me(rdns, dn), None)
        if cls in LTE_CELL_CLASSES:
            return cls, lte_cell_key(self.plmn, derived_eci(self._me(rdns, dn), rdns[-1][1]))
        raise DnError(f"DN {dn!r}: object class {cls!r} is not a cell, carrier, beam or node the twin keys")

    def relation(self, dn: str) -> tuple[str, str, str]:
        """(record class, source cell key, target cell key) of a cell-relation DN, however nested.

        >>> r = DnResolver()
        >>> cls, src, dst = r.relation(
        ...     "ManagedElement=enb-1,ENodeBFunction=1,EUtranCellFDD=3,EUtranFreqRelation=1,EUtranCellRelation=7")
        >>> cls, src == r.cell("ManagedElement=enb-1,ENodeBFunction=1,EUtranCellFDD=3")[1], dst[:4]
        ('EUtranCellRelation', True, 'lte:')
        >>> r.relation("ManagedElement=enb-1,EUtranCellFDD=3,GUtranFreqRelation=1,GUtranCellRelation=2")[::2]
        ('NRCellRelation', 'nr:00101-272a78002')
        >>> r.relation("ManagedElement=enb-1,EUtranCellFDD=3,UtranFreqRelation=1,UtranCellRelation=2")
        Traceback (most recent call last):
        ...
        replay.readers.dn.DnError: DN 'ManagedElement=enb-1,EUtranCellFDD=3,UtranFreqRelation=1,\
UtranCellRelation=2': a UtranCellRelation targets a 2G/3G cell, which the twin does not key
        """
        rdns = parse_dn(dn)
        cls = rdns[-1][0]
        if cls in LEGACY_RELATION_CLASSES:
            raise DnError(f"DN {dn!r}: a {cls} targets a 2G/3G cell, which the twin does not key")
        if cls not in RELATION_TARGET:
            raise DnError(f"DN {dn!r} is not a cell relation")
        cells = [i for i, (c, _) in enumerate(rdns[:-1]) if c in NR_CELL_CLASSES | LTE_CELL_CLASSES]
        if not cells:
            raise DnError(f"DN {dn!r}: the {cls} has no NR or LTE cell RDN above it to be its source")
        owner = cells[-1]
        _, source = self.cell(",".join(f"{c}={v}" for c, v in rdns[: owner + 1]))
        target = self._mapped(rdns)
        record_cls = RELATION_TARGET[cls]
        if target is None:
            below = ",".join(f"{c}={v}" for c, v in rdns[owner + 1 :])
            seed = f"{source}/{below}"
            if record_cls == "NRCellRelation":
                target = self._nr_key(seed, rdns[-1][1])
            else:
                target = lte_cell_key(self.plmn, name_hash(seed, 28))
        return record_cls, source, target
