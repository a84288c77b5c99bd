"""How a PM vector value (``a,b,c`` in one ``<r>``) is split into bins: a rule set by counter name and vendor.

3GPP TS 32.435 leaves the layout of multi-valued counters to the vendor, and two layouts are common:

- ``bins``: every element is a bin, in order (Ericsson PDF counters: ``0,3,5`` is bin 0 = 0,
  bin 1 = 3, bin 2 = 5). Published as ``name.0``, ``name.1`` ...
- ``pairs``: the number of pairs, then ``index,value`` pairs (Ericsson compressed PDFs, whose names end
  in ``Compr``, and counters indexed by QCI, ARP or 5QI: ``2,0,78,1,79`` is bin 0 = 78, bin 1 = 79,
  every other bin 0). Published as ``name.<index>``; ``0`` alone is "no pairs" and publishes no bin.
  A pairs rule may name ``full``, the bin count of the uncompressed form: a value of exactly that
  many elements is read as ``bins`` (the real Ericsson file writes its ARP counters as 16 plain
  bins, ARP 0..15, and its QCI counters compressed). Pairs always have an odd element count, so an
  even ``full`` can never be confused with them.
- ``raw``: the layout is not known; the value is not published as bins (see below).

Rules are tried in order and the first whose ``counter`` pattern matches the whole counter name and
whose ``vendor`` pattern (if any) is found in the file's ``vendorName`` or ``dnPrefix`` decides. A
vector no rule matches is read as ``bins``. Default rules (:data:`DEFAULT_RULES`):

1. ``.*Compr``, any vendor: ``pairs``;
2. ``.*(Qci|5qi)``, vendor ``(?i)ericsson``: ``pairs``;
3. ``.*Arp``, vendor ``(?i)ericsson``: ``pairs``, ``full = 16``;
4. ``.*(Qci|Arp|5qi)``, any other vendor: ``raw`` (indexed by name, layout unknown for that vendor).

Rules apply to vectors (values with a comma); a single number is a scalar, published as ``name``,
except under a ``pairs`` rule, where ``0`` is "no pairs" (no bin published) and any other single
number is ambiguous.

**Ambiguous** (never published as bins; the text is kept in ``source.rawValues`` of the record and
each file ends with a notice counting them, with an example):

- a ``raw`` rule matched;
- a ``pairs`` rule matched but the value does not fit it: the count is not a whole number >= 0, the
  element count is not 1 + 2 x count, an index is not a whole number >= 0 or repeats, or an element is
  empty;
- no rule matched but the vector fits the ``pairs`` layout exactly (count >= 1, 1 + 2 x count
  elements, distinct whole indices) *and* its name does not end in ``Pdf``, ``Distr`` or ``Bins``; such a
  value may be either, so it is not guessed. Set a rule for the counter to decide.

A rules file (``twin replay --vector-rules FILE``, TOML or JSON) lists rules tried before the
defaults; ``defaults = false`` drops the defaults::

    defaults = true
    [[rule]]
    counter = "pmRadioThpVolDl.*"   # regular expression, full match on the counter name
    vendor = "(?i)ericsson"         # optional, searched in vendorName and dnPrefix
    layout = "pairs"                # bins | pairs | raw
    full = 16                       # optional (pairs): element count of the uncompressed form
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_RULES", "Decoded", "Layout", "RuleError", "VectorRule", "VectorRules"]


class Layout(StrEnum):
    bins = "bins"
    pairs = "pairs"
    raw = "raw"


class RuleError(ValueError):
    """A rules file or rule that cannot be used; the message names the rule and the field."""


@dataclass(frozen=True, slots=True)
class VectorRule:
    counter: re.Pattern[str]
    layout: Layout
    vendor: re.Pattern[str] | None = None
    origin: str = "default"
    full: int | None = None

    def matches(self, name: str, vendor_text: str) -> bool:
        if self.counter.fullmatch(name) is None:
            return False
        return self.vendor is None or self.vendor.search(vendor_text) is not None

    def describe(self) -> str:
        vendor = f", vendor {self.vendor.pattern!r}" if self.vendor else ""
        return f"{self.origin} rule {self.counter.pattern!r}{vendor} -> {self.layout.value}"


def _rule(
    counter: str, layout: str, vendor: str | None = None, origin: str = "default", full: int | None = None
) -> VectorRule:
    try:
        lay = Layout(layout)
    except ValueError:
        raise RuleError(f"{origin}: layout={layout!r} is not one of bins, pairs, raw") from None
    try:
        pattern = re.compile(counter)
        vendor_pattern = re.compile(vendor) if vendor is not None else None
    except re.error as exc:
        raise RuleError(f"{origin}: {exc.pattern!r} is not a regular expression: {exc}") from None
    if full is not None and (lay is not Layout.pairs or full < 2):
        raise RuleError(f"{origin}: full={full!r} needs layout = \"pairs\" and a bin count >= 2")
    return VectorRule(pattern, lay, vendor_pattern, origin, full)


_ERICSSON = r"(?i)ericsson"
DEFAULT_RULES: tuple[VectorRule, ...] = (
    _rule(r".*Compr", "pairs"),
    _rule(r".*(Qci|5qi)", "pairs", _ERICSSON),
    _rule(r".*Arp", "pairs", _ERICSSON, full=16),
    _rule(r".*(Qci|Arp|5qi)", "raw"),
)
_PDF_NAME = re.compile(r"(?i).*(pdf|distr|bins?)$")


@dataclass(frozen=True, slots=True)
class Decoded:
    """A vector's bins (``{index: value}``), or ``why`` it is ambiguous (then ``bins`` is empty)."""

    bins: dict[int, float]
    why: str | None = None
    empty: int = 0  # empty elements skipped (bins layout)


