"""Nothing is lost: every record published to an ingest topic is either applied to the mirror or
dead-lettered on ``ran.dlq.v1`` with its reason, original bytes, topic, partition and offset.

Hypothesis generates one big batch per example (a real broker and worker per example are
expensive): garbage bytes, non-UTF-8, truncated JSON, oversized payloads, future timestamps,
negative cumulative counters, unknown enum values, null payloads, records on the wrong topic, CM
values with integers beyond 64 bits (once a poison pill that crashed the worker), and
valid records of ``SyntheticNetwork`` mutated with the mutations of ``tests/test_schemas_fast.py``.
The batch goes through a real embedded Tansu broker and an in-process ``IngestWorker``; every
published offset is then accounted for.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from streams.broker import EmbeddedBroker
from streams.kafka_io import ensure_topics, make_producer
from streams.worker import IngestWorker
from tests.helpers import run_worker_until, settings_for
from tests.readback import read_topic
from tests.test_schemas_fast import encode, mutate
from twin import topics
from twin.config import TwinSettings
from twin.ingest import IngestDecoder, Rejection
from twin.mirror.cluster import ClusterMirror
from twin.mirror.holding import Holding
from twin.mirror.view import mirror_view
from twin.routing import ClusterRouter, holding_key
from twin.synthetic import SyntheticNetwork

MAX_PAYLOAD = 4096
PLACEHOLDER_ID = "00000000-0000-4000-8000-000000000000"  # replaced by a unique id before publishing
NS = uuid.UUID("6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b")

NET = SyntheticNetwork(cells=6, seed=11)
CLUSTERS = [("east", NET.keys[:3]), ("west", NET.keys[3:5])]  # the last cell is in no cluster: held apart


def _base_records() -> list[tuple[str, str, dict[str, Any]]]:
    """(topic, key, record as a JSON document) of a small valid stream, one of each ingest topic."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    for snap in NET.cm_snapshots():
        out.append((topics.CM_SNAPSHOT, snap.dn, orjson.loads(snap.to_json_bytes())))
    for period in range(3):
        for pm in NET.pm_period(period):
            out.append((topics.PM_CELL, pm.cell_key, orjson.loads(pm.to_json_bytes())))
        for mr in NET.mr_events(period, 12):
            doc = orjson.loads(mr.to_json_bytes())
            doc["eventId"] = PLACEHOLDER_ID
            out.append((topics.MR_UE, mr.cell_key, doc))
    for i, key in enumerate(NET.keys):
        target = NET.keys[(i + 1) % len(NET.keys)]
        out.append((topics.PM_RELATION, key, {
            "cellKey": key, "targetCellKey": target, "measObjDn": NET.dn(i) + ",NRCellRelation=1",
            "measObjClass": "NRCellRelation", "relationDn": NET.dn(i) + ",NRCellRelation=1",
            "periodEnd": "2024-03-01T00:15:00Z", "granularityPeriodS": 900,
            "values": {"MM.HoExeInterReq": 12.0, "HO.IntraSys.TooLate": 1.0},
        }))
        out.append((topics.CM_NOTIFICATIONS, key, {
            "notificationId": f"n-{i}", "notificationType": "notifyMOIAttributeValueChanges",
            "eventTime": "2024-03-01T00:20:00Z", "dn": NET.dn(i), "class": "NRCellDU", "cellKey": key,
            "attributeListValueChanges": {"administrativeState": "LOCKED"},
        }))
    return out


BASE = _base_records()
TIME_FIELD = {topics.PM_CELL: "periodEnd", topics.PM_RELATION: "periodEnd", topics.CM_SNAPSHOT: "observedAt",
              topics.CM_NOTIFICATIONS: "eventTime", topics.MR_UE: "eventTime"}
ENUM_FIELD = {topics.PM_CELL: "measObjClass", topics.PM_RELATION: "measObjClass",
              topics.CM_NOTIFICATIONS: "notificationType", topics.MR_UE: "source"}


