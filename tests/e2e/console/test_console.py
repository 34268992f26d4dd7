"""The web console in a real browser cut off from every host but this machine (issue 17).

Debian's Chromium, headless, driven by Selenium through Debian's chromedriver, as in
``test_docs_offline``: names other than loopback do not resolve and everything else goes to
a proxy that is not there. One server and one browser serve the whole module. Besides what
each test checks, every page must make no request beyond loopback, put no key in any URL,
and log no error (a Content-Security-Policy violation is one). Screenshots go to
``QB_CONSOLE_SCREENSHOTS`` when set (``docs/console/`` holds the committed ones), else to
the test's temporary directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

from browser import assert_clean, axe_violations, drain, shown, sign_in, wait
from support import ADMIN_KEY, ServerProcess, assert_error, client, run_cli, wait_until

DEPLOYMENTS = ("embedded",)

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


@pytest.fixture(scope="module")
def keys(server: ServerProcess) -> dict[str, str]:
    """Keys of the module: admin, a viewer of the same account, an admin of another one."""
    with client(server) as admin:
        made = admin.post("/keys", json={"name": "console viewer", "role": "viewer"})
        assert made.status_code == 201, made.text
        viewer = made.json()["secret"]
    other = run_cli(server, "keys", "create", "--name", "other", "--account", "other", "-q")
    assert other.returncode == 0, other.stderr
    return {"admin": ADMIN_KEY, "viewer": viewer, "other": other.stdout.strip()}


@pytest.fixture(autouse=True)
def clean_browser(
    request: pytest.FixtureRequest, keys: dict[str, str], server: ServerProcess
) -> Iterator[None]:
    """After each test: no request beyond loopback, no key in a URL, no error logged."""
    if "browser" not in request.fixturenames:
        yield
        return
    driver: WebDriver = request.getfixturevalue("browser")
    drain(driver)
    yield
    assert_clean(driver, list(keys.values()), server)


def batch_body(**overrides: Any) -> dict[str, Any]:
    """A batch of ``accounts`` x ``days`` sub-queries, each waiting ``latency`` ms."""
    accounts = overrides.pop("accounts", 10)
    days = overrides.pop("days", 30)
    latency = overrides.pop("latency", 50)
    return {
        "queries": [
            {
                "ds_id": "DEMO_ADS",
                "ds_accounts": [f"ads-{n:04d}" for n in range(1, accounts + 1)],
                "fields": "date,clicks",
                "start_date": "2026-01-01",
                "end_date": f"2026-01-{days:02d}",
                "settings": {"demo_latency_ms": latency},
            }
        ],
        "split_accounts_policy": "all",
        "split_dates_policy": "day",
        **overrides,
    }


def create_batch(api: httpx.Client, **overrides: Any) -> str:
    made = api.post("/query/batch", json=batch_body(**overrides))
    assert made.status_code == 201, made.text
    batch_id: str = made.json()["data"]["batch_id"]
    return batch_id


def progress_of(driver: WebDriver) -> tuple[int, int]:
    """(value, max) of the batch page's progress bar."""
    bar = driver.find_element(By.ID, "progress")
    return int(float(bar.get_attribute("value") or 0)), int(float(bar.get_attribute("max") or 0))


def counts_of(driver: WebDriver) -> dict[str, int]:
    names = ("queued", "running", "success", "failure", "stopped")
    return {
        name: int(driver.find_element(By.ID, f"count-{name}").text.replace(",", ""))
        for name in names
    }


def no_alert(driver: WebDriver) -> bool:
    try:
        driver.switch_to.alert.text  # noqa: B018  # raises when there is none
    except NoAlertPresentException:
        return True
    return False


def test_a_wrong_key_is_refused_and_a_good_one_signs_in_until_sign_out(
    browser: WebDriver, server: ServerProcess, shots: Path
) -> None:
    browser.get(f"{server.url}/console/")
    wait(browser, lambda d: urlsplit(d.current_url).path == "/console/sign-in")
    shown(browser, "#key").send_keys("qb_not_a_key_of_this_server_0123456789")
    browser.find_element(By.CSS_SELECTOR, "#sign-in button[type=submit]").click()
    error = shown(browser, "#sign-in-error")
    assert "not accepted" in error.text
    assert browser.execute_script("return sessionStorage.length") == 0
    browser.save_screenshot(str(shots / "sign-in-refused.png"))

    sign_in(browser, server, ADMIN_KEY)
    assert "admin" in browser.find_element(By.ID, "who").text
    assert browser.execute_script("return Object.values(sessionStorage)") == [ADMIN_KEY]
    assert browser.execute_script("return document.cookie") == ""
    browser.find_element(By.ID, "sign-out").click()
    wait(browser, lambda d: urlsplit(d.current_url).path == "/console/sign-in")
    assert browser.execute_script("return sessionStorage.length") == 0


