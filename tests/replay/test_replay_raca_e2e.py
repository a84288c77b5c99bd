"""The whole Raca dataset through the real embedded broker: every row is published or dead-lettered."""

from __future__ import annotations

import asyncio
import base64
import uuid
import zipfile
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import orjson

from replay.publisher import Publisher, ReplayReport
from replay.readers import Format, open_sources
from streams.broker import EmbeddedBroker
from tests.replay.util import consume_all
from twin import topics
from twin.ports import open_sink


def csv_rows_in(zip_path: Path) -> int:
    """Rows read straight from the archive, independently of the reader."""
    rows = 0
    with zipfile.ZipFile(zip_path) as zf:
        for name in zf.namelist():
            if name.endswith(".csv") and not name.startswith("__MACOSX/"):
                lines = zf.read(name).splitlines()
                rows += sum(1 for line in lines[1:] if line.strip())
    return rows


def test_whole_raca_dataset_accounts_for_every_row(raca_zip: Path, broker: EmbeddedBroker) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}."

    async def replay() -> ReplayReport:
        sink = open_sink(
            "kafka",
            bootstrap_servers=broker.bootstrap_servers,
            ensure=[prefix + topics.MR_UE, prefix + topics.DLQ],
            partitions=12,
        )
        publisher = Publisher(sink, topic_prefix=prefix, batch_size=5000)
        return await publisher.run(open_sources(Format.raca, [raca_zip]))

    report = asyncio.run(replay())

    rows = csv_rows_in(raca_zip)
    assert rows > 188_000
    assert report.rows_read == rows == report.rows_published + report.rows_rejected
    assert report.published == {topics.MR_UE: report.rows_published}
    assert report.dead_lettered == report.rows_rejected > 0

    mr = asyncio.run(consume_all(broker.bootstrap_servers, prefix + topics.MR_UE))
    dlq = asyncio.run(consume_all(broker.bootstrap_servers, prefix + topics.DLQ))
    assert len(mr) == report.rows_published and len(dlq) == report.rows_rejected

    # Idempotent ids: no event id twice; per cell (one key -> one partition) offsets follow event time.
    per_cell: dict[bytes | None, list[tuple[int, datetime]]] = defaultdict(list)
    ids = set()
    for _partition, offset, key, value in mr:
        event = orjson.loads(value)
        ids.add(event["eventId"])
        assert key == event["cellKey"].encode()
        per_cell[key].append((offset, datetime.fromisoformat(event["eventTime"])))
    assert len(ids) == len(mr)
    for key, seq in per_cell.items():
        times = [t for _, t in sorted(seq)]
        assert times == sorted(times), key

    # Dead letters carry the original CSV row and a reason naming the field.
    letters = [orjson.loads(v) for *_, v in dlq]
    assert all(base64.b64decode(d["valueB64"]).count(b",") == 25 for d in letters)
    kinds = Counter(d["errorClass"] for d in letters)
    assert kinds["unsupported"] > 10_000 and kinds["range"] > 0
    assert all(d["topic"] == prefix + topics.MR_UE and ".csv line " in d["reason"] for d in letters)
    # An NR-leg value out of range (NRxRSRQ=-204 ...) costs the row only that value, and is counted.
    assert not any("NRx" in d["reason"] for d in letters)
    dropped = [w for w in report.warnings if "NR-leg values outside their range dropped" in w]
    assert dropped and any("NRxRSRQ=-204 outside" in w for w in dropped)