@dataclass
class Item:
    """One record to publish; ``doc`` is encoded (with a unique eventId) at publish time."""

    kind: str
    topic: str
    key: bytes | None
    doc: Any = None
    raw: bytes | None = None

    def value(self, index: int) -> bytes | None:
        if self.doc is None:
            return self.raw
        doc = self.doc
        if isinstance(doc, dict) and doc.get("eventId") == PLACEHOLDER_ID:
            doc = {**doc, "eventId": str(uuid.uuid5(NS, str(index)))}
        return encode(doc)


ingest_topics = st.sampled_from(topics.INGEST_TOPICS)
garbage_keys = st.none() | st.binary(min_size=1, max_size=12)
PM_TOPICS = (topics.PM_CELL, topics.PM_RELATION)
# kind -> (topics whose valid records it starts from, min and max records per topic in one batch)
FROM_VALID: dict[str, tuple[tuple[str, ...], int, int]] = {
    "valid": (topics.INGEST_TOPICS, 8, 20),
    "mutated": (topics.INGEST_TOPICS, 14, 30),
    "non_utf8": (topics.INGEST_TOPICS, 3, 6),
    "truncated": (topics.INGEST_TOPICS, 3, 6),
    "oversized": (topics.INGEST_TOPICS, 2, 4),
    "future": (topics.INGEST_TOPICS, 3, 6),
    "wrong_topic": (topics.INGEST_TOPICS, 3, 6),
    "negative_counter": (PM_TOPICS, 4, 8),
    "unknown_enum": (tuple(ENUM_FIELD), 3, 6),
    "unknown_measurement": ((topics.PM_CELL,), 4, 8),
    "wide_int": ((topics.CM_SNAPSHOT, topics.CM_NOTIFICATIONS), 2, 4),
}
GARBAGE: dict[str, tuple[int, int]] = {"random_bytes": (8, 20), "null": (3, 6), "tombstone": (3, 6)}


@st.composite
def from_valid(draw: st.DrawFn, kind: str, topic: str) -> Item:
    """A record of ``kind`` made from a valid record of ``topic``."""
    _topic, key, doc = draw(st.sampled_from([b for b in BASE if b[0] == topic]))
    doc = copy.deepcopy(doc)
    k = key.encode()
    if kind == "valid":
        return Item(kind, topic, k, doc)
    if kind == "mutated":
        mutation, _path, bad = draw(mutate(topic, doc))
        return Item(f"mutated:{mutation}", topic, k, bad)
    raw = encode(doc)
    if kind == "non_utf8":
        at = draw(st.integers(1, len(raw) - 1))
        bad_bytes = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xfe\xfe"]))
        return Item(kind, topic, k, raw=raw[:at] + bad_bytes + raw[at:])
    if kind == "truncated":
        return Item(kind, topic, k, raw=raw[:draw(st.integers(0, len(raw) - 1))])
    if kind == "oversized":  # valid JSON, only too big
        pad = draw(st.integers(MAX_PAYLOAD - len(raw) + 1, MAX_PAYLOAD + 3000))
        return Item(kind, topic, k, raw=raw[:-1] + b" " * pad + b"}")
    if kind == "future":
        ahead = timedelta(days=draw(st.integers(2, 30_000)))
        doc[TIME_FIELD[topic]] = (datetime.now(UTC) + ahead).isoformat()
        return Item(kind, topic, k, doc)
    if kind == "wrong_topic":
        return Item(kind, draw(ingest_topics.filter(lambda t: t != topic)), k, doc)
    if kind == "negative_counter":
        name = draw(st.sampled_from(["MM.HoExeInterReq", "RRC.ConnEstabAtt", "L1M.SS-RSRP.Bin3", "PEE.Energy"]))
        doc["values"][name] = -float(draw(st.integers(1, 10**6)))
        return Item(kind, topic, k, doc)
    if kind == "unknown_enum":
        doc[ENUM_FIELD[topic]] = draw(st.sampled_from(["NRCellXYZ", "CARRIER_PIGEON", "notifyMOIExplosion", "",
                                                       "nrcelldu"]))
        return Item(kind, topic, k, doc)
    if kind == "unknown_measurement":  # a vendor PM name the twin does not know: ingested and kept
        name = draw(st.sampled_from(["VS.Vendor.Counter", "VS.Acme.Temp.Max", "X.Y"]))
        doc["values"][name] = draw(st.floats(-1e6, 1e6))
        return Item(kind, topic, k, doc)
    if kind == "wide_int":  # valid JSON and schema, but an integer the pipeline's orjson cannot carry
        field = "attributes" if topic == topics.CM_SNAPSHOT else "attributeListValueChanges"
        doc.setdefault(field, {})[draw(st.text(max_size=8))] = draw(st.sampled_from([2**64, -(2**63) - 1, 10**30]))
        return Item(kind, topic, k, doc)
    raise ValueError(kind)


