"""Cell identity: resolve a PM record's DN to its canonical cell key through CM, never by a guess.

PM files name measured objects by DN and seldom carry a cell global id, so the file reader derives a
key (``replay.readers.dn``: gNB id = CRC-32 of the ``ManagedElement`` id truncated to 24 bits, 20 for
an eNB). Different nodes collide on such a key (about even odds at 4,800 gNBs), and a mirror keyed by
it would silently merge their cells. So a record whose key is the reader's derivation from its own
DN (:func:`is_derived`) is not applied under that key: it is resolved through the CM the mirror holds.

- :class:`IdentityIndex` maps DNs to canonical keys. It learns from CM: a snapshot or notification
  that carries a ``cellKey`` names the key of its DN (announced by the cluster that applied it, see
  ``ClusterMirror.identity_events``), and CM without a key gives it through the cell's own id
  attributes: ``nCI``, or ``cellLocalId`` with the parent function's ``gNBId``/``gNBIdLength`` (NR),
  ``cellId`` with the parent ``ENBFunction``'s ``eNBId`` (LTE), under the PLMN of the cell's
  ``pLMNInfoList``/``pLMNIdList`` or the function's ``pLMNId``.
- The index, the derived records waiting for CM and the node's key-less CM live together, per
  ``ManagedElement`` (:func:`node_key`): records of one node meet in one place (one partition of the
  worker's re-keyed topic), whatever cluster their cells end up in.
- :func:`resolve_node` is what that place does with a batch: learn, forward what resolves (re-keyed
  to the canonical key), keep what does not (held by DN, in ``twin.mirror.holding``), refuse what is
  in conflict, and release held records once the CM that resolves them arrives.
- Conflicts: two DNs of one class that CM gives the same key, or derived records of two nodes under
  one key the topology lists, are detected where the key's cell lives (``ClusterMirror``), counted
  and reported; the second DN's records are not merged.

>>> is_derived("nr:00101-da43a8001", "SubNetwork=X,ManagedElement=gnb-001,GNBDUFunction=1,NRCellDU=1")
True
>>> is_derived("nr:00101-000000101", "ManagedElement=gnb-001,GNBDUFunction=1,NRCellDU=1")
False
>>> node_key("SubNetwork=X, ManagedElement=gnb-001,GNBDUFunction=1,NRCellDU=1")
'dn:ManagedElement=gnb-001'
>>> index = IdentityIndex()
>>> _ = index.learn_cm("GNBDUFunction", "ManagedElement=gnb-001,GNBDUFunction=1",
...                    {"gNBId": 42, "gNBIdLength": 24, "pLMNId": {"mcc": "001", "mnc": "01"}})
>>> _ = index.learn_cm("NRCellDU", "ManagedElement=gnb-001,GNBDUFunction=1,NRCellDU=1", {"cellLocalId": 28})
>>> index.resolve("SubNetwork=X,ManagedElement=gnb-001,GNBDUFunction=1,NRCellDU=1")
('key', 'nr:00101-00002a01c')
>>> index.resolve("ManagedElement=gnb-002,GNBDUFunction=1,NRCellDU=1") is None
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, cast

from twin.cells import is_cell_key, lte_cell_key, nr_cell_key, parse_cell_key
from twin.derived_ids import derived_eci, derived_nci
from twin.mirror.holding import Holding
from twin.records import CmBody, NormalisedRecord

__all__ = [
    "CELL_CM_CLASSES", "CLAIM_CLASSES", "CONFLICT", "NOTICE", "IdentityIndex", "NodeIdentity", "Resolution",
    "cell_dn", "is_derived", "local_dn", "node_key", "notice", "resolve_node",
]

NR_CELLS = frozenset({"NRCellDU", "NRCellCU", "NRSectorCarrier"})
LTE_CELLS = frozenset({"EUtranCellFDD", "EUtranCellTDD"})
NODE_CLASSES = frozenset({"ManagedElement", "GNBDUFunction", "GNBCUCPFunction", "GNBCUUPFunction"})
NR_FUNCTIONS = frozenset({"GNBDUFunction", "GNBCUCPFunction", "GNBCUUPFunction"})
#: classes whose DN claims a cell key: two different DNs of one of these classes under one key conflict
CLAIM_CLASSES = frozenset({"NRCellDU", "NRCellCU", "EUtranCellFDD", "EUtranCellTDD"})
#: classes of key-less CM forwarded to the cell's mirror once their attributes give the key
CELL_CM_CLASSES = CLAIM_CLASSES | NR_CELLS
#: kind of the notice a cluster sends a node: ``(NOTICE, key, {"dn": dn, "x": conflict reason or None})``
NOTICE = "idn"
#: error class of the records refused for an identity conflict (dead letters, counters)
CONFLICT = "identity_conflict"
_PM_KINDS = ("pm", "pmr")
_DERIVED_CACHE: dict[tuple[str, str], bool] = {}
_DERIVED_CACHE_MAX = 200_000


# -- DNs -----------------------------------------------------------------------------------------
def _rdns(dn: str) -> list[tuple[str, str]]:
    """``A=1,B=x`` -> ``[("A", "1"), ("B", "x")]``, spaces stripped; RDNs without ``=`` are skipped."""
    out = []
    for part in dn.split(","):
        cls, sep, value = part.strip().partition("=")
        if sep and cls and value:
            out.append((cls.strip(), value.strip()))
    return out


def _from_node(rdns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    for i, (cls, _) in enumerate(rdns):
        if cls == "ManagedElement":
            return rdns[i:]
    return rdns


def _join(rdns: Iterable[tuple[str, str]]) -> str:
    return ",".join(f"{c}={v}" for c, v in rdns)


@lru_cache(maxsize=1 << 16)  # asked per PM record in the mirror: the same DNs every period
def local_dn(dn: str) -> str:
    """The DN from its ``ManagedElement`` on, without spaces: PM files and CM sources prefix DNs
    differently (``dnPrefix``, ``SubNetwork=...``), the part from the node on is what they share.

    >>> local_dn("SubNetwork=Europe, ManagedElement=gnb-1,GNBDUFunction=1,NRCellDU=2")
    'ManagedElement=gnb-1,GNBDUFunction=1,NRCellDU=2'
    """
    return _join(_from_node(_rdns(dn)))


@lru_cache(maxsize=1 << 16)  # asked per PM record in the mirror: the same DNs every period
def node_key(dn: str) -> str:
    """The holding key of a node's records that wait for identity: ``dn:ManagedElement=<id>`` (the
    local DN itself when it names no ManagedElement)."""
    rdns = _from_node(_rdns(dn))
    if rdns and rdns[0][0] == "ManagedElement":
        return "dn:" + _join(rdns[:1])
    return "dn:" + _join(rdns)


@lru_cache(maxsize=1 << 16)  # asked per PM record in the mirror: the same DNs every period
def cell_dn(dn: str) -> str | None:
    """The local DN of the cell a measured object belongs to: the nearest NR or LTE cell RDN at or
    above it (a relation's source cell, a beam's sector carrier); None for node-level objects.

    >>> cell_dn("ManagedElement=1,GNBCUCPFunction=1,NRCellCU=3,NRCellRelation=7")
    'ManagedElement=1,GNBCUCPFunction=1,NRCellCU=3'
    """
    rdns = _from_node(_rdns(dn))
    for i in range(len(rdns) - 1, -1, -1):
        if rdns[i][0] in NR_CELLS or rdns[i][0] in LTE_CELLS:
            return _join(rdns[:i + 1])
    return None


# -- the file reader's derivation (twin.derived_ids) ------------------------------------------------
def _derived(key: str, dn: str) -> bool:
    try:
        rat, _, ident = parse_cell_key(key)
    except ValueError:
        return False
    rdns = _rdns(dn)
    me = next((v for c, v in rdns if c == "ManagedElement"), None)
    if me is None:
        return False
    owner = next(((c, v) for c, v in reversed(rdns) if c in NR_CELLS or c in LTE_CELLS), None)
    ident_int = int(ident, 16)
    if rat == "lte":
        return owner is not None and owner[0] in LTE_CELLS and ident_int == derived_eci(me, owner[1])
    if owner is not None and owner[0] not in NR_CELLS:
        return False
    if owner is None and rdns[-1][0] not in NODE_CLASSES:
        return False
    cell = None if owner is None else owner[1]
    # the reader's gnb_id_length is configurable: any length it accepts
    return any(ident_int == derived_nci(me, cell, length) for length in range(22, 33))


def is_derived(key: str, dn: str) -> bool:
    """Whether ``key`` is what the PM file reader derives from ``dn`` when it has no map entry
    (``replay.readers.dn``, any ``gnb_id_length``): a guess from the node's name, not an identity.

    A key given by a source that knows the identity (an NCGI from the emulator, a JSONL feed, a DN
    map) is not the derivation, except by a chance of 2^-22 or less.
    """
    cached = _DERIVED_CACHE.get((key, dn))
    if cached is None:
        cached = _derived(key, dn)
        if len(_DERIVED_CACHE) >= _DERIVED_CACHE_MAX:
            _DERIVED_CACHE.clear()
        _DERIVED_CACHE[key, dn] = cached
    return cached


# -- computing a key from CM attributes -----------------------------------------------------------
def _plmn(value: Any) -> str | None:
    """``{"mcc": "001", "mnc": "01"}``, ``"00101"`` or a list of either (the first) -> ``"00101"``."""
    if isinstance(value, list):
        for item in value:
            found = _plmn(item.get("plmnId", item) if isinstance(item, dict) else item)
            if found:
                return found
        return None
    if isinstance(value, dict):
        if "plmnId" in value:
            return _plmn(value["plmnId"])
        mcc, mnc = value.get("mcc"), value.get("mnc")
        if mcc is None or mnc is None:
            return None
        text = f"{mcc}{mnc}"
    elif isinstance(value, str | int) and not isinstance(value, bool):
        text = str(value)
    else:
        return None
    return text if text.isdigit() and len(text) in (5, 6) else None


def _plmn_of(attrs: dict[str, Any]) -> str | None:
    for name in ("pLMNInfoList", "plmnInfoList", "pLMNIdList", "plmnIdList", "pLMNId", "plmnId"):
        if name in attrs:
            found = _plmn(attrs[name])
            if found:
                return found
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


#: the attributes the index keeps of key-less CM (the rest stays in the holding and the mirror)
_ID_ATTRS = frozenset({"nCI", "cellLocalId", "cellId", "gNBId", "gNBIdLength", "eNBId", "pLMNInfoList",
                       "plmnInfoList", "pLMNIdList", "plmnIdList", "pLMNId", "plmnId"})


@dataclass(slots=True)
class NodeIdentity:
    """What one node's DNs resolve to: keys announced by clusters (``keys``), DNs refused for a
    conflict (``conflicts``: local DN -> reason), and the id attributes of its key-less CM (``attrs``:
    local DN -> (class, attributes))."""

    keys: dict[str, str] = field(default_factory=dict)
    conflicts: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.keys, "x": self.conflicts, "a": {dn: [c, a] for dn, (c, a) in self.attrs.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NodeIdentity:
        return cls(dict(d["k"]), dict(d["x"]), {dn: (str(c), dict(a)) for dn, (c, a) in d["a"].items()})

    def computed(self, dn: str) -> str | None:
        """The key CM attributes give the cell (or node-level object) ``dn``, if they give one."""
        entry = self.attrs.get(dn)
        rdns = _rdns(dn)
        if not rdns:
            return None
        cls = rdns[-1][0]
        if cls in NODE_CLASSES:  # the node's reserved key, as the reader gives node-level objects
            fn = self._function(dn, NR_FUNCTIONS)
            if fn is None:
                return None
            gnb, length, plmn = _int(fn.get("gNBId")), _int(fn.get("gNBIdLength")), _plmn_of(fn)
            if gnb is None or length is None or plmn is None or not 22 <= length <= 32:
                return None
            return _key(nr_cell_key, plmn, gnb, length, (1 << (36 - length)) - 1)
        if entry is None:
            return None
        _, a = entry
        if cls in LTE_CELLS:
            fn = self._function(dn, frozenset({"ENBFunction"})) or {}
            enb, cid = _int(fn.get("eNBId")), _int(a.get("cellId"))
            plmn = _plmn_of(a) or _plmn_of(fn)
            if enb is None or cid is None or plmn is None or not 0 <= cid < 256:
                return None
            return _key(lte_cell_key, plmn, (enb << 8) | cid)
        if cls not in NR_CELLS:
            return None
        fn = self._function(dn, NR_FUNCTIONS) or {}
        plmn = _plmn_of(a) or _plmn_of(fn)
        if plmn is None:
            return None
        nci = _int(a.get("nCI"))
        if nci is not None:
            return _key("nr:{}-{:09x}".format, plmn, nci) if 0 <= nci < 1 << 36 else None
        gnb, length, local = _int(fn.get("gNBId")), _int(fn.get("gNBIdLength")), _int(a.get("cellLocalId"))
        if gnb is None or length is None or local is None or not 22 <= length <= 32:
            return None
        return _key(nr_cell_key, plmn, gnb, length, local)

    def _function(self, dn: str, classes: frozenset[str]) -> dict[str, Any] | None:
        """The attributes of the function ``dn`` is or sits under (else any of the node's)."""
        rdns = _rdns(dn)
        for i in range(len(rdns), 0, -1):
            if rdns[i - 1][0] in classes:
                entry = self.attrs.get(_join(rdns[:i]))
                return entry[1] if entry is not None else None
        return next((a for c, a in self.attrs.values() if c in classes and ("gNBId" in a or "eNBId" in a)), None)


def _key(make: Callable[..., str], *args: Any) -> str | None:
    try:
        key = make(*args)
    except ValueError:  # an id that does not fit its bit length: no key, the records stay held
        return None
    return key if is_cell_key(key) else None


Resolved = tuple[Literal["key"], str] | tuple[Literal["conflict"], str]


class IdentityIndex:
    """DN -> canonical key of the nodes whose records meet here (one partition; checkpointed per
    node, ``i/<node key>`` in ``twin.mirror.store``)."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeIdentity] = {}
        self.changed: set[str] = set()  # node keys changed since the last checkpoint

    def __len__(self) -> int:
        return len(self.nodes)

    def _node(self, dn: str) -> tuple[str, NodeIdentity]:
        key = node_key(dn)
        node = self.nodes.get(key)
        if node is None:
            node = self.nodes[key] = NodeIdentity()
        self.changed.add(key)
        return key, node

    def learn_key(self, dn: str, key: str, conflict: str | None = None) -> None:
        """A cluster applied CM naming ``key`` for ``dn`` (or refused it: ``conflict`` says why)."""
        _, node = self._node(dn)
        local = local_dn(dn)
        if conflict is None:
            node.keys[local] = key
            node.conflicts.pop(local, None)
        else:
            node.conflicts[local] = conflict
            node.keys.pop(local, None)

    def learn_cm(self, cls: str | None, dn: str, attributes: dict[str, Any]) -> bool:
        """Keep the id attributes of key-less CM; whether it had any."""
        kept = {k: v for k, v in attributes.items() if k in _ID_ATTRS}
        if not kept or cls is None:
            return False
        _, node = self._node(dn)
        local = local_dn(dn)
        current = node.attrs.get(local)
        node.attrs[local] = (cls, {**(current[1] if current else {}), **kept})
        return True

    def resolve(self, dn: str) -> Resolved | None:
        """``("key", k)``, ``("conflict", reason)``, or None while CM has not told."""
        node = self.nodes.get(node_key(dn))
        if node is None:
            return None
        rdns = _from_node(_rdns(dn))
        for i in range(len(rdns), 0, -1):  # the object, then what it sits under (carrier, cell)
            local = _join(rdns[:i])
            reason = node.conflicts.get(local)
            if reason is not None:
                return ("conflict", reason)
            key = node.keys.get(local)
            if key is None:
                key = node.computed(local)
            if key is not None:
                return ("key", key)
            if rdns[i - 1][0] in NR_CELLS or rdns[i - 1][0] in LTE_CELLS:
                break  # a cell's records do not resolve through the node above it
        return None

    def summary(self) -> dict[str, int]:
        return {"nodes": len(self.nodes), "dns": sum(len(n.keys) for n in self.nodes.values()),
                "conflicts": sum(len(n.conflicts) for n in self.nodes.values())}


def notice(dn: str, key: str, conflict: str | None = None) -> NormalisedRecord:
    """The record a cluster sends to a node's holding: CM named ``key`` for ``dn`` (or the key is
    refused to ``dn``: ``conflict``). It travels in the re-keyed topic's envelopes like any record,
    to the node's holding key only (``twin.mirror.cluster`` never receives one)."""
    return cast(NormalisedRecord, (NOTICE, key, {"dn": dn, "x": conflict}))


