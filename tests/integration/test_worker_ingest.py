"""The worker against the real embedded broker: ingest into the mirror, duplicates, dead letters."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from streams.broker import EmbeddedBroker
from streams.worker import IngestWorker
from tests.helpers import consume_all, out_record, publish, run_worker_until, settings_for
from twin import topics
from twin.ports import OutRecord
from twin.synthetic import SyntheticNetwork


def test_worker_builds_mirror_and_ignores_duplicates(fresh_broker: EmbeddedBroker, tmp_path: Path) -> None:
    net = SyntheticNetwork(cells=6)
    records = [out_record(r) for r in net.cm_snapshots()]
    for period in range(4):
        records += [out_record(r) for r in net.pm_period(period)]
        records += [out_record(r) for r in net.mr_events(period, 50)]
    duplicated = records + records[:40]  # redelivery of the first 40 records
    settings = settings_for(tmp_path, [("east", net.keys[:3]), ("west", net.keys[3:])])
    bootstrap = fresh_broker.bootstrap_servers

    async def scenario() -> IngestWorker:
        await publish(bootstrap, duplicated)
        worker = IngestWorker(settings, bootstrap)
        await run_worker_until(worker, lambda w: w.stats.records_applied >= len(duplicated))
        return worker

    worker = asyncio.run(scenario())
    assert worker.stats.dead_lettered.total() == 0
    clusters = worker.store.load_all()
    assert sorted(clusters) == ["east", "west"]
    assert sorted(clusters["east"].cells) == net.keys[:3]
    cell = clusters["east"].cells[net.keys[0]]
    assert cell.mr.count == sum(1 for r in records if r.topic == topics.MR_UE and r.key == net.keys[0].encode())
    assert len(cell.periods[900]) == 4
    assert cell.gaps(900) == []
    assert cell.cm["NRSectorCarrier.configuredMaxTxPower"][0] == 20000
    # A gauge is averaged over periods, never summed; a counter is summed.
    prb = [cell.pm[900]["RRU.PrbTotDl"][e] for e in sorted(cell.pm[900]["RRU.PrbTotDl"])]
    assert cell.window(900, "RRU.PrbTotDl", 4) == sum(prb) / 4
    ho = [cell.pm[900]["MM.HoExeInterReq"][e] for e in sorted(cell.pm[900]["MM.HoExeInterReq"])]
    assert cell.window(900, "MM.HoExeInterReq", 4) == sum(ho)


def test_invalid_records_go_to_dead_letter_topic(fresh_broker: EmbeddedBroker, tmp_path: Path) -> None:
    net = SyntheticNetwork(cells=3)
    good = [out_record(r) for r in net.pm_period(0)]
    pm = orjson.loads(good[0].value)
    bad_values = [
        b"{not json",
        b"\xff\xfe\x00garbage",
        orjson.dumps({**pm, "granularityPeriodS": "fifteen"}),
        orjson.dumps({**pm, "measObjClass": "NRCellXYZ"}),
        orjson.dumps({k: v for k, v in pm.items() if k != "periodEnd"}),
        orjson.dumps({**pm, "periodEnd": "2999-01-01T00:00:00Z"}),
        orjson.dumps({**pm, "values": {"MM.HoExeInterReq": -5}}),
        orjson.dumps({**pm, "cellKey": "cell-1"}),
        b"{" + b" " * 2_000_000 + b"}",
    ]
    bad = [OutRecord(topics.PM_CELL, b"k", v) for v in bad_values]
    settings = settings_for(tmp_path)
    bootstrap = fresh_broker.bootstrap_servers

    async def scenario() -> tuple[IngestWorker, list[bytes | None]]:
        await publish(bootstrap, good + bad)
        worker = IngestWorker(settings, bootstrap)
        await run_worker_until(worker, lambda w: w.stats.consumed >= len(good) + len(bad)
                               and w.stats.records_applied >= len(good))
        return worker, await consume_all(bootstrap, topics.DLQ, len(bad))

    worker, dlq = asyncio.run(scenario())
    assert worker.stats.dead_lettered.total() == len(bad)
    letters = [orjson.loads(v) for v in dlq if v is not None]
    assert len(letters) == len(bad)
    classes = sorted(d["errorClass"] for d in letters)
    assert classes == sorted(["json", "encoding", "schema", "schema", "schema", "future_timestamp",
                              "negative_counter", "schema", "oversized"])
    reasons = " | ".join(d["reason"] for d in letters)
    assert "granularityPeriodS" in reasons and "'fifteen'" in reasons
    assert "measObjClass" in reasons and "NRCellXYZ" in reasons
    assert "MM.HoExeInterReq" in reasons
    for d in letters:
        assert d["topic"] == topics.PM_CELL and d["offset"] is not None and d["partition"] is not None
    whole = {bytes(__import__("base64").b64decode(d["valueB64"])) for d in letters if not d.get("truncated")}
    assert whole == set(bad_values[:-1])
    # the 2 MB record's letter would exceed the Kafka message limit: it carries a prefix, size and hash
    (cut,) = [d for d in letters if d.get("truncated")]
    assert cut["originalSize"] == len(bad_values[-1])
    assert cut["originalSha256"] == __import__("hashlib").sha256(bad_values[-1]).hexdigest()
    assert bad_values[-1].startswith(__import__("base64").b64decode(cut["valueB64"]))


def test_cm_tombstone_deletes_the_object_in_whichever_cluster_holds_it(
    fresh_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    from streams.kafka_io import make_producer

    net = SyntheticNetwork(cells=6)
    snapshots = list(net.cm_snapshots())
    records = [out_record(r) for r in snapshots]
    gone = snapshots[0]  # NRSectorCarrier of the first cell, in cluster "east"
    settings = settings_for(tmp_path, [("east", net.keys[:3]), ("west", net.keys[3:])])
    bootstrap = fresh_broker.bootstrap_servers

    async def scenario() -> IngestWorker:
        await publish(bootstrap, records)
        producer = make_producer(bootstrap)
        await producer.start()
        await (await producer.send(topics.CM_SNAPSHOT, None, key=gone.dn.encode()))
        await producer.stop()
        worker = IngestWorker(settings, bootstrap)
        # the tombstone is fanned out to every cluster (east, west)
        await run_worker_until(worker, lambda w: w.stats.records_applied >= len(records) + 2)
        return worker

    worker = asyncio.run(scenario())
    clusters = worker.store.load_all()
    cell = clusters["east"].cells[net.keys[0]]
    assert not any(v[2] == gone.dn for v in cell.cm.values())
    assert "NRCellDU.nRPCI" in cell.cm  # the cell's other object is untouched
    assert "NRSectorCarrier.configuredMaxTxPower" in clusters["west"].cells[net.keys[3]].cm
