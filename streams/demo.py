"""``twin demo``: the emulated network, the broker and the runtime worker on one machine.

Starts the embedded broker (Tansu), the runtime worker as ``twin run`` (two processes: both
share validation/re-keying, one also keeps the mirror and predicts), and the network emulator
(``replay.emulator``), which publishes PM, CM and MR through the real topics in accelerated event
time. Shows live progress, then stops the worker (which checkpoints its mirror), reads the mirror
back and writes ``DIR/summary.json`` and ``DIR/report.html``. Every process it started is stopped
on the way out, also on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from streams.alerts import read_alerts
from streams.broker import EmbeddedBroker
from streams.live import LiveRun, event_dict, percentile
from streams.process import spawn_twin, stop_child
from streams.stats import read_stats_file
from twin.alert_log import fold
from twin.mirror.cluster import ClusterMirror
from twin.mirror.store import CheckpointStore
from twin.prediction import cell_error
from twin.report import PublishedPeriod, build_summary, render_report
from twin.schemas import Alert

__all__ = ["GROUP", "Worker", "demo_command", "write_config"]

GROUP = "twin-demo"


def write_config(path: Path, state_dir: Path, topology: dict[str, Any], model: dict[str, Any],
                 partitions: int = 12, drift_warmup_periods: int | None = None) -> Path:
    """The worker's TOML settings: state, group, topology and the twin's public model parameters;
    ``drift_warmup_periods`` when the drift detectors must be armed sooner than after a day."""
    def q(v: Any) -> str:
        return orjson.dumps(v).decode()

    lines = [f"state_dir = {q(str(state_dir))}", "checkpoint_interval_s = 1.0", 'log_level = "WARNING"', "",
             "[kafka]", f"group_id = {q(GROUP)}", f"partitions = {partitions}", "", "[predict]"]
    for key in ("scenario", "n_ues", "demand_bps", "indoor_fraction", "seed"):
        if key in model:
            lines.append(f"{key} = {q(model[key])}")
    lines.append("")
    for cluster in topology["clusters"]:
        lines += ["[[topology.clusters]]", f"id = {q(cluster['id'])}", f"cells = {q(cluster['cells'])}", ""]
    if drift_warmup_periods is not None:
        lines += ["[gap]", f"drift_warmup_periods = {drift_warmup_periods}", ""]
    path.write_text("\n".join(lines))
    return path


def demo_warmup_periods(timeline: list[Any], start: datetime, granularity_s: int) -> int | None:
    """The drift detectors' warm-up for a demo run: the default (a day) unless the scenario's first
    event comes sooner; then the periods before it less 8, at least 16 (fault-midrun's fault at
    noon: 40). A demo must show its fault detected; a network in service has had its day.

    >>> from datetime import UTC
    >>> from types import SimpleNamespace
    >>> t0 = datetime(2024, 1, 1, tzinfo=UTC)
    >>> demo_warmup_periods([SimpleNamespace(start=t0 + timedelta(hours=12))], t0, 900)
    40
    >>> demo_warmup_periods([], t0, 900) is None
    True
    """
    first = min((m.start for m in timeline), default=None)
    if first is None:
        return None
    before = int((first - start).total_seconds() // granularity_s)
    return None if before >= 96 + 8 else max(16, before - 8)


class Worker:
    """``twin run`` as a child process (its second re-keying member in a grandchild), stats via files."""

    def __init__(self, config: Path, bootstrap: str, out: Path) -> None:
        self.stats_file = out / "worker-stats.json"
        self.rekey_stats = out / "worker-stats.json.rekey"
        for f in (self.stats_file, self.rekey_stats):
            f.unlink(missing_ok=True)
        self.process: subprocess.Popen[bytes] = spawn_twin(
            ["run", "--config", str(config), "--bootstrap", bootstrap, "--name", "demo",
             "--stats-file", str(self.stats_file)], log_file=out / "worker.log")

    def mirror(self) -> dict[str, Any]:
        return read_stats_file(self.stats_file)

    def rekey(self) -> dict[str, Any]:
        return read_stats_file(self.rekey_stats)

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"the worker exited with code {self.process.returncode}; see worker.log")

    async def ready(self, stop: asyncio.Event, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not (self.mirror().get("assigned") and self.rekey().get("assigned")):
            self.check()
            if stop.is_set():
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not join its consumer groups in time; see worker.log")
            await asyncio.sleep(0.05)

    async def warmed(self, stop: asyncio.Event, clusters: int = 1, timeout_s: float = 60.0) -> None:
        """Until the mirror stage built the simulators of ``clusters`` clusters from the initial CM."""
        deadline = time.monotonic() + timeout_s
        while not stop.is_set() and self.mirror().get("simulatorBuilds", 0) < clusters:
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError("the twin did not build its simulators in time; see worker.log")
            await asyncio.sleep(0.02)

    async def drained(self, published: int, stop: asyncio.Event, timeout_s: float = 60.0) -> bool:
        """Until the mirror applied (or the DLQ took) every record published."""
        deadline = time.monotonic() + timeout_s
        while not stop.is_set() and time.monotonic() < deadline:
            done = self.mirror().get("recordsApplied", 0) + self.rekey().get("deadLetteredTotal", 0)
            if done >= published:
                return True
            await asyncio.sleep(0.1)
        return False

    def stop(self) -> int:
        return stop_child(self.process, timeout_s=30.0)


def live_error(run: LiveRun) -> tuple[float | None, str | None]:
    """Mean twin error over the cells of the newest fully predicted period, and the worst cell."""
    for p in reversed(run.log):
        if run.watcher.complete(p.end, list(p.pm)):
            errs = {c: cell_error(run.watcher.values.get((c, p.end), {}), v) for c, v in p.pm.items()}
            vals = {c: e for c, e in errs.items() if e is not None}
            if vals:
                worst = max(vals, key=lambda c: vals[c])
                return sum(vals.values()) / len(vals), f"{worst} ({vals[worst]:.2f})"
    return None, None


def progress_table(run: LiveRun, worker: Worker, scenario: str) -> Table:
    t = Table(title=f"twin demo: {scenario}", show_header=False, min_width=70)
    done = sum(1 for p in run.log if run.watcher.complete(p.end, list(p.pm)))
    err, worst = live_error(run)
    last = run.log[-1] if run.log else None
    events = sorted({e.get("label") or e.get("kind", "?") for p in run.log for e in p.events})
    stats = worker.mirror()
    t.add_row("periods published / predicted", f"{len(run.log)} / {done} of {run.periods}")
    t.add_row("event time", time.strftime("%Y-%m-%d %H:%M", time.gmtime(last.end)) if last else "-")
    t.add_row("cells", str(len(run.cells)))
    t.add_row("records published / in mirror", f"{run.published} / {stats.get('recordsApplied', 0)}")
    t.add_row("predictions received", str(run.watcher.records))
    t.add_row("events in force", ", ".join(map(str, events)) or "none")
    t.add_row("twin error (mean, worst cell)", "-" if err is None else f"{err:.3f}  worst {worst}")
    return t


async def drive(run: LiveRun, worker: Worker, scenario: str, console: Console, quiet: bool) -> bool:
    """Run to the end or until Ctrl-C; True when interrupted."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await worker.ready(stop)
    last = [0.0]
    with Live(progress_table(run, worker, scenario), console=console, refresh_per_second=4,
              transient=False, auto_refresh=False) as live:
        def progress(r: LiveRun) -> None:
            worker.check()
            if not quiet and time.monotonic() - last[0] > 0.25:
                live.update(progress_table(r, worker, scenario), refresh=True)
                last[0] = time.monotonic()

        run_stop = asyncio.Event()
        watch = asyncio.create_task(_forward(stop, run_stop))
        clusters = len(run.source.topology_config()["clusters"])

        async def warmed(stop: asyncio.Event) -> None:
            await worker.warmed(stop, clusters)

        await run.run(run_stop, progress, warmed=warmed)
        interrupted = stop.is_set()
        if not interrupted:
            await worker.drained(run.published, stop)
        live.update(progress_table(run, worker, scenario), refresh=True)
        watch.cancel()
    return interrupted or stop.is_set()


