"""The console's bulk batch pages in a real browser (issue 17): upload a JSON Lines file
through the file input, follow the batch to its end, see its invalid lines, save its
results, delete it after a confirmation; a viewer sees no upload, cancel or delete.

One server and one browser serve the module. After each test no request went beyond
loopback, no key was in a URL or the server's log, and the page logged no error.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from browser import assert_clean, axe_violations, drain, shown, sign_in, wait
from support import ADMIN_KEY, ServerProcess, client, run_cli

DEPLOYMENTS = ("embedded",)


def op(n: int = 0, **overrides: Any) -> dict[str, Any]:
    return {
        "ds_id": "DEMO_ADS",
        "ds_accounts": f"ads-{1 + n % 5:04}",
        "fields": "date,impressions",
        "start_date": "2026-01-01",
        "end_date": "2026-01-03",
        **overrides,
    }


def jsonl(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


@pytest.fixture(scope="module")
def viewer(server: ServerProcess) -> str:
    with client(server) as admin:
        made = admin.post("/keys", json={"name": "bulk viewer", "role": "viewer"})
        assert made.status_code == 201, made.text
        secret: str = made.json()["secret"]
    return secret


@pytest.fixture(autouse=True)
def clean_browser(browser: WebDriver, server: ServerProcess, viewer: str) -> Iterator[None]:
    """After each test: no request beyond loopback, no key in a URL, no error logged."""
    drain(browser)
    yield
    assert_clean(browser, [ADMIN_KEY, viewer], server)


@pytest.fixture(scope="module")
def console(browser: WebDriver, server: ServerProcess) -> WebDriver:
    """The browser signed in as the admin (once for the module)."""
    sign_in(browser, server, ADMIN_KEY)
    return browser


def upload(driver: WebDriver, server: ServerProcess, file: Path) -> str:
    """Send ``file`` through the bulk page's file input; the new batch's id."""
    driver.get(f"{server.url}/console/bulk")
    shown(driver, "#file").send_keys(str(file))
    wait(driver, lambda d: urlsplit(d.current_url).path.startswith("/console/bulk/"))
    return urlsplit(driver.current_url).path.rsplit("/", 1)[1]


def final_status(driver: WebDriver) -> str:
    def ended(d: WebDriver) -> str | bool:
        text = d.find_element(By.ID, "status").text
        final = {"completed", "validation_failed", "hash_mismatch", "cancelled"}
        return text if text in final else False

    status: str = wait(driver, ended, 60)
    return status


def api_results(api: httpx.Client, batch_id: str) -> bytes:
    link = api.get(f"/batches/{batch_id}", params={"download": "true"}).json()["download"]["url"]
    return httpx.get(link).content


def test_an_uploaded_file_runs_to_completion_and_its_results_are_the_apis(
    console: WebDriver, server: ServerProcess, api: httpx.Client, tmp_path: Path, downloads: Path
) -> None:
    file = tmp_path / "ops.jsonl"
    file.write_bytes(jsonl([orjson.dumps(op(n)) for n in range(5)]))
    batch_id = upload(console, server, file)
    assert final_status(console) == "completed"
    states = [
        li.get_attribute("data-state")
        for li in console.find_elements(By.CSS_SELECTOR, "#timeline li")
    ]
    assert states[0] == "new" and states[-1] == "completed"
    assert console.find_element(By.ID, "lines-total").text == "5"
    assert console.find_element(By.ID, "lines-done").text == "5"
    seen = api.get(f"/batches/{batch_id}").json()
    assert seen["status"] == "completed" and seen["lines"]["total"] == 5
    assert seen["hash"] == hashlib.sha256(file.read_bytes()).hexdigest()
    shown(console, "#download").click()
    saved = downloads / f"{batch_id}.jsonl"
    wait(console, lambda d: saved.exists() and saved.stat().st_size > 0)
    time.sleep(0.2)
    assert saved.read_bytes() == api_results(api, batch_id)
    assert axe_violations(console) == []
    # The list shows it, linking to its page.
    console.get(f"{server.url}/console/bulk")
    shown(console, f"tr[data-bulk-id='{batch_id}'] a")
    assert axe_violations(console) == []


def test_a_file_with_a_bad_line_shows_validation_failed_and_the_line(
    console: WebDriver, server: ServerProcess, tmp_path: Path
) -> None:
    file = tmp_path / "bad.jsonl"
    file.write_bytes(jsonl([orjson.dumps(op(0)), b"{not json", orjson.dumps(op(2))]))
    upload(console, server, file)
    assert final_status(console) == "validation_failed"
    rows = shown(console, "#invalid-lines tbody tr").find_elements(By.TAG_NAME, "td")
    assert rows[0].text == "2" and "not valid JSON" in rows[2].text
    assert len(console.find_elements(By.CSS_SELECTOR, "#invalid-lines tbody tr")) == 1
    assert axe_violations(console) == []


def test_delete_asks_first_then_the_batch_is_gone(
    console: WebDriver, server: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    file = tmp_path / "ops.jsonl"
    file.write_bytes(jsonl([orjson.dumps(op(1))]))
    batch_id = upload(console, server, file)
    final_status(console)
    shown(console, "#delete").click()
    shown(console, "#confirm-delete")
    console.find_element(By.CSS_SELECTOR, "#confirm-delete button[value=keep]").click()
    assert api.get(f"/batches/{batch_id}").status_code == 200
    shown(console, "#delete").click()
    shown(console, "#confirm-delete-button").click()
    wait(console, lambda d: urlsplit(d.current_url).path == "/console/bulk")
    assert api.get(f"/batches/{batch_id}").status_code == 404
    console.get(f"{server.url}/console/bulk/{batch_id}")
    shown(console, "#not-found")


def test_a_viewer_sees_no_upload_cancel_or_delete(
    browser: WebDriver, server: ServerProcess, api: httpx.Client, viewer: str, tmp_path: Path
) -> None:
    made = api.post("/cache").json()
    assert httpx.put(made["url"], content=jsonl([orjson.dumps(op(3))])).status_code == 200
    created = api.post("/batches", json={"handler": made["handler"], "operation": "get_data"})
    batch_id = created.json()["batch"]
    try:
        sign_in(browser, server, viewer)
        link = shown(browser, "nav[aria-label=Main] a[href$='/bulk']")
        link.click()
        shown(browser, "#list-title")
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#bulk-list tbody tr"))
        assert not browser.find_element(By.ID, "upload").is_displayed()
        browser.get(f"{server.url}/console/bulk/{batch_id}")
        shown(browser, "#status")
        for button in ("cancel", "delete", "download"):
            assert not browser.find_element(By.ID, button).is_displayed()
        assert axe_violations(browser) == []
    finally:
        sign_in(browser, server, ADMIN_KEY)


def test_a_bad_unknown_or_other_accounts_batch_is_not_found(
    console: WebDriver, server: ServerProcess
) -> None:
    console.get(f"{server.url}/console/bulk/not%20an%20id")
    assert "no such page" in console.find_element(By.TAG_NAME, "main").text
    console.get(f"{server.url}/console/bulk/0d0c0000-0000-0000-0000-000000009a1e")
    shown(console, "#not-found")
    made = run_cli(server, "keys", "create", "--name", "other", "--account", "other", "-q")
    assert made.returncode == 0, made.stderr
    with client(server, made.stdout.strip()) as other:
        upload_url = other.post("/cache").json()
        assert httpx.put(upload_url["url"], content=jsonl([orjson.dumps(op())])).status_code == 200
        body = {"handler": upload_url["handler"], "operation": "get_data"}
        theirs = other.post("/batches", json=body).json()["batch"]
    console.get(f"{server.url}/console/bulk/{theirs}")
    shown(console, "#not-found")
    assert not console.find_element(By.ID, "found").is_displayed()
