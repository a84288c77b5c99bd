"""The container image ``deploy/Containerfile`` without a container engine (none runs here): its
install step (``deploy/image-install.sh``, the script the image RUNs) run in a fresh virtual
environment, its instructions checked against the repository, and its health check
(``deploy/healthcheck.py``) run against a real stats file and a real HTTP server."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.cli_options import problems

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "deploy" / "Containerfile"
HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Containerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    return [(m[1].upper(), m[2].strip()) for line in text.splitlines()
            if (m := re.match(r"^([A-Za-z]+)\s+(.*)$", line.strip())) and not line.lstrip().startswith("#")]


def test_the_containerfile_builds_from_the_repository() -> None:
    steps = instructions()
    assert steps[0] == ("FROM", "python:3.11-slim-bookworm")
    for kind, args in steps:
        if kind == "COPY":
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    runs = [args for kind, args in steps if kind == "RUN"]
    assert any("sh /src/deploy/image-install.sh /src /opt/ran-twin/venv" in r for r in runs)
    assert ("COPY", "deploy/image-install.sh /src/deploy/image-install.sh") in steps
    assert ("COPY", "deploy/healthcheck.py /usr/local/bin/twin-healthcheck") in steps
    assert "TWIN_TORCH_INDEX=https://download.pytorch.org/whl/cpu" in dict(steps)["ARG"]


def test_the_image_runs_twin_as_a_non_root_user_with_a_health_check() -> None:
    steps = dict(instructions())
    user, group = steps["USER"].split(":")
    assert int(user) >= 1000 and int(group) >= 1000
    assert f"--uid {user}" in steps["RUN"] and f"--gid {group}" in steps["RUN"]
    assert json.loads(steps["ENTRYPOINT"]) == ["twin"]
    assert problems(json.loads(steps["CMD"])) == []  # the default command exists in the CLI
    assert steps["HEALTHCHECK"].endswith('CMD ["twin-healthcheck"]')
    assert "TWIN_HEALTHCHECK=stats:" in steps["ENV"]
    assert HEALTHCHECK.read_text().startswith("#!/usr/bin/env python3\n") and os.access(HEALTHCHECK, os.X_OK)


def healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The check as the image runs it: the system Python, stdlib only, configured by environment."""
    return subprocess.run([sys.executable, "-I", str(HEALTHCHECK)], capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ["PATH"], **env})


def test_the_health_check_reads_the_workers_readiness(tmp_path: Path) -> None:
    stats = tmp_path / "worker-stats.json"
    env = {"TWIN_HEALTHCHECK": f"stats:{stats}"}
    missing = healthcheck(env)
    assert missing.returncode == 1 and "cannot read the stats file" in missing.stderr
    stats.write_text(json.dumps({"ready": False, "notReadyReason": "no partitions assigned"}))
    assert healthcheck(env).returncode == 1 and "ready=False" in healthcheck(env).stderr
    stats.write_text(json.dumps({"ready": True}))
    assert healthcheck(env).returncode == 0
    old = time.time() - 120
    os.utime(stats, (old, old))  # a worker that stopped writing: stuck
    stale = healthcheck({**env, "TWIN_HEALTHCHECK_MAX_AGE_S": "30"})
    assert stale.returncode == 1 and "the worker is stuck" in stale.stderr
    bad = healthcheck({"TWIN_HEALTHCHECK": "ftp://x"})
    assert bad.returncode == 2 and "neither stats:PATH nor an http(s):// URL" in bad.stderr


@pytest.fixture()
def http_server() -> Iterator[str]:
    """A real HTTP server on loopback: 200 on /ok, 503 on anything else."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok" else 503)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_health_check_asks_the_api(http_server: str) -> None:
    assert healthcheck({"TWIN_HEALTHCHECK": f"{http_server}/ok"}).returncode == 0
    down = healthcheck({"TWIN_HEALTHCHECK": f"{http_server}/api/v1/health"})
    assert down.returncode == 1 and "HTTP 503" in down.stderr


def test_the_image_install_command_in_a_clean_virtual_environment(tmp_path: Path) -> None:
    """``deploy/image-install.sh`` as the image build runs it, on a copy of the working tree (tracked
    and new files, as a build context holds them), into a new venv: torch 2.13.0 first (here from the
    machine's local wheel; in the image from the PyTorch CPU index), then the project without its dev
    extras. Measured 51 s on an idle machine with a warm pip cache (134 s while other jobs shared its two cores)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    src = tmp_path / "src"
    context = {"twin", "streams", "adapters", "replay", "deploy", "pyproject.toml", "README.md"}  # what it COPYs
    for name in filter(None, listed):
        if name.split("/")[0] in context and (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    python = shutil.which("python3.11") or sys.executable
    started = time.monotonic()
    out = subprocess.run(["sh", str(src / "deploy" / "image-install.sh"), str(src), str(venv)], capture_output=True,
                         text=True, timeout=540, env={**env, "PYTHON": python})
    seconds = time.monotonic() - started
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert f"ran-twin installed in {venv}" in out.stdout
    print(f"image-install.sh: {seconds:.1f} s")
    listed_help = subprocess.run([str(venv / "bin" / "twin"), "--help"], capture_output=True, text=True, timeout=120,
                                 env=env)
    assert listed_help.returncode == 0
    for command in ("run", "api", "cm", "demo"):
        assert re.search(rf"^\W*{command}\s", listed_help.stdout, re.M), command
    packages = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
                              capture_output=True, text=True, check=True, env=env).stdout
    versions = {p["name"].lower(): p["version"] for p in json.loads(packages)}
    assert versions["torch"].split("+")[0] == "2.13.0" and "ran-twin" in versions
    assert not {"pytest", "ruff", "mypy", "kubernetes-validate"} & set(versions)  # no dev extras in the image
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import twin, streams; print(twin.__file__)"],
                          capture_output=True, text=True, check=True, env=env, cwd=tmp_path).stdout
    assert site.startswith(str(venv))  # installed, not the working tree on sys.path
