"""Reader of 3GPP PM XML files: TS 32.435 ``measCollecFile`` and TS 28.532 ``measDataFile``.

Both forms share ``measInfo`` / ``granPeriod`` / ``measType p=`` / ``measValue measObjLdn`` /
``r p=``; the older ``measTypes`` + ``measResults`` (space-separated) layout is read too. Output:

- one ``PmCellRecord`` (``ran.pm.cell.v1``) per measured object, granularity period and job,
  merging the values of every ``measInfo`` block that reports on it (the Keysight file spreads one
  cell over 47 blocks, one per 28.552 clause);
- one ``PmRelationRecord`` (``ran.pm.relation.v1``) per cell relation, however nested
  (``NRCellRelation``, ``EUtranCellRelation``, ``GUtranCellRelation``, also under an
  ``EUtranFreqRelation`` / ``NRFreqRelation`` / ``GUtranFreqRelation``: see :mod:`replay.readers.dn`);
  relations to 2G/3G cells (``UtranCellRelation``, ``GeranCellRelation``) are rejected as unsupported;
- ``granularityPeriodS`` from ``granPeriod@duration`` (``PT60S``, ``PT15M`` ...), ``periodEnd`` from
  ``granPeriod@endTime`` (time forms: :func:`parse_time`): ISO 8601 with an offset (``+01:00``,
  ``+0100`` as in the Ericsson file, ``Z``) or the compact ``202607311004+0300``; a time without an
  offset is read in ``PmXmlOptions.timezone`` (``--timezone``) if one was given, else rejected;
- ``measObjDn`` is ``dnPrefix`` + the local DN; DNs are turned into cell keys by
  :class:`replay.readers.dn.DnResolver` (a map, else a documented derivation);
- node-level objects (ManagedElement, GNB*Function) are kept with the node's reserved key, since
  the schema has classes for them (energy counters such as ``PEE.Energy`` live there);
- vector values (``0,0,3``) are split by the counter-layout rules of
  :mod:`replay.readers.vector_rules` (PDF bins, or compressed ``count,index,value`` pairs for
  ``...Compr`` and QCI/ARP-indexed counters) into ``name.<bin>``; an ambiguous vector is not
  published as bins but kept as text in the record's ``source.rawValues``, with a notice;
- empty ``r`` (no value reported), all-empty vectors (``' , , '``) and empty elements of a vector
  are skipped and counted in a notice;
- a value that is not a finite number (``abc``, ``NaN``) drops that value only: the object is
  published with its other values and the file ends with a notice counting the drops by reason. An
  object left with no value because of such drops is rejected with the value's reason.

Rejected, each ``measValue`` on its own with the reason and a self-contained XML fragment as its
original bytes: empty ``measObjLdn``, object classes the twin does not model (transport, equipment:
``VlanPort``, ``BbProcessingResource`` ...), checked before any value is read, ``r p`` without a
``measType``, ``measResults`` whose value count differs from the ``measTypes`` name count, an
unreadable ``granPeriod``. A file that is not well-formed XML is rejected whole, and so is a ``.gz``
copy of a file of the same name whose content differs (an identical copy is skipped with a notice).

Tolerated with a warning (a ``Notice``): anything before the XML declaration, e.g. the
``<?xml-stylesheet?>`` processing instruction the published Keysight file puts first, which strict
parsers reject. ``.gz`` files are decompressed. Parsing uses defusedxml (no DTDs, no entities).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path, PurePosixPath
from typing import Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from pydantic import ValidationError

from replay.model import Item, Notice, Outcome, Outcomes, Rejection
from replay.readers.dn import LEGACY_RELATION_CLASSES, RELATION_CLASSES, DnError, DnResolver, parse_dn
from replay.readers.files import DEFAULT_MAX_INPUT_BYTES, Input, expand, guarded
from replay.readers.vector_rules import VectorRules
from twin import topics
from twin.schemas import MeasObjClass, PmCellRecord, PmRelationRecord, PmSource

__all__ = [
    "FORMATS", "NS_28532", "NS_32435", "SUFFIXES", "PmXmlOptions", "parse_duration", "parse_time", "read", "read_file",
    "strip_prolog_junk",
]

NS_32435 = "http://www.3gpp.org/ftp/specs/archive/32_series/32.435#measCollec"
NS_28532 = "http://www.3gpp.org/ftp/specs/archive/28_series/28.532#measData"
FORMATS = {"measCollecFile": "3GPP-32.435", "measDataFile": "3GPP-28.532"}
SUFFIXES = (".xml",)
MAX_RAW = 900_000  # a dead letter must fit in one Kafka message
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
_DECL = re.compile(rb"<\?xml\s")
_PROLOG_JUNK = re.compile(rb"^(?:\s|<\?(?!xml\s).*?\?>|<!--.*?-->)*$", re.S)
_KNOWN_CLASSES = frozenset(c.value for c in MeasObjClass) | RELATION_CLASSES
_COMPACT = re.compile(
    r"^(\d{4})(\d{2})(\d{2})[.T]?(\d{2})(\d{2})(\d{2})?(?:(Z)|([+-])(\d{2}):?(\d{2}))?$"
)
_EMPTY = ("", "NIL", "-")


@dataclass(frozen=True, slots=True)
class PmXmlOptions:
    resolver: DnResolver = field(default_factory=DnResolver)
    rules: VectorRules = field(default_factory=VectorRules)
    timezone: tzinfo | None = None  # reads times without an offset; None rejects them


def parse_duration(text: str) -> int:
    """Seconds of an ISO 8601 duration as used by ``granPeriod``.

    >>> parse_duration("PT900S"), parse_duration("PT15M"), parse_duration("P1D")
    (900, 900, 86400)
    """
    m = _DURATION.match(text.strip())
    if m is None or not any(m.groups()):
        raise ValueError(f"granPeriod duration={text!r} is not an ISO 8601 duration like PT900S")
    d, h, mi, s = m.groups()
    seconds = int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)
    if seconds <= 0 or seconds != int(seconds):
        raise ValueError(f"granPeriod duration={text!r} is not a positive whole number of seconds")
    return int(seconds)


def parse_time(text: str, what: str, tz: tzinfo | None = None) -> datetime:
    """An ISO 8601 time with an offset (``+01:00``, ``+0100``, ``Z``) or the compact
    ``YYYYMMDDHHMM[SS]+HHMM`` some vendors write; without an offset only when ``tz`` says the zone.

    >>> parse_time("2023-05-15T07:15:00+0100", "endTime").isoformat()
    '2023-05-15T07:15:00+01:00'
    >>> parse_time("202607311004+0300", "endTime").isoformat()
    '2026-07-31T10:04:00+03:00'
    >>> from zoneinfo import ZoneInfo
    >>> parse_time("2000-03-01T15:00:00", "endTime", ZoneInfo("Europe/Paris")).isoformat()
    '2000-03-01T15:00:00+01:00'
    >>> parse_time("2000-03-01T15:00:00", "endTime")
    Traceback (most recent call last):
    ...
    ValueError: endTime='2000-03-01T15:00:00' has no UTC offset: pass --timezone ZONE to read offset-less times
    """
    stripped = text.strip()
    compact = _COMPACT.match(stripped)
    if compact is not None:
        y, mo, d, h, mi, sec, zulu, sign, oh, om = compact.groups()
        offset: tzinfo | None = None
        if zulu:
            offset = UTC
        elif sign:
            delta = timedelta(hours=int(oh), minutes=int(om))
            offset = timezone(delta if sign == "+" else -delta)
        try:
            value = datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec or 0), tzinfo=offset)
        except ValueError:
            raise ValueError(f"{what}={text!r} is not a valid compact time YYYYMMDDHHMM+HHMM") from None
    else:
        try:
            value = datetime.fromisoformat(stripped)
        except ValueError:
            raise ValueError(f"{what}={text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        if tz is None:
            raise ValueError(f"{what}={text!r} has no UTC offset: pass --timezone ZONE to read offset-less times")
        value = value.replace(tzinfo=tz)  # an hour that occurs twice (DST end) is read as the first
    return value


def strip_prolog_junk(data: bytes) -> tuple[bytes, str | None]:
    """Drop what stands before the XML declaration (only PIs, comments, space); say what was dropped.

    >>> strip_prolog_junk(b'<?xml-stylesheet href="a.xsl"?>\\n<?xml version="1.0"?><a/>')
    (b'<?xml version="1.0"?><a/>', 'xml-stylesheet')
    """
    m = _DECL.search(data)
    if m is None or m.start() == 0:
        return data, None
    prefix = data[: m.start()]
    if prefix.startswith(b"\xef\xbb\xbf"):
        prefix = prefix[3:]
    if not _PROLOG_JUNK.match(prefix):
        return data, None  # real content before the declaration: let the parser reject the file
    pi = re.search(rb"<\?([\w.:-]+)", prefix)
    return data[m.start() :], (pi.group(1).decode() if pi else "whitespace")


def _local(tag: Any) -> str:
    return str(tag).rpartition("}")[2] if isinstance(tag, str) else ""


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in elem if _local(c.tag) == name]


def _child(elem: ET.Element | None, name: str) -> ET.Element | None:
    if elem is None:
        return None
    found = _children(elem, name)
    return found[0] if found else None


@dataclass
class _Acc:
    """Values of one (object, period, job) gathered across measInfo blocks."""

    dn: str
    cls: str
    end: datetime
    gp: int
    job: str | None
    values: dict[str, float] = field(default_factory=dict)
    raw_values: dict[str, str] = field(default_factory=dict)
    suspect: bool = False
    units: int = 0
    raws: list[bytes] = field(default_factory=list)


@dataclass
class _Tally:
    """Per-file counts behind the notices: what was skipped or dropped, with one example per kind."""

    empty_values: int = 0
    empty_elements: int = 0
    element_example: str = ""
    dropped: dict[str, list[str]] = field(default_factory=dict)  # reason kind -> examples
    raw_vectors: list[str] = field(default_factory=list)

    def notices(self, source: str) -> Iterator[Notice]:
        if self.empty_values:
            yield Notice(source, f"{self.empty_values} empty <r> values (no value reported) skipped")
        if self.empty_elements:
            yield Notice(
                source,
                f"{self.empty_elements} empty elements of vector values skipped (the other bins kept at "
                f"their index), e.g. {self.element_example}",
            )
        for kind, examples in self.dropped.items():
            yield Notice(
                source,
                f"{len(examples)} values dropped as {kind} (the rest of each object published), e.g. "
                f"{examples[0]}",
            )
        if self.raw_vectors:
            yield Notice(
                source,
                f"{len(self.raw_vectors)} vector values not published as bins because their layout is "
                f"ambiguous (kept as text in source.rawValues; set a --vector-rules rule), e.g. "
                f"{self.raw_vectors[0]}",
            )


class _FileParser:
    def __init__(self, inp: Input, options: PmXmlOptions) -> None:
        self.inp = inp
        self.resolver = options.resolver
        self.rules = options.rules
        self.tz = options.timezone
        self.file_name = PurePosixPath(inp.name.rsplit("!", 1)[-1]).name
        self.tally = _Tally()
        self.vendor: str | None = None
        self.vendor_text = ""
        self.prefix = ""
        self.fmt = ""

    def reject(
        self, where: str, reason: str, error_class: str, raw: bytes, fld: str | None = None
    ) -> Rejection:
        topic = topics.PM_CELL
        return Rejection(self.inp.name, where, reason, error_class, raw[:MAX_RAW], topic, fld)

    def outcomes(self) -> Outcomes:
        for note in self.inp.notes:
            yield Notice(self.inp.name, note)
        data = self.inp.read()
        if self.inp.conflict is not None:
            yield self.reject("file", self.inp.conflict, "duplicate", data)
            return
        data, dropped = strip_prolog_junk(data)
        if dropped is not None:
            yield Notice(
                self.inp.name,
                f"'<?{dropped}?>' stood before the XML declaration (not well-formed; a known "
                "Keysight quirk): stripped and parsed the rest",
            )
        try:
            root = SafeET.fromstring(data, forbid_dtd=True)
        except DefusedXmlException as exc:
            yield self.reject("file", f"XML with a DTD or entities is refused: {exc!r}", "xml-unsafe", data)
            return
        except (ET.ParseError, ValueError) as exc:
            yield self.reject("file", f"not well-formed XML: {exc}", "xml", data)
            return
        fmt = FORMATS.get(_local(root.tag))
        if fmt is None:
            reason = (
                f"root element <{_local(root.tag)}> is not measCollecFile (32.435) or measDataFile (28.532)"
                + (" (Nokia OMeS: use --format omes)" if _local(root.tag) == "OMeS" else "")
            )
            yield self.reject("file", reason, "schema", data)
            return
        header = _child(root, "fileHeader")
        self.vendor = header.get("vendorName") if header is not None else None
        self.prefix = (header.get("dnPrefix") or "").strip() if header is not None else ""
        self.vendor_text = f"{self.vendor or ''}\n{self.prefix}"
        self.fmt = fmt
        accs: dict[tuple[str, str, datetime, int, str | None], _Acc] = {}
        for md_index, meas_data in enumerate(_children(root, "measData"), start=1):
            entity = _child(meas_data, "managedElement")
            entity = entity if entity is not None else _child(meas_data, "measEntity")
            me = (entity.get("localDn") or "").strip() if entity is not None else ""
            for info_index, info in enumerate(_children(meas_data, "measInfo"), start=1):
                where = f"measData[{md_index}]/measInfo[{info_index}] ({info.get('measInfoId', '')})"
                yield from self._meas_info(info, where, me, accs)
        yield from self.tally.notices(self.inp.name)
        for acc in sorted(accs.values(), key=lambda a: a.end):
            yield self._record(acc)

    def _full_dn(self, ldn: str, me: str) -> str:
        rdns = parse_dn(ldn)
        if not any(c == "ManagedElement" for c, _ in rdns) and me:
            me_rdn = me if "=" in me else f"ManagedElement={me}"
            ldn = f"{me_rdn},{ldn}"
        if self.prefix and not ldn.startswith(self.prefix):
            return f"{self.prefix},{ldn}"
        return ldn

    def _object(self, mv: ET.Element, me: str) -> tuple[str, str]:
        """(full DN, class) of a measValue's object; ``_Reject`` when the twin cannot key it."""
        ldn = (mv.get("measObjLdn") or "").strip()
        if not ldn:
            raise _Reject("measObjLdn is empty: the measured object is unknown", "schema", "measObjLdn")
        dn = self._full_dn(ldn, me)
        cls = parse_dn(dn)[-1][0]
        if cls in LEGACY_RELATION_CLASSES:
            raise _Reject(
                f"measObjLdn={ldn!r}: a {cls} targets a 2G/3G cell, which the twin does not key",
                "unsupported",
                "measObjLdn",
            )
        if cls not in _KNOWN_CLASSES:
            raise _Reject(
                f"measObjLdn={ldn!r}: object class {cls!r} is not one the twin models "
                f"(PmCellRecord.measObjClass)",
                "unsupported",
                "measObjLdn",
            )
        return dn, cls

    def _meas_info(
        self,
        info: ET.Element,
        where: str,
        me: str,
        accs: dict[tuple[str, str, datetime, int, str | None], _Acc],
    ) -> Iterator[Outcome]:
        values_elems = _children(info, "measValue")

        def fragment(mv: ET.Element) -> bytes:
            copy = ET.Element(info.tag, info.attrib)
            copy.extend(c for c in info if _local(c.tag) != "measValue")
            copy.append(mv)
            return ET.tostring(copy)

        gran = _child(info, "granPeriod")
        try:
            if gran is None:
                raise ValueError("measInfo has no granPeriod")
            gp = parse_duration(gran.get("duration", ""))
            end = parse_time(gran.get("endTime", ""), "granPeriod endTime", self.tz)
        except ValueError as exc:
            for i, mv in enumerate(values_elems, start=1):
                yield self.reject(f"{where}/measValue[{i}]", str(exc), "schema", fragment(mv), "granPeriod")
            return
        job_elem = _child(info, "job")
        job = job_elem.get("jobId") if job_elem is not None else None
        names = {mt.get("p", ""): (mt.text or "").strip() for mt in _children(info, "measType")}
        listed = _child(info, "measTypes")
        if listed is not None:
            names = {str(i): n for i, n in enumerate((listed.text or "").split(), start=1)}
        for i, mv in enumerate(values_elems, start=1):
            mv_where = f"{where}/measValue[{i}]"
            try:
                dn, cls = self._object(mv, me)
                values, raw_values = self._values(mv, names, dn)
            except DnError as exc:
                yield self.reject(mv_where, str(exc), "schema", fragment(mv), "measObjLdn")
                continue
            except _Reject as exc:
                yield self.reject(mv_where, str(exc), exc.error_class, fragment(mv), exc.field)
                continue
            acc = accs.setdefault((cls, dn, end, gp, job), _Acc(dn=dn, cls=cls, end=end, gp=gp, job=job))
            clashes = self._clashes(acc, values, raw_values, mv_where)
            acc.values.update({k: v for k, v in values.items() if k not in clashes})
            acc.raw_values.update({k: v for k, v in raw_values.items() if k not in clashes})
            suspect = _child(mv, "suspect")
            flagged = suspect is not None and (suspect.text or "").strip() == "true"
            acc.suspect = acc.suspect or bool(clashes) or flagged
            acc.units += 1
            acc.raws.append(fragment(mv))

    def _clashes(self, acc: _Acc, values: dict[str, float], raw_values: dict[str, str], where: str) -> set[str]:
        """The counters ``values`` and ``raw_values`` give again for an object and period the file
        already gave them for (another measValue or measInfo), with another value. The first value is
        kept, the record is marked suspect and the file's notice names each one: a later one silently
        replacing the first hid that the file contradicts itself. A repeat of the same value is kept
        quietly."""
        clashes = set()
        for given, again in ((acc.values, values), (acc.raw_values, raw_values)):
            for name, value in again.items():
                if name in given and given[name] != value:
                    clashes.add(name)
                    self.tally.dropped.setdefault("conflicting duplicates", []).append(
                        f"{name}={value!r} on {acc.dn} for the period ending {acc.end.isoformat()} at {where}, "
                        f"which the file gave as {given[name]!r} before (the first kept, the record marked suspect)")
        return clashes

    def _values(self, mv: ET.Element, names: dict[str, str], dn: str) -> tuple[dict[str, float], dict[str, str]]:
        """Values and raw (ambiguous) vectors of one measValue; value-level problems drop that value."""
        pairs: list[tuple[str, str]] = [(r.get("p", ""), r.text or "") for r in _children(mv, "r")]
        results = _child(mv, "measResults")
        if results is not None:
            texts = (results.text or "").split()
            if len(texts) != len(names):
                raise _Reject(
                    f"measResults has {len(texts)} values but measTypes names {len(names)} counters: "
                    "they cannot be paired",
                    "schema",
                    "measResults",
                )
            pairs = [(str(i), t) for i, t in enumerate(texts, start=1)]
        out: dict[str, float] = {}
        raw: dict[str, str] = {}
        errors: list[tuple[str, str, str]] = []  # (kind, field, reason)
        for p, text in pairs:
            name = names.get(p)
            if not name:
                raise _Reject(f"<r p={p!r}> has no matching measType", "schema", "r")
            text = text.strip()
            if text in _EMPTY or (("," in text) and not text.replace(",", "").strip()):
                self.tally.empty_values += 1
                continue
            try:
                decoded = self._value(name, text, dn, raw)
            except _ValueProblem as exc:
                errors.append((exc.kind, name, str(exc)))
                continue
            out.update(decoded)
        if errors and not out and not raw:
            kind, fld, reason = errors[0]
            raise _Reject(reason, "parse" if kind == "not a number" else "range", fld)
        for kind, _, reason in errors:
            self.tally.dropped.setdefault(kind, []).append(f"{reason} on {dn}")
        return out, raw

    def _value(self, name: str, text: str, dn: str, raw: dict[str, str]) -> dict[str, float]:
        """``{name: v}`` for a scalar, ``{name.<bin>: v}`` for a vector (see vector_rules)."""
        try:
            decoded = self.rules.decode(name, text, self.vendor_text)
        except ValueError:
            raise _ValueProblem("not a number", f"{name}={text[:80]!r} is not a number") from None
        if decoded.why is not None:
            raw[name] = text
            self.tally.raw_vectors.append(f"{name}={text[:80]!r} on {dn}: {decoded.why}")
            return {}
        if decoded.empty:
            if not self.tally.empty_elements:
                self.tally.element_example = f"{name}={text[:80]!r} on {dn}"
            self.tally.empty_elements += decoded.empty
        out = {}
        for index, value in decoded.bins.items():
            if not math.isfinite(value):
                raise _ValueProblem("not a finite number", f"{name}={text[:80]!r} is not a finite number")
            out[name if index < 0 else f"{name}.{index}"] = value
        return out

    def _record(self, acc: _Acc) -> Outcome:
        extra: dict[str, Any] = {"rawValues": acc.raw_values} if acc.raw_values else {}
        source = PmSource(
            format=self.fmt, vendor=self.vendor, file_name=self.file_name, job_id=acc.job, **extra
        )
        where = f"{acc.dn} period ending {acc.end.isoformat()}"
        raw = b"\n".join(acc.raws)
        try:
            common = {"meas_obj_dn": acc.dn, "period_end": acc.end, "granularity_period_s": acc.gp,
                      "suspect": acc.suspect, "source": source, "values": acc.values}
            if acc.cls in RELATION_CLASSES:
                cls, src, target = self.resolver.relation(acc.dn)
                rel = PmRelationRecord(cell_key=src, target_cell_key=target, relation_dn=acc.dn,
                                       meas_obj_class=cls, **common)
                return Item(topics.PM_RELATION, rel.cell_key, rel.period_end, rel, acc.units, self.inp.name, where)
            cls, key = self.resolver.cell(acc.dn)
            rec = PmCellRecord(cell_key=key, meas_obj_class=cls, **common)
            return Item(topics.PM_CELL, rec.cell_key, rec.period_end, rec, acc.units, self.inp.name, where)
        except DnError as exc:
            return Rejection(
                self.inp.name,
                where,
                str(exc),
                "schema",
                raw[:MAX_RAW],
                topics.PM_CELL,
                "measObjLdn",
                acc.units,
            )
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            reason = f"{loc}={str(err.get('input'))[:80]!r}: {err['msg']}"
            return Rejection(
                self.inp.name, where, reason, "schema", raw[:MAX_RAW], topics.PM_CELL, loc, acc.units
            )


class _ValueProblem(Exception):
    """One counter value that cannot be read: it is dropped, the object is kept."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Reject(Exception):
    def __init__(self, message: str, error_class: str, fld: str | None) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.field = fld


def read_file(inp: Input, options: PmXmlOptions | None = None) -> Outcomes:
    """Outcomes of one PM file: notices, rejections, then records in period-end order."""
    return _FileParser(inp, options or PmXmlOptions()).outcomes()


def read(sources: Sequence[Path], options: PmXmlOptions | None = None,
         max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES) -> list[Outcomes]:
    """One outcome stream per XML file (``.xml``, ``.xml.gz``, folders, zip archives)."""
    return [guarded(inp, read_file(inp, options), topics.PM_CELL)
            for inp in expand(sources, SUFFIXES, max_input_bytes)]