def garbage(kind: str) -> st.SearchStrategy[Item]:
    if kind == "random_bytes":
        return st.builds(lambda t, k, v: Item(kind, t, k, raw=v), ingest_topics, garbage_keys, st.binary(max_size=48))
    if kind == "null":
        return st.builds(lambda t, k: Item(kind, t, k, raw=None),
                         st.sampled_from([t for t in topics.INGEST_TOPICS if t != topics.CM_SNAPSHOT]),
                         st.binary(min_size=1, max_size=12))  # aiokafka sends no record without key and value
    # A null value on the compacted CM topic is a deletion (tombstone): applied, not dead-lettered.
    return st.builds(lambda k: Item(kind, topics.CM_SNAPSHOT, k, raw=None), st.binary(min_size=1, max_size=40))


@st.composite
def batches(draw: st.DrawFn) -> list[Item]:
    """Every kind of record several times, in a shuffled order (even the simplest example mixes them)."""
    out: list[Item] = []
    for kind, (kind_topics, lo, hi) in FROM_VALID.items():
        for topic in kind_topics:
            out += draw(st.lists(from_valid(kind, topic), min_size=lo, max_size=hi))
    for kind, (lo, hi) in GARBAGE.items():
        out += draw(st.lists(garbage(kind), min_size=lo, max_size=hi))
    draw(st.randoms(use_true_random=False)).shuffle(out)
    return out


@dataclass(frozen=True)
class Published:
    index: int
    kind: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


async def _publish(bootstrap: str, batch: list[Item], partitions: int) -> list[Published]:
    await ensure_topics(bootstrap, (*topics.INGEST_TOPICS, topics.DLQ), partitions)
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        values = [item.value(i) for i, item in enumerate(batch)]
        futures = [await producer.send(item.topic, value, key=item.key) for item, value in zip(batch, values,
                                                                                                strict=True)]
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [Published(i, item.kind, m.topic, m.partition, m.offset, item.key, value)
            for i, (item, value, m) in enumerate(zip(batch, values, metas, strict=True))]


def _projection(clusters: dict[str, ClusterMirror]) -> dict[str, Any]:
    """What the mirror holds, independent of the order records of different keys arrived in."""
    out: dict[str, Any] = {}
    for cid, cluster in sorted(clusters.items()):
        cells = {}
        for key, cell in sorted(cluster.cells.items()):
            cells[key] = {
                "pm": {gp: {n: sorted(ends) for n, ends in names.items()} for gp, names in cell.pm.items()},
                "periods": {gp: sorted(ends) for gp, ends in cell.periods.items()},
                "relations": {t: {gp: {n: sorted(e) for n, e in names.items()} for gp, names in s.items()}
                              for t, s in cell.relations.items()},
                "cm": sorted(cell.cm),
                "unknown": sorted(cell.unknown),
                "mr": cell.mr.to_dict(),  # unique event ids: histograms do not depend on order
            }
        out[cid] = {"cells": cells, "objects": sorted(cluster.objects)}
    return out


