"""Child processes that never outlive the runtime, even when it is killed with ``kill -9``."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from streams.start_barrier import StartBarrier

__all__ = ["die_with_parent", "spawn_sibling", "spawn_twin", "stop_child"]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn``: the kernel sends SIGKILL to the child when its parent dies; own process group
    so a terminal's Ctrl-C reaches the parent, which then stops the child in order."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setpgrp()


def spawn_twin(args: Sequence[str], log_file: Path | None = None,
               env: dict[str, str] | None = None, pass_fds: Sequence[int] = (),
               module: str = "twin") -> subprocess.Popen[bytes]:
    """Run ``python -m twin ARGS`` (or another ``module``'s command line) as a child bound to this
    process's life (``env`` adds variables, ``pass_fds`` are inherited, e.g. a start barrier's pipes)."""
    out = open(log_file, "ab") if log_file else None  # noqa: SIM115 - owned by the child
    return subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.DEVNULL,
                            stdout=out, stderr=out, preexec_fn=die_with_parent,
                            env={**os.environ, **(env or {})}, pass_fds=tuple(pass_fds))


def spawn_sibling(args: Sequence[str], env: dict[str, str] | None = None, module: str = "twin"
                  ) -> tuple[subprocess.Popen[bytes], StartBarrier]:
    """``spawn_twin`` with a start barrier: ``args`` gets ``--sibling-fds`` for the child's end, and
    this process's end is returned with the child."""
    barrier, child_fds = StartBarrier.pair()
    try:
        child = spawn_twin([*args, "--sibling-fds", ",".join(map(str, child_fds))], env=env, pass_fds=child_fds,
                           module=module)
    except BaseException:
        barrier.close()
        raise
    finally:
        for fd in child_fds:
            os.close(fd)
    return child, barrier


def stop_child(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)
    return process.returncode
