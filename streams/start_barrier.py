"""A start barrier between the processes of one worker, over two pipes.

The processes of a worker join the re-keying consumer group a moment apart, and a Kafka group
hands a follower its assignment later than the leader (on Tansu about 0.4 s). Whoever starts first
would work alone for that long on a backlog. So each process, once it holds its share of the
partitions, says so on its pipe and waits for the other's word; both start within milliseconds of
the later one. A sibling that dies closes its pipe, and the survivor goes on alone.

>>> import asyncio
>>> parent, child_fds = StartBarrier.pair()
>>> child = StartBarrier(*child_fds)
>>> async def both() -> tuple[bool, bool]:
...     a, b = await asyncio.gather(parent.wait(lambda: True, 5.0), child.wait(lambda: True, 5.0))
...     return a, b
>>> asyncio.run(both())
(True, True)
>>> parent.close(); child.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable

__all__ = ["StartBarrier"]

_READY = b"r"


class StartBarrier:
    """One end: reads the sibling's word from ``read_fd``, writes its own to ``write_fd``."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        os.set_blocking(read_fd, False)
        self.read_fd = read_fd
        self.write_fd = write_fd
        self._sent = False
        self._peer: bool | None = None  # True: the sibling is ready; False: it is gone (pipe closed)

    @classmethod
    def pair(cls) -> tuple[StartBarrier, tuple[int, int]]:
        """This process's end, and the two descriptors (read, write) to hand to the child
        (``subprocess.Popen(pass_fds=...)``; close them here once it is started)."""
        to_child_r, to_child_w = os.pipe()
        to_parent_r, to_parent_w = os.pipe()
        return cls(to_parent_r, to_child_w), (to_child_r, to_parent_w)

    @classmethod
    def from_arg(cls, value: str) -> StartBarrier:
        """From the ``READ,WRITE`` form the child is given on its command line."""
        try:
            read_fd, write_fd = (int(part) for part in value.split(","))
        except ValueError as exc:
            raise ValueError(f"barrier descriptors {value!r}: expected READ,WRITE") from exc
        return cls(read_fd, write_fd)

    def _poll_peer(self) -> None:
        if self._peer is not None:
            return
        try:
            data = os.read(self.read_fd, 16)
        except BlockingIOError:
            return
        self._peer = bool(data)  # b"" is end of file: the sibling closed its end or died

    def _signal(self) -> None:
        if not self._sent:
            with contextlib.suppress(BrokenPipeError):
                os.write(self.write_fd, _READY)
            self._sent = True

    async def wait(self, ready: Callable[[], bool], timeout_s: float, stop: asyncio.Event | None = None,
                   poll_s: float = 0.005) -> bool:
        """Once ``ready()`` holds, signal; return when the sibling has signalled too (True), or when it is
        gone, ``stop`` is set or ``timeout_s`` has passed (False)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            if ready():
                self._signal()
            self._poll_peer()
            if self._peer is False:
                return False
            if self._sent and self._peer:
                return True
            await asyncio.sleep(poll_s)
        return False

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
