"""Publisher: event-time pacing, per-cell order, batching, dead letters and the accounting invariant."""

from __future__ import annotations

import asyncio
import base64
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replay.model import Notice, Outcome
from replay.publisher import Publisher
from tests.replay.util import RecordingSink, mr_item, rejection, stream
from twin import topics
from twin.schemas import DeadLetter, MrEvent


def run(publisher: Publisher, *streams: Sequence[Outcome]) -> None:
    asyncio.run(publisher.run([stream(s) for s in streams]))


def test_pacing_honours_event_time_at_a_speed_factor() -> None:
    # 4 s of event time at speed 8 -> about 0.5 s of wall time, spread like the events.
    events = [mr_item("nr:00101-000000001", s) for s in (0, 1, 2, 3, 4)]
    sink = RecordingSink()
    started = time.monotonic()
    run(Publisher(sink, speed=8, batch_size=100), events)
    elapsed = time.monotonic() - started
    sent_at = [t for t, _ in sink.sent]
    assert len(sent_at) == 5
    assert sent_at[-1] - sent_at[0] >= 0.45 and elapsed < 5.0  # never early; generous upper bound
    for i, t in enumerate(sent_at):
        assert t - sent_at[0] >= i / 8 - 0.02  # each record waits for its own event time


def test_speed_zero_is_as_fast_as_possible_and_max_gap_shortens_idle_time() -> None:
    far = [mr_item("nr:00101-000000001", s) for s in (0, 3600, 7200)]
    sink = RecordingSink()
    started = time.monotonic()
    run(Publisher(sink, speed=0), far)
    assert time.monotonic() - started < 1.0 and len(sink.sent) == 3
    sink = RecordingSink()
    started = time.monotonic()
    run(Publisher(sink, speed=1000, max_gap_s=100), far)  # 2 gaps of 1 h -> 2 x 100 s / 1000
    assert 0.19 <= time.monotonic() - started < 3.0


def test_sources_merge_by_event_time_and_each_cell_keeps_its_order() -> None:
    cells = ["nr:00101-000000001", "nr:00101-000000002", "lte:00101-0000003"]
    a = [mr_item(cells[i % 3], s, ue="a") for i, s in enumerate(range(0, 300, 3))]
    b = [mr_item(cells[i % 2], s + 0.5, ue="b") for i, s in enumerate(range(0, 300, 2))]
    c = [mr_item(cells[2], s + 0.25, ue="c") for s in range(0, 300, 5)]
    sink = RecordingSink()
    run(Publisher(sink, batch_size=7), a, b, c)
    sent = [orjson.loads(r.value) for r in sink.records(topics.MR_UE)]
    assert len(sent) == len(a) + len(b) + len(c)
    times = [datetime.fromisoformat(e["eventTime"]) for e in sent]
    assert times == sorted(times)  # a global event-time merge
    by_cell: dict[bytes | None, list[datetime]] = defaultdict(list)
    for r in sink.records():
        by_cell[r.key].append(datetime.fromisoformat(orjson.loads(r.value)["eventTime"]))
    for key, seq in by_cell.items():
        assert seq == sorted(seq), key
    # Within one source the reader's order is kept, even where it is not time order.
    unsorted = [mr_item(cells[0], s, ue="u") for s in (5, 1, 9)]
    sink = RecordingSink()
    run(Publisher(sink), unsorted)
    assert [orjson.loads(r.value)["eventId"] for r in sink.records()] == [i.record.event_id for i in unsorted]  # type: ignore[attr-defined]


def test_rejections_are_dead_lettered_with_original_bytes_and_counted() -> None:
    raw = b"2019.11.25_15.34.34,\xff,not,utf8"
    items = [mr_item("nr:00101-000000001", s) for s in range(3)]
    sink = RecordingSink()
    pub = Publisher(sink, topic_prefix="t1.")
    run(pub, [items[0], rejection(raw), items[1], Notice("f.csv", "quirk"), items[2]])
    report = pub.report
    assert sink.started and sink.stopped
    assert report.rows_read == 4 and report.rows_published == 3 and report.rows_rejected == 1
    assert report.published == {topics.MR_UE: 3} and report.dead_lettered == 1
    assert report.warnings == ["f.csv: quirk"]
    [dlq] = sink.records("t1." + topics.DLQ)
    letter = DeadLetter.model_validate_json(dlq.value)
    assert base64.b64decode(letter.value_b64) == raw and letter.topic == "t1." + topics.MR_UE
    assert "RSRP=-200" in letter.reason and "f.csv line 2" in letter.reason
    assert letter.rejected_by == "twin.replay" and dlq.key is None
    assert all(r.topic == "t1." + topics.MR_UE for r in sink.records() if r.topic != "t1." + topics.DLQ)
    assert {r.key for r in sink.records("t1." + topics.MR_UE)} == {b"nr:00101-000000001"}
    MrEvent.model_validate_json(sink.records("t1." + topics.MR_UE)[0].value)


def test_dry_run_counts_without_a_sink() -> None:
    pub = Publisher(None)
    run(pub, [mr_item("nr:00101-000000001", 0), rejection()])
    d = pub.report.to_dict()
    assert d["dryRun"] and d["published"] == {topics.MR_UE: 1} and d["deadLettered"] == 0
    assert d["rowsRead"] == 2 and d["rejected"][0]["reason"].startswith("RSRP=-200")
    assert d["rejectedByReason"] == [
        {"field": "RSRP", "errorClass": "range", "rows": 1, "example": "RSRP=-200 outside -157..-30 dBm"}
    ]


def test_bad_speed_is_refused() -> None:
    with pytest.raises(ValueError, match="speed"):
        Publisher(None, speed=-1)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(st.one_of(st.integers(0, 10_000), st.none()), max_size=30), max_size=5),
    st.integers(1, 50),
)
def test_every_unit_is_published_or_rejected(layout: list[list[int | None]], batch: int) -> None:
    streams: list[list[Outcome]] = [
        [
            rejection() if s is None else mr_item("nr:00101-000000001", s)
            for s in sorted(layout_i, key=lambda v: -1 if v is None else v)
        ]
        for layout_i in layout
    ]
    sink = RecordingSink()
    pub = Publisher(sink, batch_size=batch)
    run(pub, *streams)
    r = pub.report
    total = sum(len(s) for s in streams)
    assert r.rows_read == total == r.rows_published + r.rows_rejected
    assert len(sink.sent) == total and r.dead_lettered == r.rows_rejected
