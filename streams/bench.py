"""``twin bench ingest``: the worker's ingest path against a bare consumer and a quixstreams peer.

Everything reads the same topic of MR events on the same embedded broker in one run, in
interleaved rounds, so the ratios hold even on a noisy shared machine. What runs in a round:

- ``raw_1p``: a bare aiokafka consumer in one process (``getmany`` + ``orjson.loads``);
- ``raw_2p``: two bare consumers in one group, one in this process and one in a child, released
  together by a start barrier once each holds its share of the partitions (as the worker's two
  processes are);
- ``peer``: the same validation and mirror update as a plain quixstreams application, one process,
  its consumer set as the runtime's where librdkafka allows (:data:`PEER_CONSUMER_CONFIG`);
- ``ingest_1p``: the worker's two stages in one process;
- ``ingest_2p``: the worker as ``twin run`` runs it: both stages in this process and a second
  member of the re-keying group in a child process.

One clock for all of them: wall time (``time.time()``, comparable across processes) from the
moment the first event is handed to the application by its Kafka client (by either process) to the
moment the last event has been processed (for the worker: applied to the mirror, after the
re-keying hop through ``twin.<group>.by-cluster.v1`` where it takes one). Start-up, group joins
and shutdown (commits at close, consumer and producer stops) are outside it on every side.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.broker import EmbeddedBroker
from streams.kafka_io import KafkaSink, make_consumer
from streams.process import die_with_parent, spawn_sibling, stop_child
from streams.start_barrier import StartBarrier
from streams.stats import WorkerStats
from streams.worker import STAGES, IngestWorker
from twin import topics
from twin.config import TwinSettings, load_settings
from twin.ingest import IngestDecoder, Rejection
from twin.mirror.cluster import ClusterMirror
from twin.ports import OutRecord
from twin.synthetic import SyntheticNetwork

__all__ = ["PEER_CONSUMER_CONFIG", "bench_ingest_command", "run_ingest_benchmark"]

BARRIER_WAIT_S = 30.0  # as the worker's processes wait for each other (IngestWorker.sibling_wait_s)

# The peer's consumer (librdkafka, through quixstreams) set as the runtime's consumer
# (aiokafka, ``streams.kafka_io.make_consumer``, ``getmany(max_records=kafka.fetch_max_records)``).
#
# Made equal here:
#   fetch.wait.max.ms 10           = fetch_max_wait_ms=10 (librdkafka's default is 500; Tansu answers a
#                                    long-polling fetch only when its wait expires, so a long wait adds
#                                    its whole length to every fetch that finds the partition drained)
#   fetch.min.bytes 1              = fetch_min_bytes=1 (the default of both)
#   fetch.max.bytes 64 MiB         = fetch_max_bytes (librdkafka's default is 50 MiB)
#   max.partition.fetch.bytes 8 MiB = max_partition_fetch_bytes (librdkafka's default is 1 MiB)
#   check.crcs true                = check_crcs=True (aiokafka's default; librdkafka's is false)
#   isolation.level read_uncommitted = aiokafka's default (librdkafka's is read_committed)
#   session.timeout.ms / heartbeat.interval.ms 10000 / 3000 = aiokafka's defaults (librdkafka's: 45000 / 3000)
#   client.id                      = kafka.client_id
# Equal without a setting: enable.auto.commit false (quixstreams always turns it off; the runtime
# commits itself), auto.offset.reset earliest (an Application argument, below), a new consumer group
# per run, the same broker, topic and partitions.
# Not equal, and cannot be made equal:
#   - records per call: the runtime takes up to 5,000 records per ``getmany``; quixstreams polls and
#     processes one message at a time (its design; librdkafka still fetches in batches underneath);
#   - prefetching: librdkafka's background thread fills a local queue (queued.min.messages,
#     queued.max.messages.kbytes, its defaults; quixstreams sets fetch.queue.backoff.ms to 100), aiokafka's
#     fetcher keeps one fetch per broker in flight while the application works; neither is
#     a setting of the other;
#   - commits: the runtime commits each batch after its acks (asynchronously, up to 4 in flight);
#     quixstreams commits at its checkpoints (commit_interval 5 s, synchronously, and at close, which
#     is outside the clock), so in a run of a few seconds the peer commits about once: this favours
#     the peer, and it is kept, a peer committing per 5,000 records would wait for every commit;
#   - partition assignment: quixstreams forces ``range``, aiokafka uses round robin (the peer is one
#     member of its group, so the strategy does not matter here);
#   - work: the runtime also re-keys every record into ``twin.<group>.by-cluster.v1`` (a produce, and
#     acks awaited before commits), which the peer does not do (this favours the peer too).
PEER_CONSUMER_CONFIG: dict[str, Any] = {
    "fetch.wait.max.ms": 10,
    "fetch.min.bytes": 1,
    "fetch.max.bytes": 64 << 20,
    "max.partition.fetch.bytes": 8 << 20,
    "check.crcs": True,
    "isolation.level": "read_uncommitted",
    "session.timeout.ms": 10_000,
    "heartbeat.interval.ms": 3_000,
}


async def _publish(bootstrap: str, events: int, cells: int, partitions: int) -> None:
    net = SyntheticNetwork(cells=cells, seed=11)
    sink = KafkaSink(bootstrap, ensure=(*topics.INGEST_TOPICS, topics.DLQ),
                     partitions=partitions)
    await sink.start()
    chunk = 20_000
    for index, start in enumerate(range(0, events, chunk)):
        n = min(chunk, events - start)
        await sink.send_many([OutRecord(topics.MR_UE, e.cell_key.encode(), e.to_json_bytes())
                              for e in net.mr_events(index, n)])
    await sink.stop()


def _holds_share(consumer: AIOKafkaConsumer, members: int) -> bool:
    """As ``RekeyStage.holds_share``: assigned, and no more than its share of the partitions."""
    assigned = consumer.assignment()
    total = len(consumer.partitions_for_topic(topics.MR_UE) or ())
    return bool(assigned) and total > 0 and len(assigned) <= -(-total // members)


async def _partition_counts(bootstrap: str, events: int, partitions: int, timeout_s: float = 120.0) -> dict[int, int]:
    """Records per partition of the published topic, counted by reading it once. (Tansu's end
    offsets under-report a partition written in multi-record batches, so a member that stopped at
    ``end - beginning`` stopped early: 198,486 of 200,000 in one run.)"""
    consumer = make_consumer(bootstrap, group_id=None)
    await consumer.start()
    try:
        parts = list(range(partitions))
        tps = [TopicPartition(topics.MR_UE, q) for q in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        counts = dict.fromkeys(parts, 0)
        deadline = time.monotonic() + timeout_s
        while sum(counts.values()) < events:
            if time.monotonic() > deadline:
                raise RuntimeError(f"read {sum(counts.values())} of the {events} published records")
            for tp, messages in (await consumer.getmany(timeout_ms=500, max_records=20_000)).items():
                counts[tp.partition] += len(messages)
    finally:
        await consumer.stop()
    return counts


async def _raw_member(bootstrap: str, group: str, barrier: StartBarrier | None,
                      counts: dict[int, int]) -> dict[str, Any]:
    """A bare consumer: every record of its assigned partitions through ``orjson.loads``.

    With a ``barrier`` (two members), it holds consumption until it and its sibling hold their
    share of the partitions, as the worker's processes do. Returns its clock marks and count."""
    consumer = make_consumer(bootstrap, topics.MR_UE, group_id=group)
    await consumer.start()
    try:
        if barrier is not None:
            if not await barrier.wait(lambda: _holds_share(consumer, 2), BARRIER_WAIT_S):
                raise RuntimeError("the two bare consumers did not both hold their share in time")
        else:
            deadline = time.monotonic() + BARRIER_WAIT_S
            while not consumer.assignment():
                if time.monotonic() > deadline:
                    raise RuntimeError("the bare consumer was assigned no partition in time")
                await asyncio.sleep(0.005)
        assigned = list(consumer.assignment())
        target = sum(counts[tp.partition] for tp in assigned)
        first = last = None
        n = 0
        loads = orjson.loads
        while n < target:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            if batch and first is None:
                first = time.time()
            for messages in batch.values():
                for m in messages:
                    loads(m.value)
                n += len(messages)
            if n >= target:
                last = time.time()
    finally:
        await consumer.stop()
    return {"first": first, "last": last, "count": n, "partitions": len(assigned)}


