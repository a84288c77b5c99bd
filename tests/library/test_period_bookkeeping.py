"""Period bookkeeping through the public functions: ``CellMirror.gaps`` with period ends off one grid
(a clock shift), ``due_periods`` across a change of a cell's granularity period and with one cell
reporting periods ahead of the rest of its cluster (the ingest accepts PM up to
``max_future_skew_s`` ahead of its clock)."""

from __future__ import annotations

from twin.mirror.cell import CellMirror
from twin.mirror.cluster import ClusterMirror
from twin.prediction import due_periods, mark_predicted
from twin.records import NormalisedCm, NormalisedPm


def _cell(gp: int, ends: list[int]) -> CellMirror:
    cell = CellMirror("nr:a")
    for end in ends:
        cell.apply_pm("pm", {"gp": gp, "t": float(end), "v": {"RRU.PrbTotDl": 1.0}, "s": False})
    return cell


def _cluster(keys: list[str]) -> ClusterMirror:
    m = ClusterMirror("c")
    for key in keys:
        cm: NormalisedCm = ("cm", key, {"dn": f"dn-{key}", "cls": "NRCellDU", "t": 0.0, "a": {"x": 0.0}})
        m.apply(cm)
    return m


def _pm(m: ClusterMirror, key: str, gp: int, *ends: int) -> None:
    for end in ends:
        pm: NormalisedPm = ("pm", key, {"gp": gp, "t": float(end), "v": {}, "s": False})
        m.apply(pm)


def _predict_due(m: ClusterMirror, expected: list[str], timeout_periods: int = 2) -> list[tuple[int, int]]:
    """What the prediction service does with the due periods: predict (here: mark) each."""
    due = due_periods(m, expected, timeout_periods=timeout_periods)
    for gp, end in due:
        mark_predicted(m, gp, end)
    return due


# -- 1. gaps with period ends off one grid ---------------------------------------------------

def test_gaps_of_aligned_ends_are_the_skipped_periods() -> None:
    assert _cell(900, [900, 1800, 4500, 6300]).gaps(900) == [2700, 3600, 5400]
    assert _cell(900, [905, 1805, 3605]).gaps(900) == [2705]  # one grid, not on multiples of gp


def test_a_shifted_period_end_is_not_a_gap() -> None:
    cell = _cell(900, [900, 1800, 2705])
    assert cell.gaps(900) == []
    assert cell.view()["pm"]["900"]["missingPeriods"] == 0
    assert _cell(900, [950, 1800, 2700]).gaps(900) == []  # the first end off the grid of the others


def test_periods_skipped_after_a_clock_shift_are_counted_once() -> None:
    # shifted by 5 s at the second period, the fourth period (3605) skipped: one gap
    cell = _cell(900, [900, 1805, 2705, 4505])
    assert cell.gaps(900) == [3605]
    assert cell.view()["pm"]["900"]["missingPeriodEnds"] == [3605]


# -- 2. a change of a cell's granularity period ---------------------------------------------

def test_a_pending_period_of_a_former_gp_times_out() -> None:
    """Both cells go from 900 s to 300 s; ``b`` changed one period before ``a``, so the last 900-s
    period has ``a`` only: no 900-s period follows it, it must time out on the cluster's 300-s ones."""
    m = _cluster(["nr:a", "nr:b"])
    _pm(m, "nr:a", 900, 900, 1800, 2700)
    _pm(m, "nr:b", 900, 900, 1800)
    _pm(m, "nr:b", 300, *range(2100, 6601, 300))
    _pm(m, "nr:a", 300, *range(3000, 6601, 300))
    due = _predict_due(m, ["nr:a", "nr:b"])
    assert (900, 2700) in due
    assert not m.pending.get(900)


def test_cells_on_different_gps_are_predicted_by_timeout() -> None:
    """``a`` reports 900 s, ``b`` 300 s: no period is ever complete (each lacks the other cell), each
    is predicted once the cluster has moved ``timeout_periods`` periods beyond it, none stays pending."""
    m = _cluster(["nr:a", "nr:b"])
    _pm(m, "nr:a", 900, *range(900, 5401, 900))
    _pm(m, "nr:b", 300, *range(300, 5401, 300))
    due = _predict_due(m, ["nr:a", "nr:b"])
    assert [e for g, e in due if g == 900] == [900, 1800, 2700, 3600]
    assert [e for g, e in due if g == 300] == list(range(300, 4801, 300))


# -- 3. one cell reporting periods ahead of its cluster -------------------------------------

def test_one_cell_ahead_does_not_time_out_the_periods_of_the_others() -> None:
    """gp 60 s, ``a``'s clock 600 s ahead: it has reported up to 1260 while ``b`` is at 660 and ``c``
    at 600. Period 660 waits for ``c`` until most of the cluster is two periods beyond it."""
    m = _cluster(["nr:a", "nr:b", "nr:c"])
    cells = ["nr:a", "nr:b", "nr:c"]
    for key in cells:
        _pm(m, key, 60, *range(60, 601, 60))
    _pm(m, "nr:b", 60, 660)
    _pm(m, "nr:a", 60, *range(660, 1261, 60))
    assert _predict_due(m, cells) == [(60, e) for e in range(60, 601, 60)]
    _pm(m, "nr:b", 60, 720)
    assert _predict_due(m, cells) == []
    _pm(m, "nr:b", 60, 780)  # a and b two periods beyond 660: c is late
    assert _predict_due(m, cells) == [(60, 660)]


def test_cells_that_stopped_reporting_time_out_within_the_skew_allowance() -> None:
    """``b`` and ``c`` stop after 600, ``a`` goes on: ``a`` alone may be a clock ahead, so their periods
    wait until ``a`` is beyond them by the skew allowance (600 s) and the timeout; then as usual."""
    m = _cluster(["nr:a", "nr:b", "nr:c"])
    cells = ["nr:a", "nr:b", "nr:c"]
    for key in cells:
        _pm(m, key, 60, *range(60, 601, 60))
    _predict_due(m, cells)
    _pm(m, "nr:a", 60, *range(660, 1321, 60))
    assert _predict_due(m, cells) == []
    _pm(m, "nr:a", 60, 1380)
    assert _predict_due(m, cells) == [(60, e) for e in range(660, 1261, 60)]
    _pm(m, "nr:a", 60, 1440)
    assert _predict_due(m, cells) == [(60, 1320)]


def test_a_cell_that_never_reported_is_timed_out_on_the_newest_period() -> None:
    m = _cluster(["nr:a", "nr:b"])
    _pm(m, "nr:a", 900, 900, 1800)
    assert _predict_due(m, ["nr:a", "nr:b", "nr:z"], timeout_periods=1) == [(900, 900)]
