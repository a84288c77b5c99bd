"""Time-series throughput, one JSON object: points built from predicted periods, encoded to line
protocol, written to the local SQLite store and through the InfluxDB writer to a real
VictoriaMetrics (both behind ``BufferedSink``, batches of 5000).

Run: ``.venv/bin/python -m tests.timeseries.bench_throughput`` (needs Debian's victoria-metrics).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from streams.influx import InfluxBackend, line
from tests.timeseries.victoria import Victoria
from twin.timeseries import BufferedSink, LocalStore, Point, period_points

KPIS = ["DRB.UEThpDl", "RRU.PrbTotDl", "RRC.ConnMean", "L1M.SS-RSRP.Mean", "MR.NRScSSSINR.Mean"]


def main(n_cells: int = 500, periods: int = 20, batch: int = 5000) -> dict[str, object]:
    cells = [f"nr:00101-{i:09x}" for i in range(n_cells)]
    base = int(time.time()) - 86_400
    t0 = time.perf_counter()
    pts: list[Point] = []
    for k in range(periods):
        values = {c: {q: 10.0 + k + i for i, q in enumerate(KPIS)} for c in cells}
        pts += period_points("c1", base + 900 * k, values, values, values)
    build_s = time.perf_counter() - t0
    n = len(pts)
    t0 = time.perf_counter()
    for p in pts:
        line(p)
    encode_s = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp(prefix="twin-ts-bench-"))
    sink = BufferedSink(LocalStore(tmp / "ts.sqlite"), buffer_points=n, batch_points=batch)
    t0 = time.perf_counter()
    sink.write(pts)
    assert sink.flush(600)
    local_s = time.perf_counter() - t0
    sink.close()
    vm = Victoria(tmp / "vm")
    vm.start()
    try:
        sink = BufferedSink(InfluxBackend(vm.url, "ran-twin", "ran-twin", None), buffer_points=n, batch_points=batch)
        t0 = time.perf_counter()
        sink.write(pts)
        assert sink.flush(600)
        influx_s = time.perf_counter() - t0
        sink.close()
        samples = sum(len(r["values"]) for r in vm.export('{__name__=~"twin_.*"}'))
    finally:
        vm.stop()
    return {"points": n, "cells": n_cells, "periods": periods, "batchPoints": batch,
            "buildPointsPerS": round(n / build_s), "encodePointsPerS": round(n / encode_s),
            "localSqlitePointsPerS": round(n / local_s), "influxToVictoriaPointsPerS": round(n / influx_s),
            "victoriaSamplesStored": samples}


if __name__ == "__main__":
    print(json.dumps(main()))
