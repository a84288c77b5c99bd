"""``twin demo``: the emulated network, the broker and the runtime worker on one machine.

Starts the embedded broker (Tansu), the runtime worker as ``twin run`` (two processes: both
share validation/re-keying, one also keeps the mirror and predicts), and the network emulator
(``replay.emulator``), which publishes PM, CM and MR through the real topics in accelerated event
time. Shows live progress, then stops the worker (which checkpoints its mirror), reads the mirror
back and writes ``DIR/summary.json`` and ``DIR/report.html``. Every process it started is stopped
on the way out, also on Ctrl-C.

The guarded CM loop (:class:`CmLoop`, ``docs/demo.md``) runs in this process, which owns the
emulated network: at each optimisation round the optimiser searches on the twin the worker
checkpointed (``Twin.from_state``), its proposals go through the guard, the ledger and the
emulator's CM adapter (``ChangeRunner``), and every period the runner is fed the cluster's real mean
``DRB.UEThpDl`` and the twin's raw predicted mean, so the verification confirms or rolls back each
change on what the network reports. Only the report reads the emulator's hidden truth, after the run.

After the run, unless ``--no-sim2real``, :func:`demo_sim2real` adds the Sim2Real MAPE table of the
four models at demo size (``replay.bench_sim2real.run_sim2real``, about 30 s) to the summary and the
report; a failure there is logged and shown in the report, never fails the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from streams.alerts import read_alerts
from streams.broker import EmbeddedBroker
from streams.kafka_io import KafkaSink
from streams.live import LiveRun, event_dict, percentile
from streams.outputs import open_sink
from streams.process import spawn_twin, stop_child
from streams.stats import read_stats_file
from twin import topics
from twin.alert_log import fold
from twin.api import journal
from twin.config import load_settings
from twin.mirror.cluster import ClusterMirror
from twin.mirror.store import CheckpointStore
from twin.ports import OutRecord, open_adapter
from twin.prediction import cell_error
from twin.report import PublishedPeriod, build_summary, cm_summary, render_report
from twin.schemas import Alert
from twin.sim.kpis import THP
from twin.timeseries import alert_point, change_point

if TYPE_CHECKING:
    from replay.emulator import NetworkEmulator, Scenario
    from twin import Twin

__all__ = ["DEMO_STATE_MARKER", "GROUP", "SIM2REAL_DEMO_SIZES", "CmLoop", "Worker", "cm_first_round", "cm_rounds",
           "demo_command", "demo_sim2real", "scenario_option", "write_config"]

GROUP = "twin-demo"
DEMO_STATE_MARKER = ".twin-demo"
"""The file ``twin demo`` writes into ``DIR/state`` first: a later demo with the same ``--out`` deletes
that folder (a fresh broker makes old offsets meaningless) only when it holds this file (or nothing),
so the checkpoints of a worker whose state_dir is ``DIR/state`` (the default ``state``) are never
taken for a demo's."""
log = logging.getLogger(__name__)

SIM2REAL_DEMO_SIZES: dict[str, int] = {"twinSamples": 20_000, "trainDays": 2, "testDays": 1, "rankCells": 6,
                                       "epochs": 20, "minSteps": 1000, "threads": 1}
"""The Sim2Real table's sizes in the demo report: a fraction of ``twin bench sim2real``'s (100,000
twin samples, 5 + 2 days, 24 ranked cells, 40 epochs, 1500 steps), so that it adds about 30 s on two
cores; the figures are noisier than the benchmark's (``docs/benchmarks.md``). One torch thread:
on two cores its small batches ran no faster with two, and ten times slower while another process
kept a core busy."""
SIM2REAL_SCENARIOS = ("urban-hotspots", "suburban-quiet", "fault-midrun")
"""The shipped scenarios ``run_sim2real`` knows by name; a demo of another runs the table on fault-midrun."""
SIM2REAL_MODELS = ("real_only", "twin_only", "finetune", "transfer")


def scenario_option(value: str) -> Scenario:
    """The scenario a ``--scenario NAME_OR_TOML`` option names: a shipped one or a TOML file. Anything
    else ends the command, before anything starts, with exit code 2 and a message naming the option
    and the value (and the shipped scenarios)."""
    from replay.emulator import list_scenarios, load_scenario

    shipped = list_scenarios()
    if value not in shipped and not Path(value).is_file():
        typer.echo(f"error: --scenario {value!r} is neither a shipped scenario ({', '.join(shipped)}) "
                   "nor a TOML file", err=True)
        raise typer.Exit(2)
    try:
        return load_scenario(value)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # a TOML file that is not a scenario
        why = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        typer.echo(f"error: --scenario {value!r}: {why}", err=True)
        raise typer.Exit(2) from exc