def _expected_mirror(settings: TwinSettings, published: Iterable[Published],
                     decoder: IngestDecoder) -> tuple[dict[str, ClusterMirror], Holding]:
    route = ClusterRouter(settings.topology)
    clusters: dict[str, ClusterMirror] = {}
    held = Holding(settings.topology.unassigned_max_cells, settings.topology.unassigned_max_records)
    for rec in published:
        out = decoder.decode(rec.topic, rec.key, rec.value)
        if isinstance(out, Rejection):
            continue
        if out[0] == "cmdel":
            for cid in route.all_clusters():
                clusters.setdefault(cid, ClusterMirror(cid)).apply(out)
            continue
        owner = route(out[1])
        if owner is None:
            held.add(holding_key(out[1], out[2].get("dn") if out[0] != "mr" else None), [out])
            continue
        clusters.setdefault(owner, ClusterMirror(owner)).apply(out)
    for cluster in clusters.values():
        cluster.prune(settings.ingest.pm_retention_s, settings.ingest.mr_dedup_retention_s)
    return clusters, held


def _run(batch: list[Item]) -> None:
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(Path(tmp), CLUSTERS, ingest={"max_payload_bytes": MAX_PAYLOAD}, kafka={"partitions": 6})
        bootstrap = broker.bootstrap_servers

        async def scenario() -> tuple[list[Published], IngestWorker, list[Any]]:
            published = await _publish(bootstrap, batch, settings.kafka.partitions)
            worker = IngestWorker(settings, bootstrap)
            await run_worker_until(worker, lambda w: w.stats.consumed >= len(published)
                                   and w.stats.records_applied >= w.stats.forwarded, timeout_s=90)
            return published, worker, await read_topic(bootstrap, topics.DLQ)

        published, worker, dlq = asyncio.run(scenario())
        decoder = IngestDecoder(settings.ingest)
        verdicts = {(p.topic, p.partition, p.offset): decoder.decode(p.topic, p.key, p.value) for p in published}
        by_offset = {(p.topic, p.partition, p.offset): p for p in published}
        assert len(by_offset) == len(published) == len(batch)

        # Every dead letter points at a published record, carries its bytes and says why.
        letters = [orjson.loads(m.value) for m in dlq]
        seen: Counter[tuple[str, int, int]] = Counter()
        for letter in letters:
            where = (letter["topic"], letter["partition"], letter["offset"])
            assert where in by_offset, f"dead letter for a record never published: {letter}"
            seen[where] += 1
            rec = by_offset[where]
            assert base64.b64decode(letter["valueB64"]) == (rec.value or b""), (rec.kind, letter["reason"])
            assert (base64.b64decode(letter["keyB64"]) if letter.get("keyB64") is not None else None) == rec.key
            expected = verdicts[where]
            assert isinstance(expected, Rejection), f"{rec.kind} record dead-lettered but valid: {letter['reason']}"
            assert letter["reason"] == expected.reason and letter["errorClass"] == expected.error_class
            assert letter["reason"].strip()
        assert all(n == 1 for n in seen.values()), [w for w, n in seen.items() if n > 1]

        # ... and every rejected record has its dead letter: none vanishes.
        rejected = {w for w, v in verdicts.items() if isinstance(v, Rejection)}
        missing = [(by_offset[w].kind, verdicts[w]) for w in rejected - set(seen)]
        assert not missing, f"rejected but not dead-lettered: {missing[:5]}"
        assert set(seen) == rejected

        # The rest was forwarded and applied, and the counters say so.
        stats = worker.stats
        assert stats.consumed == len(published)
        assert stats.accepted == len(published) - len(rejected)
        assert stats.records_applied == stats.forwarded
        assert stats.dead_lettered == Counter(v.error_class for v in verdicts.values() if isinstance(v, Rejection))

        # The checkpointed mirror holds exactly what the accepted records say.
        mirror = worker.store.load_all()
        expected, expected_held = _expected_mirror(settings, published, decoder)
        assert _projection(mirror) == _projection(expected)
        # ... and the telemetry of the cell outside the topology is held, every record counted
        assert worker.store.load_unassigned().summary() == expected_held.summary()
        accepted_mr = Counter(v[1] for v in verdicts.values() if not isinstance(v, Rejection) and v[0] == "mr"
                              and v[1] != NET.keys[5])
        assert {k: c.mr.count for cl in mirror.values() for k, c in cl.cells.items() if c.mr.count} == dict(
            accepted_mr)

        # The batch really was a mix: the property is not vacuous.
        kinds = Counter(p.kind.split(":")[0] for p in published)
        assert kinds["valid"] and kinds["mutated"] and len(rejected) >= 10 and stats.forwarded >= 10, kinds


