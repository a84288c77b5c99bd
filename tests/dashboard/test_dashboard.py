"""The dashboard end to end in headless Chromium, against ``twin api`` serving a real worker's state
and a real SQLite CM ledger whose changes the real guard decided (``tests/dashboard/state.py``).

An operator signs in, approves a waiting change with the page's button, and the ledger records the
approval by that operator; a decision taken outside the page (as ``twin cm reject`` would) and a new
alert reach the open page through the event stream, without a reload; the operator then rejects a
change with a reason, rolls back a pushed one and engages the kill switch from the page, and the
ledger has each. A viewer
sees the buttons disabled, and the API refuses the viewer's approve (403) whether sent by the page
or by a script with the token; the ledger is unchanged; the viewer's what-if shows what the
library's ``Twin.whatif`` predicts. Every request the page makes stays on the API's loopback origin.
Screenshots go to the test's tmp_path and to test-output/dashboard/ (printed).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.dashboard.browser import chromium, missing, requested_urls
from tests.dashboard.state import (
    OPERATOR,
    VIEWER,
    ServedState,
    build_state,
    journal_alert,
    running_api,
    write_tokens,
)
from tests.library.worker_run import WorkerRun
from twin import Twin
from twin.ledger import State, open_ledger
from twin.ledger.decisions import decide

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "test-output" / "dashboard"
WAIT_S = 30


@pytest.fixture(autouse=True)
def _browser_installed() -> None:
    why = missing()
    if why:  # make test installs them (deploy/bootstrap.sh): their absence is a failure, not a skip
        pytest.fail(why)


@pytest.fixture
def served(emulated_worker_run: WorkerRun, tmp_path: Path) -> ServedState:
    return build_state(emulated_worker_run, tmp_path / "served")


def sign_in(driver: WebDriver, url: str, token: str, role: str) -> None:
    driver.get(url + "/")
    WebDriverWait(driver, WAIT_S).until(lambda d: d.find_element(By.ID, "login-token")).send_keys(token)
    driver.find_element(By.ID, "login-submit").click()
    WebDriverWait(driver, WAIT_S).until(lambda d: read(d, "#whoami", "text") == role)
    WebDriverWait(driver, WAIT_S).until(lambda d: read(d, "body", "data-loaded"))


# The page re-renders its panels on every event, so an element found earlier can be gone a moment
# later: reads run as one script in the page, and clicks retry on a stale element.
def read(driver: WebDriver, css: str, what: str = "text") -> Any:
    """``what`` of the first element matching ``css`` (None when there is none): "text", "disabled",
    or an attribute name."""
    return driver.execute_script(
        """const e = document.querySelector(arguments[0]);
        if (!e) return null;
        if (arguments[1] === "text") return e.textContent;
        if (arguments[1] === "disabled") return e.disabled;
        return e.getAttribute(arguments[1]);""", css, what)


def count(driver: WebDriver, css: str) -> int:
    return int(driver.execute_script("return document.querySelectorAll(arguments[0]).length", css))


def click(driver: WebDriver, css: str) -> None:
    def attempt(d: WebDriver) -> bool:
        try:
            d.find_element(By.CSS_SELECTOR, css).click()
            return True
        except (StaleElementReferenceException, NoSuchElementException):
            return False
    WebDriverWait(driver, WAIT_S).until(attempt)


def in_queue(change_id: str) -> str:
    return f'#queue tr.change-row[data-change-id="{change_id}"]'


def in_changes(change_id: str) -> str:
    return f'#changes tr.change-row[data-change-id="{change_id}"]'


def check_panels(driver: WebDriver, run: WorkerRun) -> None:
    """Every panel drew from the API: one tile per topology cell, KPI and DT-BSM charts, the live stream."""
    cells = sum(len(c) for c in run.clusters.values())
    WebDriverWait(driver, WAIT_S).until(lambda d: count(d, "#grid .tile") == cells)
    assert count(driver, "#grid .tile[data-error]:not([data-error=''])") > cells // 2, \
        "most tiles should carry the twin's error"
    WebDriverWait(driver, WAIT_S).until(lambda d: count(d, "#cell .chart canvas") > 0)
    WebDriverWait(driver, WAIT_S).until(lambda d: count(d, "#fidelity .chart canvas") > 0)
    assert "threshold" in read(driver, "#fid-head")
    WebDriverWait(driver, WAIT_S).until(lambda d: read(d, "#live") == "live")
    WebDriverWait(driver, WAIT_S).until(lambda d: "TWIN_DIVERGENCE" in (read(d, "#alerts tr.alert.active") or ""))


def only_loopback(driver: WebDriver, url: str) -> list[str]:
    """The page's network requests; asserts each went to the API's origin (none left loopback)."""
    origin = urlsplit(url).netloc
    urls = requested_urls(driver)
    page = [u for u, doc in urls if urlsplit(doc).netloc == origin]
    assert len(page) > 5, f"no requests of the page recorded: {urls[:20]}"
    strays = [u for u in page if urlsplit(u).scheme != "data" and urlsplit(u).netloc != origin]
    assert not strays, f"the page requested other origins: {strays}"
    # nor did anything else in the browser (background networking is off): any web request is to the API
    web = [u for u, _ in urls if urlsplit(u).scheme in ("http", "https", "ws", "wss")]
    assert all(urlsplit(u).netloc == origin for u in web), [u for u in web if urlsplit(u).netloc != origin]
    return page


def no_page_errors(driver: WebDriver) -> None:
    """No script error or Content-Security-Policy violation in the console (HTTP errors the page
    handles, such as /ready's 503 or a refused 403, are logged by Chromium as network errors)."""
    errors = [e["message"] for e in driver.get_log("browser")
              if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]]
    assert not errors, errors


