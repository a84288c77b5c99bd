"""Reader of the Raca et al. 5G production dataset (MMSys 2020): one CSV row -> one ``MrEvent``.

The dataset is UE-side logging from a commercial Irish network (one row per second, per phone
session); it has no RRC trigger, no PCI and no NR cell identity. The mapping below is ours
(telemetry.md has no section for it) and every choice is deliberate:

===================  ==========================================================================
MrEvent field        source
===================  ==========================================================================
eventId              uuid5(replay namespace, ``raca5g/<file name>#<line number>``): replaying the
                     same file again yields the same ids, so ingest dedups them. The file's base
                     name is used (the dataset's names are unique) so a folder, a single CSV and
                     the zip all give the same ids.
eventTime            ``Timestamp`` (``2019.11.25_15.34.34``) is the phone's local time in Ireland:
                     read as Europe/Dublin (zoneinfo, DST-aware; ambiguous autumn times take the
                     first occurrence) and converted to UTC. The dataset runs Nov 2019 - Jan 2020,
                     i.e. GMT, so UTC equals the printed time.
cellKey              ``lte_cell_key(plmn, RAWCELLID)``: RAWCELLID is the 28-bit ECI
                     (eNB id * 256 + cell id); the serving cell of LTE and 5G-NSA rows is the LTE
                     anchor. The PLMN is configurable; default ``27203``: operators are anonymised
                     (all rows say ``B``), but 24 rows leak the real PLMN ``27203`` in
                     ``Operatorname``.
ueRef                ``raca-`` + 16 hex of uuid5(file name): one pseudonymous UE per session file.
source, trigger      ``REPLAY``, ``PERIODIC`` (the app logs once per second).
rat, serving         LTE; ``RSRP`` (required), ``RSRQ``, ``SNR`` -> rsrpDbm/rsrqDb/sinrDb plus the
                     TS 36.133 report indices (RSRP dBm+141 in 0..97, RSRQ (dB+20)*2 in 0..34,
                     RS-SINR (dB+23.5)*2 in 0..127).
neighbours           the NR leg (``NRxRSRP``/``NRxRSRQ``) when present, as one NR measurement. The
                     NR cell is not identified in the data; it is keyed as the co-sited NR cell
                     whose NCI equals the anchor's ECI (gNB id = eNB id, gnbIdLength 28, same local
                     cell id). Disable with ``nr_leg=False``.
ue                   ``CQI`` -> cqi; ``DL_bitrate``/``UL_bitrate`` (kbit/s, per the paper) ->
                     dl/ulThroughputKbps.
location             ``Latitude``/``Longitude``, method GNSS.
(dropped)            Speed, RSSI, State, PING*, CELLHEX/NODEHEX/LACHEX, CellID: no schema field.
===================  ==========================================================================

Missing values (``-``) are absent fields. ``2147483647`` (Android's ``CellInfo.UNAVAILABLE``, also
written ``2147483647.0`` in the NR columns) is read as missing too. Rows are **rejected** with a
reason naming the column and value when the timestamp or a number does not parse, a value of the
serving cell or the UE is outside the schema range (e.g. ``RSRP=-200``), the row has the wrong
number of fields, or ``NetworkMode`` is a 2G/3G mode (HSPA+, UMTS, EDGE, ...): those rows describe
a UTRAN/GERAN cell that has no ECGI/NCGI key.

An NR-leg value outside its range (mostly ``NRxRSRQ=-204``, also ``-225``, ``NRxRSRP=-205`` and a
few RSRQs of -44 to -56 dB: values TS 38.133 cannot report, in about 3 % of the rows) does not cost
the row its valid LTE serving measurement: that value is dropped (the NR measurement keeps its other value, or
is left out), the row is published, and each file ends with a notice that counts the dropped values
by column and value.

Rows of one file are replayed in timestamp order (stable sort; the phone's clock rarely steps back).
"""

from __future__ import annotations

import csv
import math
import re
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from replay.model import Item, Notice, Outcomes, Rejection
from replay.readers.files import DEFAULT_MAX_INPUT_BYTES, Input, expand, guarded
from twin import topics
from twin.cells import lte_cell_key, nr_cell_key
from twin.schemas import CellMeas, Location, MrEvent, MrSource, Rat, UeInfo
from twin.schemas.mr import rsrp_index, rsrq_index, sinr_index

