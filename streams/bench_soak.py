"""``twin bench soak``: days of an emulated network at full speed, with the worker killed and the
broker paused, then an account of every record.

What runs (``docs/benchmarks.md``, "Soak"): the embedded broker, a ``twin run`` worker (two
processes, as ``twin demo`` starts it) and the network emulator (``urban-hotspots`` by default),
publishing closed loop as fast as the twin answers (``streams.live.LiveRun``: never more than two
periods ahead of the predictions). Meanwhile:

- the worker is killed with SIGKILL (its re-keying child dies with it) at ``--kills`` random
  moments (a random period, then a random delay of up to 0.3 s, so the kill lands mid-step) and
  started again at once, as a supervisor would; a worker that exits by itself is started again
  too and counted (``unexpected_exits``);
- the broker is paused (SIGSTOP) ``--pauses`` times for ``--pause-s`` seconds each, longer than the
  worker's unreachable threshold (3 s), then resumed (SIGCONT);
- the resident memory of the worker (its process tree) and of the broker is sampled twice a second.

The account, against what the emulator published:

- **PM**: the worker keeps one day of PM (``ingest.pm_retention_s = 86400``) and of MR event ids
  for de-duplication (``ingest.mr_dedup_retention_s``, ``--mr-dedup-retention-s``, 86,400 s here
  against the worker's default of 72 hours), so that every retention window is full after the first
  day and its memory can be flat from then on (``worker_memory_flat``: the largest sample of each
  day from the third on within ``FLAT_TOLERANCE`` above the second day's; the first day fills the
  windows, and a worker's memory also grows in its first hours, whatever the day, which the
  per-process figures ``worker_incarnations`` show); at the end of each emulated day, publication
  stops and the mirror's checkpoints (read read-only, as ``twin.Twin.from_state`` does) must hold
  every (cell, period) of that day with exactly the published values, waiting up to
  ``--settle-s`` for the last checkpoint. Missing ones are ``pm_lost``, different ones
  ``pm_mismatched``.
- **MR**: at the end, each cell's MR count in the mirror (a running count, never pruned) against
  the distinct event ids published for it: below is ``mr_lost``, above ``mr_duplicates``
  (double-counted after a replay).
- **CM**: at the end, every cell's mirrored configuration against the emulator's
  (``cm_mismatched``, by attribute).

``published`` counts the PM records and MR events published, ``mirrored`` those found in the
mirror, ``lost = published - mirrored`` and ``duplicates = mr_duplicates`` (PM updates are
idempotent: a PM record applied twice is stored once). Latency percentiles are the closed loop's
(from a period's records existing to its predictions arriving), kills and pauses included.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import signal
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from streams.broker import EmbeddedBroker
from streams.demo import GROUP, Worker, scenario_option, write_config
from streams.live import PERCENTILE_METHOD, LiveRun, encode_step, percentile
from twin.mirror.cluster import ClusterMirror
from twin.mirror.store import CheckpointStore
from twin.ports import OutRecord

__all__ = ["Soak", "bench_soak_command", "run_soak", "tree_rss_mb"]

DAY_S = 86_400
PM_RETENTION_S = DAY_S  # the soak's worker keeps one day of PM (see the module docstring)
FLAT_TOLERANCE = 0.10  # "flat": no later day's largest worker RSS sample above the second day's by more
KILL_DELAY_MAX_S = 0.3
STALL_S = 300.0  # no period published for this long: the run fails (see the worker's log)


def tree_rss_mb(pid: int | None) -> float:
    """Resident memory (MiB) of ``pid`` and its descendants, from ``/proc``; 0 if it is gone."""
    return sum(tree_rss_by_role_mb(pid).values())


def tree_rss_by_role_mb(pid: int | None) -> dict[str, float]:
    """Resident memory (MiB) of ``pid``'s tree by role: ``worker`` (``pid`` itself), ``rekey`` (its
    re-keying member, started with ``--sibling-fds``), ``resync_fit`` (the resync fit's spawned
    process), ``other``; from ``/proc``, empty if it is gone."""
    out: dict[str, float] = {}
    if pid is None:
        return out
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            rss_kb = next((int(line.split()[1]) for line in Path(f"/proc/{p}/status").read_text().splitlines()
                           if line.startswith("VmRSS:")), 0)
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError, PermissionError):
            continue
        role = ("worker" if p == pid else "rekey" if b"--sibling-fds" in cmd
                else "resync_fit" if b"multiprocessing.spawn" in cmd else "other")
        out[role] = out.get(role, 0.0) + rss_kb / 1024.0
    return out


class _Tally:
    """The emulator, counting what it publishes: MR event ids per cell, PM per (cell, period).

    Its CM snapshots are published once, at the start (a later day's run starts without them:
    they say "observed at the start" and would rewrite the history of a changed attribute)."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.initial_sent = False
        self.mr_ids: dict[str, set[str]] = {}
        self.mr_events = 0
        self.pm: dict[tuple[str, int], dict[str, float]] = {}
        self.cm_records = 0

    @property
    def cells(self) -> Any:
        return self.emulator.cells

    @property
    def period_end(self) -> Any:
        return self.emulator.period_end

    def topology_config(self) -> dict[str, Any]:
        return dict(self.emulator.topology_config())

    def events_in(self, period: Any) -> Any:
        return self.emulator.events_in(period)

    def initial_records(self) -> list[OutRecord]:
        if self.initial_sent:
            return []
        self.initial_sent = True
        records = list(self.emulator.initial_records())
        self.cm_records += len(records)
        return records

    def step_detail(self) -> Any:
        detail = self.emulator.step_detail()
        for e in detail.mr:
            self.mr_ids.setdefault(e.cell_key, set()).add(str(e.event_id))
        self.mr_events += len(detail.mr)
        end = round(detail.period_end.timestamp())
        for r in detail.pm:
            self.pm[(r.cell_key, end)] = dict(r.values)
        self.cm_records += len(detail.cm)
        return detail

    def step(self) -> list[OutRecord]:
        return encode_step(self.step_detail())