def screenshot(driver: WebDriver, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1400, min(height + 140, 4000))  # the whole page (the window's chrome included)
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    OUTPUT.mkdir(parents=True, exist_ok=True)
    kept = OUTPUT / name
    shutil.copyfile(shot, kept)
    print(f"dashboard screenshot: {kept} (and {shot})")
    return kept


def test_operator_approves_a_pending_change_and_the_ledger_records_it(
        emulated_worker_run: WorkerRun, served: ServedState, tmp_path: Path) -> None:
    with running_api(served, tmp_path / "api.log") as url, chromium(tmp_path / "profile") as driver:
        sign_in(driver, url, OPERATOR, "operator")
        check_panels(driver, emulated_worker_run)
        WebDriverWait(driver, WAIT_S).until(
            lambda d: count(d, in_queue(served.to_approve)) and count(d, in_queue(served.to_deny)))
        assert read(driver, in_changes(served.refused), "data-state") == "REJECTED"
        # the page opens on a cell with a change: its KPI plots mark it; the DT-BSM plot has its threshold
        assert read(driver, "#cell-title") == served.alert_cell
        thp = '#cell .chart[data-kpi="DRB.UEThpDl"]'
        assert int(read(driver, thp, "data-points")) == len(emulated_worker_run.period_ends)
        assert int(read(driver, thp, "data-changes")) == 1
        assert read(driver, thp, "data-marks") == "cellIndividualOffset → 2 (pending_approval)"
        assert float(read(driver, "#fidelity .chart", "data-threshold")) > 0
        driver.execute_script("window.__sameDocument = true")

        approve = f"{in_queue(served.to_approve)} button.approve"
        assert read(driver, approve, "disabled") is False
        click(driver, approve)
        WebDriverWait(driver, WAIT_S).until(lambda d: count(d, in_queue(served.to_approve)) == 0)
        assert "APPROVED" in read(driver, "#toast")
        WebDriverWait(driver, WAIT_S).until(lambda d: "(approved)" in (read(d, thp, "data-marks") or ""))

        ledger = open_ledger(served.ledger_url)
        try:
            approved = ledger.get(served.to_approve)
            assert approved.state is State.APPROVED and approved.decided_by == "ops-alice"
            assert [e.state for e in ledger.history(served.to_approve)][-1] is State.APPROVED
            assert ledger.get(served.to_deny).state is State.PENDING_APPROVAL

            # decided outside the page, as `twin cm reject` does: the page follows through the event stream
            decide(ledger, served.to_deny, "reject", by="cli-carol", at=datetime.now(UTC), reason="storm tonight")
        finally:
            ledger.close()
        raised = journal_alert(served, "GUARD_TRIP", "MINOR", datetime.now(UTC), "raised while the page is open")
        WebDriverWait(driver, WAIT_S).until(lambda d: count(d, f'#alerts tr[data-alert-id="{raised.alert_id}"]'))
        WebDriverWait(driver, WAIT_S).until(lambda d: count(d, in_queue(served.to_deny)) == 0)
        WebDriverWait(driver, WAIT_S).until(lambda d: read(d, in_changes(served.to_deny), "data-state") == "DENIED")
        assert driver.execute_script("return window.__sameDocument === true"), "the page was reloaded"
        assert read(driver, in_changes(served.to_approve), "data-state") == "APPROVED"
        assert count(driver, in_queue(served.left_pending)) == 1
        assert "(approved)" in read(driver, thp, "data-marks")

        screenshot(driver, tmp_path, "dashboard-operator.png")

        # reject (the page asks for a reason) and the kill switch (the page asks to confirm), by the page
        click(driver, f"{in_queue(served.left_pending)} button.reject")
        prompt = WebDriverWait(driver, WAIT_S).until(lambda d: d.switch_to.alert)
        prompt.send_keys("not tonight")
        prompt.accept()
        WebDriverWait(driver, WAIT_S).until(lambda d: count(d, in_queue(served.left_pending)) == 0)
        click(driver, f'{in_changes(served.observing)} button.rollback')
        prompt = WebDriverWait(driver, WAIT_S).until(lambda d: d.switch_to.alert)
        prompt.send_keys("complaints")
        prompt.accept()
        WebDriverWait(driver, WAIT_S).until(
            lambda d: read(d, in_changes(served.observing), "data-state") == "ROLLING_BACK")
        click(driver, "#killswitch-flip")
        WebDriverWait(driver, WAIT_S).until(lambda d: d.switch_to.alert).accept()
        WebDriverWait(driver, WAIT_S).until(lambda d: "ON" in (read(d, "#killswitch") or ""))
        ledger = open_ledger(served.ledger_url)
        try:
            denied = ledger.get(served.left_pending)
            assert denied.state is State.DENIED and denied.decided_by == "ops-alice"
            assert denied.reason == "not tonight"
            rolling = ledger.get(served.observing)
            assert rolling.state is State.ROLLING_BACK and rolling.actor == "ops-alice"
            assert ledger.control("kill_switch") is True
            assert ledger.controls_history("kill_switch")[-1][1] == "ops-alice"
        finally:
            ledger.close()
        requests = only_loopback(driver, url)
        assert any(u.endswith("/approve") for u in requests) and any("/api/v1/events" in u for u in requests)
        no_page_errors(driver)


