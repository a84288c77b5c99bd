"""``twin api``: serve a worker's state over the REST API (no broker needed: it reads the state)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer

from twin.api.auth import ENV_OPERATOR, ENV_VIEWER

__all__ = ["api_command"]


def api_command(
    state_dir: Annotated[Path | None, typer.Option("--state-dir", help="the worker's checkpoint folder "
                                                   "(<state_dir>/<group_id>) or its state_dir; default: from the "
                                                   "config")] = None,
    tokens: Annotated[Path | None, typer.Option("--tokens", help="TOML file of tokens tables, each with name, role "
                                                "(viewer or operator) and token (16+ characters)")] = None,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port (0: a free one)")] = 8080,
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings of the worker (topology, "
                                                "predict, guard, cm.ledger)")] = None,
    stats_file: Annotated[list[Path] | None, typer.Option(
        "--stats-file", help="the worker's twin run --stats-file (repeat for several); readiness reads them. "
        "Default: worker-stats.json in the state folder or its parent")] = None,
    ledger: Annotated[str | None, typer.Option("--ledger", help="CM ledger URL (default: cm.ledger of the "
                                               "config)")] = None,
    max_lag: Annotated[int, typer.Option(min=0, help="records behind above which the worker is not ready")] = 10_000,
) -> None:
    r"""Serve a worker's state over the REST API (/api/v1/..., OpenAPI at /api/v1/openapi.json, /metrics).

    Tokens: a TOML file (--tokens FILE) of entries such as

        \[\[tokens]]
        name = "noc"
        role = "operator"
        token = "a long random secret"

    and/or the environment variables TWIN_API_VIEWER_TOKENS and TWIN_API_OPERATOR_TOKENS
    (comma-separated). Clients send `Authorization: Bearer <token>`. Viewers read and run what-ifs;
    operators also approve, reject and roll back CM changes and flip the kill switch. Tokens are
    compared in constant time and never logged.
    """
    import uvicorn

    from twin.api.app import create_app
    from twin.api.auth import load_tokens
    from twin.api.server import config as server_config
    from twin.api.state import ApiState, LedgerUnavailable
    from twin.config import load_settings
    from twin.logs import configure

    try:
        settings = load_settings(config)
        store = load_tokens(tokens)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    configure(settings.log_level)
    state = ApiState(settings, state_dir, [], ledger, max_lag=max_lag)
    near = (state.directory, state.directory.parent, state.directory.parent.parent)  # twin demo: DIR/state/<group>
    if ledger is None and config is None:  # the ledger beside the worker's state, as twin demo writes it
        found = [d / "cm-ledger.sqlite" for d in near if (d / "cm-ledger.sqlite").exists()]
        state.ledger_url = str(found[0]) if found else state.ledger_url
    try:
        state.check_ledger()
    except LedgerUnavailable as exc:
        setting = "--ledger" if ledger is not None else "[cm] ledger" + ("" if settings.cm.ledger else " (default)")
        typer.echo(f"error: {setting} {state.ledger_url!r}: {exc.problem}", err=True)
        raise typer.Exit(2) from exc
    files = list(stats_file or [])
    if not files:
        files = [p for d in near if (p := d / "worker-stats.json").exists()][:1]
        files += [p.with_name(p.name + ".rekey") for p in files if p.with_name(p.name + ".rekey").exists()]
    state.stats_files = files
    if config is None:
        typer.echo("note: without --config the twin predicts with the default [predict] settings; pass the "
                   "worker's config so what-ifs match its predictions", err=True)
    app = create_app(state, store)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: without, a keep-alive request waits ~40 ms on a delayed ACK
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        typer.echo(f"error: --host {host} --port {port}: {exc.strerror}", err=True)
        raise typer.Exit(2) from exc
    port = sock.getsockname()[1]
    typer.echo(f"twin api on http://{host}:{port} serving {state.directory} ({len(store)} tokens; "
               f"env {ENV_VIEWER} / {ENV_OPERATOR} also read)", err=True)
    uvicorn.Server(server_config(app, host, port)).run(sockets=[sock])