@dataclass
class Soak:
    """The chaos and the samples of one soak run (wall-clock times relative to its start)."""

    config: Path
    bootstrap: str
    out: Path
    broker: EmbeddedBroker
    rng: random.Random
    pause_s: float
    worker: Worker | None = None
    started: float = field(default_factory=time.monotonic)
    day: float = 0.0  # emulated days done, for the samples
    kills: list[dict[str, Any]] = field(default_factory=list)
    pauses: list[dict[str, Any]] = field(default_factory=list)
    unexpected_exits: list[int] = field(default_factory=list)
    unexpected_exit_lines: list[str] = field(default_factory=list)  # the worker log's last line at each
    samples: list[tuple[float, float, float, float]] = field(default_factory=list)  # wall s, day, worker, broker
    sample_incarnation: list[int] = field(default_factory=list)  # the worker incarnation of each sample
    role_samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)  # day, RSS by process role
    incarnations: list[float] = field(default_factory=list)  # the emulated day each worker started at
    paused: bool = False
    progress_at: float = field(default_factory=time.monotonic)  # when the last period was published
    run_stop: asyncio.Event | None = None  # the running day's stop (set when the run stalls)
    stalled: bool = False

    def start_worker(self) -> None:
        self.worker = Worker(self.config, self.bootstrap, self.out)
        self.incarnations.append(self.day)

    def now(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def kill_worker(self, period: int) -> None:
        assert self.worker is not None
        process = self.worker.process
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
        self.kills.append({"period": period, "at_s": self.now(), "rss_mb": round(self.samples[-1][2], 1)
                           if self.samples else None})
        self.start_worker()

    def pause_broker(self, period: int) -> None:
        pid = self.broker.pid
        if pid is None or self.paused:
            return
        os.kill(pid, signal.SIGSTOP)
        self.paused = True
        self.pauses.append({"period": period, "at_s": self.now(), "seconds": self.pause_s})
        asyncio.get_running_loop().call_later(self.pause_s, self.resume_broker)

    def resume_broker(self) -> None:
        if self.paused and self.broker.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.broker.pid, signal.SIGCONT)
        self.paused = False

    async def watch(self, stop: asyncio.Event) -> None:
        """Twice a second: sample memory; start a worker that exited by itself again (a supervisor)."""
        while not stop.is_set():
            if self.run_stop is not None and time.monotonic() - self.progress_at > STALL_S:
                self.stalled = True  # nothing published for STALL_S: the closed loop waits in vain
                self.run_stop.set()
            worker = self.worker
            if worker is not None and worker.process.poll() is not None:
                self.unexpected_exits.append(worker.process.returncode)
                self.unexpected_exit_lines.append(_last_line(self.out / "worker.log"))
                self.start_worker()
            self.sample_incarnation.append(len(self.incarnations) - 1)
            roles = tree_rss_by_role_mb(worker.process.pid if worker else None)
            self.role_samples.append((self.day, roles))
            self.samples.append((self.now(), self.day, sum(roles.values()), tree_rss_mb(self.broker.pid)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


def _last_line(log: Path, tail_bytes: int = 4096) -> str:
    """The last non-empty line of ``log`` (what a worker that exited said last), at most 500 characters."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - tail_bytes))
            lines = [ln for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:500] if lines else ""


def _plan(rng: random.Random, periods: int, kills: int, pauses: int) -> tuple[set[int], set[int]]:
    """Distinct random periods for the kills and the pauses (none in the first two: the worker is
    still building its simulators)."""
    choices = list(range(2, periods))
    if kills + pauses > len(choices):
        raise ValueError(f"{kills} kills and {pauses} pauses need more than {periods} periods")
    picked = rng.sample(choices, kills + pauses)
    return set(picked[:kills]), set(picked[kills:])


def _mirror(state: Path) -> dict[str, ClusterMirror]:
    if not state.exists():
        return {}
    return CheckpointStore(state, read_only=True).load_all()


def _pm_account(clusters: dict[str, ClusterMirror], expected: dict[tuple[str, int], dict[str, float]],
                gp: int) -> tuple[int, int]:
    """(missing, mismatched) (cell, period) PM records of ``expected`` in the mirror."""
    cells = {k: c for m in clusters.values() for k, c in m.cells.items()}
    missing = mismatched = 0
    for (key, end), values in expected.items():
        cell = cells.get(key)
        series = cell.pm.get(gp, {}) if cell is not None else {}
        got = {n: per[end] for n, per in series.items() if end in per}
        if not got:
            missing += 1
        elif got != values:
            mismatched += 1
    return missing, mismatched


async def _settle_pm(state: Path, expected: dict[tuple[str, int], dict[str, float]], gp: int,
                     settle_s: float) -> tuple[int, int, dict[str, int]]:
    """Wait (up to ``settle_s``) until the checkpoints hold ``expected``; what is still not there, and
    the size of the state they hold (``_state_size``)."""
    deadline = time.monotonic() + settle_s
    while True:
        clusters = await asyncio.to_thread(_mirror, state)
        missing, mismatched = _pm_account(clusters, expected, gp)
        if (missing == 0 and mismatched == 0) or time.monotonic() > deadline:
            return missing, mismatched, _state_size(clusters, state)
        await asyncio.sleep(1.0)


def _state_size(clusters: dict[str, ClusterMirror], state: Path) -> dict[str, int]:
    """What the mirror holds: PM periods, predicted periods, MR event ids of open hours, sealed hours,
    replaced CM values, and the store's bytes on disk (bounded by the retentions if nothing leaks)."""
    cells = [c for m in clusters.values() for c in m.cells.values()]
    return {
        "pm_periods": sum(len(by_end) for c in cells for by_end in c.periods.values()),
        "predicted_periods": sum(len(per) for c in cells for series in c.predicted.values()
                                 for per in list(series.values())[:1]),
        "mr_open_ids": sum(len(ids) for c in cells for ids in c.mr.seen.values()),
        "mr_sealed_hours": sum(len(c.mr.sealed) for c in cells),
        "cm_replaced_values": sum(len(runs) for c in cells for runs in c.cm_before.values()),
        "store_bytes": sum(f.stat().st_size for f in state.iterdir() if f.is_file()) if state.exists() else 0,
    }


def _mr_account(clusters: dict[str, ClusterMirror], ids: dict[str, set[str]]) -> tuple[int, int, int]:
    """(counted within what was published, lost, double-counted) MR events, per cell."""
    counts = {k: c.mr.count for m in clusters.values() for k, c in m.cells.items()}
    counted = lost = dup = 0
    for key in set(ids) | set(counts):
        published, count = len(ids.get(key, ())), counts.get(key, 0)
        counted += min(published, count)
        lost += max(0, published - count)
        dup += max(0, count - published)
    return counted, lost, dup


def _cm_account(clusters: dict[str, ClusterMirror], expected: dict[str, dict[str, Any]]) -> int:
    """Attributes whose mirrored value is not the emulator's current one."""
    cells = {k: c for m in clusters.values() for k, c in m.cells.items()}
    bad = 0
    for key, attrs in expected.items():
        cm = cells[key].cm if key in cells else {}
        bad += sum(1 for name, value in attrs.items() if name not in cm or cm[name][0] != value)
    return bad


def _rss_summary(samples: list[tuple[float, float, float, float]], column: int) -> dict[str, float]:
    """First, largest and last sample once publishing began (the worker had joined and warmed up)."""
    live = [s[column] for s in samples if s[1] > 0 and s[column] > 0]
    if not live:
        return {"start": 0.0, "max": 0.0, "end": 0.0}
    return {"start": round(live[0], 1), "max": round(max(live), 1), "end": round(live[-1], 1)}


def _incarnations(soak: Soak, last_day: float) -> list[dict[str, float | None]]:
    """Per worker process: the emulated days it ran, its largest and its last RSS sample (MiB)."""
    out: list[dict[str, float | None]] = []
    for i, start in enumerate(soak.incarnations):
        values = [s[2] for s, n in zip(soak.samples, soak.sample_incarnation, strict=True) if n == i and s[2] > 0]
        end = soak.incarnations[i + 1] if i + 1 < len(soak.incarnations) else last_day
        out.append({"from_day": round(start, 2), "to_day": round(end, 2),
                    "rss_mb_max": round(max(values), 1) if values else None,
                    "rss_mb_end": round(values[-1], 1) if values else None})
    return out


def _roles_by_day(samples: list[tuple[float, dict[str, float]]], days: int) -> dict[str, list[float | None]]:
    """Per process role (``tree_rss_by_role_mb``), the largest sample of each emulated day."""
    roles = sorted({r for _, by in samples for r in by})
    return {r: [round(max(v), 1) if (v := [by[r] for day, by in samples if d <= day < d + 1 and r in by])
                else None for d in range(days)] for r in roles}


def _by_day(samples: list[tuple[float, float, float, float]], column: int, days: int) -> list[float | None]:
    """The largest sample of each emulated day (``None`` for a day without one)."""
    out: list[float | None] = []
    for d in range(days):
        values = [s[column] for s in samples if d <= s[1] < d + 1 and s[column] > 0]
        out.append(round(max(values), 1) if values else None)
    return out


async def _soak(emulator: Any, days: float, kills: int, pauses: int, pause_s: float, seed: int,
                settle_s: float, work: Path, mr_dedup_retention_s: int = DAY_S) -> dict[str, Any]:
    from replay.emulator.cm import mirror_view

    gp = int(emulator.granularity_s)
    periods_per_day = DAY_S // gp
    periods = max(1, round(days * periods_per_day))
    tally = _Tally(emulator)
    state = work / "state"
    config = write_config(work / "twin.toml", state, emulator.topology_config(), emulator.public_model())
    with config.open("a") as f:
        f.write(f"\n[ingest]\npm_retention_s = {PM_RETENTION_S}\nmr_dedup_retention_s = {mr_dedup_retention_s}\n")
    rng = random.Random(seed)
    kill_at, pause_at = _plan(rng, periods, kills, pauses)
    with EmbeddedBroker() as broker:
        soak = Soak(config, broker.bootstrap_servers, work, broker, rng, pause_s)
        stop = asyncio.Event()
        soak.start_worker()
        watching = asyncio.create_task(soak.watch(stop))
        latencies: list[float] = []
        pm_lost = pm_mismatched = 0
        pm_by_day: list[dict[str, int]] = []
        state_by_day: list[dict[str, int]] = []
        wall = 0.0
        warm_s: float | None = None
        try:
            assert soak.worker is not None
            await soak.worker.ready(stop)
            done = 0
            clusters = len(emulator.topology_config()["clusters"])
            loop = asyncio.get_running_loop()
            while done < periods:
                n = min(periods_per_day, periods - done)
                run = LiveRun(tally, broker.bootstrap_servers, n, gp, speed=0.0)
                offset = done
                day_pm_before = set(tally.pm)

                def chaos(r: LiveRun, offset: int = offset) -> None:
                    k = offset + len(r.log) - 1  # the period just published
                    soak.day = (k + 1) / periods_per_day
                    soak.progress_at = time.monotonic()
                    if k in kill_at:
                        kill_at.discard(k)
                        loop.call_later(soak.rng.uniform(0, KILL_DELAY_MAX_S), soak.kill_worker, k)
                    if k in pause_at:
                        pause_at.discard(k)
                        soak.pause_broker(k)

                async def warmed(run_stop: asyncio.Event) -> None:
                    assert soak.worker is not None
                    await soak.worker.warmed(run_stop, clusters, timeout_s=120.0)

                soak.run_stop = asyncio.Event()
                soak.progress_at = time.monotonic()
                await run.run(soak.run_stop, chaos, drain_timeout_s=max(120.0, settle_s),
                              warmed=warmed if done == 0 else None)
                soak.run_stop = None
                if soak.stalled:
                    raise RuntimeError(f"no period was published for {STALL_S:.0f} s (its predictions did not "
                                       f"come back) after period {done + len(run.log)}; see {work / 'worker.log'}")
                if done == 0:
                    warm_s = run.warmup_s
                wall += run.finished_at - run.started_at
                latencies += run.latencies_ms()
                done += n
                soak.day = done / periods_per_day
                day_pm = {k: v for k, v in tally.pm.items() if k not in day_pm_before}
                missing, mismatched, size = await _settle_pm(state / GROUP, day_pm, gp, settle_s)
                state_by_day.append(size)
                pm_lost += missing
                pm_mismatched += mismatched
                pm_by_day.append({"day": len(pm_by_day) + 1, "pm": len(day_pm), "missing": missing,
                                  "mismatched": mismatched})
            # MR and CM, once everything settled
            deadline = time.monotonic() + settle_s
            while True:
                mirror = await asyncio.to_thread(_mirror, state / GROUP)
                mr_counted, mr_lost, mr_dup = _mr_account(mirror, tally.mr_ids)
                if (mr_lost == 0 and mr_dup == 0) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1.0)
            cm_bad = _cm_account(mirror, mirror_view(emulator.cm))
        finally:
            soak.resume_broker()
            stop.set()
            await watching
            if soak.worker is not None:
                soak.worker.stop()
    pm_published = len(tally.pm)
    mr_published = sum(len(v) for v in tally.mr_ids.values())
    mirrored = (pm_published - pm_lost) + mr_counted
    samples = soak.samples
    n_days = -(-periods // periods_per_day)
    worker_by_day = _by_day(samples, 2, n_days)
    # "flat after the first day": from day 2 on, no day's largest sample more than FLAT_TOLERANCE
    # above day 2's (the first day fills the retention windows and sees only young workers)
    day2 = worker_by_day[1] if len(worker_by_day) > 1 else None
    later = [v for v in worker_by_day[2:] if v is not None]
    growth = round(max(later) - day2, 1) if later and day2 is not None else None
    return {
        "benchmark": "soak", "scenario": str(getattr(emulator.scenario, "name", "?")), "days": days,
        "periods": periods, "granularity_s": gp, "cells": len(tally.cells), "mr_per_cell": emulator.mr_per_cell,
        "seed": seed, "pm_retention_s": PM_RETENTION_S, "mr_dedup_retention_s": mr_dedup_retention_s,
        "published": pm_published + mr_published, "mirrored": mirrored,
        "lost": pm_published + mr_published - mirrored, "duplicates": mr_dup,
        "published_pm": pm_published, "published_mr": mr_published, "published_mr_records": tally.mr_events,
        "published_cm": tally.cm_records,
        "pm_lost": pm_lost, "pm_mismatched": pm_mismatched, "mr_lost": mr_lost, "mr_duplicates": mr_dup,
        "cm_mismatched": cm_bad, "pm_by_day": pm_by_day,
        "kills": soak.kills, "broker_pauses": soak.pauses, "unexpected_exits": soak.unexpected_exits,
        "unexpected_exit_lines": soak.unexpected_exit_lines,
        "worker_rss_mb": _rss_summary(samples, 2),
        "broker_rss_mb": _rss_summary(samples, 3),
        "worker_rss_mb_max_by_day": worker_by_day, "broker_rss_mb_max_by_day": _by_day(samples, 3, n_days),
        "worker_incarnations": _incarnations(soak, periods / periods_per_day),
        "worker_rss_mb_max_by_day_by_process": _roles_by_day(soak.role_samples, n_days),
        "mirror_state_by_day": state_by_day,
        "worker_rss_growth_after_day2_mb": growth,
        "worker_memory_flat": None if growth is None or day2 is None else growth <= FLAT_TOLERANCE * day2,
        "flat_tolerance": FLAT_TOLERANCE,
        "latency_ms_p50": _r(percentile(latencies, 50)), "latency_ms_p99": _r(percentile(latencies, 99)),
        "latency_ms_max": _r(max(latencies) if latencies else None), "latency_samples": len(latencies),
        "percentile_method": PERCENTILE_METHOD, "warmup_s": _r(warm_s), "publish_wall_s": round(wall, 1),
        "sim_s_per_wall_s": round(periods * gp / wall, 1) if wall > 0 else None,
        "rss_samples": len(samples), "cpu_count": os.cpu_count(),
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def run_soak(scenario: str = "urban-hotspots", days: float = 7.0, kills: int = 5, pauses: int = 2,
             pause_s: float = 10.0, mr_per_cell: int = 10, seed: int = 1, settle_s: float = 120.0,
             work: Path | None = None, mr_dedup_retention_s: int = DAY_S) -> dict[str, Any]:
    """One soak run (see the module docstring); its JSON-able result."""
    from replay.emulator import NetworkEmulator, default_start

    # days of event time at full speed run ahead of the wall clock: start far enough in the past
    # that the last period still ends before now (later event times are refused as from the future)
    start = default_start() - timedelta(days=math.ceil(days))
    emulator = NetworkEmulator(scenario, seed=seed, mr_per_cell=mr_per_cell, start=start)
    with tempfile.TemporaryDirectory(prefix="twin-soak-") as tmp:
        result = asyncio.run(_soak(emulator, days, kills, pauses, pause_s, seed, settle_s, work or Path(tmp),
                                     mr_dedup_retention_s))
    return result


def bench_soak_command(
    scenario: Annotated[str, typer.Option(help="emulator scenario name or TOML path")] = "urban-hotspots",
    days: Annotated[float, typer.Option(min=0.05, help="emulated days")] = 7.0,
    kills: Annotated[int, typer.Option(min=0, help="worker kills (SIGKILL) at random moments")] = 5,
    pauses: Annotated[int, typer.Option(min=0, help="broker pauses (SIGSTOP, then SIGCONT)")] = 2,
    pause_s: Annotated[float, typer.Option(min=0.5, help="seconds each broker pause lasts")] = 10.0,
    mr_per_cell: Annotated[int, typer.Option(min=0, help="MR events per cell and period")] = 10,
    mr_dedup_retention_s: Annotated[int, typer.Option(min=3600, help="the worker's ingest.mr_dedup_retention_s")
                                    ] = DAY_S,
    seed: Annotated[int, typer.Option(help="seed of the network and of the chaos")] = 1,
    settle_s: Annotated[float, typer.Option(min=5, help="longest wait for the mirror to hold a day")] = 120.0,
    work: Annotated[Path | None, typer.Option(help="keep state and logs here (default: a temp dir)")] = None,
    as_json: Annotated[bool, typer.Option("--json/--no-json", help="one line; --no-json: indented")] = True,
) -> None:
    """Days of the emulated network at full speed with worker kills and broker pauses: records
    published against mirrored, duplicates, memory of the worker and the broker, latency."""
    from twin.logs import configure

    configure("WARNING")
    scenario_option(scenario)  # an unknown one: exit code 2 before anything starts
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
    result = run_soak(scenario, days, kills, pauses, pause_s, mr_per_cell, seed, settle_s, work, mr_dedup_retention_s)
    typer.echo(orjson.dumps(result).decode() if as_json else orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())