def _raw_member_main(argv: list[str]) -> None:
    """``python -m streams.bench raw-member BOOTSTRAP GROUP READ,WRITE OUT COUNTS``: the child of ``raw_2p``."""
    bootstrap, group, fds, out, counts = argv
    barrier = StartBarrier.from_arg(fds)
    try:
        result = asyncio.run(_raw_member(bootstrap, group, barrier,
                                         {int(k): v for k, v in orjson.loads(counts).items()}))
    finally:
        barrier.close()
    Path(out).write_bytes(orjson.dumps(result))


def _rate(events: int, marks: list[dict[str, Any]]) -> float:
    """Events per second over the joint clock of the members' marks (first of any to last of all)."""
    if sum(m["count"] for m in marks) != events:
        raise RuntimeError(f"bare consumers read {[m['count'] for m in marks]} records, expected {events} in all")
    first = min(m["first"] for m in marks if m["first"] is not None)
    last = max(m["last"] for m in marks if m["last"] is not None)
    return events / (last - first)


async def _raw(bootstrap: str, events: int, counts: dict[int, int]) -> float:
    """``raw_1p``: one bare consumer in this process."""
    mark = await _raw_member(bootstrap, f"bench-raw-{time.time_ns()}", None, counts)
    return _rate(events, [mark])


