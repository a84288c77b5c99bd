"""Do a checkpoint's offsets still belong to the broker's log? (A restarted memory-only broker,
a recreated topic, records deleted by retention.)

A checkpoint stores the next offset to read of its partition of the re-keyed topic. After the
embedded broker restarts (it keeps everything in memory) the topic is empty and counts from 0
again, so that offset points past the new log's end, and every new record below it would be
skipped. A checkpoint therefore also records which log its offsets belong to: the broker's cluster
id (the embedded broker gets a new one at every start) and a fingerprint of the last record it
applied (offset, timestamp, size, CRC-32 of its first bytes). On taking a partition, the worker
reads that record again (:func:`verify`): if the cluster id changed, or the record is not there or
differs, the log was replaced, and the worker keeps its mirror but reads the new log from its
start. If the log now starts after the checkpoint's offset (retention deleted records it had not
read), it resumes from the log's start too. Either way it counts, logs and raises an alert.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.kafka_io import make_admin  # the process's TLS/SASL settings (streams.kafka_security)

__all__ = ["FINGERPRINT_BYTES", "Verdict", "cluster_id", "fingerprint", "verify"]

log = structlog.get_logger("twin.incarnation")

FINGERPRINT_BYTES = 256  # of the record's value that go into its CRC


def fingerprint(offset: int, timestamp: int, value: bytes | None) -> list[int]:
    """``[offset, timestamp, size, crc32 of the first bytes]`` of a record.

    >>> fingerprint(41, 1700000000000, b'{"cl":"north","r":[]}')
    [41, 1700000000000, 21, 1480462361]
    """
    data = value or b""
    return [offset, timestamp, len(data), zlib.crc32(data[:FINGERPRINT_BYTES])]


async def cluster_id(bootstrap: str, request_timeout_ms: int = 30_000) -> str | None:
    """The broker cluster's id (``None`` if it does not say)."""
    admin = make_admin(bootstrap, request_timeout_ms=request_timeout_ms)
    await admin.start()
    try:
        described = await admin.describe_cluster()
        value = described.get("cluster_id")
        return str(value) if value else None
    finally:
        await admin.close()


@dataclass(frozen=True)
class Verdict:
    """Where to resume a partition: ``offset``; ``reason`` says why it is not the checkpoint's (``None``:
    it is)."""

    offset: int
    reason: str | None = None


async def verify(consumer: AIOKafkaConsumer, tp: TopicPartition, next_offset: int, meta: dict[str, Any],
                 current_cluster: str | None, wait_ms: int = 2000, patience_s: float = 60.0) -> Verdict:
    """Where to resume ``tp`` after a checkpoint with ``next_offset`` and ``meta``; ``consumer`` is a
    started consumer without a group, used to read the checkpoint's last record again.

    A fetch that returns nothing within ``wait_ms`` is not proof that the record is gone: a loaded
    machine, or a broker still starting, answers a new consumer's first fetch late (a worker
    restarted beside the resync fit's process once took longer than 2 s, declared its intact log
    replaced, re-read it from the start and raised an alert nothing would clear). The record is asked
    for again until ``patience_s``, unless the log is empty: only then, or once the time is up, is it
    "not in the log"."""
    if next_offset == 0:
        return Verdict(0)
    saved_cluster = meta.get("brokerClusterId")
    start = (await consumer.beginning_offsets([tp]))[tp]
    if saved_cluster is not None and current_cluster is not None and saved_cluster != current_cluster:
        return Verdict(start, f"the broker is another one (cluster id {current_cluster}, the checkpoint's "
                              f"offsets belong to {saved_cluster})")
    last = meta.get("lastRecord")
    if last is not None and last[0] >= start:
        seen = await _read_again(consumer, tp, last[0], wait_ms, patience_s)
        if seen != list(last):
            what = "is not in the log" if seen is None else "differs"
            return Verdict(start, f"the record at offset {last[0]} the checkpoint applied last {what}: the "
                                  "topic's log was replaced")
    if start > next_offset:
        return Verdict(start, f"the log now starts at offset {start}, after the checkpoint's {next_offset}: "
                              f"{start - next_offset} records were deleted before they were read")
    return Verdict(next_offset)


async def _read_again(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, wait_ms: int,
                      patience_s: float) -> list[int] | None:
    """The fingerprint of the first record ``consumer`` gets reading ``tp`` from ``offset`` (past the
    log's end it is reset to the log's start, so a shorter new log answers with another record);
    None when an empty log, or nothing within ``patience_s``, answers."""
    consumer.assign([tp])
    deadline = time.monotonic() + patience_s
    while True:
        consumer.seek(tp, offset)
        found = (await consumer.getmany(tp, timeout_ms=wait_ms, max_records=1)).get(tp, [])
        if found:
            return fingerprint(found[0].offset, found[0].timestamp, found[0].value)
        start, end = (await consumer.beginning_offsets([tp]))[tp], (await consumer.end_offsets([tp]))[tp]
        if end <= start or time.monotonic() >= deadline:
            return None
        log.info("incarnation.read_again", topic=tp.topic, partition=tp.partition, offset=offset,
                 log_start=start, log_end=end, waited_ms=wait_ms)