def _check_out(out: Path) -> Path:
    """``out``'s state folder, which the demo is about to delete: exit code 2 unless it is absent,
    empty, or a previous demo's (it holds :data:`DEMO_STATE_MARKER`)."""
    if out.exists() and not out.is_dir():
        typer.echo(f"error: --out {str(out)!r} exists and is not a folder", err=True)
        raise typer.Exit(2)
    state = out / "state"
    if state.is_symlink() or (state.exists() and not state.is_dir()):
        typer.echo(f"error: --out {str(out)!r}: {state} is not a folder the demo wrote; remove it or choose "
                   "another --out", err=True)
        raise typer.Exit(2)
    if state.is_dir() and not (state / DEMO_STATE_MARKER).is_file() and any(state.iterdir()):
        typer.echo(f"error: --out {str(out)!r}: {state} exists and was not written by `twin demo` (no "
                   f"{DEMO_STATE_MARKER} file in it; it may hold a worker's checkpoints), and the demo would "
                   "delete it; remove it yourself or choose another --out", err=True)
        raise typer.Exit(2)
    return state


def _fresh_state(state: Path) -> None:
    """Delete a previous demo's ``state`` (checked by :func:`_check_out`) and mark the new one as the demo's."""
    shutil.rmtree(state, ignore_errors=True)  # a fresh broker: old offsets mean nothing
    state.mkdir(parents=True, exist_ok=True)
    (state / DEMO_STATE_MARKER).write_text("written by `twin demo`: the next `twin demo` with the same --out "
                                           "deletes this folder\n", encoding="utf-8")


def write_config(path: Path, state_dir: Path, topology: dict[str, Any], model: dict[str, Any],
                 partitions: int = 12, drift_warmup_periods: int | None = None, guard: bool = False) -> Path:
    """The worker's TOML settings: state, group, topology and the twin's public model parameters;
    ``drift_warmup_periods`` when the drift detectors must be armed sooner than after a day;
    ``guard``: the ``[guard]`` section of the demo's CM loop."""
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
    lines += [] if not guard else [
        "# The CM guard of the demo's optimisation loop (twin.guard.GuardPolicy; docs/demo.md).",
        "[guard]",
        "# auto: an allowed change is pushed at once (the demo has no operator to approve it)",
        'mode = "auto"',
        "# off: on the emulated network the DT-BSM estimate lacks the coverage to certify trust",
        "# (docs/fidelity.md) and would refuse every change; the verification after each push stays",
        "trust_gate = false",
        "# the optimiser proposes up to this many cells per round (blast radius)",
        "max_cells_per_cluster = 2",
        "# one hour of 15-minute periods before (baseline) and after (verification) each push",
        "baseline_periods = 4",
        "observe_periods = 4",
        "",
    ]
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