def test_a_key_revoked_while_a_page_is_open_signs_the_page_out(
    browser: WebDriver, server: ServerProcess, api: httpx.Client
) -> None:
    made = api.post("/keys", json={"name": "revoked soon", "role": "analyst"}).json()
    sign_in(browser, server, made["secret"])
    assert api.delete(f"/keys/{made['id']}").status_code == 200
    wait(browser, lambda d: urlsplit(d.current_url).path == "/console/sign-in", timeout=10)
    assert browser.execute_script("return sessionStorage.length") == 0


def test_a_batch_page_follows_progress_to_100_percent_without_reloading(
    browser: WebDriver, server: ServerProcess, api: httpx.Client, shots: Path
) -> None:
    sign_in(browser, server, ADMIN_KEY)
    batch_id = create_batch(
        api, description="Daily clicks, ten accounts", latency=100, query_concurrency=4
    )
    browser.get(f"{server.url}/console/batches/{batch_id}")
    browser.execute_script("window.sameDocument = true")
    shown(browser, "#found")
    done, total = wait(browser, lambda d: (p := progress_of(d))[1] == 300 and p)
    assert done < total
    started = time.monotonic()
    wait(browser, lambda d: 0 < progress_of(d)[0] < 300, timeout=20)
    browser.save_screenshot(str(shots / "batch-running.png"))
    wait(browser, lambda d: progress_of(d)[0] == 300, timeout=60)
    watched = time.monotonic() - started
    assert browser.execute_script("return window.sameDocument") is True
    wait(browser, lambda d: d.find_element(By.ID, "status").text == "STOPPED", timeout=5)
    assert counts_of(browser) == {
        "queued": 0,
        "running": 0,
        "success": 300,
        "failure": 0,
        "stopped": 0,
    }
    assert "100%" in browser.find_element(By.ID, "progress-text").text
    polls = browser.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(e => new URL(e.name).pathname === arguments[0]).length",
        f"/query/batch/{batch_id}",
    )
    assert 2 <= polls <= watched / 2 + 3, (polls, watched)  # one every 2 s, no more
    rows = browser.find_elements(By.CSS_SELECTOR, "#queries tbody tr")
    assert len(rows) == 100
    assert "1\u2013100 of 300" in browser.find_element(By.ID, "page-info").text
    browser.find_element(By.ID, "next").click()
    wait(browser, lambda d: "101\u2013200 of 300" in d.find_element(By.ID, "page-info").text)
    browser.save_screenshot(str(shots / "batch-done.png"))

    browser.find_element(By.CSS_SELECTOR, "a[href='/console/']").click()
    row = shown(browser, f"#recent tr[data-batch-id='{batch_id}']")
    assert "300 / 300 (100%)" in row.text


def test_cancel_asks_first_then_freezes_the_counts_and_keeps_collected_results(
    browser: WebDriver, server: ServerProcess, api: httpx.Client, shots: Path, downloads: Path
) -> None:
    sign_in(browser, server, ADMIN_KEY)
    batch_id = create_batch(
        api,
        description="Five accounts, slowly",
        latency=400,
        query_concurrency=2,
        accounts=5,
        days=20,
    )
    browser.get(f"{server.url}/console/")
    running = shown(browser, f"#running tr[data-batch-id='{batch_id}']")
    figure = running.find_element(By.CSS_SELECTOR, ".figure")
    wait(browser, lambda d: figure.text.split(" / ")[0] not in ("", "0"))  # live, no reload
    browser.save_screenshot(str(shots / "overview.png"))
    running.find_element(By.TAG_NAME, "a").click()
    wait(browser, lambda d: d.find_element(By.ID, "count-success").text not in ("", "0"))
    shown(browser, "#cancel").click()
    dialog = shown(browser, "#confirm-cancel")
    browser.save_screenshot(str(shots / "cancel-confirm.png"))
    assert browser.switch_to.active_element.get_attribute("value") == "keep"
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)  # the keyboard says no
    wait(browser, lambda d: not dialog.is_displayed())
    time.sleep(0.3)
    assert api.get(f"/query/batch/{batch_id}").json()["data"]["cancel_time"] is None

    shown(browser, "#cancel").click()
    shown(browser, "#confirm").click()
    wait(browser, lambda d: d.find_element(By.ID, "status").text == "STOPPED", timeout=15)
    frozen = counts_of(browser)
    assert frozen["success"] > 0 and frozen["stopped"] > 0
    assert frozen["queued"] == frozen["running"] == 0
    assert not browser.find_element(By.ID, "cancel").is_displayed()
    assert "results collected so far are kept" in browser.find_element(By.ID, "action-message").text
    time.sleep(2.5)
    assert counts_of(browser) == frozen
    batch = api.get(f"/query/batch/{batch_id}").json()["data"]
    assert batch["cancel_time"] is not None
    assert batch["progress"]["success"] == frozen["success"]
    rows = api.get(f"/query/batch/{batch_id}/download", params={"format": "ndjson"})
    assert rows.status_code == 200 and rows.text.count("\n") >= frozen["success"]
    browser.find_element(By.CSS_SELECTOR, "#downloads button[data-format=ndjson]").click()
    saved = downloads / f"{batch_id}.ndjson"
    wait(browser, lambda d: saved.exists() and saved.read_text() == rows.text)
    assert "Saved" in browser.find_element(By.ID, "action-message").text

    Select(browser.find_element(By.ID, "status-filter")).select_by_value("SUCCESS")
    wait(
        browser,
        lambda d: d.find_element(By.ID, "page-info").text.startswith(
            f"{frozen['success']} sub-quer{'y' if frozen['success'] == 1 else 'ies'} (SUCCESS)"
        ),
    )
    buttons = browser.find_elements(By.CSS_SELECTOR, "#queries tbody button[data-schedule-id]")
    assert len(buttons) == frozen["success"]
    schedule_id = buttons[0].get_attribute("data-schedule-id")
    buttons[0].click()
    one = downloads / f"{schedule_id}.json"
    wait(browser, lambda d: one.exists() and json.loads(one.read_text())["data"][1])
    browser.save_screenshot(str(shots / "batch-cancelled.png"))


