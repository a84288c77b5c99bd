"""``twin alerts redeliver`` on a dead-letter file with lines that are not dead letters: each is
reported (line number, why) and moved to ``FILE.malformed``, the others are delivered and leave the
file, the exit code says something was wrong; delivered notifications leave the file even when the
run stops half-way, and lines a worker appends meanwhile stay."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from streams.webhook import redeliver
from tests.alerting.receiver import receiver


def _letter(n: int) -> str:
    return json.dumps({"deadLetteredAt": "2026-03-01T12:00:00+00:00", "url": "http://x/hook", "reason": "down",
                       "attempts": 3, "payload": {"version": "4", "n": n}})


def _redeliver(dead: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "twin", "alerts", "redeliver", "--file", str(dead), "--url", url],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_malformed_lines_are_reported_and_set_aside_the_others_delivered(tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"
    bad = ["not json {", json.dumps({"reason": "no payload"}), "[1, 2]", json.dumps({"payload": "text"})]
    dead.write_text("\n".join([_letter(1), bad[0], _letter(2), bad[1], bad[2], "", bad[3], _letter(3)]) + "\n")
    with receiver([200]) as rx:
        done = _redeliver(dead, rx.url)
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        for line, why in [(2, "not JSON"), (4, "no 'payload' object"), (5, "not a JSON object but list"),
                          (7, "'payload' is str, not an object")]:
            assert f"{dead} line {line} is not a dead letter ({why}" in done.stderr, (line, done.stderr)
        report = json.loads(done.stdout.splitlines()[-1])
        set_aside = tmp_path / "dead.jsonl.malformed"
        assert report == {"file": str(dead), "url": rx.url, "delivered": 3, "stillDead": 0, "malformed": 4,
                          "failedStatus": {}, "malformedFile": str(set_aside)}
        assert [p["n"] for p in rx.accepted] == [1, 2, 3]
        assert dead.read_text() == ""  # delivered: gone; malformed: moved
        assert set_aside.read_text().splitlines() == bad  # unchanged, not lost
        again = _redeliver(dead, rx.url)  # nothing sent twice, nothing malformed left
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout.splitlines()[-1])["malformed"] == 0
        assert len(rx.requests) == 3


@pytest.mark.parametrize("stop", [False, True])
def test_delivered_ones_leave_the_file_even_when_the_run_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               stop: bool) -> None:
    dead = tmp_path / "dead.jsonl"
    dead.write_text("".join(_letter(n) + "\n" for n in (1, 2, 3, 4)))

    async def post(self: httpx.AsyncClient, url: str, json: dict[str, Any]) -> httpx.Response:
        if json["n"] == 1:  # a worker dead-letters another notification meanwhile
            with dead.open("a") as f:
                f.write(_letter(9) + "\n")
        if json["n"] == 3 and stop:
            raise KeyboardInterrupt
        return httpx.Response(503 if json["n"] == 2 else 200)

    monkeypatch.setattr(httpx.AsyncClient, "post", post)
    if stop:
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(redeliver(dead, "http://receiver/hook"))
        assert [json.loads(x)["payload"]["n"] for x in dead.read_text().splitlines()] == [2, 3, 4, 9]
    else:
        done = asyncio.run(redeliver(dead, "http://receiver/hook"))
        assert (done.delivered, done.still_dead, done.malformed, done.set_aside) == (3, 1, [], None)
        assert [json.loads(x)["payload"]["n"] for x in dead.read_text().splitlines()] == [2, 9]