def cm_first_round(timeline: list[Any], start: datetime, granularity_s: int, warmup: int | None) -> int:
    """Periods before the first optimisation round: once the drift detectors are armed (``warmup``;
    else 4 hours in) and the scenario's first event has played out (4 hours after it starts: a
    fault's detection, resync and clearance take about one), so that the twin's repair story and the
    CM changes, which move the gap learners too, are told one after the other (fault-midrun from
    midnight: 16:00).

    >>> from datetime import UTC
    >>> from types import SimpleNamespace
    >>> t0 = datetime(2024, 1, 1, tzinfo=UTC)
    >>> noon = SimpleNamespace(start=t0 + timedelta(hours=12))
    >>> cm_first_round([noon], t0, 900, 40), cm_first_round([], t0, 900, None)
    (64, 16)
    """
    four_h = round(4 * 3600 / granularity_s)
    first = warmup if warmup is not None else four_h
    event = min((m.start for m in timeline), default=None)
    if event is not None:
        first = max(first, int((event - start).total_seconds() // granularity_s) + four_h)
    return first


def cm_rounds(periods: int, first: int, every: int, observe: int) -> list[int]:
    """Period counts after which the optimiser runs: ``first``, then every ``every`` periods (0:
    once), while the round's changes can still be observed in full before the run ends.

    >>> cm_rounds(34, 16, 8, 4), cm_rounds(96, 40, 8, 4), cm_rounds(8, 16, 8, 4), cm_rounds(20, 4, 0, 4)
    ([16, 24], [40, 48, 56, 64, 72, 80, 88], [], [4])
    """
    out = []
    k = max(1, first)
    while k + observe + 1 <= periods:
        out.append(k)
        if every <= 0:
            break
        k += every
    return out


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


class CmLoop:
    """The guarded CM loop of the demo, driven between periods by :meth:`LiveRun.run` (``after_period``).

    Every period: the runner observes the cluster's real mean ``DRB.UEThpDl`` (the PM the emulator
    published) and the twin's raw predicted mean (the worker's predictions read back), oldest
    period first, once all its predictions arrived. At a round (:func:`cm_rounds`): the twin the
    worker checkpointed is opened (``Twin.from_state``, once it holds the period just published),
    the optimiser searches it, and each proposal goes to ``ChangeRunner.submit`` (guard, ledger,
    push through ``EmulatorAdapter``; effective from the next period). ``runner.results`` go to
    ``ran.cm.change.results.v1`` and ``runner.alerts`` to ``ran.alerts.v1``.
    """

    def __init__(self, emulator: NetworkEmulator, config: Path, bootstrap: str, rounds: Sequence[int],
                 budget: int = 200) -> None:
        from twin.ledger import open_ledger
        from twin.optimize import ObjectiveSettings
        from twin.rollout import ChangeRunner

        settings = load_settings(config)
        self.emulator = emulator
        self.config = config
        self.bootstrap = bootstrap
        self.policy = settings.guard
        self.state = settings.state_dir / settings.kafka.group_id
        self.ledger_path = settings.cm.ledger_url(settings.state_dir)
        # streams/ reaches adapters/ through the twin.adapters entry points only (tests/test_architecture.py)
        self.runner = ChangeRunner(open_ledger(self.ledger_path), self.policy,
                                   open_adapter("emulator", endpoint=emulator.oss), scope=self._scope)
        self.objective = ObjectiveSettings()
        self.cluster = emulator.cluster_id
        self.gp = emulator.granularity_s
        self.rounds = sorted(set(rounds))
        self.budget = budget
        self.observed = 0
        self.searches: list[dict[str, Any]] = []
        self.thp: list[tuple[int, float | None, float | None]] = []
        # per published period, for the report's truth figures only: (hour, events in force, configuration)
        self.truth_log: list[tuple[float, list[Any], tuple[Any, ...]]] = []
        self.initial = tuple(emulator.public_sector(c) for c in emulator.cells)
        self.twin: Twin | None = None
        self.sink: KafkaSink | None = None
        self.published: dict[str, int] = {"results": 0, "alerts": 0}
        # the change results and CM alerts in the time series beside the worker's (local store by default)
        self.series = open_sink(settings)

    # -- the loop -------------------------------------------------------------------------------
    async def after_period(self, run: LiveRun) -> None:
        self._log_truth(run.log[-1].end)
        k = len(run.log)
        due = k in self.rounds
        await self._observe(run, wait=due)
        if due and self.observed == k:
            await self._round(run, k)
        await self._publish(run.log[-1].end)

    async def finish(self, run: LiveRun) -> None:
        """After the last period: observe what is left (its predictions arrived or the run gave up)."""
        await self._observe(run, wait=False)
        await self._publish(run.log[-1].end if run.log else None)
        if self.series is not None:
            await asyncio.to_thread(self.series.close)
        if self.sink is not None:
            with contextlib.suppress(Exception):
                await self.sink.stop()

    async def _observe(self, run: LiveRun, wait: bool, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.observed < len(run.log):
            p = run.log[self.observed]
            cells = list(p.pm)
            if not run.watcher.complete(p.end, cells):
                if not wait or time.monotonic() > deadline:
                    return
                await asyncio.sleep(0.02)
                continue
            real = _mean([float(v[THP]) for v in p.pm.values() if THP in v])
            pred = _mean([float(v[THP]) for c in cells if THP in (v := run.watcher.values.get((c, p.end), {}))])
            self.thp.append((p.end, real, pred))
            if real is not None:
                end = datetime.fromtimestamp(p.end, UTC)
                by_cell = {c: {THP: float(v[THP])} for c, v in p.pm.items() if THP in v}
                pred_by_cell = {c: {THP: float(v[THP])} for c in cells
                                if THP in (v := run.watcher.values.get((c, p.end), {}))}
                self.runner.observe(self.cluster, end, {THP: real}, None if pred is None else {THP: pred}, by_cell,
                                    pred_by_cell)
                self.runner.tick(end)
            self.observed += 1

    def _scope(self, request: Any, cluster: str) -> tuple[list[str], float | None]:
        """The cells a change moves, by a what-if on the worker's twin (the verification's scope)."""
        from twin.rollout import whatif_scope

        if self.twin is None:
            return [request.cell_key], None
        return whatif_scope(self.twin)(request, cluster)

    def _twin_at(self, end: int, timeout_s: float = 30.0) -> Twin | None:
        """The worker's twin from its checkpoints once they hold the predictions of period ``end``."""
        from twin import Twin

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.twin is None:
                    self.twin = Twin.from_state(self.state, config=self.config)
                else:
                    self.twin.refresh()
                if self.twin.mirror(self.cluster).predicted_through.get(self.gp, 0) >= end:
                    return self.twin
            except (FileNotFoundError, KeyError, ValueError, OSError):
                pass  # not written yet, or being replaced: read again
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)

    async def _round(self, run: LiveRun, k: int) -> None:
        from twin.optimize import Optimizer

        end = run.log[k - 1].end
        now = self.emulator.period_end  # == end: the emulator waits between periods
        entry: dict[str, Any] = {"round": len(self.searches) + 1, "after": k, "at": now.isoformat()}
        self.searches.append(entry)
        twin = await asyncio.to_thread(self._twin_at, end)
        if twin is None:
            entry["skipped"] = "the worker's checkpoint did not reach the period in time"
            return
        fid = twin.fidelity(self.cluster)
        opt = Optimizer(twin, self.policy, self.objective)
        result = await asyncio.to_thread(opt.search, self.cluster, budget=self.budget, now=now,
                                         fidelity=fid[-1].get("value") if fid else None)
        entry.update({"whatifs": result.whatifs, "seconds": round(result.seconds, 2),
                      "whatifsPerS": round(result.whatifs_per_s, 1), "predictedGainPct": round(result.gain_pct, 3),
                      "proposals": len(result.proposals), "twinVersion": result.model_version})
        states = []
        for proposal in result.proposals:
            view = self.runner.submit(proposal.request, self.cluster, now)
            states.append(view.state.value)
        entry["states"] = states

    async def _publish(self, period_end: int | None = None) -> None:
        results, alerts = self.runner.results, self.runner.alerts
        if not results and not alerts:
            return
        if self.series is not None:  # a result without its apply time is marked at the period's end
            fallback = datetime.fromtimestamp(period_end, UTC) if period_end else datetime.now(UTC)
            self.series.write([change_point(r, int((r.applied_at or fallback).timestamp()) * 10**9, "demo")
                               for r in results])
            self.series.write([alert_point(a) for a in alerts])
        records = [OutRecord(topics.CHANGE_RESULTS, r.change_id.encode(), r.to_json_bytes()) for r in results]
        records += [OutRecord(topics.ALERTS, (a.cell_key or a.cluster_id or "").encode(), a.to_json_bytes())
                    for a in alerts]
        if self.sink is None:
            self.sink = KafkaSink(self.bootstrap, ensure=(topics.CHANGE_RESULTS, topics.ALERTS))
            await self.sink.start()
        await self.sink.send_many(records)
        await self.sink.flush()
        journal.append(self.state, alerts)  # what the API lists (twin.api.journal)
        self.published["results"] += len(results)
        self.published["alerts"] += len(alerts)
        results.clear()
        alerts.clear()

    # -- the report (the hidden truth is read here only, after the run) -------------------------------
    def _log_truth(self, end: int) -> None:
        from replay.emulator.emulator import period_hour

        emu = self.emulator
        when = datetime.fromtimestamp(end, UTC)
        mid = (when - emu.start).total_seconds() / 3600.0 - self.gp / 7200.0
        self.truth_log.append((period_hour(when, self.gp), [ev for ev in emu.scenario.events if ev.active(mid)],
                               tuple(emu.public_sector(c) for c in emu.cells)))

    def summary(self) -> dict[str, Any]:
        """The ``cm`` section of the summary (``twin.report.cm_summary``) with the truth's figures:
        the objective gain and the cluster's mean throughput gain of the configuration the network
        ends with against the one it started with, over the same periods and load (every period
        after the first push), and each pushed change's own effect over its observation periods on
        the cells the verification judged (the configuration then, against the same without the
        change)."""
        from replay.bench_optimize import truth_score, truth_state
        from twin.sim.cm import apply_cm_to_sector

        emu = self.emulator
        n = len(emu.cells)
        cache: dict[Any, Any] = {}
        views = [self.runner.ledger.get(v.request.change_id) for v in self.runner.ledger.changes()]

        def thp(sectors: tuple[Any, ...], hour: float, active: list[Any], rows: list[int] | None = None) -> float:
            values = truth_state(emu, sectors, hour, active, cache).result.kpi.values[THP][:n]
            return float(values[rows].sum() if rows else values.mean())

        ends = [e for e, _, _ in self.thp]
        per_change: dict[str, float] = {}
        first: int | None = None
        for view in views:
            pushed = next((e for e in view.history if e.state.value == "APPLYING"), None)
            if pushed is None:
                continue
            k0 = next((i for i, e in enumerate(ends) if e > pushed.at.timestamp()), None)
            if k0 is None:
                continue
            first = k0 if first is None else min(first, k0)
            r = view.request
            i = emu.cells.index(r.cell_key)
            # over the cells the verification judged (its scope), so the two verdicts compare like for like
            rows = [emu.cells.index(c) for c in (pushed.detail.get("scope") or [r.cell_key]) if c in emu.cells]
            with_, without = [], []
            for hour, active, sectors in self.truth_log[k0:k0 + self.policy.observe_periods]:
                other = list(sectors)
                other[i] = apply_cm_to_sector(other[i], {r.attribute: r.from_}, strict=True)
                with_.append(thp(sectors, hour, active, rows))
                without.append(thp(tuple(other), hour, active, rows))
            if with_ and sum(without) > 0:
                per_change[r.change_id] = 100.0 * (sum(with_) / sum(without) - 1.0)
        truth = None
        if first is not None:
            # the configuration the network ends with: what it runs, with the roll backs committed last
            final = tuple(apply_cm_to_sector(emu.public_sector(c), emu.pending_for(c), strict=True)
                          if emu.pending_for(c) else emu.public_sector(c) for c in emu.cells)
            after = self.truth_log[first:]
            hours = [(h, a) for h, a, _ in after]
            t_init = sum(thp(self.initial, h, a) for h, a in hours)
            t_run = sum(thp(sectors, h, a) for h, a, sectors in after)
            t_final = sum(thp(final, h, a) for h, a in hours)
            run_obj = [truth_score(emu, self.objective, self.initial, sectors, [(h, a)], cache)[0]
                       for h, a, sectors in after]
            final_obj, _, why = truth_score(emu, self.objective, self.initial, final, hours, cache)
            truth = {"periods": len(hours),
                     "runThpGainPct": round(100.0 * (t_run / t_init - 1.0), 3) if t_init > 0 else None,
                     "runObjectiveGainPct": round(sum(run_obj) / len(run_obj), 3),
                     "finalThpGainPct": round(100.0 * (t_final / t_init - 1.0), 3) if t_init > 0 else None,
                     "finalObjectiveGainPct": round(final_obj, 3), "finalConstraintBreach": why or None,
                     "note": "the emulator's hidden truth (read by the report only), like for like over every period "
                             "after the first push, against the configuration the network started with: run = the "
                             "configuration in force each period (roll backs included); final = the configuration "
                             "the network ends with, over the same periods and load"}
        policy = {"mode": self.policy.mode, "trustGate": self.policy.trust_gate,
                  "trustGateNote": "off: the emulator's DT-BSM estimate lacks the coverage to certify trust "
                                   "(docs/fidelity.md); the verification after each push is on",
                  "maxCellsPerCluster": self.policy.max_cells_per_cluster, "minIntervalS": self.policy.min_interval_s,
                  "baseline_periods": self.policy.baseline_periods, "observePeriods": self.policy.observe_periods,
                  "protectedKpis": {k: v.model_dump() for k, v in self.policy.protected_kpis.items()},
                  "objective": self.objective.model_dump(), "budgetWhatifs": self.budget,
                  "ledger": str(self.ledger_path)}
        published = {**self.published, "resultsTopic": topics.CHANGE_RESULTS, "alertsTopic": topics.ALERTS}
        return cm_summary(views, self.searches, policy, self.thp, truth, per_change, published)


class Worker:
    """``twin run`` as a child process (its second re-keying member in a grandchild), stats via files."""

    def __init__(self, config: Path, bootstrap: str, out: Path, metrics_port: int | None = None) -> None:
        self.stats_file = out / "worker-stats.json"
        self.rekey_stats = out / "worker-stats.json.rekey"
        for f in (self.stats_file, self.rekey_stats):
            f.unlink(missing_ok=True)
        extra = ["--metrics-port", str(metrics_port)] if metrics_port is not None else []
        self.process: subprocess.Popen[bytes] = spawn_twin(
            ["run", "--config", str(config), "--bootstrap", bootstrap, "--name", "demo",
             "--stats-file", str(self.stats_file), *extra], log_file=out / "worker.log")

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


async def drive(run: LiveRun, worker: Worker, scenario: str, console: Console, quiet: bool,
                cm: CmLoop | None = None) -> bool:
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

        await run.run(run_stop, progress, warmed=warmed, after_period=cm.after_period if cm else None)
        if cm is not None:
            await cm.finish(run)
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
           events: list[dict[str, Any]], alerts: list[Alert] | None = None,
           cm: dict[str, Any] | None = None, sim2real: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``summary.json`` and ``report.html``; return the summary (with the run's alerts, folded
    per id, the resyncs the mirror recorded and, given ``cm`` and ``sim2real``, the CM loop's and
    the Sim2Real table's sections)."""
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
    if cm is not None:
        summary["cm"] = cm
    if sim2real is not None:
        summary["sim2real"] = sim2real
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    (out / "report.html").write_text(render_report(summary, series))
    return summary


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def demo_sim2real(scenario: str, seed: int, sizes: dict[str, int] | None = None) -> dict[str, Any]:
    """The four Sim2Real models' table at demo size (:data:`SIM2REAL_DEMO_SIZES`) on ``scenario``'s
    emulated network (fault-midrun unless it is a shipped one), with the sizes and the seconds it
    took; ``{"error": ...}`` instead of raising, so that the report's extra table never fails the
    demo. torch loads here, not when the CLI starts."""
    z = {**SIM2REAL_DEMO_SIZES, **(sizes or {})}
    scenarios = (scenario if scenario in SIM2REAL_SCENARIOS else "fault-midrun",)
    t0 = time.perf_counter()
    try:
        from replay.bench_sim2real import run_sim2real
        from twin.sim2real.train import TrainConfig

        config = TrainConfig(epochs=z["epochs"], min_steps=z["minSteps"], threads=z["threads"])
        doc = run_sim2real(twin_n=z["twinSamples"], train_days=z["trainDays"], test_days=z["testDays"], seed=seed,
                           rank_cells=z["rankCells"], config=config, scenarios=scenarios)
        _check_sim2real(doc)
        doc = orjson.loads(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS))
    except Exception as e:  # an extra table of the report: logged, shown, never fatal
        log.warning("the demo's Sim2Real table failed", exc_info=True)
        return {"error": f"{type(e).__name__}: {e}", "scenarios": list(scenarios), "sizes": z,
                "seconds": round(time.perf_counter() - t0, 2)}
    return {**doc, "sizes": z, "seconds": round(time.perf_counter() - t0, 2)}


def _check_sim2real(doc: dict[str, Any]) -> None:
    """The table's figures are there for the four models; a missing one names the key and model."""
    for key in ("mape", "mape_out_of_band", "mape_10pct", "kendall_tau"):
        for m in SIM2REAL_MODELS:
            v = (doc.get(key) or {}).get(m)
            if not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"run_sim2real: {key}[{m!r}] = {v!r}, not a finite number")


def demo_command(
    scenario: Annotated[str, typer.Option(help="emulator scenario name or TOML path")] = "fault-midrun",
    hours: Annotated[float, typer.Option(min=0.25, help="simulated hours")] = 24.0,
    speed: Annotated[float, typer.Option(min=0, help="event time / wall time; 0: as fast as possible")] = 1000.0,
    seed: Annotated[int, typer.Option(help="seed of the emulated network's hidden truth")] = 0,
    out: Annotated[Path, typer.Option(help="folder for summary.json, report.html, logs and the worker's state "
                                      "(DIR/state, deleted at the start; an existing DIR/state is refused unless a "
                                      f"previous demo wrote it: it holds a {DEMO_STATE_MARKER} file)")] = Path(
        "demo-out"),
    granularity: Annotated[int, typer.Option(min=60, help="PM granularity period (s)")] = 900,
    mr_per_cell: Annotated[int, typer.Option(min=0, help="UE measurement reports per cell and period")] = 10,
    start_hour: Annotated[float, typer.Option(min=0, max=23.75, help="hour of day the run starts at")] = 0.0,
    quiet: Annotated[bool, typer.Option(help="no live table")] = False,
    optimize: Annotated[bool, typer.Option(help="run the guarded CM loop: optimiser, guard, pushes, "
                                           "verification, roll back")] = True,
    optimize_from: Annotated[float | None, typer.Option(min=0, help="hours into the run of the first optimisation "
                             "round; default: once the drift detectors are armed and 4 h after the scenario's first "
                             "event")] = None,
    optimize_every: Annotated[float, typer.Option(min=0, help="hours between optimisation rounds; 0: one "
                              "round")] = 2.0,
    budget: Annotated[int, typer.Option(min=1, help="what-ifs per optimisation round")] = 200,
    api: Annotated[bool, typer.Option(help="serve the REST API and the dashboard while the demo runs")] = True,
    api_port: Annotated[int, typer.Option(min=0, max=65535, help="the API's port on 127.0.0.1 (0: a free one)")] = 0,
    keep_serving: Annotated[bool, typer.Option(help="after the run, keep serving the API and the dashboard "
                                                    "until Ctrl-C")] = False,
    sim2real: Annotated[bool, typer.Option(help="after the run, add the Sim2Real MAPE table of the four models at "
                                           "demo size to the report (about half a minute; `twin bench sim2real "
                                           "--json` gives the full comparison)")] = True,
) -> None:
    """Run the emulated network, the broker and the twin together; write a summary and a report.

    The REST API and the dashboard are served on 127.0.0.1 while it runs; the address and a viewer
    and an operator token (new each run, in DIR/api-tokens.toml) are printed at the start.
    """
    from replay.emulator import NetworkEmulator, default_start
    from twin.logs import configure

    configure("WARNING")
    sc = scenario_option(scenario)
    state = _check_out(out)
    console = Console()
    emulator = NetworkEmulator(sc, seed=seed, granularity_s=granularity, mr_per_cell=mr_per_cell,
                               start=default_start() + timedelta(hours=start_hour))
    periods = max(1, round(hours * 3600 / granularity))
    out.mkdir(parents=True, exist_ok=True)
    _fresh_state(state)
    warmup = demo_warmup_periods(emulator.timeline(), emulator.start, granularity)
    config = write_config(out / "twin.toml", state, emulator.topology_config(), emulator.public_model(),
                          drift_warmup_periods=warmup, guard=True)
    first = round(optimize_from * 3600 / granularity) if optimize_from is not None else cm_first_round(
        emulator.timeline(), emulator.start, granularity, warmup)
    rounds = cm_rounds(periods, first, round(optimize_every * 3600 / granularity),
                       load_settings(config).guard.observe_periods) if optimize else []
    name = str(getattr(emulator.scenario, "name", scenario))
    info = {"scenario": name, "seed": seed, "hours": hours, "speed": speed, "mrPerCell": mr_per_cell}
    events = [event_dict(e) for e in emulator.timeline()]
    interrupted = False
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(EmbeddedBroker())
        console.print(f"embedded broker on {broker.bootstrap_servers}; scenario {name}: "
                      f"{len(emulator.cells)} cells, {periods} periods of {granularity} s at "
                      f"{'max' if speed == 0 else f'{speed:g}x'} speed")
        metrics_port = _free_port() if api else None
        worker = Worker(config, broker.bootstrap_servers, out, metrics_port)
        stack.callback(worker.stop)
        if metrics_port is not None:
            running = _start_api(config, out, worker, api_port, console)
            stack.callback(running.stop)
            console.print(f"worker metrics: http://127.0.0.1:{metrics_port}/metrics (re-keying child: port "
                          f"{metrics_port + 1})", soft_wrap=True)
        run = LiveRun(emulator, broker.bootstrap_servers, periods, granularity, speed=speed)
        cm = CmLoop(emulator, config, broker.bootstrap_servers, rounds, budget) if optimize else None
        try:
            interrupted = asyncio.run(drive(run, worker, name, console, quiet, cm))
        except KeyboardInterrupt:
            interrupted = True
        code = worker.stop()
        if code not in (0, None):
            console.print(f"[yellow]worker exited with code {code}; see {out / 'worker.log'}[/]")
        clusters = CheckpointStore(state / GROUP).load_all()
        alerts, _ = asyncio.run(read_alerts(broker.bootstrap_servers))
    console.print()
    s2r: dict[str, Any] | None = None
    if sim2real and not interrupted:
        console.print(f"Sim2Real table at demo size ({SIM2REAL_DEMO_SIZES['twinSamples']} twin samples, "
                      f"{SIM2REAL_DEMO_SIZES['trainDays']} + {SIM2REAL_DEMO_SIZES['testDays']} days of real data; "
                      "--no-sim2real skips it) ...")
        try:
            s2r = demo_sim2real(name, seed)
        except KeyboardInterrupt:
            interrupted = True
            s2r = {"error": "interrupted"}
        if "error" in s2r:
            console.print(f"[yellow]Sim2Real table failed (the report shows it): {s2r['error']}[/]")
    summary = finish(run, clusters, {**info, "interrupted": interrupted}, out, events, alerts,
                     cm.summary() if cm is not None else None, s2r)
    pm, pred = summary["pm"], summary["predictions"]
    console.print(f"{summary['periods']} periods, {len(summary['cells'])} cells: PM {pm['inMirror']}/"
                  f"{pm['published']} in the mirror, predictions {pred['inMirror']}/{pred['expected']}; "
                  f"{summary['simSecondsPerWallSecond']} sim s per wall s, latency p50 "
                  f"{summary['latencyMsP50']} ms p99 {summary['latencyMsP99']} ms")
    for r in summary["resyncs"]:
        change = {c: {k: round(v, 2) for k, v in per.items()} for c, per in (r["change"] or {}).items()}
        console.print(f"resync {r['status']}: cells {', '.join(r['cells'])}, fitted change {change}, error on its "
                      f"evidence {r['errorBefore']} -> {r['errorAfter']}")
    for cid, f in (summary.get("fidelity") or {}).items():
        values = [r["value"] for r in f["records"]]
        ue = [r for r in f["records"] if r.get("ueValue") is not None]
        line = f"DT-BSM {cid}: cell-period {min(values):.2f}-{max(values):.2f} (tau {f['tau']:.3g})"
        if ue:
            peak = max(ue, key=lambda r: r["ueValue"])
            at = datetime.fromtimestamp(peak["periodEnd"], UTC).strftime("%H:%M")
            line += (f"; UE-level {min(r['ueValue'] for r in ue):.2f}-{peak['ueValue']:.2f} (peak {at}, "
                     f"{peak['ueWorstCell']}), latest {ue[-1]['ueValue']:.2f}")
        console.print(line)
    if "cm" in summary:
        c, thp = summary["cm"]["counts"], summary["cm"]["throughput"]
        truth = thp.get("truth") or {}
        console.print(f"CM loop: {len(summary['cm']['rounds'])} optimisation rounds, {c['proposed']} changes proposed, "
                      f"{c['guardRejected']} refused by the guard, {c['pushed']} pushed, {c['confirmed']} confirmed, "
                      f"{c['rolledBack']} rolled back, {c['observing']} still observed; real mean {THP} "
                      f"{thp['realBefore']} -> {thp['realAfter']} kbit/s; on the hidden truth, like for like over the "
                      f"run: mean {truth.get('runThpGainPct')} %, objective {truth.get('runObjectiveGainPct')} %")
        for row in summary["cm"]["changes"]:
            console.print(f"  {row['state']:<12} {row['cell']} {row['attribute']} {row['from']} -> {row['to']} "
                          f"(predicted {row['predictedGainPct']} %): {(row['reason'] or '')[:110]}")
    if s2r is not None and "error" not in s2r:
        console.print(f"Sim2Real, demo size, {s2r['seconds']} s: MAPE % in band / out of band / 10 % data, "
                      "Kendall tau: " + "; ".join(
                          f"{m} {s2r['mape'][m]:.1f} / {s2r['mape_out_of_band'][m]:.1f} / {s2r['mape_10pct'][m]:.1f}"
                          f", {s2r['kendall_tau'][m]:.2f}" for m in SIM2REAL_MODELS))
    active = sum(a["cleared"] is None for a in summary["alerts"])
    console.print(f"alerts: {len(summary['alerts'])} ({active} active; `twin alerts list` on a live broker)")
    console.print(f"wrote {out / 'summary.json'} and {out / 'report.html'}"
                  + (" (interrupted)" if interrupted else ""))
    if api and keep_serving and not interrupted:
        running = _start_api(config, out, None, api_port, console)
        console.print("serving the finished run's state; Ctrl-C stops")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(1.0)
        running.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_api(config: Path, out: Path, worker: Worker | None, port: int, console: Console) -> Any:
    """The REST API and the dashboard over the demo's state, in a thread of this process; prints the
    address and fresh tokens (also written to ``out/api-tokens.toml``, readable by the owner only)."""
    from twin.api.app import create_app
    from twin.api.auth import generate_tokens, load_tokens
    from twin.api.server import start_in_thread
    from twin.api.state import ApiState

    settings = load_settings(config)
    tokens_file = out / "api-tokens.toml"
    tokens = generate_tokens(tokens_file)
    stats = [worker.stats_file, worker.rekey_stats] if worker is not None else []
    state = ApiState(settings, settings.state_dir / GROUP, stats)
    running = start_in_thread(create_app(state, load_tokens(tokens_file, environ={})), port=port)
    console.print(f"dashboard and API: {running.url}/  (API docs {running.url}/api/v1/docs)", soft_wrap=True)
    console.print(f"  viewer token:   {tokens['viewer']}", soft_wrap=True)
    console.print(f"  operator token: {tokens['operator']}", soft_wrap=True)
    console.print(f"  (tokens also in {tokens_file})", soft_wrap=True)
    return running
