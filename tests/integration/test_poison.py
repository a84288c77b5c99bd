"""No poison, no crash loop (issue 9): records of every size through the real broker and worker.

Records from 1 byte to 9 MB (garbage, an empty object, PM records of 5 to 20,000 values, valid PM
records larger than the Kafka message limit, payloads above ``ingest.max_payload_bytes``) mixed
with normal traffic and 2,000 PM records of about 4.5 KB each (more than 1 MiB together, in one
fetch). Every input record is then either in the mirror or on ``ran.dlq.v1`` with its reason,
the worker has committed every input offset, and no envelope or dead letter on the wire is larger
than ``kafka.max_message_bytes`` (measured as aiokafka bounds a one-record batch, the way the
broker's ``message.max.bytes`` counts it).

Tansu (0.6.0, the embedded broker) has no message size limit of its own: it took a 60 MB record
from a producer whose ``max_request_size`` allowed it and served it to a consumer whose
``max_partition_fetch_bytes`` was 1 MiB. So a broker that refuses what the producer lets through
(an Apache Kafka topic whose ``max.message.bytes`` is below ``kafka.max_message_bytes``) is
emulated here by :class:`StrictBroker`: the real producer to the real broker, except that a
message over its limit fails exactly as such a broker fails it (``MessageSizeTooLargeError`` from
the send's future).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

import streams.rekey
from streams.broker import EmbeddedBroker
from streams.kafka_io import ensure_topics, make_consumer, make_producer
from streams.worker import IngestWorker
from tests.helpers import out_record, run_worker_until, settings_for
from tests.readback import read_topic
from twin import topics
from twin.config import TwinSettings
from twin.schemas import DeadLetter
from twin.synthetic import EPOCH, SyntheticNetwork

NET = SyntheticNetwork(cells=6, seed=5)
CLUSTERS = [("east", NET.keys[:3]), ("west", NET.keys[3:])]  # every cell is in a cluster
KAFKA_LIMIT = 1_048_588  # Apache Kafka's default message.max.bytes, the default of kafka.max_message_bytes
MAX_PAYLOAD = 2 << 20  # ingest.max_payload_bytes above the Kafka limit: valid records can be too large


@dataclass
class Input:
    name: str
    topic: str
    key: bytes
    value: bytes
    expect: str | None  # the dead letter's error class, None: applied to the mirror
    cell: str | None = None  # PM: where it must be in the mirror
    end: float | None = None
    partition: int = -1
    offset: int = -1


def pm_value(cell: int, period: int, values: dict[str, float], pad: int = 0) -> bytes:
    end = EPOCH + timedelta(seconds=900 * (period + 1))
    doc: dict[str, Any] = {
        "schemaVersion": "1", "cellKey": NET.keys[cell], "measObjDn": NET.dn(cell), "measObjClass": "NRCellDU",
        "periodEnd": end.isoformat().replace("+00:00", "Z"), "granularityPeriodS": 900, "values": values,
    }
    if pad:
        doc["source"] = {"pad": "p" * pad}  # a vendor field: not carried into the normalised record
    return orjson.dumps(doc)


def pm(name: str, cell: int, period: int, values: dict[str, float], expect: str | None = None,
       size: int | None = None) -> Input:
    value = pm_value(cell, period, values)
    if size is not None:  # padded to exactly ``size`` bytes
        value = pm_value(cell, period, values, pad=size - len(value) - len(b',"source":{"pad":""}'))
        assert len(value) == size
    end = (EPOCH + timedelta(seconds=900 * (period + 1))).timestamp()
    return Input(name, topics.PM_CELL, NET.keys[cell].encode(), value, expect, NET.keys[cell], end)


def many_values(count: int, name_len: int = 20) -> dict[str, float]:
    return {f"VS.Vendor.{i:07d}".ljust(name_len, "x"): 1000.0 + i for i in range(count)}


def normal_traffic() -> list[Input]:
    out = []
    for rec in [*NET.cm_snapshots(), *(r for p in range(4) for r in NET.pm_period(p)),
                *(r for p in range(4) for r in NET.mr_events(p, 40))]:
        o = out_record(rec)
        out.append(Input(f"normal {o.topic}", o.topic, o.key or b"", o.value or b"", None))
    return out


def large_pms(count: int = 2000) -> list[Input]:
    """PM records of about 4.5 KB each (160 values), like the emulator's, on distinct periods."""
    values = {f"DRB.UEThpDl.QoS{j:03d}.Bin{j % 7}": 12345.678 + j for j in range(160)}
    return [pm("large PM", i % 6, 10 + i // 6, values) for i in range(count)]


def ladder() -> list[Input]:
    """Records from 1 byte to beyond every limit."""
    big = many_values(20_000, name_len=88)  # ~2 MB: with padding, just below ingest.max_payload_bytes
    return [
        Input("1 B garbage", topics.PM_CELL, b"k", b"x", "json"),
        Input("empty JSON object", topics.PM_CELL, NET.keys[0].encode(), b"{}", "schema"),
        pm("normal PM", 0, 400, {"RRU.PrbTotDl": 40.0}),
        pm("PM with 20,000 values", 1, 401, many_values(20_000)),
        pm("valid PM above the Kafka limit", 2, 402, many_values(20_000, name_len=50), "too_large"),
        pm("valid PM just below max_payload_bytes", 3, 403, big, "too_large", size=MAX_PAYLOAD - 10),
        pm("PM just above max_payload_bytes", 4, 404, big, "oversized", size=MAX_PAYLOAD + 1),
        Input("9 MB of garbage", topics.PM_CELL, b"k9", b"\x00\xff" * 4_500_000, "oversized"),
    ]


def interleave(*streams: list[Input]) -> list[Input]:
    out: list[Input] = []
    longest = max(len(s) for s in streams)
    for i in range(longest):
        out += [s[i] for s in streams if i < len(s)]
    return out


async def publish(bootstrap: str, inputs: list[Input]) -> None:
    await ensure_topics(bootstrap, (*topics.INGEST_TOPICS, topics.DLQ), 12)
    producer = make_producer(bootstrap, max_request_size=32 << 20)  # Tansu takes more than Kafka would
    await producer.start()
    try:
        futures = [await producer.send(i.topic, i.value, key=i.key) for i in inputs]
        for item, meta in zip(inputs, await asyncio.gather(*futures), strict=True):
            item.partition, item.offset = meta.partition, meta.offset
    finally:
        await producer.stop()


def wire_size(msg: Any) -> int:
    """A message's size as the broker's message.max.bytes counts it, alone in its record batch
    (aiokafka's upper bound, the one its max_request_size check applies)."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(msg.key, msg.value, list(msg.headers or [])))


async def committed_all(bootstrap: str, group: str, inputs: list[Input]) -> dict[TopicPartition, tuple[int, int]]:
    """Per input partition: (committed offset of the re-keying group, offset after the last input).

    The end is taken from the inputs' own offsets: Tansu 0.6.0 answers ListOffsets (latest) with the
    base offset of the partition's last record batch plus one (1 for a partition holding one batch
    of 10 records), so ``end_offsets`` is not the end there."""
    ends: dict[TopicPartition, int] = {}
    for i in inputs:
        tp = TopicPartition(i.topic, i.partition)
        ends[tp] = max(ends.get(tp, 0), i.offset + 1)
    consumer = make_consumer(bootstrap, group_id=group)
    await consumer.start()
    try:
        return {tp: (await consumer.committed(tp) or 0, end) for tp, end in sorted(ends.items())}
    finally:
        await consumer.stop()


def uncommitted(commits: dict[TopicPartition, tuple[int, int]]) -> dict[TopicPartition, tuple[int, int]]:
    return {tp: c for tp, c in commits.items() if c[0] != c[1]}


def settings(tmp: Path, **kafka: Any) -> TwinSettings:
    return settings_for(tmp, CLUSTERS, ingest={"max_payload_bytes": MAX_PAYLOAD}, predict={"enabled": False},
                        kafka=kafka)


def run(bootstrap: str, config: TwinSettings, inputs: list[Input]
        ) -> tuple[IngestWorker, list[Any], list[Any], dict[TopicPartition, tuple[int, int]]]:
    applied = sum(1 for i in inputs if i.expect is None)

    async def scenario() -> tuple[IngestWorker, list[Any], list[Any], dict[TopicPartition, tuple[int, int]]]:
        await publish(bootstrap, inputs)
        worker = IngestWorker(config, bootstrap)
        await run_worker_until(worker, lambda w: w.stats.consumed >= len(inputs)
                               and w.stats.records_applied >= applied, timeout_s=180)
        internal = await read_topic(bootstrap, topics.ingest_by_cluster(config.kafka.group_id))
        dlq = await read_topic(bootstrap, topics.DLQ)
        commits = await committed_all(bootstrap, f"{config.kafka.group_id}.rekey", inputs)
        return worker, internal, dlq, commits

    return asyncio.run(scenario())


def account(worker: IngestWorker, inputs: list[Input], dlq: list[Any]) -> dict[str, DeadLetter]:
    """Every input is applied to the mirror or dead-lettered with the expected class, never both,
    never neither; returns the letters by input name."""
    letters = {(d.topic, d.partition, d.offset): d for d in (DeadLetter.model_validate_json(m.value) for m in dlq)}
    assert len(letters) == len(dlq)  # one letter per rejected record
    clusters = worker.store.load_all()
    cells = {key: cell for cluster in clusters.values() for key, cell in cluster.cells.items()}
    by_name: dict[str, DeadLetter] = {}
    for item in inputs:
        letter = letters.pop((item.topic, item.partition, item.offset), None)
        if item.expect is None:
            assert letter is None, f"{item.name} was dead-lettered: {letter}"
            if item.cell is not None:  # a PM record: its period is in the mirror, with its values
                assert item.end in cells[item.cell].periods[900], f"{item.name} is not in the mirror"
        else:
            assert letter is not None, f"{item.name} is neither in the mirror nor dead-lettered"
            assert letter.error_class == item.expect, (item.name, letter.reason)
            by_name[item.name] = letter
    assert not letters, f"dead letters of records never published: {list(letters)}"
    mr = sum(1 for i in inputs if i.topic == topics.MR_UE)
    assert sum(cell.mr.count for cell in cells.values()) == mr
    return by_name


def check_truncated(letter: DeadLetter, item: Input, limit: int) -> None:
    assert letter.truncated is True
    assert letter.original_size == len(item.value)
    assert letter.original_sha256 == hashlib.sha256(item.value).hexdigest()
    assert 0 < len(letter.original_value) < len(item.value) and item.value.startswith(letter.original_value)
    assert letter.truncation_reason and f"of {len(item.value):,} bytes" in letter.truncation_reason
    assert f"does not fit the message limit of {limit:,} bytes" in letter.truncation_reason


def test_records_of_every_size_are_applied_or_dead_lettered_within_the_limit(
        fresh_broker: EmbeddedBroker, tmp_path: Path) -> None:
    normal, large, poison = normal_traffic(), large_pms(), ladder()
    sizes = {i.name: len(i.value) for i in poison}
    assert sizes["PM with 20,000 values"] < KAFKA_LIMIT < sizes["valid PM above the Kafka limit"] < MAX_PAYLOAD
    assert sum(len(i.value) for i in large) > 8 << 20  # far more than one envelope
    inputs = interleave(normal[: len(normal) // 2], poison, large, normal[len(normal) // 2:])
    config = settings(tmp_path)
    assert config.kafka.max_message_bytes == KAFKA_LIMIT

    worker, internal, dlq, commits = run(fresh_broker.bootstrap_servers, config, inputs)

    # nothing lost: applied, or dead-lettered with its reason
    letters = account(worker, inputs, dlq)
    expected = Counter(i.expect for i in inputs if i.expect)
    assert worker.stats.consumed == len(inputs)
    assert worker.stats.accepted == len(inputs) - sum(expected.values())
    assert worker.stats.dead_lettered == expected
    by_name = {i.name: i for i in poison}
    too_large = letters["valid PM above the Kafka limit"]
    assert too_large.reason.startswith("normalised record of ")
    assert "exceeds the message limit of 1,048,588 bytes" in too_large.reason
    for name in ("valid PM above the Kafka limit", "valid PM just below max_payload_bytes",
                 "PM just above max_payload_bytes", "9 MB of garbage"):
        check_truncated(letters[name], by_name[name], KAFKA_LIMIT)
    assert letters["1 B garbage"].truncated is None and letters["1 B garbage"].original_value == b"x"
    assert letters["empty JSON object"].original_value == b"{}"
    assert "exceeds max_payload_bytes" in letters["9 MB of garbage"].reason

    # nothing crashed: the worker committed every input offset
    assert not uncommitted(commits)

    # nothing on the wire exceeds the limit; the byte bound, not the count, cut the large PMs
    envelopes = [orjson.loads(m.value) for m in internal]
    assert sum(len(e["r"]) for e in envelopes) == worker.stats.forwarded == worker.stats.accepted
    assert max(wire_size(m) for m in internal) <= KAFKA_LIMIT
    assert max(wire_size(m) for m in dlq) <= KAFKA_LIMIT
    assert max(wire_size(m) for m in internal) > 0.85 * KAFKA_LIMIT  # planned at 90 %, packed exactly after a miss
    assert max(len(e["r"]) for e in envelopes) < 2000
    print(f"\nenvelopes: {len(internal)}, largest {max(wire_size(m) for m in internal):,} B; dead letters: "
          f"{len(dlq)}, largest {max(wire_size(m) for m in dlq):,} B; inputs: {len(inputs)}, "
          f"largest {max(len(i.value) for i in inputs):,} B")


class StrictBroker:
    """The real producer, except that a message larger than ``limit`` (as aiokafka bounds its batch)
    fails as an Apache Kafka broker with ``message.max.bytes=limit`` fails it: the send's future
    raises ``MessageSizeTooLargeError``. With ``fail_envelope_after``, the envelope sends after that
    many fail with a timeout instead (a broker that is down)."""

    def __init__(self, producer: Any, limit: int, fail_envelope_after: int | None = None) -> None:
        self._producer = producer
        self.limit = limit
        self.refused: list[tuple[str, int]] = []
        self.fail_envelope_after = fail_envelope_after
        self.envelopes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, partition: int | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future[Any]:
        failure: Exception | None = None
        if topic.startswith("twin."):
            self.envelopes += 1
            if self.fail_envelope_after is not None and self.envelopes > self.fail_envelope_after:
                failure = KafkaTimeoutError("broker down (emulated)")
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers or [])
        if size > self.limit:
            self.refused.append((topic, size))
            failure = MessageSizeTooLargeError(f"{size} bytes (emulated broker limit {self.limit})")
        if failure is None:
            return await self._producer.send(topic, value, key=key, partition=partition, headers=headers)  # type: ignore[no-any-return]
        future = asyncio.get_running_loop().create_future()
        future.set_exception(failure)
        return future


def test_what_the_broker_refuses_as_too_large_is_split_or_truncated_further(
        fresh_broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broker_limit = 300_000  # a topic whose max.message.bytes is below kafka.max_message_bytes
    strict: list[StrictBroker] = []

    def producer(*args: Any, **kw: Any) -> StrictBroker:
        strict.append(StrictBroker(make_producer(*args, **kw), broker_limit))
        return strict[-1]

    monkeypatch.setattr(streams.rekey, "make_producer", producer)
    ladder_ = [pm("normal PM", 0, 400, {"RRU.PrbTotDl": 40.0}),
               pm("PM with 20,000 values", 1, 401, many_values(20_000), "too_large"),
               Input("500 KB of garbage", topics.PM_CELL, b"k5", b"\xfe" * 500_000, "encoding")]
    inputs = interleave(normal_traffic(), ladder_, large_pms(600))
    worker, internal, dlq, commits = run(fresh_broker.bootstrap_servers, settings(tmp_path), inputs)

    letters = account(worker, inputs, dlq)
    assert worker.stats.dead_lettered == Counter(too_large=1, encoding=1)
    assert sum(len(orjson.loads(m.value)["r"]) for m in internal) == worker.stats.forwarded == worker.stats.accepted
    refused = [topic for s in strict for topic, _ in s.refused]
    assert topics.DLQ in refused and any(t.startswith("twin.") for t in refused)  # both paths were taken
    assert max(wire_size(m) for m in [*internal, *dlq]) <= broker_limit
    letter = letters["PM with 20,000 values"]
    assert "refused by the broker as too large" in letter.reason and letter.truncated
    assert letter.original_sha256 == hashlib.sha256(ladder_[1].value).hexdigest()
    garbage = letters["500 KB of garbage"]
    assert garbage.truncated and garbage.original_size == 500_000
    assert base64.b64decode(garbage.value_b64) == b"\xfe" * len(garbage.original_value)
    assert not uncommitted(commits)


def test_a_send_that_fails_for_another_reason_fails_the_worker_and_is_not_committed(
        fresh_broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def producer(*args: Any, **kw: Any) -> StrictBroker:
        return StrictBroker(make_producer(*args, **kw), 1 << 30, fail_envelope_after=0)

    monkeypatch.setattr(streams.rekey, "make_producer", producer)
    inputs = normal_traffic()
    bootstrap = fresh_broker.bootstrap_servers
    config = settings(tmp_path)

    async def scenario() -> dict[TopicPartition, tuple[int, int]]:
        await publish(bootstrap, inputs)
        worker = IngestWorker(config, bootstrap)
        with pytest.raises(KafkaTimeoutError):
            await run_worker_until(worker, lambda w: False, timeout_s=60)
        return await committed_all(bootstrap, f"{config.kafka.group_id}.rekey", inputs)

    commits = asyncio.run(scenario())
    assert all(committed == 0 for committed, _ in commits.values()), commits