async def _raw_pair(bootstrap: str, events: int, out: Path, counts: dict[int, int]) -> float:
    """``raw_2p``: a bare consumer here and one in a child process, one group, one start barrier."""
    group = f"bench-raw2-{time.time_ns()}"
    barrier, child_fds = StartBarrier.pair()
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "streams.bench", "raw-member", bootstrap, group, ",".join(map(str, child_fds)),
             str(out), orjson.dumps({str(k): v for k, v in counts.items()}).decode()],
            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent, pass_fds=child_fds)
    except BaseException:
        barrier.close()
        raise
    finally:
        for fd in child_fds:
            os.close(fd)
    try:
        mark = await _raw_member(bootstrap, group, barrier, counts)
        code = await asyncio.to_thread(child.wait, 120)
    finally:
        barrier.close()
        if child.poll() is None:
            stop_child(child)
    if code != 0:
        raise RuntimeError(f"the second bare consumer exited with {code}")
    return _rate(events, [mark, orjson.loads(out.read_bytes())])


def _peer(bootstrap: str, events: int, state_dir: Path) -> float:
    """The same validation and mirror update as a plain quixstreams application (one process)."""
    from quixstreams import Application

    decoder = IngestDecoder(TwinSettings().ingest)
    mirror = ClusterMirror("bench")
    marks: dict[str, float] = {}
    seen = [0]

    def process(value: bytes) -> None:
        if not seen[0]:
            marks["first"] = time.time()
        out = decoder.decode(topics.MR_UE, None, value)
        if not isinstance(out, Rejection):
            mirror.apply(out)
        seen[0] += 1
        if seen[0] == events:
            marks["last"] = time.time()  # the last event processed; app.run's shutdown is after this

    app = Application(broker_address=bootstrap, consumer_group=f"bench-peer-{time.time_ns()}",
                      auto_offset_reset="earliest", state_dir=str(state_dir), loglevel="WARNING",
                      use_changelog_topics=False,
                      consumer_extra_config={**PEER_CONSUMER_CONFIG, "client.id": TwinSettings().kafka.client_id})
    topic = app.topic(topics.MR_UE, value_deserializer="bytes")
    sdf = app.dataframe(topic)
    sdf.update(process)
    app.run(count=events, collect=False)
    if mirror.applied != events or "last" not in marks:
        raise RuntimeError(f"peer applied {mirror.applied} of {events} events")
    return events / (marks["last"] - marks["first"])