@settings(max_examples=2, deadline=None, phases=[Phase.generate],  # no shrinking: each run is a real broker
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(batch=batches())
def test_every_record_is_ingested_or_dead_lettered(batch: list[Item]) -> None:
    _run(batch)


def test_unknown_measurements_are_kept_and_counted(fresh_broker: EmbeddedBroker, tmp_path: Path) -> None:
    """Vendor PM names the twin does not know are ingested, kept per period and listed, never dropped."""
    settings = settings_for(tmp_path, CLUSTERS)
    records = []
    for period in range(3):
        for pm in NET.pm_period(period):
            doc = orjson.loads(pm.to_json_bytes())
            doc["values"]["VS.Vendor.Counter"] = 10.0 * (period + 1)
            if pm.cell_key == NET.keys[0]:
                doc["values"]["VS.Acme.Temp.Max"] = -5.0 + period  # negative: unknown names are not counters
            records.append(Item("valid", topics.PM_CELL, pm.cell_key.encode(), doc))
    bootstrap = fresh_broker.bootstrap_servers

    async def scenario() -> IngestWorker:
        await _publish(bootstrap, records, settings.kafka.partitions)
        worker = IngestWorker(settings, bootstrap)
        await run_worker_until(worker, lambda w: w.stats.records_applied >= len(records))
        return worker

    worker = asyncio.run(scenario())
    assert worker.stats.dead_lettered.total() == 0
    mirror = worker.store.load_all()
    cells = {k: c for cl in mirror.values() for k, c in cl.cells.items()}
    assert sorted(cells) == sorted(NET.keys[:5])  # the sixth cell is in no cluster: held apart
    assert worker.store.load_unassigned().summary()[NET.keys[5]]["records"] == {"pm": 3}
    first = cells[NET.keys[0]]
    assert first.unknown == {"VS.Vendor.Counter", "VS.Acme.Temp.Max"}
    assert all(c.unknown == {"VS.Vendor.Counter"} for k, c in cells.items() if k != NET.keys[0])
    assert sorted(first.pm[900]["VS.Vendor.Counter"].values()) == [10.0, 20.0, 30.0]
    assert sorted(first.pm[900]["VS.Acme.Temp.Max"].values()) == [-5.0, -4.0, -3.0]
    view = mirror_view(mirror, NET.keys[0])
    assert view["totals"]["unknownMeasurements"] == ["VS.Acme.Temp.Max", "VS.Vendor.Counter"]
    row = view["clusters"]["east"]["cells"][NET.keys[0]]["pm"]["900"]["measurements"]["VS.Vendor.Counter"]
    assert row["method"] == "unknown" and row["latest"] == 30.0
    assert row["window4"] == 20.0  # an unknown name is averaged over periods, never summed
    assert mirror_view(mirror)["totals"]["unknownMeasurements"] == ["VS.Acme.Temp.Max", "VS.Vendor.Counter"]