async def _forward(src: asyncio.Event, dst: asyncio.Event) -> None:
    await src.wait()
    dst.set()


def finish(run: LiveRun, clusters: dict[str, ClusterMirror], info: dict[str, Any], out: Path,
           events: list[dict[str, Any]], alerts: list[Alert] | None = None) -> dict[str, Any]:
    """Write ``summary.json`` and ``report.html``; return the summary (with the run's alerts, folded
    per id, and the resyncs the mirror recorded)."""
    wall = (run.finished_at or time.time()) - run.started_at if run.started_at else 0.0
    lat = run.latencies_ms()
    info = {**info, "wallSeconds": round(wall, 2),
            "simSecondsPerWallSecond": round(len(run.log) * run.gp / wall, 1) if wall > 0 else None,
            "latencyMsP50": _r(percentile(lat, 50)), "latencyMsP99": _r(percentile(lat, 99)),
            "recordsPublished": run.published, "predictionRecordsReceived": run.watcher.records}
    published = [PublishedPeriod(p.end, p.pm, p.events) for p in run.log]
    summary, series = build_summary(info, published, clusters, run.gp, events)
    summary["alerts"] = [{"kind": s.type, "severity": s.severity, "cell": s.cell_key, "cluster": s.cluster_id,
                          "raised": s.raised_at.isoformat(), "cleared": s.cleared_at.isoformat() if s.cleared_at
                          else None, "text": s.text} for s in fold(alerts or [])]
    summary["resyncs"] = [{k: r.get(k) for k in ("resyncId", "clusterId", "status", "trigger", "cells", "at",
                                                 "parametersBefore", "parametersAfter", "change", "errorBefore",
                                                 "errorAfter", "verify", "affected", "fitSeconds", "reason")}
                          for cl in clusters.values() for r in cl.resyncs]
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    (out / "report.html").write_text(render_report(summary, series))
    return summary


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def demo_command(
    scenario: Annotated[str, typer.Option(help="emulator scenario name or TOML path")] = "fault-midrun",
    hours: Annotated[float, typer.Option(min=0.25, help="simulated hours")] = 24.0,
    speed: Annotated[float, typer.Option(min=0, help="event time / wall time; 0: as fast as possible")] = 1000.0,
    seed: Annotated[int, typer.Option(help="seed of the emulated network's hidden truth")] = 0,
    out: Annotated[Path, typer.Option(help="folder for summary.json, report.html, logs and state")] = Path(
        "demo-out"),
    granularity: Annotated[int, typer.Option(min=60, help="PM granularity period (s)")] = 900,
    mr_per_cell: Annotated[int, typer.Option(min=0, help="UE measurement reports per cell and period")] = 10,
    start_hour: Annotated[float, typer.Option(min=0, max=23.75, help="hour of day the run starts at")] = 0.0,
    quiet: Annotated[bool, typer.Option(help="no live table")] = False,
) -> None:
    """Run the emulated network, the broker and the twin together; write a summary and a report."""
    from replay.emulator import NetworkEmulator, default_start
    from twin.logs import configure

    configure("WARNING")
    console = Console()
    emulator = NetworkEmulator(scenario, seed=seed, granularity_s=granularity, mr_per_cell=mr_per_cell,
                               start=default_start() + timedelta(hours=start_hour))
    periods = max(1, round(hours * 3600 / granularity))
    out.mkdir(parents=True, exist_ok=True)
    state = out / "state"
    shutil.rmtree(state, ignore_errors=True)  # a fresh broker: old offsets mean nothing
    config = write_config(out / "twin.toml", state, emulator.topology_config(), emulator.public_model(),
                          drift_warmup_periods=demo_warmup_periods(emulator.timeline(), emulator.start, granularity))
    name = str(getattr(emulator.scenario, "name", scenario))
    info = {"scenario": name, "seed": seed, "hours": hours, "speed": speed, "mrPerCell": mr_per_cell}
    events = [event_dict(e) for e in emulator.timeline()]
    interrupted = False
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(EmbeddedBroker())
        console.print(f"embedded broker on {broker.bootstrap_servers}; scenario {name}: "
                      f"{len(emulator.cells)} cells, {periods} periods of {granularity} s at "
                      f"{'max' if speed == 0 else f'{speed:g}x'} speed")
        worker = Worker(config, broker.bootstrap_servers, out)
        stack.callback(worker.stop)
        run = LiveRun(emulator, broker.bootstrap_servers, periods, granularity, speed=speed)
        try:
            interrupted = asyncio.run(drive(run, worker, name, console, quiet))
        except KeyboardInterrupt:
            interrupted = True
        code = worker.stop()
        if code not in (0, None):
            console.print(f"[yellow]worker exited with code {code}; see {out / 'worker.log'}[/]")
        clusters = CheckpointStore(state / GROUP).load_all()
        alerts, _ = asyncio.run(read_alerts(broker.bootstrap_servers))
    console.print()
    summary = finish(run, clusters, {**info, "interrupted": interrupted}, out, events, alerts)
    pm, pred = summary["pm"], summary["predictions"]
    console.print(f"{summary['periods']} periods, {len(summary['cells'])} cells: PM {pm['inMirror']}/"
                  f"{pm['published']} in the mirror, predictions {pred['inMirror']}/{pred['expected']}; "
                  f"{summary['simSecondsPerWallSecond']} sim s per wall s, latency p50 "
                  f"{summary['latencyMsP50']} ms p99 {summary['latencyMsP99']} ms")
    for r in summary["resyncs"]:
        change = {c: {k: round(v, 2) for k, v in per.items()} for c, per in (r["change"] or {}).items()}
        console.print(f"resync {r['status']}: cells {', '.join(r['cells'])}, fitted change {change}, error on its "
                      f"evidence {r['errorBefore']} -> {r['errorAfter']}")
    active = sum(a["cleared"] is None for a in summary["alerts"])
    console.print(f"alerts: {len(summary['alerts'])} ({active} active; `twin alerts list` on a live broker)")
    console.print(f"wrote {out / 'summary.json'} and {out / 'report.html'}"
                  + (" (interrupted)" if interrupted else ""))
