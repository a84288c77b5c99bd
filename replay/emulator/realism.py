"""Realism check: the emulator's UE measurement distributions against the real Raca dataset.

Compares, per metric, the p10/p50/p90 quantiles and the 1-Wasserstein distance between the
emulator's MR events over a simulated day and the Raca rows (serving-cell RSRP, RSRQ, SNR and
DL bitrate as ``replay.readers.raca`` maps them). DL throughput spans five decades and is 0 in
almost half the rows (the app was idle), so its distance is computed on ``log10(1 + kbit/s)``;
the others in dB(m).

    python -m replay.emulator.realism PATH_TO_RACA [--scenario NAME ...] [--seed S]

prints the comparison as a Markdown table (the one in ``docs/emulator.md``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.stats import wasserstein_distance

from replay.emulator.emulator import NetworkEmulator
from replay.model import Item
from replay.readers.raca import read as read_raca
from twin.schemas import MrEvent

__all__ = [
    "METRICS", "QUANTILES", "Comparison", "compare", "emulator_values", "main", "markdown", "mr_values", "raca_values",
]

FloatArray = npt.NDArray[np.float64]
METRICS: tuple[tuple[str, str], ...] = (
    ("rsrp_dbm", "RSRP (dBm)"), ("rsrq_db", "RSRQ (dB)"), ("sinr_db", "SINR (dB)"), ("dl_kbps", "DL thp (kbit/s)"),
)
QUANTILES = (10, 50, 90)


def mr_values(events: Iterable[MrEvent]) -> dict[str, FloatArray]:
    """Serving RSRP/RSRQ/SINR and DL throughput of MR events: ``{metric: [n]}`` (missing skipped)."""
    cols: dict[str, list[float]] = {m: [] for m, _ in METRICS}
    for e in events:
        s = e.serving
        for name, v in (("rsrp_dbm", s.rsrp_dbm), ("rsrq_db", s.rsrq_db), ("sinr_db", s.sinr_db),
                        ("dl_kbps", e.ue.dl_throughput_kbps if e.ue else None)):
            if v is not None:
                cols[name].append(float(v))
    return {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}


def raca_values(sources: Sequence[Path]) -> dict[str, FloatArray]:
    """The same metrics from every Raca row the reader accepts."""
    return mr_values(
        o.record for outcomes in read_raca(sources) for o in outcomes
        if isinstance(o, Item) and isinstance(o.record, MrEvent)
    )


def emulator_values(scenario: str, seed: int = 0, hours: int = 24, mr_per_cell: int = 10) -> dict[str, FloatArray]:
    """MR metrics of ``hours`` hourly periods of ``scenario`` (a simulated day by default)."""
    emu = NetworkEmulator(scenario, seed=seed, start=datetime(2024, 3, 1, tzinfo=UTC), granularity_s=3600,
                          mr_per_cell=mr_per_cell)
    events: list[MrEvent] = []
    for _ in range(hours):
        events += emu.step_detail().mr
    return mr_values(events)


@dataclass(frozen=True)
class Comparison:
    """One metric: quantiles of both, their difference, and the Wasserstein distance ``w1``
    (dB, or decades of ``1 + kbit/s`` for throughput)."""

    metric: str
    label: str
    emulator: tuple[float, ...]
    real: tuple[float, ...]
    w1: float
    n_emulator: int
    n_real: int

    @property
    def dq(self) -> tuple[float, ...]:
        return tuple(e - r for e, r in zip(self.emulator, self.real, strict=True))


def compare(emu: dict[str, FloatArray], real: dict[str, FloatArray]) -> list[Comparison]:
    out = []
    for metric, label in METRICS:
        a, b = emu[metric], real[metric]
        if metric == "dl_kbps":
            w = wasserstein_distance(np.log10(1.0 + a), np.log10(1.0 + b))
        else:
            w = wasserstein_distance(a, b)
        out.append(Comparison(metric, label, tuple(float(np.percentile(a, q)) for q in QUANTILES),
                              tuple(float(np.percentile(b, q)) for q in QUANTILES), float(w), a.size, b.size))
    return out


def markdown(rows: Sequence[Comparison], title: str) -> str:
    """A Markdown table of ``rows``."""
    lines = [f"**{title}**", "",
             "| metric | emulator p10 / p50 / p90 | Raca p10 / p50 / p90 | W1 | n emulator | n Raca |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        fmt = "{:.0f}" if r.metric == "dl_kbps" else "{:.1f}"
        e = " / ".join(fmt.format(v) for v in r.emulator)
        q = " / ".join(fmt.format(v) for v in r.real)
        unit = " (log10 1+kbit/s)" if r.metric == "dl_kbps" else " dB"
        lines.append(f"| {r.label} | {e} | {q} | {r.w1:.2f}{unit} | {r.n_emulator} | {r.n_real} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("raca", type=Path, help="the Raca zip or a folder of its CSVs")
    ap.add_argument("--scenario", action="append", help="scenario name (repeatable; default all shipped)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from replay.emulator.scenario import list_scenarios

    real = raca_values([args.raca])
    for name in args.scenario or list_scenarios():
        print(markdown(compare(emulator_values(name, args.seed), real), f"{name} (seed {args.seed}, 24 h)"))
        print()


if __name__ == "__main__":
    main()