def test_a_viewer_cannot_approve(emulated_worker_run: WorkerRun, served: ServedState, tmp_path: Path) -> None:
    with running_api(served, tmp_path / "api.log") as url, chromium(tmp_path / "profile") as driver:
        sign_in(driver, url, VIEWER, "viewer")
        check_panels(driver, emulated_worker_run)
        WebDriverWait(driver, WAIT_S).until(lambda d: count(d, in_queue(served.to_approve)))
        before = open_ledger(served.ledger_url)
        try:
            steps_before = len(before.history(served.to_approve))
        finally:
            before.close()

        approve, reject = (f"{in_queue(served.to_approve)} button.{a}" for a in ("approve", "reject"))
        assert read(driver, approve, "disabled") is True and read(driver, reject, "disabled") is True
        assert read(driver, "#killswitch-flip", "disabled") is True

        # the page's own approve, its button forced on: the API answers 403 and the page says so
        driver.execute_script("const b = document.querySelector(arguments[0]); b.disabled = false; b.click()", approve)
        WebDriverWait(driver, WAIT_S).until(lambda d: "403" in (read(d, "#toast") or ""))
        assert "error" in read(driver, "#toast", "class")

        # and a script in the page with the viewer's token, straight to the API
        status, body = driver.execute_async_script(
            """const [id, done] = [arguments[0], arguments[arguments.length - 1]];
            fetch(`/api/v1/changes/${id}/approve`, {method: "POST", body: "{}", headers: {
                "Authorization": `Bearer ${sessionStorage.getItem("ran-twin.token")}`,
                "Content-Type": "application/json"}})
              .then(r => r.json().then(b => done([r.status, b])), e => done([0, String(e)]));""",
            served.to_approve)
        assert status == 403, body
        assert "operator" in str(body)

        after = open_ledger(served.ledger_url)
        try:
            view = after.get(served.to_approve)
            assert view.state is State.PENDING_APPROVAL and view.decided_by != "noc-bob"
            assert len(after.history(served.to_approve)) == steps_before
        finally:
            after.close()
        assert count(driver, in_queue(served.to_approve)) == 1

        # a viewer may run what-ifs: the page shows what the library's Twin.whatif says
        assert read(driver, "#whatif-cell") == served.alert_cell
        Select(driver.find_element(By.ID, "whatif-attribute")).select_by_value("digitalTilt")
        driver.find_element(By.ID, "whatif-value").send_keys("90")
        click(driver, "#whatif-run")
        row = f'#whatif tr.whatif-row[data-cell="{served.alert_cell}"][data-kpi="DRB.UEThpDl"]'
        WebDriverWait(driver, WAIT_S).until(lambda d: count(d, row) == 1)
        expected = Twin.from_state(served.state_dir, config=served.config_file).whatif(
            served.cluster, {served.alert_cell: {"digitalTilt": 90}})
        assert float(read(driver, row, "data-delta")) == pytest.approx(
            expected.delta[served.alert_cell]["DRB.UEThpDl"], rel=1e-9)
        assert count(driver, "#whatif tr.whatif-row") == min(15, len(expected.rows()))
        screenshot(driver, tmp_path, "dashboard-viewer.png")
        only_loopback(driver, url)
        no_page_errors(driver)