__all__ = [
    "DEFAULT_PLMN", "DEFAULT_TZ", "SUFFIXES", "UNAVAILABLE", "RacaOptions", "RowError", "RowMapper", "file_id",
    "lte_rsrp_index", "lte_rsrq_index", "parse_timestamp", "read", "read_file",
]

DEFAULT_PLMN = "27203"
DEFAULT_TZ = "Europe/Dublin"
SUFFIXES = (".csv",)
REPLAY_NAMESPACE = uuid.UUID("6f1b7c2e-3d4a-5b6c-8d7e-9f0a1b2c3d4e")
REQUIRED = ("Timestamp", "NetworkMode", "RAWCELLID", "RSRP")
UNAVAILABLE = 2_147_483_647  # Android's CellInfo.UNAVAILABLE (Integer.MAX_VALUE)
LTE_MODES = frozenset({"LTE", "5G"})

_TS = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})_(\d{2})\.(\d{2})\.(\d{2})$")


@dataclass(frozen=True, slots=True)
class RacaOptions:
    plmn: str = DEFAULT_PLMN
    timezone: str = DEFAULT_TZ
    nr_leg: bool = True


class RowError(ValueError):
    """A row that cannot become an MR event; ``field`` names the offending column."""

    def __init__(self, field: str | None, message: str, error_class: str = "range") -> None:
        super().__init__(message)
        self.field = field
        self.error_class = error_class


def parse_timestamp(text: str, tz: tzinfo) -> datetime:
    """The dataset's local ``YYYY.MM.DD_HH.MM.SS`` as an aware time.

    >>> parse_timestamp("2019.11.25_15.34.34", ZoneInfo("Europe/Dublin")).isoformat()
    '2019-11-25T15:34:34+00:00'
    >>> parse_timestamp("2019.07.01_12.00.00", ZoneInfo("Europe/Dublin")).utcoffset()
    datetime.timedelta(seconds=3600)
    """
    m = _TS.match(text)
    if m is None:
        raise RowError("Timestamp", f"Timestamp={text!r} is not YYYY.MM.DD_HH.MM.SS", "parse")
    y, mo, d, h, mi, s = (int(g) for g in m.groups())
    try:
        at = datetime(y, mo, d, h, mi, s, tzinfo=tz)
        at.astimezone(UTC)  # a local time of year 1 or 9999 that UTC cannot hold: refused here, not when sorted
        return at
    except (ValueError, OverflowError) as exc:
        raise RowError("Timestamp", f"Timestamp={text!r} is not a valid date/time: {exc}", "parse") from exc


def _num(row: dict[str, str], col: str) -> float | None:
    text = row.get(col, "-").strip()
    if text in ("-", ""):
        return None
    try:
        value = float(text)
    except ValueError:
        raise RowError(col, f"{col}={text!r} is not a number", "parse") from None
    return None if value == UNAVAILABLE else value


def _ranged(row: dict[str, str], col: str, lo: float, hi: float, unit: str) -> float | None:
    value = _num(row, col)
    if value is not None and not lo <= value <= hi:
        raise RowError(col, f"{col}={value:g} outside {lo:g}..{hi:g} {unit}".rstrip())
    return value


def _ranged_or_dropped(row: dict[str, str], col: str, lo: float, hi: float, unit: str,
                       dropped: list[str]) -> float | None:
    """``_ranged``, except that a value outside the range is dropped (its reason added to ``dropped``)."""
    try:
        return _ranged(row, col, lo, hi, unit)
    except RowError as err:
        if err.error_class != "range":
            raise
        dropped.append(str(err))
        return None


def _clamp_idx(value: float, top: int) -> int:
    return int(min(top, max(0, value)))


def lte_rsrp_index(dbm: float) -> int:
    """TS 36.133 RSRP report index: RSRP_00 < -140 dBm ... RSRP_97 >= -44 dBm.

    >>> lte_rsrp_index(-140), lte_rsrp_index(-79), lte_rsrp_index(-20)
    (1, 62, 97)
    """
    return _clamp_idx(dbm + 141, 97)


def lte_rsrq_index(db: float) -> int:
    """TS 36.133 RSRQ report index: RSRQ_00 < -19.5 dB ... RSRQ_34 >= -3 dB."""
    return _clamp_idx((db + 20) * 2, 34)


