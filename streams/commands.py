"""CLI commands contributed by the streams layer: the broker, the worker and the ingest benchmark."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import structlog
import typer

from streams.broker import BrokerError, EmbeddedBroker
from streams.process import spawn_sibling, stop_child
from streams.start_barrier import StartBarrier
from twin import topics
from twin.config import TwinSettings, load_settings
from twin.logs import configure

if TYPE_CHECKING:
    from streams.worker import IngestWorker

__all__ = ["BROKER_LOST_EXIT_CODE", "Stage", "broker_command", "register", "run_command"]

log = structlog.get_logger(__name__)

BROKER_LOST_EXIT_CODE = 3  # the broker did not acknowledge sends for kafka.broker_loss_timeout_s


def _settings(config: Path | None) -> TwinSettings:
    """The command's settings; their [kafka] TLS/SASL apply to every Kafka client of the process."""
    from streams.kafka_security import configure as configure_kafka_security

    try:
        settings = load_settings(config)
        configure_kafka_security(settings.kafka)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    return settings


def broker_command(
    port: Annotated[int | None, typer.Option(help="port on 127.0.0.1; default: a free one")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings file")] = None,
) -> None:
    """Run the embedded Kafka-compatible broker (Tansu) in the foreground until Ctrl-C."""
    settings = _settings(config)
    configure(settings.log_level)
    try:
        broker = EmbeddedBroker(settings.broker.binary, settings.broker.host, port or settings.broker.port,
                                settings.broker.start_timeout_s)
        broker.start()
    except BrokerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"bootstrap_servers={broker.bootstrap_servers}", err=False)
    stop = {"flag": False}

    def _stop(*_: object) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stop["flag"] and broker.process is not None and broker.process.poll() is None:
            # A signal that arrives during the wait is consumed by it (its handler does not run).
            if signal.sigtimedwait([signal.SIGINT, signal.SIGTERM], 0.5) is not None:
                break
    finally:
        broker.stop()


class Stage(StrEnum):
    all = "all"
    rekey = "rekey"
    mirror = "mirror"


def run_command(
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings file")] = None,
    bootstrap: Annotated[str | None, typer.Option(help="Kafka bootstrap servers; overrides the config")] = None,
    name: Annotated[str, typer.Option(help="worker name (logs, checkpoints)")] = "worker",
    stats_file: Annotated[Path | None, typer.Option(help="write worker counters here twice a second")] = None,
    stage: Annotated[Stage, typer.Option(help="run only one stage (the re-keying or the mirror stage)")] = Stage.all,
    processes: Annotated[int, typer.Option(
        min=1, max=2, help="2: a child process shares the re-keying (validation) work")] = 2,
    sibling_fds: Annotated[str | None, typer.Option(
        hidden=True, help="READ,WRITE pipe descriptors of the start barrier (set for the child)")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="serve Prometheus metrics on 127.0.0.1:PORT (the re-keying child on PORT+1); docs/operations.md")] = None,
    metrics_host: Annotated[str, typer.Option(help="address the metrics are served on")] = "127.0.0.1",
) -> None:
    """Run the ingest worker: validate PM/CM/MR telemetry into the mirror (at least once, idempotent).

    By default a child process joins this one in the re-keying stage's consumer group, so the
    validation work, the heaviest, is split over two cores; this process also runs the mirror stage
    and applies what it re-keys itself without the round trip through the broker. The child dies
    with this process, also on ``kill -9``.
    """
    settings = _settings(config)
    configure(settings.log_level)
    servers = bootstrap or settings.kafka.bootstrap_servers
    broker: EmbeddedBroker | None = None
    with contextlib.ExitStack() as stack:
        if not servers:
            broker = stack.enter_context(EmbeddedBroker(settings.broker.binary, settings.broker.host,
                                                        settings.broker.port, settings.broker.start_timeout_s))
            servers = broker.bootstrap_servers
            typer.echo(f"embedded broker: bootstrap_servers={servers}", err=True)
        stages: tuple[str, ...] = ("rekey", "mirror") if stage is Stage.all else (stage.value,)
        sibling = StartBarrier.from_arg(sibling_fds) if sibling_fds else None
        if stage is Stage.all and processes == 2:
            child_args = ["run", "--bootstrap", servers, "--name", f"{name}-rekey", "--stage", "rekey"]
            if config is not None:
                child_args += ["--config", str(config)]
            if stats_file is not None:
                child_args += ["--stats-file", str(stats_file.with_name(stats_file.name + ".rekey"))]
            if metrics_port is not None:
                child_args += ["--metrics-port", str(metrics_port + 1), "--metrics-host", metrics_host]
            # the embedded broker speaks PLAINTEXT, whatever [kafka] security_protocol says
            # through the run command alone (streams.run_cli): the full CLI's command groups would load
            # the prediction path into a process that only re-keys
            child, sibling = spawn_sibling(child_args, env={"TWIN_KAFKA__SECURITY_PROTOCOL": "PLAINTEXT"}
                                           if broker is not None else None, module="streams.run_cli")
            stack.callback(stop_child, child)
        else:
            child = None
        if metrics_port is not None:
            from twin.metrics import serve

            try:
                server, _ = serve(metrics_port, metrics_host)
                stack.callback(server.shutdown)
            except OSError as exc:  # a taken port must not stop the worker: it runs on without its endpoint
                typer.echo(f"warning: cannot serve metrics on {metrics_host}:{metrics_port} ({exc.strerror}); "
                           "running without them", err=True)
        code = asyncio.run(_run_worker(settings, servers, name, stats_file, stages, child, sibling, broker))
    raise typer.Exit(code)


