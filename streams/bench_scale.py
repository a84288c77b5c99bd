"""``twin bench scale``: the worker and its state store at 10,000 cells.

One run, one JSON object. What runs (``docs/benchmarks.md``, "State store and scale"):

1. **ingest**: the same stream, PM records of the emulator's size (its 57 cells' counter sets, with
   the distribution bins: 50-100 values, about 3.3 kB a record) and MR events, through the worker's
   two stages in this process (one process: the clock is the ingest benchmark's, first event
   consumed to last event applied, checkpoints included), once over 57 cells and once over
   ``--cells``, each time into a mirror that already knows the cells (a first run of the worker
   took their CM and a first PM period, and checkpointed them; the measured run restores that
   state when its partitions are assigned, before its clock starts): ``ingest_ratio_vs_57`` is the
   second rate over the first.
2. **kill -9**: a ``twin run`` worker process opens the ``--cells`` state, takes new telemetry of
   1 % of the cells and is killed with SIGKILL while it checkpoints it; a fresh process then opens
   the store and loads every partition, as a worker does when it is assigned them: ``restore_s`` is
   from that process's start (interpreter and imports included) to its state loaded.
3. **checkpoints**: the state loaded here, rounds in which 1 % of the cells (and rounds in which all
   of them) get a new PM period, MR events and a prediction; each checkpoint is timed as the mirror
   stage takes it: retention and the changes taken synchronously, then written in one durable
   transaction (``checkpoint_ms``: both; ``checkpoint_sync_ms``: the part on the event loop).
4. **memory per cell**, by part, measured over a sample of cells (each object counted once).

``--compare-stores`` instead compares the embedded stores the checkpoint store could use
(SQLite in WAL mode, LMDB, RocksDB) on the same incremental write and full read.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
import typer

from streams.bench import _FinishLine
from streams.broker import EmbeddedBroker
from streams.kafka_io import KafkaSink
from streams.live import PERCENTILE_METHOD, percentile
from streams.mirror_stage import SEAL_IDS_PER_CHECKPOINT
from streams.process import spawn_twin
from streams.stats import read_stats_file
from streams.worker import STAGES, IngestWorker
from twin import topics
from twin.cells import nr_cell_key
from twin.config import load_settings
from twin.mirror.cell import CellMirror
from twin.mirror.dedup import Bloom, SealedIds, fingerprints
from twin.mirror.mr_stats import SealBudget
from twin.mirror.store import CheckpointStore, PartitionState, take_changes
from twin.ports import OutRecord

__all__ = ["bench_scale_command", "compare_stores", "run_scale_benchmark"]

START = datetime(2026, 3, 1, tzinfo=UTC)
GP = 900
CLUSTER_CELLS = 30
PARTITIONS = 12
KPIS = ("DRB.UEThpDl", "RRU.PrbTotDl", "RRC.ConnMean", "CARR.MeanTxPwr", "PEE.AvgPower", "MR.NRScSSSINR.Mean")


# -- the synthetic network -------------------------------------------------------------------------
def _pm_templates() -> list[dict[str, float]]:
    """The PM values of the emulator's 57 cells for one period (its counter sets, with the bins)."""
    from replay.emulator import NetworkEmulator

    step = NetworkEmulator("urban-hotspots", seed=3, granularity_s=GP, mr_per_cell=0).step_detail()
    return [dict(r.values) for r in step.pm]


