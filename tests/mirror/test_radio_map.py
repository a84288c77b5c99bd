"""The geolocated SS-RSRP map of located UE reports (``twin.mirror.radio_map``): what the mirror
maps and what it leaves out, duplicates, folding, bounds, and the checkpoint round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from twin import topics
from twin.config import IngestSettings
from twin.ingest import IngestDecoder
from twin.mirror import radio_map
from twin.mirror.cluster import ClusterMirror
from twin.mirror.radio_map import RadioMap, bin_of
from twin.mirror.store import SEP, CheckpointStore, PartitionState, take_changes

A, B = "nr:00101-000000a01", "nr:00101-000000a02"
T0 = 1.8e9


def _mr(i: int, t: float, lat: float = 45.0, lon: float = 7.0, accuracy: float | None = 5.0,
        rsrp_idx: int = 60, neighbours: list[list[Any]] | None = None) -> list[Any]:
    """A normalised MR record as it reads after the re-keying topic's JSON round trip (lists)."""
    loc = None if lat is None else [lat, lon, accuracy]
    nbs = [[B, -101.5], ["pci:7:630000", -99.0]] if neighbours is None else neighbours
    return ["mr", A, [f"ev-{i}", t, rsrp_idx, 20, 30, nbs, 1000.0, 7, loc]]


def test_located_reports_map_the_serving_cell_and_neighbours_known_by_key() -> None:
    m = ClusterMirror("c1")
    m.apply_many([_mr(1, T0), _mr(2, T0 + 1, lat=45.001)])
    m.apply(_mr(1, T0))  # a duplicate (redelivery): counted once, mapped once
    m.apply(_mr(3, T0 + 2, accuracy=50.0))  # located too coarsely for a place
    m.apply(_mr(4, T0 + 3, accuracy=None))  # accuracy unknown
    m.apply(["mr", A, ["ev-5", T0 + 4, 60, 20, 30, [], 1000.0, 7, None]])  # no position
    m.apply(["mr", A, ["ev-6", T0 + 5, 60, 20, 30, [], 1000.0, 7]])  # a body of an earlier version
    m.apply(["mr", A, ["ev-7", T0 + 6, 60, 20, None, [], 1000.0, 7, [45.0, 7.0, 5.0]]])  # no SS-SINR
    m.apply(["mr", A, ["ev-8", T0 + 7, 60, 20, 127, [], 1000.0, 7, [45.0, 7.0, 5.0]]])  # SS-SINR clipped at 40 dB
    assert m.duplicates == 1 and m.cells[A].mr.count == 8
    assert m.radio is not None and m.radio_changed
    reports = [r for bucket in sorted(m.radio.recent) for r in m.radio.recent[bucket]]
    # the serving cell's SS-RSRP, the interference plus noise its UE heard (-97 dBm minus an SS-SINR
    # of index 30: -8.5 dB) and the neighbour known by key; a report without a usable SS-SINR maps
    # its SS-RSRP only
    served = [(A, -97.0), (radio_map.interference_key(A), -88.5), (B, -101.5)]
    assert [(c, r) for _, c, _, _, r in reports] == served * 2 + [(A, -97.0)] * 2
    assert m.snapshot().radio == m.radio and m.snapshot().radio is not m.radio


def test_the_decoder_keeps_the_position_of_a_report() -> None:
    rec = {"schemaVersion": "1", "eventId": "0c9e4b1a-6d2f-4f3e-9a57-2b8c1d0e7f31", "eventTime": "2027-01-15T08:00:00Z",
           "cellKey": A, "ueRef": "u1", "source": "RRC_MEAS_REPORT", "rat": "NR",
           "serving": {"cellKey": A, "rat": "NR", "rsrpDbm": -97.0},
           "location": {"lat": 45.0, "lon": 7.0, "accuracyM": 4.0, "method": "GNSS"}}
    decoder = IngestDecoder(IngestSettings(max_future_skew_s=1e12))
    (out,) = decoder.decode_many(topics.MR_UE, [type("M", (), {"key": None, "value": orjson.dumps(rec)})()])
    assert not hasattr(out, "reason"), out
    assert out[2][8] == (45.0, 7.0, 4.0)
    del rec["location"]
    (out,) = decoder.decode_many(topics.MR_UE, [type("M", (), {"key": None, "value": orjson.dumps(rec)})()])
    assert out[2][8] is None


def test_a_change_is_measured_at_the_same_place_and_old_reports_fold_into_bins() -> None:
    m = RadioMap()
    far = 45.0 + 100 / 111_320.0  # 100 m north: another place
    for h in range(6):  # six hours at two places, then the cell loses 15 dB at one of them
        m.add(T0 + 3600 * h, A, 45.0, 7.0, -90.0)
        m.add(T0 + 3600 * h, A, far, 7.0, -80.0)
    assert m.bins[A] and all(t >= m.newest - radio_map.RECENT_S - 900 for v in m.recent.values() for t, *_ in v)
    m.add(T0 + 3600 * 6, A, 45.0, 7.0, -105.0)
    change = m.changes(T0 + 3600 * 6 - 900, T0 + 3600 * 6)[A]
    assert change.delta_db.tolist() == pytest.approx([-15.0]) and change.after_n.tolist() == [1]
    assert change.before_n[0] == pytest.approx(6.0, rel=0.05)  # forgetting over hours is slight
    # a later period against the same before; reports between are left out
    m.add(T0 + 3600 * 6 + 900, A, 45.0, 7.0, -106.0)
    later = m.changes(T0 + 3600 * 6 - 900, T0 + 3600 * 6 + 900, T0 + 3600 * 6)[A]
    assert later.delta_db.tolist() == pytest.approx([-16.0])
    assert m.changes(T0 + 3600 * 7, T0 + 3600 * 8) == {}  # nothing in the window
    assert bin_of(45.0, 7.0) != bin_of(far, 7.0)