@dataclass(slots=True)
class Resolution:
    """What :func:`resolve_node` decided for a batch of a node's records: ``forward`` (``(key,
    record)``: the record re-keyed to its canonical key, for the key's cluster or holding), ``hold``
    (records that wait for CM, to add to the node's holding), ``refused`` (``(record, reason)``:
    records of a DN in conflict, to dead-letter), and how many held records were released."""

    forward: list[tuple[str, NormalisedRecord]] = field(default_factory=list)
    hold: list[NormalisedRecord] = field(default_factory=list)
    refused: list[tuple[NormalisedRecord, str]] = field(default_factory=list)
    released: int = 0


def _dn(record: NormalisedRecord) -> str:
    return cast(dict[str, Any], record[2]).get("dn", "")


def resolve_node(index: IdentityIndex, holding: Holding, key: str, records: Iterable[NormalisedRecord]) -> Resolution:
    """A batch of records for the node holding ``key`` (``dn:...``): notices and key-less CM teach
    the index (key-less CM is held, as before, and forwarded under the key its attributes give);
    derived PM resolves to a canonical key (forwarded), to a conflict (refused) or to nothing yet
    (held); once the index learned something, the node's held PM that now resolves is released."""
    out = Resolution()
    pending: list[NormalisedRecord] = []
    learned = False
    keyless: list[NormalisedRecord] = []
    for record in records:
        kind = record[0]
        if kind == NOTICE:
            body = cast(dict[str, Any], record[2])
            index.learn_key(body["dn"], cast(str, record[1]), body.get("x"))
            learned = True
        elif kind in _PM_KINDS:
            pending.append(record)
        else:
            if kind == "cm" and record[1] is None:
                cm = cast(CmBody, record[2])
                learned = index.learn_cm(cm.get("cls"), cm["dn"], cm["a"]) or learned
                keyless.append(record)
            out.hold.append(record)
    held = holding.held.get(key)
    if learned and held is not None:
        released = holding.take(key, lambda r: r[0] in _PM_KINDS and index.resolve(_dn(r)) is not None)
        out.released = len(released)
        pending = released + pending
    if learned:
        # a cell's key-less CM goes to the cell's mirror (where conflicts are checked) under the key
        # its attributes give, once they give one (again after each lesson: the mirror's updates are
        # idempotent, and the cluster announces a DN once)
        latest = {_dn(r): r for r in [*(held.cm.values() if held is not None else ()), *keyless]}
        for dn, record in latest.items():
            if cast(CmBody, record[2]).get("cls") in CELL_CM_CLASSES:
                found = index.resolve(dn)
                if found is not None and found[0] == "key":
                    out.forward.append((found[1], cast(NormalisedRecord, ("cm", found[1], record[2]))))
    for record in pending:
        found = index.resolve(_dn(record))
        if found is None:
            out.hold.append(record)
        elif found[0] == "conflict":
            out.refused.append((record, found[1]))
        else:
            out.forward.append((found[1], cast(NormalisedRecord, (record[0], found[1], record[2]))))
    return out
