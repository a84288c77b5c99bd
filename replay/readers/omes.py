"""Reader of Nokia OMeS PM XML (root ``<OMeS>``), the native format NetAct and Nokia base stations export.

Layout read (from public descriptions and samples of the format; no Nokia file is copied here)::

    <OMeS>
      <PMSetup startTime="2026-07-31T10:00:00.000+02:00" interval="15">      (minutes)
        <PMMOResult>
          <MO dimension="network_element"><DN>PLMN-PLMN/MRBTS-1/LNBTS-1/LNCEL-2</DN></MO>
          <PMTarget measurementType="LTE_Cell_Avail">                       (or <NE-WBTS_1.0 ...>)
            <M8020C3>900</M8020C3> ...
          </PMTarget>
        </PMMOResult>
      </PMSetup>
    </OMeS>

- One ``PmCellRecord`` / ``PmRelationRecord`` per object and period, merging every ``PMMOResult`` that
  reports on it (one per measurement type); ``periodEnd`` = ``startTime`` + ``interval`` minutes,
  ``granularityPeriodS`` = 60 x ``interval``. Times: as :func:`replay.readers.pmxml.parse_time`
  (offsets such as ``+02:00`` and ``-06:00:00``; offset-less only with ``--timezone``).
- Counter ids (``M8020C3``) are kept as the value names: Nokia's counter names are not public. The
  ``measurementType`` is not part of the name (ids are unique across measurement types).
- The object is the ``<DN>`` (or ``baseId`` + ``localMoid`` with their ``NE-`` / ``DN:`` prefixes
  dropped). Its RDNs ``CLASS-id`` are translated to the 3GPP classes the twin keys, so
  :class:`replay.readers.dn.DnResolver` and ``--dn-map`` (keys in the translated form) work as for
  3GPP files: ``MRBTS`` -> ``ManagedElement``, ``LNBTS`` -> ``ENodeBFunction``, ``LNCEL`` ->
  ``EUtranCellFDD`` (OMeS does not say FDD or TDD), ``LNREL`` -> ``EUtranCellRelation``, ``NRBTS`` ->
  ``GNBDUFunction``, ``NRCELL`` -> ``NRCellDU``, ``NRREL`` -> ``NRCellRelation``. The record keeps
  the Nokia DN in ``measObjDn``.
- Rejected, each ``PMMOResult`` with its reason and XML: an object whose class has no translation
  (3G ``WBTS``/``WCEL``, transport ...), a result with several ``MO`` (per-PLMN or other dimensions
  are not modelled), no DN, an unreadable ``PMSetup``. Empty counters are skipped and non-numbers
  dropped, each counted in a per-file notice, as in the 3GPP reader.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from pydantic import ValidationError

from replay.model import Item, Notice, Outcome, Outcomes, Rejection
from replay.readers.dn import RELATION_CLASSES, DnError
from replay.readers.files import DEFAULT_MAX_INPUT_BYTES, Input, expand, guarded
from replay.readers.pmxml import MAX_RAW, PmXmlOptions, parse_time, strip_prolog_junk
from twin import topics
from twin.schemas import PmCellRecord, PmRelationRecord, PmSource

__all__ = ["FORMAT", "NOKIA_CLASSES", "SUFFIXES", "nokia_dn", "read", "read_file", "translate_dn"]

FORMAT = "Nokia-OMeS"
SUFFIXES = (".xml",)
NOKIA_CLASSES = {
    "MRBTS": "ManagedElement",
    "LNBTS": "ENodeBFunction",
    "LNCEL": "EUtranCellFDD",
    "LNREL": "EUtranCellRelation",
    "NRBTS": "GNBDUFunction",
    "NRCELL": "NRCellDU",
    "NRREL": "NRCellRelation",
}
_NODE_ONLY = {"ENodeBFunction"}  # keyed through its ManagedElement: ENodeBFunction itself is not a class


def _local(tag: object) -> str:
    return str(tag).rpartition("}")[2] if isinstance(tag, str) else ""


def nokia_dn(mo: ET.Element) -> str:
    """The Nokia DN of an ``<MO>``: its ``<DN>``, else ``baseId`` + ``localMoid``.

    >>> nokia_dn(ET.fromstring("<MO><baseId>NE-MRBTS-7</baseId><localMoid>DN:NE-LNBTS-7/LNCEL-1</localMoid></MO>"))
    'MRBTS-7/LNBTS-7/LNCEL-1'
    """
    parts = {_local(c.tag): (c.text or "").strip() for c in mo}
    if parts.get("DN"):
        return parts["DN"]
    base = parts.get("baseId", "").removeprefix("NE-")
    local = parts.get("localMoid", "").removeprefix("DN:").removeprefix("NE-")
    return "/".join(p for p in (base, local) if p)


def translate_dn(dn: str) -> str:
    """Nokia ``PLMN-PLMN/MRBTS-1/NRBTS-1/NRCELL-3`` -> ``ManagedElement=1,GNBDUFunction=1,NRCellDU=3``.

    >>> translate_dn("PLMN-PLMN/MRBTS-1/LNBTS-1/LNCEL-2/LNREL-5")
    'ManagedElement=1,ENodeBFunction=1,EUtranCellFDD=2,EUtranCellRelation=5'
    >>> translate_dn("PLMN-PLMN/RNC-1/WBTS-2/WCEL-3")
    Traceback (most recent call last):
    ...
    ValueError: DN 'PLMN-PLMN/RNC-1/WBTS-2/WCEL-3': object class 'WCEL' is not one the twin models
    """
    rdns: list[tuple[str, str]] = []
    for part in dn.strip().split("/"):
        cls, sep, ident = part.strip().partition("-")
        if not sep or not cls or not ident:
            raise ValueError(f"DN {dn!r}: {part.strip()!r} is not CLASS-id")
        rdns.append((cls, ident))
    if rdns and rdns[0][0] == "PLMN":
        rdns = rdns[1:]
    if not rdns:
        raise ValueError(f"DN {dn!r} names no object")
    last = rdns[-1][0]
    if last not in NOKIA_CLASSES or NOKIA_CLASSES[last] in _NODE_ONLY:
        raise ValueError(f"DN {dn!r}: object class {last!r} is not one the twin models")
    out = []
    for cls, ident in rdns:
        if cls not in NOKIA_CLASSES:
            raise ValueError(f"DN {dn!r}: RDN class {cls!r} above the object has no 3GPP translation")
        out.append(f"{NOKIA_CLASSES[cls]}={ident}")
    return ",".join(out)


@dataclass
class _Acc:
    nokia: str
    dn: str
    end: datetime
    gp: int
    values: dict[str, float] = field(default_factory=dict)
    units: int = 0
    raws: list[bytes] = field(default_factory=list)


class _FileParser:
    def __init__(self, inp: Input, options: PmXmlOptions) -> None:
        self.inp = inp
        self.options = options
        self.file_name = PurePosixPath(inp.name.rsplit("!", 1)[-1]).name
        self.empty = 0
        self.dropped: list[str] = []

    def reject(
        self, where: str, reason: str, error_class: str, raw: bytes, fld: str | None, units: int = 1
    ) -> Rejection:
        return Rejection(self.inp.name, where, reason, error_class, raw[:MAX_RAW], topics.PM_CELL, fld, units)

    def outcomes(self) -> Outcomes:
        for note in self.inp.notes:
            yield Notice(self.inp.name, note)
        data = self.inp.read()
        if self.inp.conflict is not None:
            yield self.reject("file", self.inp.conflict, "duplicate", data, None)
            return
        data, _ = strip_prolog_junk(data)
        try:
            root = SafeET.fromstring(data, forbid_dtd=True)
        except DefusedXmlException as exc:
            yield self.reject("file", f"XML with a DTD or entities is refused: {exc!r}", "xml-unsafe", data, None)
            return
        except (ET.ParseError, ValueError) as exc:
            yield self.reject("file", f"not well-formed XML: {exc}", "xml", data, None)
            return
        if _local(root.tag) != "OMeS":
            reason = f"root element <{_local(root.tag)}> is not OMeS (for 3GPP files use --format pm-xml)"
            yield self.reject("file", reason, "schema", data, None)
            return
        accs: dict[tuple[str, datetime, int], _Acc] = {}
        for s_index, setup in enumerate(c for c in root if _local(c.tag) == "PMSetup"):
            yield from self._setup(setup, f"PMSetup[{s_index + 1}]", accs)
        if self.empty:
            yield Notice(self.inp.name, f"{self.empty} empty counter values (no value reported) skipped")
        if self.dropped:
            yield Notice(
                self.inp.name,
                f"{len(self.dropped)} values dropped as not a finite number (the rest of each object "
                f"published), e.g. {self.dropped[0]}",
            )
        for acc in sorted(accs.values(), key=lambda a: a.end):
            yield self._record(acc)

    def _setup(self, setup: ET.Element, where: str, accs: dict[tuple[str, datetime, int], _Acc]) -> Iterator[Outcome]:
        results = [c for c in setup if _local(c.tag) == "PMMOResult"]
        try:
            interval = setup.get("interval", "").strip()
            if not interval.isdigit() or int(interval) <= 0:
                raise ValueError(f"PMSetup interval={interval!r} is not a whole number of minutes > 0")
            gp = int(interval) * 60
            end = parse_time(setup.get("startTime", ""), "PMSetup startTime", self.options.timezone)
            end += timedelta(seconds=gp)
        except ValueError as exc:
            for i, res in enumerate(results, start=1):
                yield self.reject(f"{where}/PMMOResult[{i}]", str(exc), "schema", ET.tostring(res), "PMSetup")
            return
        for i, res in enumerate(results, start=1):
            res_where = f"{where}/PMMOResult[{i}]"
            raw = ET.tostring(res)
            mos = [c for c in res if _local(c.tag) == "MO"]
            if len(mos) != 1:
                reason = f"PMMOResult has {len(mos)} MO elements: one object per result is modelled"
                yield self.reject(res_where, reason, "unsupported", raw, "MO")
                continue
            nokia = nokia_dn(mos[0])
            if not nokia:
                yield self.reject(res_where, "MO has no DN: the measured object is unknown", "schema", raw, "DN")
                continue
            try:
                dn = translate_dn(nokia)
            except ValueError as exc:
                cls = "unsupported" if "is not one the twin models" in str(exc) else "schema"
                yield self.reject(res_where, str(exc), cls, raw, "DN")
                continue
            values: dict[str, float] = {}
            bad: list[str] = []
            for target in (c for c in res if _local(c.tag) != "MO"):
                for counter in target:
                    name, text = _local(counter.tag), (counter.text or "").strip()
                    if text in ("", "NIL", "-"):
                        self.empty += 1
                        continue
                    try:
                        value = float(text)
                    except ValueError:
                        value = math.nan
                    if not math.isfinite(value):
                        bad.append(f"{name}={text[:80]!r} on {nokia}")
                        continue
                    values[name] = value
            if bad and not values:
                yield self.reject(res_where, f"{bad[0]} is not a finite number", "parse", raw, bad[0].split("=")[0])
                continue
            self.dropped.extend(bad)
            acc = accs.setdefault((dn, end, gp), _Acc(nokia=nokia, dn=dn, end=end, gp=gp))
            acc.values.update(values)
            acc.units += 1
            acc.raws.append(raw)

    def _record(self, acc: _Acc) -> Outcome:
        source = PmSource(format=FORMAT, vendor="Nokia", file_name=self.file_name)
        where = f"{acc.nokia} period ending {acc.end.isoformat()}"
        raw = b"\n".join(acc.raws)
        resolver = self.options.resolver
        common = {"meas_obj_dn": acc.nokia, "period_end": acc.end, "granularity_period_s": acc.gp,
                  "source": source, "values": acc.values}
        try:
            if acc.dn.rsplit(",", 1)[-1].split("=")[0] in RELATION_CLASSES:
                cls, src, target = resolver.relation(acc.dn)
                rel = PmRelationRecord(cell_key=src, target_cell_key=target, relation_dn=acc.nokia,
                                       meas_obj_class=cls, **common)
                return Item(topics.PM_RELATION, rel.cell_key, rel.period_end, rel, acc.units, self.inp.name, where)
            cls, key = resolver.cell(acc.dn)
            rec = PmCellRecord(cell_key=key, meas_obj_class=cls, **common)
            return Item(topics.PM_CELL, rec.cell_key, rec.period_end, rec, acc.units, self.inp.name, where)
        except DnError as exc:
            return self.reject(where, str(exc), "schema", raw, "DN", acc.units)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            return self.reject(where, f"{loc}={str(err.get('input'))[:80]!r}: {err['msg']}", "schema", raw, loc,
                               acc.units)


def read_file(inp: Input, options: PmXmlOptions | None = None) -> Outcomes:
    """Outcomes of one OMeS file: notices, rejections, then records in period-end order."""
    return _FileParser(inp, options or PmXmlOptions()).outcomes()


def read(sources: Sequence[Path], options: PmXmlOptions | None = None,
         max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES) -> list[Outcomes]:
    """One outcome stream per OMeS file (``.xml``, ``.xml.gz``, folders, zip archives)."""
    return [guarded(inp, read_file(inp, options), topics.PM_CELL)
            for inp in expand(sources, SUFFIXES, max_input_bytes)]
