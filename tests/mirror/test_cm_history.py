"""The CM in effect at a time does not depend on the order the observations arrive in.

Exactly so when a late observation never falls strictly between two observations of another value
already merged into one run (a value coming back to an earlier one, observed out of order); then the
run is split around it, without the observations between that were not kept (``cm_history``).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from twin.mirror import cm_history
from twin.mirror.cell import CellMirror


@st.composite
def observations(draw: st.DrawFn) -> list[tuple[int, str]]:
    """Observations at distinct instants where each value holds over one stretch of time (a value
    can come back, e.g. a rollback, but then as another DN-less value here: see the module note)."""
    times = sorted(draw(st.lists(st.integers(0, 40), min_size=1, max_size=12, unique=True)))
    values = draw(st.permutations(["a", "b", "c", "d"]))
    cuts = sorted(draw(st.lists(st.integers(1, max(1, len(times) - 1)), max_size=3, unique=True)))
    out, block = [], 0
    for i, t in enumerate(times):
        while block < len(cuts) and i >= cuts[block]:
            block += 1
        out.append((t, values[block]))
    return out


def _answers(obs: list[tuple[int, str]]) -> list[str]:
    runs: list[cm_history.Run] = []
    for t, v in obs:
        cm_history.observe(runs, float(t), v, "dn")
    return [cm_history.value_at(runs, t + 0.5)[2] for t in range(-1, 42)]


def _truth(obs: list[tuple[int, str]]) -> list[str]:
    """By definition: the value observed last at or before T, else the earliest."""
    ordered = sorted(obs)
    out = []
    for t in range(-1, 42):
        before = [v for when, v in ordered if when <= t + 0.5]
        out.append(before[-1] if before else ordered[0][1])
    return out


@settings(max_examples=300, deadline=None)
@given(obs=observations(), order=st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_definition(obs: list[tuple[int, str]], order: object) -> None:
    shuffled = list(obs)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    assert _answers(shuffled) == _answers(sorted(obs)) == _truth(obs)


@settings(max_examples=100, deadline=None)
@given(obs=observations(), order=st.randoms(use_true_random=False))
def test_the_cell_mirror_answers_alike_in_any_order(obs: list[tuple[int, str]], order: object) -> None:
    def mirror(sequence: list[tuple[int, str]]) -> CellMirror:
        cell = CellMirror("nr:00101-000000101")
        for t, v in sequence:
            cell.apply_cm("NRCellDU", "ManagedElement=1,NRCellDU=1", {"digitalTilt": v}, float(t))
        return cell

    shuffled = list(obs)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    a, b = mirror(sorted(obs)), mirror(shuffled)
    for t in range(-1, 42):
        assert a.cm_as_of(t + 0.5)["NRCellDU.digitalTilt"][0] == b.cm_as_of(t + 0.5)["NRCellDU.digitalTilt"][0]
    assert a.cm["NRCellDU.digitalTilt"][:3] == b.cm["NRCellDU.digitalTilt"][:3]  # the latest observation wins
    assert a.cm_as_of(None)["NRCellDU.digitalTilt"][0] == max(obs)[1]


def test_pruning_keeps_what_later_times_need() -> None:
    cell = CellMirror("nr:00101-000000101")
    for t, v in ((100.0, 40), (200.0, 60), (300.0, 80)):
        cell.apply_cm("NRCellDU", "dn", {"digitalTilt": v}, t)
        cell.apply_pm("pm", {"gp": 100, "t": t, "v": {}, "s": False})
    cell.prune(pm_retention_s=50, mr_retention_s=3600)  # keeps periods from 250 on
    assert [cell.cm_as_of(t)["NRCellDU.digitalTilt"][0] for t in (250.0, 300.0)] == [60, 80]
    assert len(cell.cm_before["NRCellDU.digitalTilt"]) == 1


def test_a_value_coming_back_out_of_order_is_placed_between_the_runs() -> None:
    runs: list[cm_history.Run] = []
    for t, v in ((0.0, "a"), (3.0, "a"), (1.0, "b")):  # a, then b at 1, back to a by 3: b arrives last
        cm_history.observe(runs, t, v, "dn")
    assert [cm_history.value_at(runs, t)[2] for t in (0.5, 1.5, 3.5)] == ["a", "b", "a"]
