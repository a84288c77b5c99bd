"""The supervisor files in ``deploy/``: a worker that exits with an error (code 3 after a lost
broker) is restarted, with a stop grace period long enough for its final checkpoint; so is the CM
change service (``twin cm serve``), which reconciles on start; the example config is valid."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from twin.config import load_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("unit_name", "command"), [("twin-worker.service", ["run", "--config"]),
                                                    ("twin-cm.service", ["cm", "serve", "--config"])])
def test_the_systemd_units_restart_on_failure(tmp_path: Path, unit_name: str, command: list[str]) -> None:
    unit = ROOT / "deploy" / "systemd" / unit_name
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(unit.read_text())
    service = parser["Service"]
    assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGTERM"
    assert service["ExecStart"].split()[1:1 + len(command)] == command
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
    worker = yaml.safe_load(text)["services"]["twin-worker"]  # the services share their settings by YAML anchors
    assert worker["restart"] == "on-failure" and worker["stop_grace_period"] == "90s"
    # the health check (deploy/healthcheck.py, tests/deploy/test_image.py) reads the stats file's 'ready'
    stats = worker["command"][worker["command"].index("--stats-file") + 1]
    assert worker["healthcheck"]["test"] == ["CMD", "twin-healthcheck"]
    assert worker["environment"]["TWIN_HEALTHCHECK"] == f"stats:{stats}"


def test_the_compose_file_runs_the_change_service_beside_the_worker() -> None:
    cm = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())["services"]["twin-cm"]
    assert cm["command"] == ["cm", "serve", "--config", "/etc/ran-twin/twin.toml"]  # the image's entrypoint: twin
    assert cm["restart"] == "on-failure" and "twin-worker" in cm["depends_on"]


def test_the_example_config_carries_a_valid_guard_and_cm_section() -> None:
    settings = load_settings(ROOT / "deploy" / "config" / "example.toml")
    assert settings.guard.mode == "manual" and settings.guard.windows == ["22:00-05:00"]
    assert settings.guard.protected_kpis["DRB.UEThpDl"].max_degradation_pct == 5.0
    assert settings.cm.adapter == "provmns" and settings.cm.adapter_options["base_url"].startswith("https://")
