"""Edge validation and normalisation of inbound telemetry, free of any transport.

``IngestDecoder.decode`` turns the bytes of one record into either a compact normalised dict (what
the mirror applies) or a ``Rejection`` with a reason that names the field and the value. The
streams layer sends rejections to ``ran.dlq.v1``; nothing is dropped silently.

A normalised record is a tagged tuple ``(kind, cell_key, body)`` typed in ``twin.records``: kind is
``pm``, ``pmr``, ``cm``, ``cmn``, ``cmdel`` or ``mr``; the body is a small ``TypedDict``, except for
MR events, which cross the re-keying topic by the hundred thousand and so are positional
(``twin.records.MR_FIELDS``). Times are epoch seconds (UTC).

>>> from twin.config import IngestSettings
>>> decoder = IngestDecoder(IngestSettings(), now=lambda: 1.8e9)
>>> raw = (b'{"cellKey": "nr:00101-00000a01c", "measObjDn": "ManagedElement=1,NRCellDU=1",'
...        b' "measObjClass": "NRCellDU", "periodEnd": "2024-03-01T10:15:00Z",'
...        b' "granularityPeriodS": 900, "values": {"RRU.PrbTotDl": 63, "MM.HoExeInterReq": -4}}')
>>> decoder.decode("ran.pm.cell.v1", None, raw).reason
'field values.MM.HoExeInterReq: cumulative counter is negative (value -4.0)'
>>> decoder.decode("ran.pm.cell.v1", None, b"\\xff\\xfe").error_class
'encoding'
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from pydantic import ValidationError

from twin import topics
from twin.cells import is_cell_key
from twin.config import IngestSettings
from twin.measurements import is_counter
from twin.records import (
    MR_FIELDS,
    CmBody,
    CmNotificationBody,
    NormalisedCmDeletion,
    NormalisedRecord,
    PmBody,
    PmRelationBody,
)
from twin.schemas import CmNotification, CmSnapshot, MrEvent, PmCellRecord, PmRelationRecord
from twin.schemas.base import UUID_PATTERN
from twin.schemas.fast import dict_adapter, python_pattern, struct_decoder

__all__ = ["MR_FIELDS", "IngestDecoder", "KeyValue", "Normalised", "Rejection", "describe_validation_error"]

#: what one record decodes to (kept as the short name the decoder's callers use)
Normalised = NormalisedRecord

MAX_REMEMBERED_CELL_KEYS = 65536  # valid cell keys a decoder remembers (then it forgets them all and starts again)
_UUID_MATCH = re.compile(python_pattern(UUID_PATTERN)).match


class KeyValue(Protocol):
    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record was not ingested; ``error_class`` is a short category for counters."""

    reason: str
    error_class: str


