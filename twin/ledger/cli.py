"""``twin cm list|show|approve|reject|rollback|kill-switch``: the operator's hands on the ledger.

The commands write decisions into the ledger (APPROVED, DENIED, ROLLING_BACK, the kill switch);
the worker's change runner acts on them at its next tick, after the guard checks the change again
(an approval does not bypass the guard). They work on the ledger a worker uses (``[cm] ledger``
of the config, default ``<state_dir>/cm-ledger.sqlite``) or on ``--ledger URL``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from twin.ledger.states import State
from twin.ledger.store import Ledger, open_ledger, sqlite_file

__all__ = ["cm_app"]

cm_app = typer.Typer(help="CM changes: list, show, approve, reject, roll back; the kill switch.",
                     no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings of the worker")]
LedgerOpt = Annotated[str | None, typer.Option("--ledger", help="ledger URL (postgresql://... or a SQLite file); "
                                               "default: [cm] ledger of the config")]
ByOpt = Annotated[str, typer.Option("--by", help="who decides (recorded in the ledger)")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _open(config: Path | None, ledger: str | None) -> Ledger:
    from twin.config import load_settings

    try:
        settings = load_settings(config)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    url = ledger or settings.cm.ledger_url(settings.state_dir)
    path = sqlite_file(url)
    if path is not None and not path.is_file():  # opening would create an empty one
        raise _fail(f"no ledger at {url} (is the worker's state_dir right? or pass --ledger)", 1)
    try:
        return open_ledger(url)
    except ValueError as exc:  # a URL of no known kind
        raise _fail(f"--ledger / [cm] ledger: {exc}") from exc
    except Exception as exc:  # sqlite3's or psycopg's: not a ledger, not reachable; one line, no traceback
        raise _fail(f"ledger {url!r} cannot be opened: {exc}", 1) from exc


def _states(values: list[str] | None) -> list[State] | None:
    if not values:
        return None
    out = []
    for v in values:
        try:
            out.append(State(v.upper()))
        except ValueError as exc:
            names = ", ".join(s.value for s in State)
            raise _fail(f"--state {v!r} is not a change state ({names})") from exc
    return out


@cm_app.command("list")
def cm_list(config: ConfigOpt = None, ledger: LedgerOpt = None,
            state: Annotated[list[str] | None, typer.Option("--state", help="only changes in this state")] = None,
            cell: Annotated[str | None, typer.Option("--cell", help="only this cell key")] = None,
            as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False) -> None:
    """List changes, oldest first."""
    led = _open(config, ledger)
    views = led.changes(_states(state), cell_key=cell)
    if as_json:
        for v in views:
            typer.echo(json.dumps(v.as_json(), sort_keys=True, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("changeId", "cell", "attribute", "from", "to", "state", "decidedBy", "reason")
    for v in views:
        r = v.request
        table.add_row(r.change_id[:8], r.cell_key, f"{r.class_}.{r.attribute}", repr(r.from_), repr(r.to),
                      v.state.value, v.decided_by or "", (v.reason or "")[:80])
    Console().print(table)


@cm_app.command("show")
def cm_show(change_id: Annotated[str, typer.Argument(help="the change id")], config: ConfigOpt = None,
            ledger: LedgerOpt = None) -> None:
    """One change with its request and every recorded step (JSON)."""
    led = _open(config, ledger)
    try:
        view = led.get(change_id)
    except KeyError as exc:
        raise _fail(f"change {change_id!r} is not in the ledger", 1) from exc
    out = view.as_json()
    out["request"] = view.request.model_dump(mode="json", by_alias=True)
    out["history"] = [{"step": e.step, "state": e.state.value, "at": e.at.isoformat(), "actor": e.actor,
                       "recordedAt": e.recorded_at.isoformat(), "detail": e.detail} for e in view.history]
    typer.echo(json.dumps(out, indent=2, sort_keys=True, default=str))


def _transport(config: Path | None) -> Any:
    """The configured adapter's transport (what a rejection's result names); None when it has none."""
    from twin.config import load_settings
    from twin.ports import adapter_transport

    try:
        return adapter_transport(load_settings(config).cm.adapter)
    except (LookupError, AttributeError, ValueError):
        return None


def _decide(change_id: str, config: Path | None, ledger: str | None, action: str, by: str, reason: str) -> None:
    from twin.ledger.decisions import DecisionError, decide

    led = _open(config, ledger)
    try:
        view = decide(led, change_id, action, by=by, at=datetime.now(UTC), reason=reason,
                      transport=_transport(config) if action == "reject" else None)
    except DecisionError as exc:
        raise _fail(str(exc), 1) from exc
    typer.echo(f"{change_id}: {view.state.value} by {by} (the worker acts on it at its next tick)")


@cm_app.command("approve")
def cm_approve(change_id: Annotated[str, typer.Argument()], by: ByOpt, config: ConfigOpt = None,
               ledger: LedgerOpt = None) -> None:
    """Approve a change waiting for approval; the worker pushes it after the guard checks it again."""
    _decide(change_id, config, ledger, "approve", by, f"approved by {by}")


@cm_app.command("reject")
def cm_reject(change_id: Annotated[str, typer.Argument()], by: ByOpt,
              reason: Annotated[str, typer.Option("--reason", help="why (recorded)")] = "",
              config: ConfigOpt = None, ledger: LedgerOpt = None) -> None:
    """Reject a change waiting for approval."""
    _decide(change_id, config, ledger, "reject", by, reason or f"rejected by {by}")


@cm_app.command("rollback")
def cm_rollback(change_id: Annotated[str, typer.Argument()], by: ByOpt,
                reason: Annotated[str, typer.Option("--reason", help="why (recorded)")] = "",
                config: ConfigOpt = None, ledger: LedgerOpt = None) -> None:
    """Roll back an applied change (observing or confirmed): the worker restores the old value."""
    _decide(change_id, config, ledger, "rollback", by, reason or f"rolled back by {by}")


@cm_app.command("kill-switch")
def cm_kill_switch(value: Annotated[str | None, typer.Argument(help="on or off; omitted: show it")] = None,
                   by: Annotated[str, typer.Option("--by", help="who flips it")] = "cli",
                   config: ConfigOpt = None, ledger: LedgerOpt = None) -> None:
    """Show or flip the global kill switch: while on, the guard refuses every change."""
    led = _open(config, ledger)
    if value is None:
        typer.echo("on" if led.control("kill_switch", False) else "off")
        return
    if value.lower() not in ("on", "off"):
        raise _fail(f"kill-switch value {value!r} must be 'on' or 'off'")
    from twin.ledger.decisions import set_kill_switch

    set_kill_switch(led, value.lower() == "on", by=by, at=datetime.now(UTC))
    typer.echo(f"kill switch {value.lower()} (by {by})")


@cm_app.command("propose")
def cm_propose(
    config: ConfigOpt = None,
    state_dir: Annotated[Path | None, typer.Option(help="the worker's checkpoint folder (default: from settings)")]
    = None,
    cluster: Annotated[list[str] | None, typer.Option("--cluster", help="only this cluster (repeat)")] = None,
    budget: Annotated[int, typer.Option(min=1, help="what-ifs per cluster")] = 300,
    max_cells: Annotated[int | None, typer.Option(min=1, help="cells changed at once (default: the guard's "
                                                  "max_cells_per_cluster)")] = None,
    objective: Annotated[str, typer.Option(help="throughput or energy")] = "throughput",
    publish: Annotated[bool, typer.Option("--publish", help="send the proposals to ran.cm.change.requests.v1 "
                                          "([kafka] bootstrap_servers)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one change request per line (wire form)")] = False,
) -> None:
    """Search CM changes on a worker's mirror with the twin and propose them, ranked.

    The proposals are change requests (requester ``optimizer``) carrying the predicted gain, the
    twin version, the DT-BSM and the calibrated error at decision time; published, they reach
    whatever runs the guard and the ledger. Nothing is applied here.
    """
    from twin import topics
    from twin.config import load_settings
    from twin.digital_twin import Twin
    from twin.errors import NoDataError
    from twin.optimize import ObjectiveSettings, Optimizer

    if objective not in ("throughput", "energy"):
        raise _fail(f"--objective {objective!r} must be 'throughput' or 'energy'")
    try:
        settings = load_settings(config)
        twin = Twin.from_state(state_dir, settings)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc), 1) from exc
    names = list(cluster or twin.clusters)
    unknown = [c for c in names if c not in twin.clusters]
    if unknown:
        raise _fail(f"--cluster {unknown[0]!r} is not in the mirror (clusters: {', '.join(twin.clusters)})", 1)
    opt = Optimizer(twin, settings.guard, ObjectiveSettings.model_validate({"kind": objective}))
    requests: list[Any] = []
    skipped: list[str] = []
    for name in names:
        try:
            latest = twin.predict(name)
        except NoDataError:  # a cluster without PM yet: reported, the others still searched
            typer.echo(f"{name}: skipped, no PM period mirrored yet", err=True)
            skipped.append(name)
            continue
        verdict = twin.trust(name)
        result = opt.search(name, budget=budget, period_end=latest.period_end,
                            now=datetime.fromtimestamp(latest.period_end, UTC), fidelity=verdict.value,
                            max_changes=max_cells)
        requests += [p.request for p in result.proposals]
        if not as_json:
            typer.echo(f"{name}: {len(result.proposals)} proposal(s), predicted {result.gain_pct:+.2f} % "
                       f"({result.whatifs} what-ifs, {result.whatifs_per_s:.0f}/s); trusted: {verdict.trusted}")
            for p in result.proposals:
                typer.echo(f"  {p.rank}. {p.candidate.label()}  {p.marginal_gain_pct:+.2f} %")
    if skipped and len(skipped) == len(names):
        raise _fail(f"no PM period mirrored yet in {', '.join(skipped)}: nothing to search", 1)
    if as_json:
        for r in requests:
            typer.echo(r.model_dump_json(by_alias=True))
    if publish:
        _publish(settings, [(topics.CHANGE_REQUESTS, r.cell_key, r.model_dump_json(by_alias=True)) for r in requests])
        typer.echo(f"published {len(requests)} request(s) to {topics.CHANGE_REQUESTS}", err=True)


def _publish(settings: Any, records: list[tuple[str, str, str]]) -> None:
    import asyncio

    from twin.ports import OutRecord, open_sink

    servers = settings.kafka.bootstrap_servers
    if not servers:
        raise _fail("--publish needs [kafka] bootstrap_servers (or TWIN_KAFKA__BOOTSTRAP_SERVERS)")

    async def send() -> None:
        sink = open_sink("kafka", bootstrap_servers=servers, ensure=sorted({t for t, _, _ in records}),
                         partitions=settings.kafka.partitions, kafka=settings.kafka)  # its TLS/SASL settings
        await sink.start()
        try:
            await sink.send_many([OutRecord(t, k.encode(), v.encode()) for t, k, v in records])
            await sink.flush()
        finally:
            await sink.stop()

    asyncio.run(send())
