"""Realism against the real Raca dataset: quantiles and Wasserstein distances within stated bounds.

Bounds (justification): the emulator is a 3.5 GHz NR macro layer, Raca an LTE network measured
by phones, so the check asks for the *same range*, not the same network: medians within 4 dB
(RSRP, RSRQ) and 5 dB (SINR, where Raca's LTE RS-SNR runs lower than an NR SS-SINR); p10 and
p90 within 10 dB; W1 within 6 dB (RSRP) / 4 dB (RSRQ, SINR); DL throughput: the share of idle
reports within 0.1 of Raca's and W1 on log10(1 + kbit/s) within 0.6 decades. The figures measured
are in docs/emulator.md (``python -m replay.emulator.realism``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from replay.emulator.realism import compare, emulator_values, markdown, raca_values

MEDIAN_DB = {"rsrp_dbm": 4.0, "rsrq_db": 4.0, "sinr_db": 5.0}
W1_MAX = {"rsrp_dbm": 6.0, "rsrq_db": 4.0, "sinr_db": 4.0, "dl_kbps": 0.6}


def test_emulator_in_the_range_of_raca(raca_dir: Path, tmp_path: Path) -> None:
    real = raca_values([raca_dir])
    assert real["rsrp_dbm"].size > 100_000
    for name in ("fault-midrun", "urban-hotspots"):
        emu = emulator_values(name, seed=0)
        rows = compare(emu, real)
        (tmp_path / f"{name}.md").write_text(markdown(rows, name))
        for r in rows:
            assert r.w1 <= W1_MAX[r.metric], (name, r)
            if r.metric in MEDIAN_DB:
                p10, p50, p90 = r.dq
                assert abs(p50) <= MEDIAN_DB[r.metric], (name, r)
                assert abs(p10) <= 10.0 and abs(p90) <= 10.0, (name, r)
        idle_e = float(np.mean(emu["dl_kbps"] == 0))
        idle_r = float(np.mean(real["dl_kbps"] == 0))
        assert abs(idle_e - idle_r) <= 0.1, (idle_e, idle_r)
