"""``twin bench mr-ceiling``: how well a twin calibrated per place from located UE reports could rank
CM candidates (issue 15's ranking, ``docs/sim2real.md``).

``twin bench sim2real`` ranks the candidates of one cell's tilt x power grid by the cell's
``DRB.UEThpDl`` and finds every model near the twin's own simulation model (Kendall tau about
0.5), and any model that does not know the network's own hidden draw near 0.55. The draw
(``replay/emulator/truth.py``) is per-cell antenna gain and azimuth errors and an extra loss per
(cell, UE point): own shadowing and building loss. A located UE report shows, at its place, the
SS-RSRP of its serving cell and of the neighbours it heard; against the twin's model, the
difference is that place's offset for that cell, the antenna's errors at the configuration in
force included. This benchmark asks how well the candidates would be ranked by the truth's own
physics with the draw replaced by what such reports show:

* ``per_place``: at ``places_share`` of the UE points, the offsets of the ``cells_heard``
  strongest cells, as the reports of a reference period show them against the public model,
  with a Gaussian error of ``noise_db`` (a report's RSRP error, 2 dB on the emulator, averaged over
  the reports of a place: 2 / sqrt(n)); a cell not heard at a place takes the place's mean offset.
  The antennas' errors are not known apart (they are inside the offsets);
* ``per_place_exact_antennas``: the same places and cells with their extra loss exact and the
  antennas' true gain and azimuth (what knowing the antennas apart, without error, would add);
* ``public_model``: nothing of the draw: the twin's model on the same points.

Ranked as ``twin bench sim2real`` ranks: per (period, cell) pair of the held-out half of ``days``
hourly periods, the 21 candidates of ``RANK_TILTS_DEG`` x ``RANK_POWERS_DBM`` on the cell, the other
cells as they ran, its noiseless ``DRB.UEThpDl`` on the truth; Kendall tau-b, mean over the pairs.
These are ceilings of a physics twin that shares the truth's model family and knows the UE points
exactly; a predictor learned from such a twin's data would rank lower.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import typer

from replay.bench_options import chosen_scenarios
from replay.bench_sim2real import RANK_POWERS_DBM, RANK_TILTS_DEG, SCENARIOS, _kendall
from replay.emulator import NetworkEmulator
from replay.emulator.physics import PhysicalNetwork
from replay.sim2real_data import Band, PeriodReports, RealPeriod, real_samples
from twin.sim.cm import apply_cm_to_sector
from twin.sim2real import TARGETS

__all__ = ["VARIANTS", "bench_mr_ceiling_command", "offsets_from_reports", "public_physics", "reported_offsets",
           "run_mr_ceiling"]

START = datetime(2024, 3, 1, tzinfo=UTC)
GP = 3600
VARIANTS = ("per_place", "per_place_exact_antennas", "public_model")
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def public_physics(phys: PhysicalNetwork) -> PhysicalNetwork:
    """``phys`` without its hidden draw: the network's sites, UE points and model loss, the twin's
    model of it."""
    t = phys.truth
    return phys.with_truth(replace(t, gain_db=np.zeros_like(t.gain_db), azimuth_deg=np.zeros_like(t.azimuth_deg),
                                   extra_loss_db=np.zeros_like(t.extra_loss_db)))


def _filled(offset: FloatArray, heard: BoolArray) -> FloatArray:
    """``offset`` where ``heard``; elsewhere the mean of the place's heard offsets, and at a place
    never heard the mean of all heard pairs."""
    overall = float(offset[heard].mean()) if heard.any() else 0.0
    mean = np.where(heard.any(0), np.where(heard, offset, 0.0).sum(0) / np.maximum(heard.sum(0), 1), overall)
    return np.where(heard, offset, mean[None, :])


def reported_offsets(phys: PhysicalNetwork, period: RealPeriod, cells_heard: int, noise_db: float,
                     places_share: float, rng: np.random.Generator) -> tuple[FloatArray, BoolArray]:
    """What located reports of ``period`` show, as an extra loss [n_cells, n_ues] on the public model
    (the RSRP the model expects less the RSRP reported, with ``noise_db`` of error), and which
    (cell, place) pairs were heard. At each of ``places_share`` of the places the ``cells_heard``
    strongest cells are heard; the others take the place's mean offset (the share of the places
    not heard at all: the mean over every heard pair)."""
    t = phys.truth
    n_cells, n_ues = t.extra_loss_db.shape
    every = np.arange(n_ues)
    state = phys.evaluate(period.public, period.hour, list(period.active))
    reported = phys.rsrp_matrix(state, every)
    public = public_physics(phys)
    expected = public.rsrp_matrix(public.evaluate(period.public, period.hour, list(period.active)), every)
    offset = expected - reported + rng.normal(0.0, noise_db, reported.shape)
    heard = np.zeros((n_cells, n_ues), dtype=bool)
    places = every[rng.random(n_ues) < places_share]
    strongest = np.argsort(-reported[:, places], axis=0)[: min(cells_heard, n_cells)]
    for row in strongest:
        heard[row, places] = True
    return _filled(offset, heard), heard


def offsets_from_reports(phys: PhysicalNetwork, lat0: float, lon0: float, cell_keys: Sequence[str],
                         collected: Sequence[PeriodReports]) -> tuple[FloatArray, BoolArray]:
    """The per-place extra loss [n_cells, n_ues] that located reports show against the public model
    (the twin's: the network's sites, UE points and model loss without its hidden draw): each
    report's SS-RSRP of its serving cell and of each neighbour it heard, at the UE point nearest its
    location, subtracted from the RSRP the public model expects there under the period's
    configuration, averaged per (cell, point); a cell not heard at a point takes the point's mean,
    a point never reported the mean of all. Also which (cell, point) pairs were heard."""
    from scipy.spatial import cKDTree

    from twin.sim.mirrored import latlon_to_xy

    public = public_physics(phys)
    n_cells, n_ues = phys.truth.extra_loss_db.shape
    row = {k: i for i, k in enumerate(cell_keys)}
    tree = cKDTree(np.stack([phys.ues.x_m, phys.ues.y_m], axis=1))
    total, count = np.zeros((n_cells, n_ues)), np.zeros((n_cells, n_ues))
    every = np.arange(n_ues)
    for period in collected:
        located = [r for r in period.reports if r.location is not None]
        if not located:
            continue
        expected = public.rsrp_matrix(public.evaluate(period.public, period.hour, list(period.active)), every)
        x, y = latlon_to_xy([r.location.lat for r in located], [r.location.lon for r in located], lat0, lon0)
        _, places = tree.query(np.stack([x, y], axis=1))
        for report, place in zip(located, places, strict=True):
            for meas in (report.serving, *report.neighbours):
                i = row.get(meas.cell_key or "")
                if i is not None and meas.rsrp_dbm is not None:
                    total[i, place] += expected[i, place] - meas.rsrp_dbm
                    count[i, place] += 1
    heard = count > 0
    return _filled(np.where(heard, total / np.maximum(count, 1), 0.0), heard), heard


def _variants(phys: PhysicalNetwork, offsets: FloatArray, heard: BoolArray) -> dict[str, PhysicalNetwork]:
    public = public_physics(phys)
    return {
        "per_place": public.with_truth(replace(public.truth, extra_loss_db=offsets)),
        "per_place_exact_antennas": phys.with_truth(replace(phys.truth,
                                                            extra_loss_db=_filled(phys.truth.extra_loss_db, heard))),
        "public_model": public,
    }


def _thp(phys: PhysicalNetwork, period: RealPeriod, key: str, attrs: dict[str, Any], cell: int) -> float:
    moved = tuple(apply_cm_to_sector(s, attrs if s.cell_key == key else {}, strict=True) for s in period.public)
    return float(phys.evaluate(moved, period.hour, list(period.active)).result.kpi.values[TARGETS[0]][cell])


def run_mr_ceiling(cells_heard: int = 3, noise_db: float = 0.0, places_share: float = 1.0, pairs: int = 8,
                   days: int = 3, seed: int = 0, scenarios: tuple[str, ...] = SCENARIOS,
                   reports_per_cell: int = 0) -> dict[str, Any]:
    """Kendall tau of each variant against the truth, per scenario and over every pair. With
    ``reports_per_cell`` > 0 the ``per_place`` offsets are those the emulator's own located reports
    (that many per cell and hour) of the first half of the days show (``offsets_from_reports``), not
    a reference period's exact offsets with ``noise_db``; ``cells_heard`` is then the reports' own."""
    for field, value, ok, rule in (("cells_heard", cells_heard, cells_heard >= 1, "at least 1"),
                                   ("noise_db", noise_db, noise_db >= 0, "not negative"),
                                   ("places_share", places_share, 0 < places_share <= 1, "in (0, 1]"),
                                   ("pairs", pairs, pairs >= 1, "at least 1"), ("days", days, days >= 1, "at least 1"),
                                   ("reports_per_cell", reports_per_cell, reports_per_cell >= 0, "not negative")):
        if not ok:
            raise ValueError(f"{field}={value!r} must be {rule}")
    started = time.perf_counter()
    taus: dict[str, dict[str, list[float]]] = {}
    for name in scenarios:
        emu = NetworkEmulator(name, seed=seed, start=START, granularity_s=GP, mr_per_cell=reports_per_cell)
        collected: list[PeriodReports] = []
        periods = real_samples(emu, 24 * days, Band(), seed=seed, reports=collected).periods
        phys = emu.physics
        pick = np.random.default_rng([seed, 0x7A11])
        if reports_per_cell:
            topo = emu.scenario.topology
            offsets, heard = offsets_from_reports(phys, topo.lat0, topo.lon0, emu.cells,
                                                  collected[: len(periods) // 2])
        else:
            offsets, heard = reported_offsets(phys, periods[min(12, len(periods) - 1)], cells_heard, noise_db,
                                              places_share, np.random.default_rng([seed, 0x0FF5]))
        variants = _variants(phys, offsets, heard)
        held = periods[len(periods) // 2:]
        per = taus[name] = {v: [] for v in VARIANTS}
        for _ in range(pairs):
            period = held[int(pick.integers(0, len(held)))]
            cell = int(pick.integers(0, len(emu.cells)))
            key = emu.cells[cell]
            grid = [{"digitalTilt": round(10 * tilt), "configuredMaxTxPower": round(10 ** (power / 10))}
                    for tilt in RANK_TILTS_DEG for power in RANK_POWERS_DBM]
            truth = [_thp(phys, period, key, attrs, cell) for attrs in grid]
            for v, model in variants.items():
                per[v].append(_kendall(truth, [_thp(model, period, key, attrs, cell) for attrs in grid]))
    return {
        "benchmark": "mr_ceiling",
        "cells_heard": cells_heard, "noise_db": noise_db, "places_share": places_share, "seed": seed,
        "reports_per_cell": reports_per_cell,
        "pairs": pairs * len(scenarios), "candidates": len(RANK_TILTS_DEG) * len(RANK_POWERS_DBM),
        "kendall_tau": {v: round(float(np.mean([x for per in taus.values() for x in per[v]])), 3) for v in VARIANTS},
        "kendall_tau_by_scenario": {name: {v: round(float(np.mean(x)), 3) for v, x in per.items()}
                                    for name, per in taus.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }


def bench_mr_ceiling_command(
    cells_heard: Annotated[int, typer.Option(min=1, help="cells a located report hears (serving + neighbours)")] = 3,
    noise_db: Annotated[float, typer.Option(min=0.0, help="error of a place's offset (dB)")] = 0.0,
    places_share: Annotated[float, typer.Option(min=0.01, max=1.0, help="share of the UE points reported")] = 1.0,
    pairs: Annotated[int, typer.Option(min=1, help="(period, cell) pairs ranked per scenario")] = 8,
    days: Annotated[int, typer.Option(min=1, help="days of hourly periods; the second half is ranked")] = 3,
    seed: Annotated[int, typer.Option(help="hidden truth and draws")] = 0,
    scenario: Annotated[list[str] | None, typer.Option(help="shipped scenario (repeat); default: all three")] = None,
    reports: Annotated[int, typer.Option(min=0, help="offsets from the emulator's own located reports, this many "
                                         "per cell and hour over the first half of the days (0: a reference "
                                         "period's exact offsets with --noise-db)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Ranking of CM candidates by a twin calibrated per place from located reports (docs/sim2real.md)."""
    chosen = chosen_scenarios(scenario)
    doc = run_mr_ceiling(cells_heard, noise_db, places_share, pairs, days, seed, chosen, reports)
    typer.echo(json.dumps(doc) if as_json else json.dumps(doc, indent=2))
