"""Headless Debian Chromium driven by Selenium through the system chromedriver (no browser download).

Performance logging is on so a test can list every URL the page requested (``requested_urls``) and
prove nothing left loopback.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

__all__ = ["CHROMEDRIVER", "CHROMIUM", "chromium", "missing", "requested_urls"]


def missing() -> str | None:
    """Why the browser cannot start here (None when it can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists() and not shutil.which(Path(path).name):
            return f"{path} missing: install Debian's chromium and chromium-driver (deploy/bootstrap.sh does)"
    return None


@contextmanager
def chromium(profile: Path, width: int = 1400, height: int = 1500) -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium with its own profile folder, quit on exit."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
                 "--metrics-recording-only", "--disable-domain-reliability", f"--user-data-dir={profile}",
                 f"--window-size={width},{height}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()


def requested_urls(driver: webdriver.Chrome) -> list[tuple[str, str]]:
    """Every (URL, document URL) the browser asked for since the last call (Network.requestWillBeSent):
    the page's own requests and those of Chromium's internal pages (chrome://, a new tab)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            params = message["params"]
            urls.append((params["request"]["url"], params.get("documentURL", "")))
    return urls
