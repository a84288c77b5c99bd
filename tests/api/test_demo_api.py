"""``twin demo`` serves the API and the dashboard: it prints the address and fresh viewer and
operator tokens, the API answers with the roles while the demo runs, and with ``--keep-serving``
it serves the finished run's state (clusters, cells, changes, alerts) until interrupted."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
TWIN = [sys.executable, "-m", "twin"]


def _line(proc: subprocess.Popen[str], pattern: str, seen: list[str], timeout_s: float = 120.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m
    raise AssertionError(f"no line matching {pattern!r}; output:\n{''.join(seen)[-3000:]}")


def test_demo_serves_the_api(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.Popen([*TWIN, "demo", "--hours", "1.5", "--speed", "0", "--quiet", "--out", str(out),
                             "--keep-serving", "--no-sim2real"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"})
    seen: list[str] = []
    try:
        url = _line(proc, r"dashboard and API: (http://127\.0\.0\.1:\d+)/", seen).group(1)
        viewer = _line(proc, r"viewer token:\s+(\S+)", seen).group(1)
        operator = _line(proc, r"operator token:\s+(\S+)", seen).group(1)
        assert viewer != operator and len(viewer) >= 16
        tokens_file = out / "api-tokens.toml"
        assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o600 and operator in tokens_file.read_text()
        # while the demo runs
        assert httpx.get(f"{url}/api/v1/health", timeout=10).json()["status"] == "ok"
        me = httpx.get(f"{url}/api/v1/me", headers={"Authorization": f"Bearer {operator}"}, timeout=10).json()
        assert me == {"name": "demo-operator", "role": "operator"}
        r = httpx.put(f"{url}/api/v1/kill-switch", json={"on": True}, headers={"Authorization": f"Bearer {viewer}"},
                      timeout=10)
        assert r.status_code == 403
        assert httpx.get(f"{url}/", timeout=10).status_code == 200  # the dashboard
        ready = httpx.get(f"{url}/api/v1/ready", timeout=10)
        assert ready.status_code in (200, 503) and isinstance(ready.json()["reasons"], list)
        # after the run: the finished state is served until Ctrl-C
        _line(proc, r"serving the finished run's state", seen, timeout_s=240)
        url = re.findall(r"dashboard and API: (http://127\.0\.0\.1:\d+)/", "".join(seen))[-1]
        viewer = re.findall(r"viewer token:\s+(\S+)", "".join(seen))[-1]
        auth = {"Authorization": f"Bearer {viewer}"}
        clusters = httpx.get(f"{url}/api/v1/clusters", headers=auth, timeout=30).json()["clusters"]
        assert [c["cluster"] for c in clusters] == ["emu-fault-midrun"] and clusters[0]["latestPeriodEnd"]
        cells = httpx.get(f"{url}/api/v1/cells", headers=auth, timeout=30).json()["cells"]
        assert len(cells) == 21 and all(c["latest"]["error"] is not None for c in cells)
        kpis = httpx.get(f"{url}/api/v1/cells/{cells[0]['cellKey']}/kpis", headers=auth,
                         params={"kpi": "DRB.UEThpDl"}, timeout=30).json()
        assert len(kpis["series"]["DRB.UEThpDl"]) == 6  # 1.5 h of 15-minute periods
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, "".join(seen)[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