def describe_validation_error(exc: ValidationError, limit: int = 3) -> str:
    """'field a.b: message (value x)' for the first few errors."""
    parts = []
    for err in exc.errors(include_url=False)[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "(record)"
        value = err.get("input")
        shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
        if len(shown) > 80:
            shown = shown[:77] + "..."
        parts.append(f"field {loc}: {err['msg']} (value {shown})")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


class IngestDecoder:
    """Validates and normalises records of the ingest topics."""

    def __init__(self, settings: IngestSettings, now: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.now = now
        self._pm_v = dict_adapter(PmCellRecord).validate_json
        self._pmr_v = dict_adapter(PmRelationRecord).validate_json
        self._cm_v = dict_adapter(CmSnapshot).validate_json
        self._cmn_v = dict_adapter(CmNotification).validate_json
        self._mr_fast = struct_decoder(MrEvent, patterns=False).decode  # the patterns: in ``_mr``
        self._valid_cell_keys: set[str] = set()
        self._limit = 0.0  # latest acceptable event time, set from the clock per call or batch
        self._pci_ident: dict[tuple[int, int | None], str] = {}  # neighbour id of (pci, arfcn)
        self._by_topic: dict[str, Callable[[str, bytes], Normalised | Rejection]] = {
            topics.PM_CELL: self._pm,
            topics.PM_RELATION: self._pm,
            topics.CM_SNAPSHOT: self._cm,
            topics.CM_NOTIFICATIONS: self._cmn,
            topics.MR_UE: self._mr,
        }

    def decode(self, topic: str, key: bytes | None, value: bytes | None) -> Normalised | Rejection:
        """One record; a batch is cheaper through ``decode_many``."""
        self._limit = self.now() + self.settings.max_future_skew_s
        return self._decode(topic, key, value)

    def decode_many(self, topic: str, records: Iterable[KeyValue]) -> list[Normalised | Rejection]:
        """Records of one topic (anything with ``key`` and ``value``, such as Kafka messages), read
        against one reading of the clock."""
        self._limit = self.now() + self.settings.max_future_skew_s
        decode = self._decode
        if topic != topics.MR_UE:
            return [decode(topic, r.key, r.value) for r in records]
        # MR, by far the most numerous: what ``_decode`` does, without its calls per record
        mr, explain, max_bytes = self._mr, self._explain, self.settings.max_payload_bytes
        out: list[Normalised | Rejection] = []
        append = out.append
        for r in records:
            value = r.value
            if value is None or len(value) > max_bytes:
                append(decode(topic, r.key, value))
                continue
            try:
                append(mr(topic, value))
            except ValidationError as exc:
                append(explain(value, exc))
        return out

    def _decode(self, topic: str, key: bytes | None, value: bytes | None) -> Normalised | Rejection:
        if value is None:
            if topic == topics.CM_SNAPSHOT and key:
                try:
                    tombstone: NormalisedCmDeletion = ("cmdel", None, {"dn": key.decode("utf-8")})
                    return tombstone
                except UnicodeDecodeError:
                    return Rejection("tombstone key is not valid UTF-8", "encoding")
            return Rejection("record has no value (null payload)", "empty")
        if len(value) > self.settings.max_payload_bytes:
            return Rejection(
                f"payload of {len(value)} bytes exceeds max_payload_bytes={self.settings.max_payload_bytes}",
                "oversized",
            )
        decode = self._by_topic.get(topic)
        if decode is None:
            return Rejection(f"topic {topic!r} is not an ingest topic", "topic")
        try:
            return decode(topic, value)
        except ValidationError as exc:
            return self._explain(value, exc)

    def _explain(self, value: bytes, exc: ValidationError) -> Rejection:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as err:
            return Rejection(f"payload is not valid UTF-8 (byte {err.start}: {value[err.start:err.start + 1]!r})",
                             "encoding")
        first = exc.errors(include_url=False)[0]
        if first["type"].startswith("json"):
            return Rejection(f"payload is not valid JSON: {first['msg']}", "json")
        return Rejection(describe_validation_error(exc), "schema")

    def _too_late(self, field: str, epoch: float) -> Rejection | None:
        """A rejection when ``epoch`` is in the future beyond the skew, or before the earliest event time."""
        if epoch > self._limit:
            return self._future(field, epoch)
        return self._past(field, epoch) if epoch < self.settings.earliest_event_time_s else None

    def _past(self, field: str, epoch: float) -> Rejection:
        return Rejection(f"field {field}: timestamp {epoch:.0f} is before earliest_event_time_s "
                         f"{self.settings.earliest_event_time_s:.0f}", "past_timestamp")

    def _future(self, field: str, epoch: float) -> Rejection:
        return Rejection(
            f"field {field}: timestamp {epoch:.0f} is more than {self.settings.max_future_skew_s:.0f} s in the future",
            "future_timestamp",
        )

    def _pm(self, topic: str, value: bytes) -> Normalised | Rejection:
        relation = topic == topics.PM_RELATION
        rec = (self._pmr_v if relation else self._pm_v)(value)
        end = rec["periodEnd"].timestamp()
        late = self._too_late("periodEnd", end)
        if late:
            return late
        values = rec["values"]
        for name, v in values.items():
            if v < 0 and is_counter(name):
                return Rejection(f"field values.{name}: cumulative counter is negative (value {v})",
                                 "negative_counter")
        if relation:
            rel: PmRelationBody = {"gp": rec["granularityPeriodS"], "t": end, "v": values,
                                   "s": rec.get("suspect", False), "dn": rec["measObjDn"],
                                   "oc": rec["measObjClass"], "tc": rec["targetCellKey"]}
            return ("pmr", rec["cellKey"], rel)
        body: PmBody = {"gp": rec["granularityPeriodS"], "t": end, "v": values, "s": rec.get("suspect", False),
                        "dn": rec["measObjDn"], "oc": rec["measObjClass"]}
        return ("pm", rec["cellKey"], body)

    def _cm(self, topic: str, value: bytes) -> Normalised | Rejection:
        rec = self._cm_v(value)
        at = rec["observedAt"].timestamp()
        body: CmBody = {"dn": rec["dn"], "cls": rec["class"], "a": rec["attributes"], "t": at,
                        "src": rec.get("sourceSystem", "unknown")}
        return self._too_late("observedAt", at) or _too_wide(rec["attributes"], "attributes") or (
            "cm", rec.get("cellKey"), body)

    def _cmn(self, topic: str, value: bytes) -> Normalised | Rejection:
        rec = self._cmn_v(value)
        at = rec["eventTime"].timestamp()
        changes = rec.get("attributeListValueChanges", {})
        body: CmNotificationBody = {"dn": rec["dn"], "cls": rec.get("class"), "nt": rec["notificationType"],
                                    "a": changes, "t": at, "id": rec["notificationId"]}
        return self._too_late("eventTime", at) or _too_wide(changes, "attributeListValueChanges") or (
            "cmn", rec["cellKey"], body)

    def _new_cell_key(self, key: str) -> bool:
        """Whether a cell key not seen before matches the schema's pattern; remembered if it does."""
        if not is_cell_key(key):  # the schema's pattern, matched whole (no trailing newline)
            return False
        if len(self._valid_cell_keys) >= MAX_REMEMBERED_CELL_KEYS:  # arbitrary keys must not grow it without bound
            self._valid_cell_keys.clear()
        self._valid_cell_keys.add(key)
        return True

    def _mr(self, topic: str, value: bytes) -> Normalised | Rejection:
        # The fast decoder checks the schema's types and bounds, not its string patterns: those are
        # checked here, ``eventId`` by a compiled regular expression, cell keys against the set of
        # those already seen valid (a network has a few thousand), which costs less than msgspec's
        # ``re`` call per field. What fails either has the model's verdict, which is the one that
        # counts (and a ValidationError naming the field when the record is invalid).
        try:
            rec = self._mr_fast(value)
        except (msgspec.MsgspecError, ValueError):  # ValueError: msgspec's UnicodeDecodeError
            rec = MrEvent.model_validate_json(value)
        else:
            keys = self._valid_cell_keys
            if (_UUID_MATCH(rec.event_id) is None
                    or (rec.cell_key not in keys and not self._new_cell_key(rec.cell_key))
                    or ((key := rec.serving.cell_key) is not None and key not in keys and not self._new_cell_key(key))):
                rec = MrEvent.model_validate_json(value)
            else:
                for nb in rec.neighbours:
                    if (key := nb.cell_key) is not None and key not in keys and not self._new_cell_key(key):
                        rec = MrEvent.model_validate_json(value)
                        break
        at = rec.event_time.timestamp()
        if at > self._limit:
            return self._future("eventTime", at)
        if at < self.settings.earliest_event_time_s:
            return self._past("eventTime", at)
        serving = rec.serving
        if serving.pci is None and serving.cell_key is None:
            return Rejection("field serving: a cell measurement needs pci or cellKey (value none)", "schema")
        neighbours = []
        for i, nb in enumerate(rec.neighbours):
            ident = nb.cell_key
            if ident is None:
                if nb.pci is None:
                    return Rejection(f"field neighbours.{i}: a cell measurement needs pci or cellKey", "schema")
                ident = self._pci_ident.get((nb.pci, nb.arfcn))
                if ident is None:
                    if len(self._pci_ident) > 65536:  # arbitrary ARFCNs must not grow it without bound
                        self._pci_ident.clear()
                    ident = self._pci_ident[nb.pci, nb.arfcn] = f"pci:{nb.pci}:{'' if nb.arfcn is None else nb.arfcn}"
            neighbours.append((ident, nb.rsrp_dbm))
        ue = rec.ue
        # 7-bit reporting indices: as reported, else derived from the physical value as in
        # twin.schemas.mr.rsrp_index / rsrq_index / sinr_index, inline (this runs per MR event) and
        # without their clamping: the schema's ranges already put every value on the 0..127 grid.
        rsrp, rsrq, sinr = serving.rsrp_idx, serving.rsrq_idx, serving.sinr_idx
        if serving.rat == "LTE":  # TS 36.133's grids (idx - 141 dBm, idx/2 - 20 dB); the mirror keeps NR's
            rsrp = None if rsrp is None else min(127, rsrp + 16)
            rsrq = None if rsrq is None else min(127, rsrq + 47)
        if rsrp is None and (v := serving.rsrp_dbm) is not None:
            rsrp = round(v + 157)
        if rsrq is None and (v := serving.rsrq_db) is not None:
            rsrq = round((v + 43.5) * 2)
        if sinr is None and (v := serving.sinr_db) is not None:
            sinr = round((v + 23.5) * 2)
        loc = rec.location
        return ("mr", rec.cell_key, (rec.event_id, at, rsrp, rsrq, sinr, neighbours,
                                     None if ue is None else ue.dl_throughput_kbps,
                                     None if ue is None else ue.cqi,
                                     None if loc is None else (loc.lat, loc.lon, loc.accuracy_m)))


_INT_RANGE = (-(1 << 63), (1 << 64) - 1)  # what orjson, which writes envelopes and checkpoints, can encode


def _too_wide(value: Any, path: str) -> Rejection | None:
    """A rejection naming the first integer in free-form CM values that orjson cannot encode: such a
    record would otherwise crash the worker on every redelivery (a poison pill)."""
    if isinstance(value, int):
        if _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            return None
        return Rejection(f"field {path}: integer outside the 64-bit range (value {value})", "schema")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        found = _too_wide(v, f"{path}.{k}")
        if found:
            return found
    return None