async def keep_broker_alive(broker: EmbeddedBroker, worker: IngestWorker, stop: asyncio.Event,
                            interval_s: float = 0.5, max_restarts: int = 5) -> None:
    """Restart the embedded broker (the runtime owns it) when it dies: same port, empty, a new
    cluster id. The workers' clients reconnect; the mirror stage sees the new incarnation and reads
    the new log from its start (``MirrorStage.acquire``). Gives up, stopping the worker, after
    ``max_restarts`` failed restarts in a row."""
    from streams.kafka_io import ensure_topics

    failures = 0
    while not stop.is_set():
        if not broker.alive():
            code = broker.process.returncode if broker.process is not None else None
            log.error("broker.died", exit_code=code, restarts=worker.stats.broker_restarts)
            try:
                await asyncio.to_thread(broker.restart)
                internal = topics.ingest_by_cluster(worker.settings.kafka.group_id)
                await ensure_topics(broker.bootstrap_servers,
                                    (*topics.INGEST_TOPICS, internal, topics.DLQ, topics.PREDICTIONS, topics.ALERTS,
                                     topics.RESYNCS, topics.FIDELITY),
                                    worker.settings.kafka.partitions)
            except Exception as exc:
                failures += 1
                log.error("broker.restart_failed", error=f"{type(exc).__name__}: {exc}", attempt=failures)
                if failures >= max_restarts:
                    typer.echo(f"error: the embedded broker died and could not be restarted ({exc})", err=True)
                    stop.set()
                    return
            else:
                failures = 0
                worker.stats.broker_restarts += 1
                log.warning("broker.restarted", bootstrap=broker.bootstrap_servers, cluster_id=broker.cluster_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


async def _run_worker(settings: TwinSettings, servers: str, name: str, stats_file: Path | None,
                      stages: tuple[str, ...], child: subprocess.Popen[bytes] | None,
                      sibling: StartBarrier | None, broker: EmbeddedBroker | None = None) -> int:
    from aiokafka.errors import KafkaConnectionError

    from streams.kafka_io import BrokerUnavailableError
    from streams.worker import IngestWorker

    worker = IngestWorker(settings, servers, name, stats_file, stages, sibling=sibling)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    failed = {"code": 0}

    async def watch_child() -> None:
        while child is not None and not stop.is_set():
            if child.poll() is not None:
                typer.echo(f"error: the re-keying stage exited with code {child.returncode}", err=True)
                failed["code"] = child.returncode if child.returncode > 0 else 1
                stop.set()
            await asyncio.sleep(0.2)

    watcher = asyncio.create_task(watch_child())
    keeper = asyncio.create_task(keep_broker_alive(broker, worker, stop)) if broker is not None else None
    try:
        await worker.run(stop)
    except (BrokerUnavailableError, KafkaConnectionError) as exc:
        what = str(exc) if isinstance(exc, BrokerUnavailableError) else f"cannot reach the broker at {servers} ({exc})"
        typer.echo(f"error: {what}; exiting with code {BROKER_LOST_EXIT_CODE} so that the supervisor restarts the "
                   "worker (it resumes from its checkpoints)", err=True)
        failed["code"] = BROKER_LOST_EXIT_CODE
    finally:
        stop.set()
        await watcher
        if keeper is not None:
            await keeper
    return failed["code"]


def cm_serve_command(
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings ([kafka], [cm], [guard])")] = None,
    state_dir: Annotated[Path | None, typer.Option(help="the worker's checkpoint folder (default: from settings)")]
    = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="serve Prometheus metrics on 127.0.0.1:PORT (docs/operations.md)")] = None,
) -> None:
    """Serve CM change requests: guard, ledger, adapter push, verification, results and alerts.

    Needs a broker (kafka.bootstrap_servers in the config, or TWIN_KAFKA__BOOTSTRAP_SERVERS) and the
    worker's checkpointed mirror; the adapter is cm.adapter with cm.adapter_options. Ctrl-C stops it.
    """
    from streams.cm_service import CmService
    from twin.ports import open_adapter

    settings = _settings(config)
    servers = settings.kafka.bootstrap_servers
    if not servers:
        typer.echo("error: twin cm serve needs [kafka] bootstrap_servers (or TWIN_KAFKA__BOOTSTRAP_SERVERS)",
                   err=True)
        raise typer.Exit(2)
    if settings.cm.adapter == "emulator":
        typer.echo("error: [cm] adapter 'emulator' drives an emulated network inside one process (twin demo, the "
                   "library) and cannot be served: set [cm] adapter to netconf, provmns or bulkcm", err=True)
        raise typer.Exit(2)
    try:
        adapter = open_adapter(settings.cm.adapter, **settings.cm.adapter_options)
    except (LookupError, TypeError, ValueError) as exc:
        typer.echo(f"error: [cm] adapter {settings.cm.adapter!r}: {exc}", err=True)
        raise typer.Exit(2) from exc
    ledger = settings.cm.ledger_url(settings.state_dir)
    try:
        service = CmService(settings, servers, state_dir, adapter=adapter)
    except Exception as exc:  # the ledger: a URL of no known kind, not a ledger, not reachable; one line
        typer.echo(f"error: [cm] ledger {ledger!r} cannot be opened: {exc}", err=True)
        raise typer.Exit(2 if isinstance(exc, ValueError) else 1) from exc

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await service.run(stop)

    if metrics_port is not None:
        from twin.metrics import serve

        server, _ = serve(metrics_port)
    asyncio.run(main())
    if metrics_port is not None:
        server.shutdown()


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the streams commands to the ``twin`` CLI ``app`` and the benchmarks to its ``bench`` group.

    The demo and the benchmarks import most of the runtime: they are deferred, imported only when
    the command line names them (``twin.deferred_commands``)."""
    from streams.alerts import alerts_list_command, alerts_redeliver_command
    from twin.deferred_commands import defer

    if not any(g.name == "alerts" for g in app.registered_groups):
        alerts_app = typer.Typer(help="The twin's alerts on ran.alerts.v1.", no_args_is_help=True)
        alerts_app.command("list")(alerts_list_command)
        alerts_app.command("redeliver")(alerts_redeliver_command)
        app.add_typer(alerts_app, name="alerts")
    defer(app, "demo", "streams.demo:demo_command")
    for name, command in (("broker", broker_command), ("run", run_command)):
        if not any(c.name == name for c in app.registered_commands):
            app.command(name)(command)
    for group in app.registered_groups:  # `twin cm` is the core's group; the service needs Kafka, so it is here
        cm = group.typer_instance
        if group.name == "cm" and cm is not None and not any(c.name == "serve" for c in cm.registered_commands):
            cm.command("serve")(cm_serve_command)
    defer(bench_app, "ingest", "streams.bench:bench_ingest_command")
    defer(bench_app, "e2e", "streams.bench_e2e:bench_e2e_command")
    defer(bench_app, "scale", "streams.bench_scale:bench_scale_command")
    defer(bench_app, "soak", "streams.bench_soak:bench_soak_command")
