"""Readers of historical telemetry, one small module per format, behind one entry point.

Each reader returns one lazy outcome stream per input file; the publisher merges them by event time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from replay.model import Outcomes
from replay.readers import jsonl, parquet, pmxml, raca
from replay.readers.dn import DnResolver
from twin import topics

__all__ = ["TOPICS", "Format", "ReaderOptions", "open_sources"]


class Format(StrEnum):
    raca = "raca"
    pm_xml = "pm-xml"
    jsonl = "jsonl"
    parquet = "parquet"


@dataclass(frozen=True, slots=True)
class ReaderOptions:
    """Options of the formats that need an identity the files do not carry."""

    plmn: str | None = None  # None: each reader's documented default
    dn_map: Path | None = None  # pm-xml: JSON object of DN -> cell key
    timezone: str = raca.DEFAULT_TZ  # raca: the zone the timestamps were logged in


# Topics a format can produce (created up front when publishing), besides the dead-letter topic.
TOPICS: dict[Format, tuple[str, ...]] = {
    Format.raca: (topics.MR_UE,),
    Format.pm_xml: (topics.PM_CELL, topics.PM_RELATION),
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
            sources, raca.RacaOptions(plmn=options.plmn or raca.DEFAULT_PLMN, timezone=options.timezone)
        )
    if fmt is Format.pm_xml:
        plmn = options.plmn or "00101"
        resolver = (
            DnResolver.from_file(options.dn_map, plmn=plmn) if options.dn_map else DnResolver(plmn=plmn)
        )
        return pmxml.read(sources, pmxml.PmXmlOptions(resolver=resolver))
    if fmt is Format.jsonl:
        return jsonl.read(sources)
    return parquet.read(sources)