class _FinishLine(WorkerStats):
    """The worker's counters, noting the wall-clock moment ``records_applied`` reaches ``target``.

    The stages add to ``records_applied`` once per batch right after applying it, so this is the
    moment the last event was processed, taken in the stage itself (as the peer's is taken in its
    processing function) rather than by polling the counter from outside."""

    target: int = 0
    reached_at: float | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name == "records_applied" and self.reached_at is None and 0 < self.target <= value:
            object.__setattr__(self, "reached_at", time.time())


def _worker_config(state_dir: Path, group: str, cells: int) -> Path:
    """The worker's TOML settings: its own group and state, and one cluster of every benchmark cell
    (the peer applies them all to one ``ClusterMirror`` too)."""
    def q(v: Any) -> str:
        return orjson.dumps(v).decode()

    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "twin.toml"
    path.write_text("\n".join([
        f"state_dir = {q(str(state_dir))}", "checkpoint_interval_s = 1.0", 'log_level = "WARNING"', "",
        "[kafka]", f"group_id = {q(group)}", "",
        "[[topology.clusters]]", 'id = "bench"', f"cells = {q(_cell_keys(cells))}", "",
    ]))
    return path


def _cell_keys(cells: int) -> list[str]:
    return list(SyntheticNetwork(cells=cells, seed=11).keys)


async def _worker(bootstrap: str, events: int, cells: int, state_dir: Path, processes: int) -> float:
    """The worker as ``twin run`` runs it: with ``processes=2`` a child process shares the re-keying."""
    config = _worker_config(state_dir, f"bench-worker-{time.time_ns()}", cells)
    settings = load_settings(config)
    child = None
    child_stats = state_dir / "rekey-stats.json"
    sibling = None
    stop = asyncio.Event()
    try:
        if processes == 2:
            child, sibling = spawn_sibling(
                ["run", "--config", str(config), "--bootstrap", bootstrap, "--stage", "rekey",
                 "--name", "bench-rekey", "--stats-file", str(child_stats)])
        worker = IngestWorker(settings, bootstrap, "bench", stages=STAGES, sibling=sibling)
        # The same counters object, every stage holding it, now also noting the finish (see _FinishLine).
        worker.stats.__class__ = _FinishLine
        finish = worker.stats
        assert isinstance(finish, _FinishLine)
        finish.target = events
        await worker.start()
        loops = asyncio.ensure_future(worker.run_loops(stop))
        while finish.reached_at is None:
            if loops.done():
                loops.result()
            if child is not None and child.poll() is not None:
                raise RuntimeError(f"re-keying stage exited with {child.returncode}")
            await asyncio.sleep(0.002)
        end = finish.reached_at
        stop.set()
        await loops
        await worker.close()
    finally:
        if child is not None:
            stop_child(child)
    first, rejected = worker.stats.first_consumed_at, worker.stats.dead_lettered.total()
    if child is not None:
        stats = orjson.loads(child_stats.read_bytes())
        rejected += stats["deadLetteredTotal"]
        if stats["firstConsumedAt"] is not None:
            first = stats["firstConsumedAt"] if first is None else min(first, stats["firstConsumedAt"])
    if rejected:
        raise RuntimeError(f"{rejected} benchmark events were dead-lettered")
    if first is None:
        raise RuntimeError("no stage recorded its first consumed event")
    return float(events / (end - first))


def _ratio(a: float, b: float | None) -> float | None:
    return round(a / b, 3) if b else None