def test_before_the_first_checkpoint_the_page_waits_and_a_bad_token_is_refused(tmp_path: Path) -> None:
    """An API over a state folder no worker has written yet: no cells, no ledger, no alerts."""
    empty = tmp_path / "state"
    empty.mkdir()
    with running_api(None, tmp_path / "api.log", state_dir=empty, tokens_file=write_tokens(tmp_path / "t.toml")) \
            as url, chromium(tmp_path / "profile") as driver:
        driver.get(url + "/")
        WebDriverWait(driver, WAIT_S).until(lambda d: d.find_element(By.ID, "login-token")).send_keys("x" * 20)
        driver.find_element(By.ID, "login-submit").click()
        WebDriverWait(driver, WAIT_S).until(lambda d: "401" in (read(d, "#login-error") or ""))
        assert read(driver, "#app", "hidden") is not None and read(driver, "#login", "hidden") is None

        sign_in(driver, url, VIEWER, "viewer")
        # the API answers 503 "no mirror yet" until the worker opened its checkpoints: said in the panel
        WebDriverWait(driver, WAIT_S).until(
            lambda d: "waiting for the worker's first checkpoint" in (read(d, "#grid") or ""))
        assert "pick a cell" in read(driver, "#cell")
        assert any(t in read(driver, "#fidelity") for t in ("no cluster", "waiting for the worker's first checkpoint"))
        assert "no change waits for approval" in read(driver, "#queue")
        assert "no alerts" in read(driver, "#alerts")
        assert "error" not in (read(driver, "#toast", "class") or ""), read(driver, "#toast")
        WebDriverWait(driver, WAIT_S).until(lambda d: read(d, "#live") == "live")
        only_loopback(driver, url)
        no_page_errors(driver)