class Network:
    """``cells`` cells in clusters of 30: their CM, PM of the emulator's size and MR, as records."""

    def __init__(self, cells: int, seed: int = 11) -> None:
        self.keys = [nr_cell_key("00101", 1 + i // 3, 24, 1 + i % 3) for i in range(cells)]
        self.templates = _pm_templates()
        self.rng = random.Random(seed)

    def clusters(self) -> list[tuple[str, list[str]]]:
        return [(f"c{i // CLUSTER_CELLS:04d}", self.keys[i:i + CLUSTER_CELLS])
                for i in range(0, len(self.keys), CLUSTER_CELLS)]

    @staticmethod
    def dn(key: str) -> str:
        return f"SubNetwork=Scale,ManagedElement=gnb-{key[-9:-1]},GNBDUFunction=1,NRCellDU={key[-1]}"

    def cm(self) -> Iterator[OutRecord]:
        at = START.isoformat().replace("+00:00", "Z")
        for i, key in enumerate(self.keys):
            doc = {"schemaVersion": "1", "dn": self.dn(key), "class": "NRCellDU", "cellKey": key,
                   "attributes": {"nRPCI": i % 1008, "bSChannelBwDL": 100, "administrativeState": "UNLOCKED"},
                   "observedAt": at, "sourceSystem": "bench"}
            yield OutRecord(topics.CM_SNAPSHOT, self.dn(key).encode(), orjson.dumps(doc))

    def pm_values(self, i: int) -> dict[str, float]:
        factor = 0.8 + 0.4 * self.rng.random()
        return {n: v * factor for n, v in self.templates[i % len(self.templates)].items()}

    def pm(self, i: int, period: int) -> OutRecord:
        key = self.keys[i]
        end = (START + timedelta(seconds=GP * (period + 1))).isoformat().replace("+00:00", "Z")
        doc = {"schemaVersion": "1", "cellKey": key, "measObjDn": self.dn(key), "measObjClass": "NRCellDU",
               "periodEnd": end, "granularityPeriodS": GP, "suspect": False,
               "source": {"format": "bench", "vendor": "ran-twin"}, "values": self.pm_values(i)}
        return OutRecord(topics.PM_CELL, key.encode(), orjson.dumps(doc))

    def mr(self, i: int, t: float, n: int) -> OutRecord:
        key = self.keys[i]
        rng = self.rng
        rsrp = round(max(-156.0, min(-31.0, rng.gauss(-95, 10))), 1)
        doc = {"schemaVersion": "1", "eventId": f"00000000-0000-4000-8000-{n:012d}",
               "eventTime": datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z"),
               "cellKey": key, "ueRef": f"ue-{rng.randrange(500)}", "source": "RRC_MEAS_REPORT",
               "serving": {"pci": i % 1008, "rsrpDbm": rsrp, "rsrqDb": round(rng.uniform(-18, -6), 1),
                           "sinrDb": round(max(-23.0, min(40.0, rng.gauss(10, 7))), 1)},
               "neighbours": [{"pci": (i + 1) % 1008, "rsrpDbm": round(max(-156.0, rsrp - rng.uniform(3, 15)), 1)}],
               "ue": {"dlThroughputKbps": round(rng.uniform(500, 150000), 0), "cqi": rng.randint(1, 15)}}
        return OutRecord(topics.MR_UE, key.encode(), orjson.dumps(doc))

    def stream(self, pm_records: int, mr_events: int, first_period: int = 1) -> Iterator[OutRecord]:
        """``pm_records`` PM records, cell after cell and period after period from ``first_period``
        on, with ``mr_events`` MR events spread over the same periods and cells (the same stream
        whatever the cell count)."""
        cells = len(self.keys)
        periods = -(-pm_records // cells)
        mr_per_period = mr_events // periods
        n = 0
        for k in range(periods):
            period = first_period + k
            base = (START + timedelta(seconds=GP * period)).timestamp()
            for j in range(mr_per_period if k < periods - 1 else mr_events - n):
                yield self.mr(self.rng.randrange(cells), base + GP * j / mr_per_period, n)
                n += 1
            for i in range(min(cells, pm_records - k * cells)):
                yield self.pm(i, period)

    def warm_up(self) -> Iterator[OutRecord]:
        """The network's CM and a first PM period: a mirror that knows every cell."""
        yield from self.cm()
        for i in range(len(self.keys)):
            yield self.pm(i, 0)


# -- 1. ingest -------------------------------------------------------------------------------------
def _config(state_dir: Path, group: str, net: Network) -> Path:
    def q(v: Any) -> str:
        return orjson.dumps(v).decode()

    state_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"state_dir = {q(str(state_dir))}", "checkpoint_interval_s = 1.0", 'log_level = "WARNING"', "",
             "[kafka]", f"group_id = {q(group)}", f"partitions = {PARTITIONS}", "",
             "[predict]", "enabled = false", ""]
    for cid, cells in net.clusters():
        lines += ["[[topology.clusters]]", f"id = {q(cid)}", f"cells = {q(cells)}", ""]
    path = state_dir / f"{group}.toml"
    path.write_text("\n".join(lines))
    return path


async def _publish(bootstrap: str, records: Iterator[OutRecord]) -> int:
    sink = KafkaSink(bootstrap, ensure=(*topics.INGEST_TOPICS, topics.DLQ), partitions=PARTITIONS)
    await sink.start()
    n = 0
    batch: list[OutRecord] = []
    for rec in records:
        batch.append(rec)
        if len(batch) >= 5000:
            await sink.send_many(batch)
            n += len(batch)
            batch = []
    await sink.send_many(batch)
    await sink.stop()
    return n + len(batch)


async def _ingest(bootstrap: str, config: Path, total: int) -> dict[str, Any]:
    """The worker's two stages in this process until ``total`` records are applied (as the ingest
    benchmark's one-process worker); the rate over first consumed to last applied."""
    settings = load_settings(config)
    worker = IngestWorker(settings, bootstrap, "bench-scale", stages=STAGES)
    worker.stats.__class__ = _FinishLine
    finish = worker.stats
    assert isinstance(finish, _FinishLine)
    finish.target = total
    stop = asyncio.Event()
    await worker.start()
    loops = asyncio.ensure_future(worker.run_loops(stop))
    deadline = time.monotonic() + 900
    while finish.reached_at is None:
        if loops.done():
            loops.result()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker applied {finish.records_applied} of {total} records in 900 s")
        await asyncio.sleep(0.002)
    stop.set()
    await loops
    await worker.close()
    if finish.dead_lettered.total():
        raise RuntimeError(f"{finish.dead_lettered.total()} benchmark records were dead-lettered")
    assert finish.first_consumed_at is not None
    seconds = finish.reached_at - finish.first_consumed_at
    return {"records": total, "seconds": round(seconds, 3), "records_per_s": round(total / seconds),
            "checkpoints": finish.checkpoints}


# -- 2. kill -9 and restore ------------------------------------------------------------------------
def _restore_main(directory: str) -> None:
    """``python -m streams.bench_scale restore DIR``: load every partition as an assigned worker does."""
    started = time.time()
    store = CheckpointStore(Path(directory))
    states = [store.load(p) for p in range(PARTITIONS)]
    loaded = time.time()
    cells = sum(len(c.cells) for s in states for c in s.clusters.values())
    print(json.dumps({"loaded_at": loaded, "load_s": round(loaded - started, 3), "cells": cells,
                      "mr_reports": sum(cell.mr.count for s in states for c in s.clusters.values()
                                        for cell in c.cells.values())}))


def _kill_and_restore(bootstrap: str, config: Path, directory: Path, net: Network, work: Path) -> dict[str, Any]:
    stats = work / "holder.json"
    holder = spawn_twin(["run", "--config", str(config), "--bootstrap", bootstrap, "--processes", "1",
                         "--name", "holder", "--stats-file", str(stats)], log_file=work / "holder.log")
    try:
        deadline = time.monotonic() + 180
        while len(read_stats_file(stats).get("mirrorPartitions", [])) < PARTITIONS:
            if holder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the holding worker did not take every partition (see {work / 'holder.log'})")
            time.sleep(0.05)
        changed = random.Random(5).sample(range(len(net.keys)), max(1, len(net.keys) // 100))
        t = (START + timedelta(hours=3)).timestamp()
        batch = [net.pm(i, 12) for i in changed] + [net.mr(i, t + k, 10**9 + 10 * i + k)
                                                    for i in changed for k in range(10)]
        before = read_stats_file(stats).get("checkpoints", 0)
        asyncio.run(_publish(bootstrap, iter(batch)))
        while read_stats_file(stats).get("checkpoints", 0) <= before:  # it is checkpointing the batch
            if holder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the holding worker did not checkpoint the new telemetry")
            time.sleep(0.01)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
    started = time.time()
    done = subprocess.run([sys.executable, "-m", "streams.bench_scale", "restore", str(directory)],
                          capture_output=True, text=True, check=True, timeout=300)
    out = json.loads(done.stdout)
    if out["cells"] != len(net.keys):
        raise RuntimeError(f"restored {out['cells']} cells of {len(net.keys)}")
    return {"restore_s": round(out["loaded_at"] - started, 3), "restore_load_s": out["load_s"],
            "restore_cells": out["cells"]}


# -- 3. checkpoints --------------------------------------------------------------------------------
def _mr_body(i: int, t: float, n: int) -> list[Any]:
    return [f"bench-{i}-{n}", t, 40 + n % 50, 60, 50, [["pci:1:2", -100.5]], 5000.0, 9]


def _checkpoint(store: CheckpointStore, states: list[PartitionState], dirty: set[int]) -> tuple[float, float, int]:
    """As ``MirrorStage.checkpoint_in_background``: retention and changes here, then the write."""
    started = time.perf_counter()
    seal = SealBudget(SEAL_IDS_PER_CHECKPOINT)
    meta = {"worker": "bench", "savedAt": time.time()}
    changes = []
    for state in states:
        if state.partition in dirty:
            for cluster in state.clusters.values():
                cluster.prune(7 * 86400, 72 * 3600, seal)
            changes.append(take_changes(state, meta))
    taken = time.perf_counter()
    store.write(*changes)
    done = time.perf_counter()
    return (done - started) * 1e3, (taken - started) * 1e3, store.last_write.bytes


def _checkpoint_rounds(directory: Path, net: Network, rounds_1pct: int, rounds_all: int) -> dict[str, Any]:
    store = CheckpointStore(directory)
    started = time.perf_counter()
    states = [store.load(p) for p in range(PARTITIONS)]
    load_s = time.perf_counter() - started
    where = {key: (s, c) for s in states for c in s.clusters.values() for key in c.cells}
    keys = net.keys
    rng = random.Random(7)
    period = 100

    def change(indexes: list[int], mr: int) -> set[int]:
        end = int((START + timedelta(seconds=GP * period)).timestamp())
        dirty = set()
        for i in indexes:
            state, cluster = where[keys[i]]
            pm: Any = ("pm", keys[i], {"gp": GP, "t": float(end), "v": net.pm_values(i), "s": False})
            cluster.apply(pm)
            for n in range(mr):
                cluster.apply(("mr", keys[i], _mr_body(i, end - GP + n, period * 1000 + n)))  # type: ignore[arg-type]
            cluster.cell(keys[i]).set_predicted(GP, end, {k: rng.random() * 100 for k in KPIS})
            cluster.pending.pop(GP, None)
            cluster.predicted_through[GP] = end
            dirty.add(state.partition)
        return dirty

    # cells outside the topology, held (100 of them, 20 PM records each), for the memory figures
    for h in range(100):
        key = nr_cell_key("00102", 1 + h // 3, 24, 1 + h % 3)
        held: list[Any] = [("pm", key, {"gp": GP, "t": float(GP * k), "v": net.pm_values(h), "s": False})
                           for k in range(20)]
        states[h % PARTITIONS].unassigned.add(key, held)
    samples: dict[str, list[float]] = {"all": [], "all_sync": [], "1pct": [], "1pct_sync": []}
    written: dict[str, list[int]] = {"all": [], "1pct": []}
    everything = list(range(len(keys)))
    for _ in range(rounds_all):
        period += 1
        total, sync, size = _checkpoint(store, states, change(everything, 2))
        samples["all"].append(total)
        samples["all_sync"].append(sync)
        written["all"].append(size)
    for _ in range(rounds_1pct):
        period += 1
        total, sync, size = _checkpoint(store, states, change(rng.sample(everything, max(1, len(keys) // 100)), 10))
        samples["1pct"].append(total)
        samples["1pct_sync"].append(sync)
        written["1pct"].append(size)
    memory = _memory(states, net, rng)
    store.close()

    def pct(name: str, q: float) -> float | None:
        value = percentile(samples[name], q)
        return None if value is None else round(value, 1)

    return {
        "checkpoint_p50_ms_1pct": pct("1pct", 50), "checkpoint_p99_ms_1pct": pct("1pct", 99),
        "checkpoint_sync_p99_ms_1pct": pct("1pct_sync", 99),
        "checkpoint_p50_ms_100pct": pct("all", 50), "checkpoint_p99_ms_100pct": pct("all", 99),
        "checkpoint_sync_p99_ms_100pct": pct("all_sync", 99),
        "checkpoint_bytes_1pct": round(statistics.median(written["1pct"])) if written["1pct"] else None,
        "checkpoint_bytes_100pct": round(statistics.median(written["all"])) if written["all"] else None,
        "checkpoint_rounds": {"1pct": rounds_1pct, "100pct": rounds_all},
        "restore_in_process_s": round(load_s, 3),
        **memory,
    }


# -- 4. memory -------------------------------------------------------------------------------------
def _size(root: Any, seen: set[int]) -> int:
    """Bytes of ``root`` and everything it holds that ``seen`` does not have yet (``sys.getsizeof``)."""
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        elif isinstance(obj, SealedIds):
            stack.extend(obj.filters)
        elif isinstance(obj, Bloom):
            stack.append(obj.bits)
    return total


def _memory(states: list[PartitionState], net: Network, rng: random.Random, sample: int = 1000) -> dict[str, Any]:
    cells: list[CellMirror] = [c for s in states for cl in s.clusters.values() for c in cl.cells.values()]
    picked = rng.sample(cells, min(sample, len(cells)))
    seen: set[int] = set()
    parts = {"pm": 0, "predictions": 0, "mr": 0, "dedup": 0, "cm": 0, "cell": 0}
    for cell in picked:
        parts["pm"] += _size(cell.pm, seen) + _size(cell.periods, seen) + _size(cell.relations, seen)
        parts["predictions"] += _size(cell.predicted, seen)
        mr = cell.mr
        parts["dedup"] += _size(mr.seen, seen) + _size(mr.sealed, seen) + _size(mr.saved, seen)
        aggregate = (mr.rsrp, mr.rsrq, mr.sinr, mr.cqi, mr.neighbours)
        parts["mr"] += sum(_size(x, seen) for x in aggregate) + sys.getsizeof(mr)
        parts["cm"] += _size(cell.cm, seen) + _size(cell.cm_before, seen) + _size(cell.unknown, seen)
        parts["cell"] += sys.getsizeof(cell) + _size(cell.cell_key, seen) + _size(cell.changes, seen)
    per_cell = {k: round(v / len(picked)) for k, v in parts.items()}
    held = sum(_size(h.to_dict(), set()) for s in states for h in s.unassigned)
    per_cell["holding"] = round(held / len(cells))
    periods = statistics.median(len(c.periods.get(GP, {})) for c in picked)
    ids = statistics.median(sum(mr.ids_seen().values()) for mr in (c.mr for c in picked))
    return {
        "memory_per_cell_bytes": sum(per_cell.values()),
        "memory_per_cell_breakdown": per_cell,
        "memory_sampled_cells": len(picked),
        "pm_periods_per_cell": periods,
        "pm_bytes_per_cell_period": round(per_cell["pm"] / max(periods, 1)),
        "mr_ids_per_cell": ids,
    }


def _dedup_rate(trials: int = 1_000_000) -> dict[str, Any]:
    """The false-duplicate rate of a sealed hour filled to its capacity, measured."""
    from twin.mirror.dedup import FALSE_DUPLICATE_RATE, P_SEAL

    bloom = Bloom.sized(10_000, P_SEAL)
    for i in range(10_000):
        bloom.add(f"in-{i}")
    found = 0
    for start in range(0, trials, 200_000):
        chunk = range(start, min(trials, start + 200_000))
        found += int(bloom.contains_many(fingerprints(f"out-{i}" for i in chunk)).sum())
    return {"dedup_false_duplicates": found, "dedup_trials": trials, "dedup_bound": FALSE_DUPLICATE_RATE,
            "dedup_bytes_per_sealed_id": round(Bloom.of([f"x{i}" for i in range(10_000)], P_SEAL).nbytes() / 10_000, 2)}


# -- the whole run ---------------------------------------------------------------------------------
def run_scale_benchmark(cells: int = 10_000, pm_records: int | None = None, mr_events: int = 400_000,
                        rounds_1pct: int = 200, rounds_all: int = 5, base_cells: int = 57,
                        dedup_trials: int = 4_000_000, ingest_rounds: int = 3) -> dict[str, Any]:
    pm_records = pm_records or 2 * cells
    out: dict[str, Any] = {"benchmark": "scale", "cells": cells, "base_cells": base_cells, "partitions": PARTITIONS,
                           "cluster_cells": CLUSTER_CELLS, "pm_records": pm_records, "mr_events": mr_events,
                           "ingest_rounds": ingest_rounds}
    # one broker per network: each worker reads only its own network's telemetry
    with EmbeddedBroker() as small, EmbeddedBroker() as broker, tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        bootstrap = broker.bootstrap_servers
        brokers = {base_cells: small.bootstrap_servers, cells: bootstrap}
        samples: dict[int, list[dict[str, Any]]] = {base_cells: [], cells: []}
        networks = {n: Network(n) for n in (base_cells, cells)}
        configs = {n: _config(Path(tmp) / "state", f"scale-{n}", net) for n, net in networks.items()}
        for n, net in networks.items():  # the cells known to the mirror before the clock
            asyncio.run(_ingest(brokers[n], configs[n], asyncio.run(_publish(brokers[n], net.warm_up()))))
        for round_ in range(ingest_rounds):  # interleaved, so a busy minute hits both
            for n in (base_cells, cells) if round_ % 2 == 0 else (cells, base_cells):
                net = networks[n]
                first = 1 + round_ * -(-pm_records // n)
                total = asyncio.run(_publish(brokers[n], net.stream(pm_records, mr_events, first)))
                samples[n].append(asyncio.run(_ingest(brokers[n], configs[n], total)))
        rates = {n: statistics.median(r["records_per_s"] for r in rs) for n, rs in samples.items()}
        big = networks[cells]
        out["pm_record_bytes"] = round(statistics.mean(len(big.pm(i, 0).value) for i in range(len(big.templates))))
        out["ingest_samples"] = {str(n): rs for n, rs in samples.items()}
        out["ingest_records_per_s_57"] = round(rates[base_cells])
        out["ingest_records_per_s"] = round(rates[cells])
        out["ingest_ratio_vs_57"] = round(rates[cells] / rates[base_cells], 3)
        directory = Path(tmp) / "state" / f"scale-{cells}"
        out.update(_kill_and_restore(bootstrap, configs[cells], directory, networks[cells], Path(tmp)))
        out.update(_checkpoint_rounds(directory, networks[cells], rounds_1pct, rounds_all))
        out["state_bytes_on_disk"] = sum(f.stat().st_size for f in directory.iterdir() if f.is_file())
    out.update(_dedup_rate(dedup_trials))
    out["percentile_method"] = PERCENTILE_METHOD
    out["cpu_count"] = os.cpu_count()
    return out


# -- the store comparison --------------------------------------------------------------------------
def _value(rng: random.Random, n: int) -> bytes:
    return orjson.dumps({f"L1M.SS-RSRP.Bin{i}": round(rng.random() * 1000, 1) for i in range(n)})


def _dataset(cells: int, periods: int, rng: random.Random) -> dict[int, list[tuple[bytes, bytes]]]:
    """Per partition, the keys of ``cells`` cells as the checkpoint store lays them out: CM, MR
    aggregate, ``periods`` PM periods and predictions (value sizes as measured on the mirror)."""
    parts: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(PARTITIONS)}
    for c in range(cells):
        cell = b"k\x1fc%04d\x1fnr:00101-%09d\x1f" % (c // CLUSTER_CELLS, c)
        kv = parts[c % PARTITIONS]
        kv.append((cell + b"h", _value(rng, 12)))
        kv.append((cell + b"m", _value(rng, 60)))
        for e in range(periods):
            kv.append((cell + b"p\x1f900\x1f%d" % (1000 + e), _value(rng, 91)))
            kv.append((cell + b"x\x1f900\x1f%d" % (1000 + e), _value(rng, 6)))
    return parts


Batch = list[tuple[int, list[tuple[bytes, bytes | None]]]]


def _changes(cells: int, dirty: int, round_: int, rng: random.Random) -> Batch:
    """``dirty`` cells' checkpoint: a new PM period and prediction, the MR aggregate, new event ids,
    and the oldest period deleted (retention)."""
    by_part: dict[int, list[tuple[bytes, bytes | None]]] = {}
    for c in rng.sample(range(cells), dirty):
        cell = b"k\x1fc%04d\x1fnr:00101-%09d\x1f" % (c // CLUSTER_CELLS, c)
        ops = by_part.setdefault(c % PARTITIONS, [])
        ops += [(cell + b"m", _value(rng, 60)), (cell + b"p\x1f900\x1f%d" % (2000 + round_), _value(rng, 91)),
                (cell + b"x\x1f900\x1f%d" % (2000 + round_), _value(rng, 6)),
                (cell + b"d\x1f%d\x1f%d" % (round_, round_), _value(rng, 4)), (cell + b"p\x1f900\x1f1000", None)]
    return sorted(by_part.items())


class _Sqlite:
    name = "sqlite-wal"

    def __init__(self, d: Path) -> None:
        self.path = d / "state.sqlite"
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE kv (p INTEGER, k BLOB, v BLOB, UNIQUE (p, k))")
        self.db.execute("CREATE TABLE partitions (p INTEGER PRIMARY KEY, next_offset INTEGER, meta BLOB)")

    def write(self, batch: Batch, offset: int) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        for p, ops in batch:
            db.executemany("DELETE FROM kv WHERE p = ? AND k = ?", [(p, k) for k, v in ops if v is None])
            db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", [(p, k, v) for k, v in ops if v is not None])
            db.execute("INSERT OR REPLACE INTO partitions VALUES (?, ?, ?)", (p, offset, b"{}"))
        db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    def read(self) -> Iterator[tuple[bytes, bytes]]:
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
        try:
            for p in range(PARTITIONS):
                db.execute("BEGIN")
                yield from db.execute("SELECT k, v FROM kv WHERE p = ?", (p,))
                db.execute("COMMIT")
        finally:
            db.close()


class _Lmdb:
    name = "lmdb"

    def __init__(self, d: Path) -> None:
        import lmdb

        self.path = d / "lmdb"
        self.env = lmdb.open(str(self.path), map_size=64 << 30, max_dbs=2, sync=True)
        self.kv = self.env.open_db(b"kv")
        self.offsets = self.env.open_db(b"partitions")

    def write(self, batch: Batch, offset: int) -> None:
        with self.env.begin(write=True) as txn:
            for p, ops in batch:
                pre = p.to_bytes(4, "big")
                for k, v in ops:
                    if v is None:
                        txn.delete(pre + k, db=self.kv)
                    else:
                        txn.put(pre + k, v, db=self.kv)
                txn.put(pre, b"%d" % offset, db=self.offsets)

    def close(self) -> None:
        self.env.close()

    def read(self) -> Iterator[tuple[bytes, bytes]]:
        import lmdb

        env = lmdb.open(str(self.path), readonly=True, max_dbs=2, lock=True)
        try:
            kv = env.open_db(b"kv", create=False)
            for p in range(PARTITIONS):
                pre = p.to_bytes(4, "big")
                with env.begin(db=kv) as txn:
                    cursor = txn.cursor()
                    if cursor.set_range(pre):
                        for k, v in cursor:
                            if not k.startswith(pre):
                                break
                            yield k, v
        finally:
            env.close()


class _Rocks:
    name = "rocksdb"

    def __init__(self, d: Path) -> None:
        from rocksdict import Options, Rdict, WriteOptions

        self.path = d / "rocks"
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        self.db = Rdict(str(self.path), options)
        self.sync = WriteOptions()
        self.sync.sync = True

    def write(self, batch: Batch, offset: int) -> None:
        from rocksdict import WriteBatch

        wb = WriteBatch(raw_mode=True)
        for p, ops in batch:
            pre = p.to_bytes(4, "big")
            for k, v in ops:
                if v is None:
                    wb.delete(pre + k)
                else:
                    wb.put(pre + k, v)
            wb.put(b"partition" + pre, b"%d" % offset)
        self.db.write(wb, self.sync)

    def close(self) -> None:
        self.db.close()

    def read(self) -> Iterator[tuple[bytes, bytes]]:
        from rocksdict import AccessType, Options, Rdict

        db = Rdict(str(self.path), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            for p in range(PARTITIONS):
                pre = p.to_bytes(4, "big")
                for k, v in db.items(from_key=pre):
                    if not bytes(k).startswith(pre):  # type: ignore[arg-type]
                        break
                    yield bytes(k), bytes(v)  # type: ignore[arg-type]
        finally:
            db.close()


def _compare_one(kind: type[_Sqlite | _Lmdb | _Rocks], cells: int, dirty: int, rounds: int,
                 periods: int) -> dict[str, Any]:
    rng = random.Random(1)
    data = _dataset(cells, periods, rng)
    directory = Path(tempfile.mkdtemp(prefix="twin-kv-"))
    try:
        store = kind(directory)
        started = time.perf_counter()
        for p, kv in data.items():
            store.write([(p, list(kv))], 0)
        bulk = time.perf_counter() - started
        del data
        writes = []
        rng = random.Random(2)
        for r in range(rounds):
            batch = _changes(cells, dirty, r, rng)
            started = time.perf_counter()
            store.write(batch, r)
            writes.append((time.perf_counter() - started) * 1e3)
        store.close()
        reads, decoded = [], []
        for _ in range(3):  # after the writer closed, as after a crash: a fresh open, the whole store
            started = time.perf_counter()
            n = size = 0
            for _k, v in store.read():
                n += 1
                size += len(v)
            reads.append(time.perf_counter() - started)
        started = time.perf_counter()
        for _k, v in store.read():
            orjson.loads(v)
        decoded.append(time.perf_counter() - started)
        disk = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return {"store": kind.name, "write_ms_p50": round(float(np.percentile(writes, 50, method=PERCENTILE_METHOD)), 2),
            "write_ms_p99": round(float(np.percentile(writes, 99, method=PERCENTILE_METHOD)), 2),
            "read_all_s": round(min(reads), 3), "read_all_decoded_s": round(min(decoded), 3), "keys": n,
            "value_mb": round(size / 1e6, 1), "disk_mb": round(disk / 1e6, 1), "bulk_load_s": round(bulk, 2)}


def compare_stores(cells: int = 10_000, dirty: int = 100, rounds: int = 50, periods: int = 4) -> dict[str, Any]:
    """The same checkpoint in each candidate store: ``dirty`` cells' changes and the offsets in one
    durable transaction (``rounds`` times), and a full read of ``cells`` cells after the writer closed."""
    results = []
    for kind in (_Sqlite, _Lmdb, _Rocks):
        try:
            results.append(_compare_one(kind, cells, dirty, rounds, periods))
        except ImportError as exc:  # lmdb and rocksdict come with the [bench] extra
            results.append({"store": kind.name, "error": f"not installed: {exc}"})
    return {"benchmark": "scale-stores", "cells": cells, "dirty_cells": dirty, "rounds": rounds,
            "periods_per_cell": periods, "partitions": PARTITIONS, "percentile_method": PERCENTILE_METHOD,
            "stores": results}


def bench_scale_command(
    cells: Annotated[int, typer.Option(min=100, help="cells of the large network")] = 10_000,
    pm_records: Annotated[int | None, typer.Option(help="PM records in the ingest stream (default: 2 x --cells)")
                          ] = None,
    mr_events: Annotated[int, typer.Option(min=100, help="MR events in the ingest stream")] = 400_000,
    ingest_rounds: Annotated[int, typer.Option(min=1, help="interleaved ingest rounds; medians reported")] = 3,
    rounds_1pct: Annotated[int, typer.Option(min=1, help="checkpoints with 1 % of the cells changed")] = 200,
    rounds_all: Annotated[int, typer.Option(min=1, help="checkpoints with every cell changed")] = 5,
    dedup_trials: Annotated[int, typer.Option(min=200_000, help="new event ids checked against a full filter")
                            ] = 4_000_000,
    compare: Annotated[bool, typer.Option("--compare-stores", help="compare SQLite, LMDB and RocksDB instead")] = False,
    as_json: Annotated[bool, typer.Option("--json/--no-json", help="one line; --no-json: indented")] = True,
) -> None:
    """The state store at scale: checkpoint latency (1 % and all cells changed), restore after kill -9,
    memory per cell, ingest rate at --cells against 57 cells."""
    from twin.logs import configure

    configure("WARNING")
    if compare:
        result = compare_stores(cells, max(1, cells // 100), rounds_1pct)
    else:
        result = run_scale_benchmark(cells, pm_records, mr_events, rounds_1pct, rounds_all, dedup_trials=dedup_trials,
                                     ingest_rounds=ingest_rounds)
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


if __name__ == "__main__":
    if sys.argv[1:2] == ["restore"]:
        _restore_main(sys.argv[2])
    else:
        sys.exit("usage: python -m streams.bench_scale restore STATE_DIR")
