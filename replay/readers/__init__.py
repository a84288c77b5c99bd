"""Readers of historical telemetry, one small module per format, behind one entry point.

Each reader returns one lazy outcome stream per input file; the publisher merges them by event time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

from replay.model import Outcomes
from replay.readers import jsonl, omes, parquet, pmxml, raca
from replay.readers.dn import DnResolver
from replay.readers.files import DEFAULT_MAX_INPUT_BYTES
from replay.readers.vector_rules import VectorRules
from twin import topics

__all__ = ["TOPICS", "Format", "ReaderOptions", "open_sources"]


class Format(StrEnum):
    raca = "raca"
    pm_xml = "pm-xml"
    omes = "omes"
    jsonl = "jsonl"
    parquet = "parquet"


@dataclass(frozen=True, slots=True)
class ReaderOptions:
    """Options of the formats that need an identity the files do not carry."""

    plmn: str | None = None  # None: each reader's documented default
    dn_map: Path | None = None  # pm-xml: JSON object of DN -> cell key
    # raca: the zone the timestamps were logged in (None: Europe/Dublin); pm-xml: the zone of times
    # written without an offset (None: such times are rejected)
    timezone: str | None = None
    vector_rules: Path | None = None  # pm-xml: TOML/JSON counter-layout rules (vector_rules.py)
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES  # one input, decompressed (files.InputTooLarge)


# Topics a format can produce (created up front when publishing), besides the dead-letter topic.
TOPICS: dict[Format, tuple[str, ...]] = {
    Format.raca: (topics.MR_UE,),
    Format.pm_xml: (topics.PM_CELL, topics.PM_RELATION),
    Format.omes: (topics.PM_CELL, topics.PM_RELATION),
    Format.jsonl: tuple(topics.SCHEMAS),
    Format.parquet: tuple(topics.SCHEMAS),
}


def open_sources(
    fmt: Format, sources: Sequence[Path], options: ReaderOptions | None = None
) -> list[Outcomes]:
    """One outcome stream per input file; raises ``FileNotFoundError`` for a missing source."""
    options = options or ReaderOptions()
    if fmt is Format.raca:
        return raca.read(
            sources,
            raca.RacaOptions(plmn=options.plmn or raca.DEFAULT_PLMN, timezone=options.timezone or raca.DEFAULT_TZ),
            options.max_input_bytes,
        )
    if fmt in (Format.pm_xml, Format.omes):
        plmn = options.plmn or "00101"
        resolver = (
            DnResolver.from_file(options.dn_map, plmn=plmn) if options.dn_map else DnResolver(plmn=plmn)
        )
        rules = VectorRules.from_file(options.vector_rules) if options.vector_rules else VectorRules()
        tz = ZoneInfo(options.timezone) if options.timezone else None
        pm_options = pmxml.PmXmlOptions(resolver=resolver, rules=rules, timezone=tz)
        if fmt is Format.omes:
            return omes.read(sources, pm_options, options.max_input_bytes)
        return pmxml.read(sources, pm_options, options.max_input_bytes)
    if fmt is Format.jsonl:
        return jsonl.read(sources, options.max_input_bytes)
    return parquet.read(sources, options.max_input_bytes)
