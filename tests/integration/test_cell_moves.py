"""The operator moves a cell to another cluster and drops one from the topology, then restarts the
worker (real broker, real worker, real checkpoints): the old cluster no longer has, simulates or
predicts the moved cell; its history (PM, CM, MR aggregate and event ids) is in its new cluster,
nothing counted twice; envelopes routed by the old topology and still unread are applied where the
new topology says; the dropped cell's mirror is on the dead-letter topic with the reason.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson
from aiokafka import AIOKafkaProducer

from replay.emulator import NetworkEmulator, load_scenario
from streams.broker import EmbeddedBroker
from streams.worker import IngestWorker
from tests.helpers import consume_all, publish, run_worker_until, settings_for
from twin import topics
from twin.config import TwinSettings
from twin.ingest import IngestDecoder
from twin.mirror.cell_move import cell_from_entries, entries_of, move_chunks
from twin.mirror.mr_stats import MrStats
from twin.records import NormalisedMr
from twin.schemas import DeadLetter, Prediction

MR_PER_PERIOD = 3
START = datetime(2024, 3, 1, 12, tzinfo=UTC)
MODEL_KEYS = ("scenario", "n_ues", "demand_bps", "indoor_fraction", "seed")


def mr_ids(records: list[Any], cell: str) -> set[str]:
    return {orjson.loads(r.value)["eventId"] for r in records if r.topic == topics.MR_UE and r.key == cell.encode()}


def test_a_cell_moved_or_dropped_by_the_topology_leaves_its_old_cluster(fresh_broker: EmbeddedBroker,
                                                                        tmp_path: Path) -> None:
    emu = NetworkEmulator(load_scenario("suburban-quiet"), seed=1, start=START, granularity_s=900,
                          mr_per_cell=MR_PER_PERIOD)
    c = sorted(emu.cells)
    half = len(c) // 2
    east, west = c[:half], c[half:]
    moving, leaving = east[-1], west[-1]
    bootstrap = fresh_broker.bootstrap_servers
    before = emu.initial_records() + [r for _ in range(4) for r in emu.step()]
    model = {k: v for k, v in emu.public_model().items() if k in MODEL_KEYS}
    old = settings_for(tmp_path, [("east", east), ("west", west)], kafka={"partitions": 1},
                       predict={**model, "timeout_grace_s": 0.0})

    async def first() -> IngestWorker:
        await publish(bootstrap, before, partitions=1)
        worker = IngestWorker(old, bootstrap)
        await run_worker_until(worker, lambda w: w.stats.records_applied >= len(before))
        return worker

    worker = asyncio.run(first())
    clusters = worker.store.load_all()
    moved_before = clusters["east"].cells[moving]
    assert moved_before.mr.count == len(mr_ids(before, moving)) > 0 and len(moved_before.periods[900]) == 4

    # Envelopes that a re-keying stage on the old topology wrote and the mirror has not read yet:
    # the moved cell's fifth period, to the old cluster, and a report already counted (redelivered).
    late = emu.step()
    decoder = IngestDecoder(old.ingest, now=lambda: 10**10)
    strays = [decoder.decode(r.topic, r.key, r.value) for r in late if r.key == moving.encode()]
    counted = next(r for r in reversed(before) if r.topic == topics.MR_UE and r.key == moving.encode())
    strays.append(decoder.decode(counted.topic, counted.key, counted.value))
    assert all(isinstance(s, list | tuple) for s in strays), strays

    # And the moved cell's history as another worker owning its old cluster would send it (in
    # chunks): merged on top of the same history moved from this worker's own checkpoint, it must
    # change nothing (a move is idempotent, whichever way it comes).
    chunks = move_chunks(moved_before.snapshot(), max_bytes=2_000)
    assert len(chunks) > 2

    async def backlog() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        internal = topics.ingest_by_cluster(old.kafka.group_id)
        try:
            await producer.send_and_wait(internal, orjson.dumps({"cl": "east", "r": strays}), key=b"east",
                                         partition=0)
            for chunk in chunks:
                await producer.send_and_wait(internal, orjson.dumps(
                    {"cl": "west", "mv": {**chunk, "from": "east", "hops": 1}}), key=b"west", partition=0)
        finally:
            await producer.stop()

    asyncio.run(backlog())

    # c2 moves to west, c5 leaves the topology; restart on the new topology, then more telemetry
    new = TwinSettings.model_validate({**old.model_dump(mode="json"),
                                       "topology": {"clusters": [{"id": "east", "cells": east[:-1]},
                                                                 {"id": "west", "cells": [moving, *west[:-1]]}]}})
    after = emu.step() + emu.step()

    async def second() -> IngestWorker:
        await publish(bootstrap, after, partitions=1)
        worker = IngestWorker(new, bootstrap)
        await run_worker_until(worker, lambda w: w.stats.records_applied >= len(after) + len(strays)
                               and w.stats.moved_in_parts == len(chunks) and w.stats.checkpoints > 1)
        return worker

    worker = asyncio.run(second())
    # c2 from the checkpoint, and again from the stray envelope unless it was applied before the move
    assert worker.stats.cells_moved in (1, 2)
    assert worker.stats.cells_left_topology == 1 and worker.stats.moved_mr_counted_twice == 0
    clusters = worker.store.load_all()
    assert sorted(clusters["east"].cells) == east[:-1]  # the old cluster no longer has it
    assert sorted(clusters["west"].cells) == sorted([moving, *west[:-1]])
    moved = clusters["west"].cells[moving]
    # its whole history, the stray period and the new telemetry, each report counted once
    start = int(START.timestamp())
    assert sorted(moved.periods[900]) == [start + 900 * (p + 1) for p in range(7)]
    expected_ids = mr_ids(before, moving) | mr_ids(late, moving) | mr_ids(after, moving)
    assert moved.mr.count == len(expected_ids)
    assert moved.cm == moved_before.cm and moved.cm_before == moved_before.cm_before
    every = MrStats()  # the aggregate of every distinct report of the cell, folded in one by one
    for r in before + late + after:
        if r.topic == topics.MR_UE and r.key == moving.encode():
            every.apply(cast(NormalisedMr, decoder.decode(r.topic, r.key, r.value))[2])
    assert (moved.mr.rsrp, moved.mr.sinr, moved.mr.cqi, moved.mr.thp_sum, moved.mr.neighbours) == (
        every.rsrp, every.sinr, every.cqi, every.thp_sum, every.neighbours)

    async def read_back() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        dlq = await consume_all(bootstrap, topics.DLQ, 1, timeout_s=10)
        predictions = await consume_all(bootstrap, topics.PREDICTIONS, 10**6, timeout_s=3)
        return [orjson.loads(v) for v in dlq if v], [orjson.loads(v) for v in predictions if v]

    dlq, predictions = asyncio.run(read_back())
    left = [d for d in dlq if d["errorClass"] == "cell_left_topology"]
    assert len(left) == 1 and f"cell {leaving!r} is in no cluster of the topology any more" in left[0]["reason"]
    assert "'west'" in left[0]["reason"]
    chunk = orjson.loads(DeadLetter.model_validate(left[0]).original_value)
    dropped = cell_from_entries(leaving, entries_of(chunk))
    assert dropped.mr.count == len(mr_ids(before, leaving)) and len(dropped.periods[900]) == 4
    # after the restart, the moved cell is predicted by its new cluster only
    late_ends = {start + 900 * 6, start + 900 * 7}
    of_moved = [Prediction.model_validate(p) for p in predictions if p["cellKey"] == moving]
    by_cluster = {p.cluster_id for p in of_moved if p.period_end and p.period_end.timestamp() in late_ends}
    assert by_cluster == {"west"}, by_cluster
    assert all(p.cluster_id == "east" for p in of_moved if p.period_end and p.period_end.timestamp() - start <= 4 * 900)
