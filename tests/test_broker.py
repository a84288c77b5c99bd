"""The embedded Tansu broker: free loopback port, answers Kafka, and never outlives its owner."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from streams.broker import BrokerError, EmbeddedBroker, kafka_answers
from streams.kafka_io import ensure_topics, make_consumer, make_producer

REPO = Path(__file__).resolve().parent.parent


def _gone(pid: int) -> bool:
    """The process no longer runs (a zombie waiting for a reaper that is not ours counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def _listening(pid: int) -> set[tuple[str, int]]:
    return {(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN}


@pytest.fixture()
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; killed at the end whatever happened."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


async def _round_trip(bootstrap: str) -> bytes | None:
    await ensure_topics(bootstrap, ["broker.test.roundtrip"], 1)
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait("broker.test.roundtrip", b"hello", key=b"k")
    finally:
        await producer.stop()
    consumer = make_consumer(bootstrap, "broker.test.roundtrip", group_id=None)
    await consumer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), 20)
        return msg.value
    finally:
        await consumer.stop()


def test_starts_on_a_free_loopback_port_and_answers() -> None:
    with EmbeddedBroker() as one, EmbeddedBroker() as two:
        assert one.pid is not None and two.pid is not None
        assert one.host == "127.0.0.1" and one.port is not None and two.port is not None
        assert one.port != two.port
        assert one.bootstrap_servers == f"127.0.0.1:{one.port}"
        assert kafka_answers("127.0.0.1", one.port) and kafka_answers("127.0.0.1", two.port)
        assert _listening(one.pid) == {("127.0.0.1", one.port)}  # loopback only, nothing else
        assert asyncio.run(_round_trip(one.bootstrap_servers)) == b"hello"


def test_stop_leaves_no_process() -> None:
    broker = EmbeddedBroker()
    with pytest.raises(BrokerError, match="not started"):
        _ = broker.bootstrap_servers
    broker.start()
    pid, port = broker.pid, broker.port
    assert pid is not None and port is not None and not _gone(pid)
    broker.stop()
    assert not psutil.pid_exists(pid)  # stopped and reaped, not a zombie
    assert broker.pid is None and not kafka_answers("127.0.0.1", port, timeout_s=0.5)
    broker.stop()  # a second stop is harmless
    assert all(child.pid != pid for child in psutil.Process().children(recursive=True))


CHILD = """
import sys, time
from streams.broker import EmbeddedBroker
broker = EmbeddedBroker()
broker.start()
print("BROKER", broker.pid, broker.port, flush=True)
time.sleep(600)
"""


def test_broker_dies_when_its_parent_is_killed(spawned: list[subprocess.Popen[bytes]]) -> None:
    parent = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, cwd=REPO)
    spawned.append(parent)
    assert parent.stdout is not None
    line = parent.stdout.readline().decode()
    while line and not line.startswith("BROKER "):  # log lines come first
        line = parent.stdout.readline().decode()
    broker_pid, port = (int(x) for x in line.split()[1:])
    assert psutil.Process(broker_pid).ppid() == parent.pid
    assert kafka_answers("127.0.0.1", port)
    os.kill(parent.pid, signal.SIGKILL)  # no chance to clean up
    parent.wait(10)
    _wait_for(lambda: _gone(broker_pid), 5.0, f"broker {broker_pid} to die with its parent")
    assert not kafka_answers("127.0.0.1", port, timeout_s=0.5)


def _twin(args: list[str], out: Path, **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "twin", *args], stdout=out.open("wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=REPO, **kw)  # type: ignore[call-overload]


def _bootstrap_line(out: Path) -> str | None:
    for line in out.read_text(errors="replace").splitlines():
        if line.startswith("bootstrap_servers="):
            return line.removeprefix("bootstrap_servers=")
    return None


@pytest.mark.parametrize("how", ["sigint-to-group", "sigterm"])
def test_twin_broker_runs_in_the_foreground_and_stops_cleanly(how: str, tmp_path: Path,
                                                              spawned: list[subprocess.Popen[bytes]]) -> None:
    out = tmp_path / "broker.out"
    # A new session, like a shell job: Ctrl-C is SIGINT to the whole foreground process group.
    proc = _twin(["broker"], out, start_new_session=True)
    spawned.append(proc)
    _wait_for(lambda: _bootstrap_line(out) is not None or proc.poll() is not None, 30, "the bootstrap line")
    bootstrap = _bootstrap_line(out)
    assert bootstrap is not None, out.read_text()
    host, port = bootstrap.split(":")
    assert host == "127.0.0.1" and kafka_answers(host, int(port))
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) == 1, children
    broker_pid = children[0].pid
    time.sleep(0.3)
    assert proc.poll() is None, "twin broker must keep running in the foreground"
    if how == "sigint-to-group":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, out.read_text()
    _wait_for(lambda: _gone(broker_pid), 5.0, "the broker to stop")
    assert not kafka_answers(host, int(port), timeout_s=0.5)


def test_bad_broker_binary_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-tansu"
    with pytest.raises(BrokerError, match=r"broker\.binary '.*no-such-tansu' is not an executable file"):
        EmbeddedBroker(binary=missing)
    not_executable = tmp_path / "tansu.txt"
    not_executable.write_text("not a program")
    with pytest.raises(BrokerError, match="is not an executable file"):
        EmbeddedBroker(binary=not_executable)
    true = shutil.which("true")
    assert true is not None
    started = time.monotonic()
    with pytest.raises(BrokerError, match="did not answer"):
        EmbeddedBroker(binary=Path(true)).start()  # runs, but is no broker
    assert time.monotonic() - started < 10  # fails fast when the process exits, no full timeout wait


def test_twin_broker_reports_a_bad_binary_setting(tmp_path: Path) -> None:
    config = tmp_path / "twin.toml"
    config.write_text(f'[broker]\nbinary = "{tmp_path / "missing-tansu"}"\n')
    out = tmp_path / "out.txt"
    proc = _twin(["broker", "--config", str(config)], out)
    assert proc.wait(60) == 1
    text = out.read_text()
    assert "error: broker.binary" in text and "missing-tansu" in text and "Traceback" not in text, text
    # The same setting from the environment.
    env = {**os.environ, "TWIN_BROKER__BINARY": str(tmp_path / "env-tansu")}
    proc = _twin(["broker"], out, env=env)
    assert proc.wait(60) == 1
    text = out.read_text()
    assert "env-tansu" in text and "is not an executable file" in text, text