def file_id(name: str) -> str:
    """Stable identity of a dataset file, the same whether read from a folder or from the zip.

    >>> file_id("5G-production-dataset.zip!5G-production-dataset/Netflix/Driving/x/B_2019.csv")
    'raca5g/B_2019.csv'
    """
    return "raca5g/" + PurePosixPath(name.rsplit("!", 1)[-1]).name


class RowMapper:
    """Maps one parsed row of one file to an ``MrEvent`` (the rules of the module docstring);
    ``dropped`` holds the reasons of the NR-leg values the last row lost."""

    def __init__(self, options: RacaOptions, fid: str) -> None:
        self.options = options
        self.fid = fid
        self.ue_ref = "raca-" + uuid.uuid5(REPLAY_NAMESPACE, fid).hex[:16]
        self.dropped: list[str] = []

    def __call__(self, row: dict[str, str], line_no: int, event_time: datetime) -> MrEvent:
        self.dropped = []
        mode = row.get("NetworkMode", "").strip()
        if mode not in LTE_MODES:
            raise RowError(
                "NetworkMode",
                f"NetworkMode={mode!r} is not LTE or 5G (NSA): a 2G/3G cell has no ECGI/NCGI cell key",
                "unsupported",
            )
        eci_f = _num(row, "RAWCELLID")
        if eci_f is None or not math.isfinite(eci_f) or eci_f != int(eci_f) or not 0 < eci_f < 1 << 28:
            raise RowError(
                "RAWCELLID", f"RAWCELLID={row.get('RAWCELLID')!r} is not a 28-bit ECI (1..268435455)"
            )
        eci = int(eci_f)
        cell_key = lte_cell_key(self.options.plmn, eci)
        rsrp = _ranged(row, "RSRP", -157, -30, "dBm")
        if rsrp is None:
            raise RowError("RSRP", "RSRP is missing ('-'): the serving measurement needs it", "missing")
        rsrq = _ranged(row, "RSRQ", -43.5, 20, "dB")
        sinr = _ranged(row, "SNR", -23.5, 40, "dB")
        serving = CellMeas(
            cell_key=cell_key,
            rat=Rat.LTE,
            rsrp_dbm=rsrp,
            rsrq_db=rsrq,
            sinr_db=sinr,
            rsrp_idx=lte_rsrp_index(rsrp),
            rsrq_idx=None if rsrq is None else lte_rsrq_index(rsrq),
            sinr_idx=None if sinr is None else sinr_index(sinr),
        )
        neighbours = []
        nr_rsrp = _ranged_or_dropped(row, "NRxRSRP", -157, -30, "dBm", self.dropped)
        nr_rsrq = _ranged_or_dropped(row, "NRxRSRQ", -43.5, 20, "dB", self.dropped)
        if self.options.nr_leg and (nr_rsrp is not None or nr_rsrq is not None):
            neighbours.append(
                CellMeas(
                    cell_key=nr_cell_key(self.options.plmn, eci >> 8, 28, eci & 0xFF),
                    rat=Rat.NR,
                    rsrp_dbm=nr_rsrp,
                    rsrq_db=nr_rsrq,
                    rsrp_idx=None if nr_rsrp is None else rsrp_index(nr_rsrp),
                    rsrq_idx=None if nr_rsrq is None else rsrq_index(nr_rsrq),
                )
            )
        cqi = _ranged(row, "CQI", 0, 15, "")
        if cqi is not None and cqi != int(cqi):
            raise RowError("CQI", f"CQI={cqi:g} is not an integer")
        dl = _ranged(row, "DL_bitrate", 0, 1e8, "kbit/s")
        ul = _ranged(row, "UL_bitrate", 0, 1e8, "kbit/s")
        ue = None
        if cqi is not None or dl is not None or ul is not None:
            ue = UeInfo(cqi=None if cqi is None else int(cqi), dl_throughput_kbps=dl, ul_throughput_kbps=ul)
        lat = _ranged(row, "Latitude", -90, 90, "deg")
        lon = _ranged(row, "Longitude", -180, 180, "deg")
        location = None if lat is None or lon is None else Location(lat=lat, lon=lon, method="GNSS")
        return MrEvent(
            event_id=str(uuid.uuid5(REPLAY_NAMESPACE, f"{self.fid}#{line_no}")),
            event_time=event_time,
            cell_key=cell_key,
            ue_ref=self.ue_ref,
            source=MrSource.REPLAY,
            trigger="PERIODIC",
            rat=Rat.LTE,
            serving=serving,
            neighbours=neighbours,
            ue=ue,
            location=location,
        )