def test_failures_are_grouped_by_code_and_message_with_their_accounts_and_dates(
    browser: WebDriver, server: ServerProcess, api: httpx.Client, shots: Path
) -> None:
    failing = {"demo_latency_ms": 0, "demo_fail_accounts": ["ads-0002", "ads-0003"]}
    body = batch_body(accounts=3, days=3, description="Two accounts fail")
    body["queries"][0]["settings"] = failing
    batch_id = api.post("/query/batch", json=body).json()["data"]["batch_id"]
    sign_in(browser, server, ADMIN_KEY)
    browser.get(f"{server.url}/console/batches/{batch_id}")
    wait(browser, lambda d: d.find_element(By.ID, "status").text == "STOPPED")
    groups = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#failures tbody tr"))
    cells = [[c.text for c in g.find_elements(By.TAG_NAME, "td")] for g in groups]
    assert cells == [
        [
            "ACCOUNT_ERROR",
            f"Data source failed for account(s): {account}",
            "3",
            account,
            "2026-01-01 \u2013 2026-01-03",
        ]
        for account in ("ads-0002", "ads-0003")
    ]
    assert "6 failed sub-queries" in browser.find_element(By.ID, "failures-note").text
    Select(browser.find_element(By.ID, "status-filter")).select_by_value("FAILURE")
    wait(browser, lambda d: d.find_element(By.ID, "page-info").text.startswith("6 sub-queries"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#queries tbody tr")) == 6
    browser.find_element(By.ID, "account-filter").send_keys("ads-0002", Keys.ENTER)
    wait(
        browser,
        lambda d: d.find_element(By.ID, "page-info").text.startswith(
            "3 sub-queries (FAILURE, account ads-0002), 1\u20133 shown"
        ),
    )
    # The table is redrawn as the page refreshes: its cells are read until a redraw is not
    # in the middle of it.
    accounts = wait(
        browser,
        lambda d: {
            row.find_elements(By.TAG_NAME, "td")[2].text
            for row in d.find_elements(By.CSS_SELECTOR, "#queries tbody tr")
        },
    )
    assert accounts == {"ads-0002"}
    browser.save_screenshot(str(shots / "batch-failures.png"))


def test_the_overview_charts_the_last_hour_lists_failures_by_reason_and_bulk_batches(
    browser: WebDriver, server: ServerProcess, api: httpx.Client, shots: Path
) -> None:
    body = batch_body(accounts=7, days=2, description="One account of seven fails")
    body["queries"][0]["settings"] = {"demo_latency_ms": 0, "demo_fail_accounts": ["ads-0007"]}
    batch_id = api.post("/query/batch", json=body).json()["data"]["batch_id"]
    upload = api.post("/cache").json()
    line = {"ds_id": "DEMO_ADS", "ds_accounts": "ads-0001", "fields": "date,clicks"}
    line |= {"start_date": "2026-01-01", "end_date": "2026-01-02"}
    assert httpx.put(upload["url"], content=json.dumps(line) + "\n").status_code == 200
    made = api.post("/batches", json={"handler": upload["handler"], "operation": "get_data"})
    assert made.status_code == 201, made.text
    bulk_id = made.json()["batch"]
    wait_until(lambda: api.get(f"/query/batch/{batch_id}").json()["data"]["end_time"])
    sign_in(browser, server, ADMIN_KEY)
    chart = shown(browser, "#activity-chart canvas")
    assert (
        int(
            browser.find_element(By.ID, "activity-chart").get_attribute(
                "data-minutes-with-activity"
            )
            or 0
        )
        >= 1
    )
    assert chart.size["width"] > 0
    assert "failed" in browser.find_element(By.ID, "activity-note").text
    reasons = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "#reasons tbody tr")
    ]
    assert ["ACCOUNT_ERROR", "Data source failed for account(s): ads-0007", "2", "1"] in reasons
    row = shown(browser, f"#bulk tr[data-bulk-id='{bulk_id}']")
    link = row.find_element(By.TAG_NAME, "a").get_attribute("href")
    assert urlsplit(link).path == f"/console/bulk/{bulk_id}"
    wait(browser, lambda d: row.find_element(By.CLASS_NAME, "status").text == "completed")
    assert "1 / 1 (100%)" in row.text
    browser.save_screenshot(str(shots / "overview-activity.png"))


