"""What the streaming DT-BSM estimator costs per period, on the emulated network (``docs/fidelity.md``).

``python -m replay.bench_fidelity_stream --periods 96 --json`` feeds ``--periods`` periods of an
emulator scenario (default ``fault-midrun``, one cluster of 21 cells, 15-min periods) through
``twin.Twin.ingest`` (prediction, gap learners, resync and the DT-BSM estimator, as a worker runs
them) and prints the seconds per period of each part and the cluster's DT-BSM records.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any

from replay.emulator import NetworkEmulator
from twin.config import TwinSettings

__all__ = ["main", "run"]

START = 1_700_000_100 - 1_700_000_100 % 86_400  # a midnight, UTC


def run(periods: int, scenario: str = "fault-midrun", whatifs: int | None = None, seed: int = 4) -> dict[str, Any]:
    from twin import Twin

    emu = NetworkEmulator(scenario, seed=seed, start=datetime.fromtimestamp(START, UTC), granularity_s=900,
                          mr_per_cell=1)
    model = emu.public_model()
    fidelity: dict[str, Any] = {} if whatifs is None else {"whatifs_per_period": whatifs}
    settings = TwinSettings(
        predict={k: model[k] for k in ("scenario", "n_ues", "demand_bps", "indoor_fraction", "seed")},
        topology={"clusters": [{"id": cid, "cells": cells} for cid, cells in emu.clusters.items()]},
        gap={"drift_warmup_periods": 40}, fidelity=fidelity)
    twin = Twin(config=settings)
    twin.ingest(emu.initial_records())
    t0 = time.perf_counter()
    for _ in range(periods):
        twin.ingest(emu.step())
    wall = time.perf_counter() - t0
    service = twin._service
    assert service is not None and service.fidelity is not None
    f, p = service.fidelity.stats, service.stats
    n = max(p.periods, 1)
    per_cluster = {cid: [{k: r[k] for k in ("periodEnd", "value", "lower", "upper", "coverage", "coverageUsed",
                                            "restricted", "actions", "computeSeconds")}
                         for r in twin.fidelity(cid)] for cid in twin.clusters}
    return {
        "scenario": scenario, "periods": p.periods, "clusters": len(twin.clusters),
        "cells": sum(len(c) for c in emu.clusters.values()), "wall_s": round(wall, 3),
        "predict_s_per_period": round(p.seconds / n, 4), "gap_s_per_period": round(p.gap_seconds / n, 4),
        "fidelity_step_s_per_period": round(f.step_seconds / n, 4),
        "whatifs_per_period": round(f.whatifs / n, 2), "whatif_s_per_period": round(f.whatif_seconds / n, 4),
        "computations": f.computations,
        "compute_s_per_computation": round(f.compute_seconds / max(f.computations, 1), 4),
        "trust": {cid: twin.trust(cid).reasons for cid in twin.clusters},
        "resyncs": {cid: [{k: r.get(k) for k in ("at", "status", "cells", "dtbsmBefore", "dtbsmAfter")}
                          | {"sources": r["trigger"]["sources"]} for r in twin.mirror(cid).resyncs]
                    for cid in twin.clusters},
        "dtbsm": per_cluster,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--periods", type=int, default=96)
    ap.add_argument("--scenario", default="fault-midrun")
    ap.add_argument("--whatifs", type=int, default=None, help="[fidelity] whatifs_per_period (default: settings)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = run(args.periods, args.scenario, args.whatifs)
    if args.json:
        print(json.dumps(out))
        return
    for k, v in out.items():
        if k not in ("dtbsm", "resyncs"):
            print(f"{k}: {v}")
    for cid, resyncs in out["resyncs"].items():
        for r in resyncs:
            print(cid, "resync", r)
    for cid, records in out["dtbsm"].items():
        for r in records:
            print(cid, r["periodEnd"], f"value={r['value']:.4f} lower={r['lower']:.4f} upper={r['upper']:.4f} "
                  f"coverage={r['coverage']:.3f} actions={','.join(r['actions'])}")


if __name__ == "__main__":
    main()