def _validation_reason(exc: ValidationError) -> tuple[str | None, str]:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return loc or None, f"{loc}={err.get('input')!r}: {err['msg']}"


def read_file(inp: Input, options: RacaOptions = RacaOptions()) -> Outcomes:
    """Outcomes of one CSV file: rejections of unreadable rows first, then rows in time order."""
    data = inp.read()
    lines = data.split(b"\n")
    header_raw = lines[0].rstrip(b"\r").lstrip(b"\xef\xbb\xbf")
    header = next(csv.reader([header_raw.decode("utf-8", "replace")]), [])
    body = [(n, raw.rstrip(b"\r")) for n, raw in enumerate(lines[1:], start=2) if raw.strip()]

    def reject(where: str, err: RowError, raw: bytes, units: int = 1) -> Rejection:
        return Rejection(inp.name, where, str(err), err.error_class, raw, topics.MR_UE, err.field, units)

    missing = [c for c in REQUIRED if c not in header]
    if missing:
        err = RowError(missing[0], f"header lacks column(s) {', '.join(missing)}: not a Raca CSV", "schema")
        if body:  # one rejection stands for every row of the file
            yield reject(f"lines 2-{body[-1][0]}", err, data, units=len(body))
        return
    tz = ZoneInfo(options.timezone)
    ts_col = header.index("Timestamp")
    # First pass: only the timestamp, to sort; rows are parsed again when mapped (keeps memory small,
    # since the merge holds every file open at once).
    parsed: list[tuple[datetime, int, bytes]] = []
    for line_no, raw in body:
        fields_or_error = _split(raw, len(header))
        if isinstance(fields_or_error, RowError):
            yield reject(f"line {line_no}", fields_or_error, raw)
            continue
        try:
            parsed.append((parse_timestamp(fields_or_error[ts_col].strip(), tz), line_no, raw))
        except RowError as err:
            yield reject(f"line {line_no}", err, raw)
    del data, lines, body
    parsed.sort(key=lambda p: p[0])
    mapper = RowMapper(options, file_id(inp.name))
    dropped: Counter[str] = Counter()
    for event_time, line_no, raw in parsed:
        fields = _split(raw, len(header))
        assert not isinstance(fields, RowError)  # checked in the first pass
        try:
            event = mapper(dict(zip(header, fields, strict=True)), line_no, event_time)
        except RowError as err:
            yield reject(f"line {line_no}", err, raw)
            continue
        except ValidationError as exc:
            field, msg = _validation_reason(exc)
            yield reject(f"line {line_no}", RowError(field, msg, "schema"), raw)
            continue
        dropped.update(mapper.dropped)
        yield Item(topics.MR_UE, event.cell_key, event.event_time, event, 1, inp.name, f"line {line_no}")
    if dropped:
        counts = ", ".join(f"{reason} x{n}" for reason, n in dropped.most_common())
        yield Notice(inp.name, f"{dropped.total()} NR-leg values outside their range dropped "
                               f"(rows kept with their LTE measurement): {counts}")


def _split(raw: bytes, width: int) -> list[str] | RowError:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RowError(None, f"row is not UTF-8 ({exc.reason} at byte {exc.start})", "encoding")
    try:
        fields = next(csv.reader([text]), [])
    except csv.Error as exc:  # a bare carriage return inside a field, a field over csv's size limit
        return RowError(None, f"row is not CSV: {exc}", "parse")
    if len(fields) != width:
        return RowError(None, f"row has {len(fields)} fields, the header has {width}", "parse")
    return fields


def read(sources: Sequence[Path], options: RacaOptions = RacaOptions(),
         max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES) -> list[Outcomes]:
    """One outcome stream per CSV file (folders and the zip itself are expanded)."""
    return [guarded(inp, read_file(inp, options), topics.MR_UE) for inp in expand(sources, SUFFIXES, max_input_bytes)]
