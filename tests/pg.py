"""A real PostgreSQL 15 server (Debian's packages) in a temp dir on a loopback port, for the tests.

initdb refuses to run as root, so when the tests run as root the server runs as the ``postgres``
system user the Debian package creates. Trust authentication on 127.0.0.1 only; stopped (fast
shutdown) and its directory removed when the context exits.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["running_postgres"]

_BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), Path("/usr/local/bin")]


def _binary(name: str) -> str:
    for d in _BIN_DIRS:
        if (d / name).exists():
            return str(d / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (Debian package postgresql-15)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_postgres() -> Iterator[str]:
    """Yields a ``postgresql://`` URL of a fresh server with an empty database ``twin``."""
    root = Path(tempfile.mkdtemp(prefix="twin-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run(_binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        run(_binary("pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "-o",
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        run(_binary("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c", "CREATE DATABASE twin")
        yield url.rsplit("/", 1)[0] + "/twin"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_user, _binary("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                           capture_output=True)
        for _ in range(50):
            if not (data / "postmaster.pid").exists():
                break
            time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)
