"""Interop: PM records produced by another Kafka client (confluent-kafka / librdkafka) are ingested.

librdkafka's default partitioner (CRC32 ``consistent_random``) places keys elsewhere than the Java
and aiokafka clients (murmur2); with ``partitioner: murmur2_random`` every key lands on the
partition aiokafka would choose, so per-cell order holds whichever client a producer uses. Tansu
rejects idempotent producers, hence ``enable.idempotence: False``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import KafkaError, Message, Producer

from streams.broker import EmbeddedBroker
from streams.kafka_io import ensure_topics, make_producer
from streams.worker import IngestWorker
from tests.helpers import run_worker_until, settings_for
from tests.readback import read_topic
from twin import topics
from twin.synthetic import SyntheticNetwork

PARTITIONS = 12
PROBE_KEYS = [f"nr:00101-{i:09x}".encode() for i in range(0, 4000, 37)] + [
    bytes(range(n)) for n in range(1, 24)  # every key length mod 4: murmur2's tail handling
] + ["ManagedElement=é,NRCellDU=1".encode(), b"\xff\x00\xfe"]


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], **config: Any) -> list[Message]:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False, "acks": "all",
                         "linger.ms": 5, "client.id": "interop-librdkafka", **config})
    delivered: list[Message] = []
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            delivered.append(msg)

    for key, value in records:
        producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0, "librdkafka did not deliver everything within 30 s"
    assert not errors, errors
    assert len(delivered) == len(records)
    return delivered


def _murmur2_partition(key: bytes) -> int:
    all_partitions = list(range(PARTITIONS))
    return int(DefaultPartitioner()(key, all_partitions, all_partitions))


async def _aiokafka_partitions(bootstrap: str, topic: str, keys: list[bytes]) -> dict[bytes, int]:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        futures = [await producer.send(topic, b"probe", key=k) for k in keys]
        return {k: m.partition for k, m in zip(keys, await asyncio.gather(*futures), strict=True)}
    finally:
        await producer.stop()


def test_librdkafka_murmur2_places_keys_where_aiokafka_does(fresh_broker: EmbeddedBroker) -> None:
    bootstrap = fresh_broker.bootstrap_servers
    asyncio.run(ensure_topics(bootstrap, ("probe.aiokafka", "probe.murmur2", "probe.default"), PARTITIONS))
    by_aiokafka = asyncio.run(_aiokafka_partitions(bootstrap, "probe.aiokafka", PROBE_KEYS))
    records = [(k, b"probe") for k in PROBE_KEYS]
    murmur = {m.key(): m.partition() for m in _produce(bootstrap, "probe.murmur2", records,
                                                         partitioner="murmur2_random")}
    crc = {m.key(): m.partition() for m in _produce(bootstrap, "probe.default", records)}
    assert murmur == by_aiokafka
    assert by_aiokafka == {k: _murmur2_partition(k) for k in PROBE_KEYS}
    assert len(set(murmur.values())) == PARTITIONS  # the probe keys spread over every partition
    # librdkafka's own default would scatter the keys elsewhere: the setting is what makes it agree.
    assert sum(crc[k] != murmur[k] for k in PROBE_KEYS) > len(PROBE_KEYS) // 2


def test_worker_ingests_pm_produced_by_librdkafka(fresh_broker: EmbeddedBroker, tmp_path: Path) -> None:
    bootstrap = fresh_broker.bootstrap_servers
    net = SyntheticNetwork(cells=12, seed=3)
    pms = [pm for period in range(3) for pm in net.pm_period(period)]
    settings = settings_for(tmp_path, [("north", net.keys[:6]), ("south", net.keys[6:])],
                            kafka={"partitions": PARTITIONS})
    asyncio.run(ensure_topics(bootstrap, (*topics.INGEST_TOPICS, topics.DLQ), PARTITIONS))

    delivered = _produce(bootstrap, topics.PM_CELL, [(pm.cell_key.encode(), pm.to_json_bytes()) for pm in pms],
                         partitioner="murmur2_random")
    for msg in delivered:
        key = msg.key()
        assert key is not None and msg.partition() == _murmur2_partition(key)

    async def scenario() -> tuple[IngestWorker, list[Any]]:
        worker = IngestWorker(settings, bootstrap)
        await run_worker_until(worker, lambda w: w.stats.records_applied >= len(pms))
        return worker, await read_topic(bootstrap, topics.PM_CELL)

    worker, stored = asyncio.run(scenario())
    # What the broker stored, read back with aiokafka: each cell's records on its murmur2 partition.
    assert len(stored) == len(pms)
    assert all(m.partition == _murmur2_partition(m.key) for m in stored)
    assert worker.stats.dead_lettered.total() == 0
    assert worker.stats.forwarded == len(pms)

    mirror = worker.store.load_all()
    assert sorted(mirror) == ["north", "south"]
    assert sorted(mirror["north"].cells) == sorted(net.keys[:6])
    assert sorted(mirror["south"].cells) == sorted(net.keys[6:])
    for pm in pms:
        cell = mirror["north" if pm.cell_key in net.keys[:6] else "south"].cells[pm.cell_key]
        end = round(pm.period_end.timestamp())
        for name, value in pm.values.items():
            assert cell.pm[900][name][end] == value, (pm.cell_key, name)
    for cluster in mirror.values():
        for cell in cluster.cells.values():
            assert len(cell.periods[900]) == 3 and cell.gaps(900) == []
    assert orjson.loads(delivered[0].value() or b"{}")["cellKey"] in net.keys
