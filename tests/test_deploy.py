"""The supervisor files in ``deploy/``: a worker that exits with an error (code 3 after a lost
broker) is restarted, with a stop grace period long enough for its final checkpoint."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_systemd_unit_restarts_the_worker_on_failure(tmp_path: Path) -> None:
    unit = ROOT / "deploy" / "systemd" / "twin-worker.service"
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(unit.read_text())
    service = parser["Service"]
    assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGTERM"
    assert service["ExecStart"].split()[1:3] == ["run", "--config"]
    assert int(service["TimeoutStopSec"]) >= 60
    if shutil.which("systemd-analyze"):  # the real parser, where the machine has it
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text())
        out = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True)
        problems = [line for line in (out.stdout + out.stderr).splitlines()
                    if line.strip() and "is not executable" not in line]  # /opt/ran-twin is not installed here
        assert not problems, problems


def test_the_compose_file_restarts_the_worker_on_failure() -> None:
    text = (ROOT / "deploy" / "compose.yaml").read_text()
    assert re.search(r"^\s+restart: on-failure$", text, re.M)
    assert re.search(r"^\s+stop_grace_period: 90s$", text, re.M)
    assert "'ready'" in text  # the health check reads the worker's readiness