def run_ingest_benchmark(events: int, cells: int = 57, partitions: int = 12,
                         peer: bool = True, repeat: int = 3) -> dict[str, Any]:
    """Rounds of every contender, interleaved so that a busy minute on a shared machine hits all of
    them; the rates are the medians of the rounds, the ratios those of the medians."""
    samples: dict[str, list[float]] = {"raw_1p": [], "peer": [], "ingest_1p": [], "raw_2p": [], "ingest_2p": []}
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        bootstrap = broker.bootstrap_servers
        asyncio.run(_publish(bootstrap, events, cells, partitions))
        counts = asyncio.run(_partition_counts(bootstrap, events, partitions))
        for round_ in range(repeat):
            samples["raw_1p"].append(asyncio.run(_raw(bootstrap, events, counts)))
            if peer:
                samples["peer"].append(_peer(bootstrap, events, Path(tmp) / f"quix{round_}"))
            samples["ingest_1p"].append(asyncio.run(_worker(bootstrap, events, cells, Path(tmp) / f"p1-{round_}", 1)))
            samples["raw_2p"].append(asyncio.run(_raw_pair(bootstrap, events, Path(tmp) / f"raw2-{round_}.json",
                                                           counts)))
            samples["ingest_2p"].append(asyncio.run(_worker(bootstrap, events, cells, Path(tmp) / f"p2-{round_}", 2)))
    med = {k: statistics.median(v) for k, v in samples.items() if v}
    peer_rate = med.get("peer")
    ratio_1p, ratio_2p = _ratio(med["ingest_1p"], med["raw_1p"]), _ratio(med["ingest_2p"], med["raw_2p"])
    vs_peer_1p, vs_peer_2p_worker = _ratio(med["ingest_1p"], peer_rate), _ratio(med["ingest_2p"], peer_rate)
    return {
        "benchmark": "ingest",
        "events": events,
        "cells": cells,
        "partitions": partitions,
        "rounds": repeat,
        "clock": "first event consumed to last event processed, shutdown excluded",
        "raw_1p_events_per_s": round(med["raw_1p"]),
        "raw_2p_events_per_s": round(med["raw_2p"]),
        "peer": "quixstreams" if peer else None,
        "peer_processes": 1 if peer else None,
        "peer_events_per_s": round(peer_rate) if peer_rate else None,
        "ingest_1p_events_per_s": round(med["ingest_1p"]),
        "ingest_2p_events_per_s": round(med["ingest_2p"]),
        "ratio_1p": ratio_1p,
        "ratio_2p": ratio_2p,
        "vs_peer_1p": vs_peer_1p,
        # kept for continuity with earlier runs: the two-process worker's figures
        "ratio": ratio_2p,
        "vs_peer": vs_peer_2p_worker,  # two worker processes against the one-process peer
        "samples_events_per_s": {k: [round(v) for v in vs] for k, vs in samples.items() if vs},
    }


def bench_ingest_command(
    events: Annotated[int, typer.Option(min=1000, help="MR events to publish and consume")] = 200_000,
    cells: Annotated[int, typer.Option(min=1)] = 57,
    partitions: Annotated[int, typer.Option(min=1)] = 12,
    peer: Annotated[bool, typer.Option(help="also run the quixstreams peer")] = True,
    repeat: Annotated[int, typer.Option(
        "--rounds", "--repeat", min=1, help="interleaved rounds; the medians are reported")] = 3,
    as_json: Annotated[bool, typer.Option("--json/--no-json", help="one line; --no-json: indented")] = True,
) -> None:
    """Ingest throughput, one and two processes: bare consumers vs quixstreams peer vs the worker's real path."""
    from twin.logs import configure

    configure("WARNING")
    result = run_ingest_benchmark(events, cells, partitions, peer, repeat)
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


if __name__ == "__main__":
    if sys.argv[1:2] == ["raw-member"]:
        _raw_member_main(sys.argv[2:])
    else:
        sys.exit("usage: python -m streams.bench raw-member BOOTSTRAP GROUP READ,WRITE OUT COUNTS")
