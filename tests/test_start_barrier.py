"""The start barrier between a worker's two processes (real pipes, no broker needed)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from streams.start_barrier import StartBarrier


def test_both_sides_start_together_once_both_are_ready() -> None:
    parent, child_fds = StartBarrier.pair()
    child = StartBarrier(*child_fds)
    ready_at = time.monotonic() + 0.3

    async def run() -> tuple[bool, bool, float]:
        child_task = asyncio.create_task(child.wait(lambda: True, 5.0))
        # the parent becomes ready (holds its share) only later: the child must wait for it
        ok = await parent.wait(lambda: time.monotonic() >= ready_at, 5.0)
        child_ok = await child_task
        return ok, child_ok, time.monotonic()

    ok, child_ok, done = asyncio.run(run())
    assert ok and child_ok
    assert done >= ready_at
    parent.close()
    child.close()


def test_a_sibling_that_is_gone_releases_the_survivor_at_once() -> None:
    parent, child_fds = StartBarrier.pair()
    for fd in child_fds:  # the child died before saying anything: its ends of the pipes are closed
        os.close(fd)
    start = time.monotonic()
    assert asyncio.run(parent.wait(lambda: True, 30.0)) is False
    assert time.monotonic() - start < 5.0
    parent.close()


def test_a_silent_sibling_costs_at_most_the_timeout() -> None:
    parent, child_fds = StartBarrier.pair()
    child = StartBarrier(*child_fds)  # alive but never ready
    start = time.monotonic()
    assert asyncio.run(parent.wait(lambda: True, 0.3)) is False
    assert time.monotonic() - start >= 0.3
    # the parent did say it was ready, and the child sees that once it is ready itself
    assert asyncio.run(child.wait(lambda: True, 1.0)) is True
    parent.close()
    child.close()


def test_stop_ends_the_wait() -> None:
    parent, child_fds = StartBarrier.pair()
    child = StartBarrier(*child_fds)

    async def run() -> bool:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.1, stop.set)
        return await parent.wait(lambda: True, 30.0, stop)

    start = time.monotonic()
    assert asyncio.run(run()) is False
    assert time.monotonic() - start < 5.0  # ended by the stop, not by the 30 s timeout
    parent.close()
    child.close()


@pytest.mark.parametrize("value", ["", "3", "a,b", "1,2,3"])
def test_bad_descriptor_argument_names_the_value(value: str) -> None:
    with pytest.raises(ValueError, match="READ,WRITE"):
        StartBarrier.from_arg(value)