class VectorRules:
    """The ordered rule set; :meth:`decode` applies it to one value.

    >>> rules = VectorRules()
    >>> rules.decode("pmUeThpDlCompr", "2,0,78,1,79", "Ericsson AB").bins
    {0: 78.0, 1: 79.0}
    >>> rules.decode("pmRadioTbsPdf", "0,3,5", "Ericsson AB").bins
    {0: 0.0, 1: 3.0, 2: 5.0}
    >>> print(rules.decode("pmErabEstabSuccQci", "2,1,5", "Ericsson AB").why)  # doctest: +ELLIPSIS
    'pairs' (default rule '.*(Qci|5qi)', vendor '(?i)ericsson' -> pairs) does not fit: count 2 needs 5 ...
    >>> len(rules.decode("pmErabEstabAttArp", ",".join(["0"] * 16), "Ericsson AB").bins)
    16
    >>> rules.decode("pmErabEstabSuccQci", "0", "Ericsson AB").bins, rules.decode("x", "7", "").bins
    ({}, {-1: 7.0})
    >>> print(rules.decode("pmErabEstabSuccQci", "1,9,4", "Nokia").why)
    default rule '.*(Qci|Arp|5qi)' -> raw: layout not known
    >>> print(rules.decode("pmSomething", "1,9,4", "Ericsson AB").why)
    no rule names its layout and it reads both as bins and as count,index,value pairs
    """

    def __init__(self, rules: Sequence[VectorRule] = (), defaults: bool = True) -> None:
        self.rules: tuple[VectorRule, ...] = (*rules, *(DEFAULT_RULES if defaults else ()))

    @classmethod
    def from_file(cls, path: Path) -> VectorRules:
        """Rules from a TOML (``*.toml``) or JSON file: ``{"defaults": bool, "rule": [{counter, layout, vendor?}]}``."""
        text = path.read_text()
        try:
            data: Any = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
            raise RuleError(f"vector rules {str(path)!r}: not valid {kind}: {exc}") from None
        if not isinstance(data, dict):
            raise RuleError(f"vector rules {str(path)!r}: must be a table/object with a 'rule' list")
        unknown = set(data) - {"defaults", "rule"}
        if unknown:
            raise RuleError(f"vector rules {str(path)!r}: unknown key(s) {sorted(unknown)} (use 'defaults', 'rule')")
        defaults = data.get("defaults", True)
        if not isinstance(defaults, bool):
            raise RuleError(f"vector rules {str(path)!r}: defaults={defaults!r} must be true or false")
        entries = data.get("rule", [])
        if not isinstance(entries, list):
            raise RuleError(f"vector rules {str(path)!r}: rule={entries!r} must be a list")
        rules = []
        for i, entry in enumerate(entries, start=1):
            where = f"{path.name} rule {i}"
            if not isinstance(entry, dict) or not isinstance(entry.get("counter"), str):
                raise RuleError(f"{where}: needs counter = \"<regular expression>\" (got {entry!r})")
            extra = set(entry) - {"counter", "layout", "vendor", "full"}
            if extra:
                raise RuleError(f"{where}: unknown key(s) {sorted(extra)} (use counter, layout, vendor, full)")
            full = entry.get("full")
            if full is not None and (not isinstance(full, int) or isinstance(full, bool)):
                raise RuleError(f"{where}: full={full!r} must be a whole number")
            vendor = entry.get("vendor")
            if vendor is not None and not isinstance(vendor, str):
                raise RuleError(f"{where}: vendor={vendor!r} must be a regular expression string")
            rules.append(_rule(entry["counter"], str(entry.get("layout", "")), vendor, where, full))
        return cls(rules, defaults)

    def rule_for(self, name: str, vendor_text: str) -> VectorRule | None:
        return next((r for r in self.rules if r.matches(name, vendor_text)), None)

    def decode(self, name: str, text: str, vendor_text: str) -> Decoded:
        """Bins of one value ``text`` of counter ``name``; ``{-1: v}`` stands for a plain scalar."""
        parts = [p.strip() for p in text.split(",")]
        rule = self.rule_for(name, vendor_text)
        if len(parts) == 1:
            if rule is None or rule.layout is not Layout.pairs:
                return Decoded({-1: float(parts[0])})
            if parts[0] == "0":
                return Decoded({})
            return Decoded({}, f"'pairs' ({rule.describe()}) does not fit: a single value {parts[0]!r} is not 0 pairs")
        if rule is None:
            if not _PDF_NAME.fullmatch(name) and _fits_pairs(parts) is None:
                return Decoded({}, "no rule names its layout and it reads both as bins and as "
                                   "count,index,value pairs")
            return _bins(parts)
        if rule.layout is Layout.raw:
            return Decoded({}, f"{rule.describe()}: layout not known")
        if rule.layout is Layout.bins or len(parts) == rule.full:
            if rule.full is not None and _fits_pairs(parts) is None:
                return Decoded({}, f"{rule.describe()}: {len(parts)} elements read both as full bins and as pairs")
            return _bins(parts)
        why = _fits_pairs(parts)
        if why is not None:
            return Decoded({}, f"'pairs' ({rule.describe()}) does not fit: {why}")
        count = int(parts[0])
        return Decoded({int(parts[1 + 2 * i]): float(parts[2 + 2 * i]) for i in range(count)})


def _bins(parts: list[str]) -> Decoded:
    """Every element a bin; empty elements are skipped (``ValueError`` names a non-number)."""
    bins = {j: float(p) for j, p in enumerate(parts) if p}
    return Decoded(bins, empty=sum(1 for p in parts if not p))


def _whole(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _fits_pairs(parts: list[str]) -> str | None:
    """None if ``parts`` is count,index,value..., else why not."""
    count = _whole(parts[0])
    if count is None:
        return f"count {parts[0]!r} is not a whole number >= 0"
    if len(parts) != 1 + 2 * count:
        return f"count {count} needs {1 + 2 * count} elements, the value has {len(parts)}"
    indices = [_whole(parts[1 + 2 * i]) for i in range(count)]
    if any(i is None for i in indices):
        return "an index is not a whole number >= 0"
    if len(set(indices)) != count:
        return "an index repeats"
    if any(not parts[2 + 2 * i] for i in range(count)):
        return "a value is empty"
    return None
