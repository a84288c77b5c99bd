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
from typing import Annotated

import typer

from twin.ledger.states import State
from twin.ledger.store import Ledger, LedgerError, open_ledger

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
    if "://" not in url and url != ":memory:" and not Path(url).exists():
        raise _fail(f"no ledger at {url} (is the worker's state_dir right? or pass --ledger)", 1)
    return open_ledger(url)


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


def _decide(change_id: str, config: Path | None, ledger: str | None, needs: set[State], state: State, by: str,
            reason: str) -> None:
    led = _open(config, ledger)
    try:
        view = led.get(change_id)
    except KeyError as exc:
        raise _fail(f"change {change_id!r} is not in the ledger", 1) from exc
    if view.state not in needs:
        wanted = ", ".join(sorted(s.value for s in needs))
        raise _fail(f"change {change_id} is {view.state.value}; this needs {wanted}", 1)
    try:
        led.append(change_id, state, at=datetime.now(UTC), actor=by, detail={"reason": reason})
    except LedgerError as exc:
        raise _fail(str(exc), 1) from exc
    typer.echo(f"{change_id}: {state.value} by {by} (the worker acts on it at its next tick)")


@cm_app.command("approve")
def cm_approve(change_id: Annotated[str, typer.Argument()], by: ByOpt, config: ConfigOpt = None,
               ledger: LedgerOpt = None) -> None:
    """Approve a change waiting for approval; the worker pushes it after the guard checks it again."""
    _decide(change_id, config, ledger, {State.PENDING_APPROVAL}, State.APPROVED, by, f"approved by {by}")


@cm_app.command("reject")
def cm_reject(change_id: Annotated[str, typer.Argument()], by: ByOpt,
              reason: Annotated[str, typer.Option("--reason", help="why (recorded)")] = "",
              config: ConfigOpt = None, ledger: LedgerOpt = None) -> None:
    """Reject a change waiting for approval."""
    _decide(change_id, config, ledger, {State.PENDING_APPROVAL}, State.DENIED, by, reason or f"rejected by {by}")


@cm_app.command("rollback")
def cm_rollback(change_id: Annotated[str, typer.Argument()], by: ByOpt,
                reason: Annotated[str, typer.Option("--reason", help="why (recorded)")] = "",
                config: ConfigOpt = None, ledger: LedgerOpt = None) -> None:
    """Roll back an applied change (observing or confirmed): the worker restores the old value."""
    _decide(change_id, config, ledger, {State.APPLIED, State.OBSERVING, State.CONFIRMED}, State.ROLLING_BACK, by,
            reason or f"rolled back by {by}")


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
    led.set_control("kill_switch", value.lower() == "on", by, datetime.now(UTC))
    typer.echo(f"kill switch {value.lower()} (by {by})")
