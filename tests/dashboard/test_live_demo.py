"""The dashboard follows a running ``twin demo`` live: signed in with the token the demo prints, the page
redraws from the event stream as the worker predicts new periods, with no reload.

Marked slow (about 45 s: a 4-hour demo at 400x); ``pytest -m slow tests/dashboard`` runs it.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.dashboard.browser import chromium, missing
from tests.dashboard.test_dashboard import count, read, screenshot, sign_in

REPO = Path(__file__).resolve().parents[2]
THP = '#cell .chart[data-kpi="DRB.UEThpDl"]'


@pytest.mark.slow
def test_the_page_follows_a_running_demo(tmp_path: Path) -> None:
    why = missing()
    if why:
        pytest.fail(why)
    cmd = [str(Path(sys.executable).with_name("twin")), "demo", "--hours", "4", "--speed", "400", "--no-optimize",
           "--no-sim2real", "--quiet", "--out", str(tmp_path / "demo")]
    demo = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        found = None
        while found is None:
            text = "".join(lines)
            url, token = re.search(r"dashboard and API: (http://\S+?)/\s", text), re.search(
                r"operator token: (\S+)", text)
            if url and token:
                found = url.group(1), token.group(1)
            elif demo.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"twin demo printed no address and token: {text[-3000:]}")
            time.sleep(0.2)
        url_, token_ = found
        with chromium(tmp_path / "profile") as driver:
            sign_in(driver, url_, token_, "operator")
            driver.execute_script("window.__sameDocument = true")
            seen: list[int] = []
            while demo.poll() is None and time.monotonic() < deadline:
                points = read(driver, THP, "data-points")
                if points is not None and (not seen or int(points) != seen[-1]):
                    seen.append(int(points))
                time.sleep(0.5)
            assert driver.execute_script("return window.__sameDocument === true"), "the page was reloaded"
            assert count(driver, "#grid .tile") == 21  # the fault-midrun scenario's cells
            grew = sum(1 for a, b in itertools.pairwise(seen) if b > a)
            print(f"the KPI plot's points while the demo ran: {seen}")
            assert grew >= 3, f"the KPI plot grew {grew} times while the demo ran: {seen}"
            screenshot(driver, tmp_path, "dashboard-live-demo.png")
        assert demo.wait(60) == 0, "".join(lines)[-3000:]
    finally:
        if demo.poll() is None:
            demo.terminate()
            demo.wait(30)