def test_the_map_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(radio_map, "MAX_BINS", 50)
    monkeypatch.setattr(radio_map, "MAX_RECENT", 100)
    m = RadioMap()
    for i in range(5000):  # 5,000 places in 83 minutes: more than the recent reports and the bins allow
        m.add(T0 + i, A, 45.0 + i * 1e-4, 7.0, -90.0)
    assert m.size() <= 1100 and len(m.bins[A]) <= 50  # checked every 1,000 reports
    held = m.size()
    for bad in (float("nan"), float("inf")):
        m.add(T0, A, 45.0, 7.0, bad)
        m.add(T0, A, bad, 7.0, -90.0)
        m.add(T0, A, 45.0, bad, -90.0)
    assert m.size() == held  # none of the non-finite reports was kept
    assert all(r == -90.0 for v in m.recent.values() for *_, r in v)


def test_the_map_round_trips_through_the_checkpoint_and_a_bad_one_starts_afresh(tmp_path: Path) -> None:
    m = ClusterMirror("c1")
    m.apply_many([_mr(i, T0 + 60 * i, lat=45.0 + (i % 7) * 1e-4) for i in range(400)])  # 6.7 h: some folded
    assert m.radio is not None and m.radio.bins and m.radio.recent
    state = PartitionState(0, next_offset=400)
    state.clusters["c1"] = m
    store = CheckpointStore(tmp_path)
    store.save(state, {})
    loaded = store.load(0).clusters["c1"]
    assert loaded.radio == m.radio
    assert loaded.radio is not None
    assert loaded.radio.changes(T0 + 60 * 390, T0 + 60 * 400).keys() == m.radio.changes(T0 + 60 * 390,
                                                                                       T0 + 60 * 400).keys()
    # incremental: with nothing new nothing is written; a new report rewrites its quarter hour only
    assert take_changes(store.load(0)).keys() == 0
    m.apply(_mr(9999, T0 + 60 * 400))
    written = [k for k, _ in take_changes(state).puts if k.startswith(SEP.join(["c", "c1", "r", ""]))]
    assert written == [SEP.join(["c", "c1", "r", "q", str(int((T0 + 60 * 400) // 900))])], written
    with pytest.raises(ValueError, match="radio map"):
        RadioMap().load_entry(["b"], b"{}")
    fresh = ClusterMirror("c1")
    fresh.load_entry(["r", "q", "1"], b"\x00 not json")  # unreadable: left out, logged, no crash
    assert fresh.radio is not None and fresh.radio.recent == {}


def test_a_change_of_what_the_cell_radiates_clears_its_map_and_a_repeated_snapshot_does_not() -> None:
    """A's power rises: A's levels and every cell's interference levels before it are dropped, B's
    SS-RSRP kept (B did not change); a snapshot repeating the values drops nothing."""
    m = ClusterMirror("c1")
    power = "NRSectorCarrier.configuredMaxTxPower"

    def cm(t: float, mw: int, cio: int = 0) -> list[Any]:
        return ["cm", A, {"dn": "ManagedElement=1,NRSectorCarrier=1", "cls": "NRSectorCarrier", "t": t,
                          "a": {"configuredMaxTxPower": mw, "cellIndividualOffset": cio}}]

    m.apply(cm(T0 - 10, 20000))
    m.apply_many([_mr(i, T0 + 600 * i) for i in range(20)])  # 3.2 hours: some folded into bins
    heard = radio_map.interference_key(A)
    assert m.radio is not None and A in m.radio.bins and B in m.radio.bins and heard in m.radio.bins
    m.apply(cm(T0 + 600 * 20, 20000, cio=3))  # the same power again (a snapshot), another CIO: kept
    assert A in m.radio.bins
    m.apply(cm(T0 + 600 * 20 + 1, 40000))  # +3 dB: A's levels before now describe another cell
    assert m.cells[A].cm[power][0] == 40000
    assert A not in m.radio.bins and B in m.radio.bins  # the neighbour heard at the same places is kept
    assert not [r for v in m.radio.recent.values() for r in v if r[1] == A]
    # the interference every cell's UEs heard moved too (A sends more of it): cleared, up to the change
    assert heard not in m.radio.bins
    assert not [r for v in m.radio.recent.values() for r in v if r[1].endswith(radio_map.INTERFERENCE_SUFFIX)]
    m.apply(_mr(99, T0 + 600 * 20 + 60))
    assert [r[1] for v in m.radio.recent.values() for r in v if r[0] > T0 + 600 * 20].count(A) == 1
