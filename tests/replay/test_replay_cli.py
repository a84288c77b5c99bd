"""``twin replay`` as a user runs it: a subprocess of the installed console script."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from streams.broker import EmbeddedBroker
from tests.replay.util import consume_all
from twin import topics

TWIN = Path(sys.executable).parent / "twin"


def twin(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    cmd = [str(TWIN)] if TWIN.exists() else [sys.executable, "-c", "from twin.cli import main; main()"]
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, timeout=120, env={**clean, **(env or {})}
    )


def test_dry_run_json_of_the_real_pm_files(pm_files_dir: Path) -> None:
    proc = twin("replay", str(pm_files_dir), "--format", "pm-xml", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["dryRun"] is True and out["format"] == "pm-xml"
    assert out["published"] == {topics.PM_CELL: 53, topics.PM_RELATION: 10}
    assert out["rowsRead"] == out["rowsPublished"] + out["rowsRejected"] == 291
    assert len(out["rejected"]) == out["rowsRejected"] == 94 and out["deadLettered"] == 0
    assert all(r["reason"] and r["where"] and r["source"] for r in out["rejected"])
    assert any("measObjLdn is empty" in r["reason"] for r in out["rejected"])
    assert any("xml-stylesheet" in w and "Keysight" in w for w in out["warnings"])
    assert out["firstEventTime"] == "2023-05-15T06:15:00+00:00"


def test_dry_run_json_of_raca_csvs_with_a_bad_row(raca_dir: Path, tmp_path: Path) -> None:
    real = sorted(raca_dir.rglob("*.csv"))[0]
    lines = real.read_bytes().splitlines()
    bad = b"2019.13.45_99.99.99" + lines[1][lines[1].index(b",") :]
    (tmp_path / real.name).write_bytes(b"\n".join([*lines, bad, b"garbage"]) + b"\n")
    proc = twin("replay", str(tmp_path), "-f", "raca", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["rowsRead"] == len(lines) + 1 == out["rowsPublished"] + out["rowsRejected"]
    reasons = {r["where"]: r["reason"] for r in out["rejected"]}
    assert "not a valid date" in reasons[f"line {len(lines) + 1}"]
    assert reasons[f"line {len(lines) + 2}"] == "row has 1 fields, the header has 26"
    assert out["published"] == {topics.MR_UE: out["rowsPublished"]}


def test_without_a_broker_or_dry_run_the_user_is_told_what_to_do(pm_files_dir: Path) -> None:
    proc = twin("replay", str(pm_files_dir), "--format", "pm-xml")
    assert proc.returncode == 2
    assert "--bootstrap" in proc.stderr and "--dry-run" in proc.stderr
    missing = twin("replay", "/nonexistent/dir", "--format", "raca", "--dry-run")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    empty = twin("replay", str(pm_files_dir), "--format", "jsonl", "--dry-run")
    assert empty.returncode == 2 and "no jsonl input files" in empty.stderr


def test_publish_through_the_broker(pm_files_dir: Path, broker: EmbeddedBroker) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:8]}."
    proc = twin(
        "replay",
        str(pm_files_dir),
        "--format",
        "pm-xml",
        "--json",
        "--speed",
        "0",
        "--bootstrap",
        broker.bootstrap_servers,
        "--topic-prefix",
        prefix,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["dryRun"] is False and out["deadLettered"] == 94
    for topic, expected in ((topics.PM_CELL, 53), (topics.PM_RELATION, 10), (topics.DLQ, 94)):
        assert len(asyncio.run(consume_all(broker.bootstrap_servers, prefix + topic))) == expected