def test_a_viewer_sees_no_cancel_button_and_the_api_refuses_its_cancel(
    browser: WebDriver, server: ServerProcess, api: httpx.Client, keys: dict[str, str]
) -> None:
    batch_id = create_batch(api, latency=300, query_concurrency=1, accounts=2, days=10)
    try:
        sign_in(browser, server, keys["viewer"])
        assert "viewer" in browser.find_element(By.ID, "who").text
        browser.get(f"{server.url}/console/batches/{batch_id}")
        shown(browser, "#found")
        wait(browser, lambda d: d.find_element(By.ID, "status").text in ("QUEUED", "RUNNING"))
        assert not browser.find_element(By.ID, "cancel").is_displayed()
        assert not browser.find_element(By.ID, "downloads").is_displayed()
        with client(server, keys["viewer"]) as viewer:
            assert_error(viewer.delete(f"/query/batch/{batch_id}"), 403, "PERMISSION_ERROR")
    finally:
        api.delete(f"/query/batch/{batch_id}")


def test_a_description_holding_markup_is_shown_as_text(
    browser: WebDriver, server: ServerProcess, api: httpx.Client
) -> None:
    sign_in(browser, server, ADMIN_KEY)
    batch_id = create_batch(api, description=XSS, latency=0, accounts=1, days=2)
    browser.get(f"{server.url}/console/batches/{batch_id}")
    assert shown(browser, "#description").text == XSS
    assert browser.find_elements(By.CSS_SELECTOR, "#main script, #main img") == []
    browser.get(f"{server.url}/console/")
    row = shown(browser, f"tr[data-batch-id='{batch_id}']")
    assert XSS in row.text
    time.sleep(0.3)
    assert no_alert(browser)


def test_another_tenants_batch_is_not_found(
    browser: WebDriver, server: ServerProcess, api: httpx.Client, keys: dict[str, str]
) -> None:
    batch_id = create_batch(api, latency=0, accounts=1, days=1)
    sign_in(browser, server, keys["other"])
    browser.get(f"{server.url}/console/batches/{batch_id}")
    assert "Not found" in shown(browser, "#not-found").text
    assert not browser.find_element(By.ID, "found").is_displayed()
    browser.get(f"{server.url}/console/")
    shown(browser, "#running-empty")
    assert browser.find_elements(By.CSS_SELECTOR, f"tr[data-batch-id='{batch_id}']") == []


def test_every_page_passes_axe_core_at_wcag_2_aa(
    browser: WebDriver, server: ServerProcess, api: httpx.Client
) -> None:
    batch_id = create_batch(api, latency=0, accounts=2, days=3, description="Accessible")
    sign_in(browser, server, ADMIN_KEY)
    found: dict[str, list[dict[str, Any]]] = {"overview": axe_violations(browser)}
    browser.get(f"{server.url}/console/batches/{batch_id}")
    wait(browser, lambda d: d.find_element(By.ID, "status").text == "STOPPED")
    found["batch"] = axe_violations(browser)
    browser.get(f"{server.url}/console/sign-in")
    shown(browser, "#key")
    found["sign-in"] = axe_violations(browser)
    assert found == {"overview": [], "batch": [], "sign-in": []}


def test_console_answers_carry_a_strict_content_security_policy(
    api: httpx.Client,
) -> None:
    for path in ("/console/", "/console/sign-in", "/console/batches/qrb_0", "/console/nope"):
        answer = api.get(path)
        assert answer.status_code == (404 if path.endswith("nope") else 200)
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe" not in policy
        assert "frame-ancestors 'none'" in policy
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
    script = api.get("/console/static/console.js?v=1")
    assert script.headers["content-security-policy"]
    assert "immutable" in script.headers["cache-control"]
    assert api.get("/console", follow_redirects=False).headers["location"].endswith("/console/")
