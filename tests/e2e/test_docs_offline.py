"""The documentation pages work in a browser cut off from every host but this machine.

Debian's Chromium, driven headless by Selenium through Debian's chromedriver (nothing is
downloaded), resolves no name and reaches no address beyond loopback: every other request
goes to a proxy that is not there. The pages must render from the server's own files, and
the browser's network log must show no request to any other host.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.wait import WebDriverWait

from support import ADMIN_KEY, ServerProcess

DEPLOYMENTS = ("embedded",)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Nothing listens there: any request the proxy would carry fails at once.
DEAD_PROXY = "127.0.0.1:9"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """Headless Chromium that can reach loopback only, logging every request it makes."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = "the browser tests need chromium and chromium-driver (apt-get install)"
        if os.environ.get("QB_CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,2000",
        # Names other than loopback do not resolve, and what still goes out (an address
        # written as such) is sent to a proxy that is not there; loopback bypasses proxies.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
        f"--proxy-server=http://{DEAD_PROXY}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def requested_hosts(driver: WebDriver) -> set[str]:
    """The hosts of every http(s) request the page made since the log was last read."""
    hosts = set()
    for entry in driver.get_log("performance"):  # type: ignore[no-untyped-call]
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = urlsplit(message["params"]["request"]["url"])
            if url.scheme in ("http", "https", "ws", "wss"):
                hosts.add(url.netloc.rsplit(":", 1)[0] if "]" not in url.netloc else url.netloc)
    return hosts


def open_page(driver: WebDriver, url: str) -> None:
    driver.get_log("performance")  # type: ignore[no-untyped-call]  # forget earlier pages
    driver.get(url)


def wait_for(driver: WebDriver, css: str) -> list[WebElement]:
    wait: WebDriverWait[WebDriver] = WebDriverWait(driver, 60)
    return wait.until(ready.presence_of_all_elements_located((By.CSS_SELECTOR, css)))


def test_swagger_ui_lists_the_operations_from_the_servers_own_files(
    browser: WebDriver, server: ServerProcess
) -> None:
    open_page(browser, f"{server.url}/docs")
    assert len(wait_for(browser, ".opblock")) > 20
    assert browser.title == "querybatch - Swagger UI"
    assert requested_hosts(browser) == {"127.0.0.1"}


def test_redoc_renders_its_menu_from_the_servers_own_files(
    browser: WebDriver, server: ServerProcess
) -> None:
    open_page(browser, f"{server.url}/redoc")
    assert len(wait_for(browser, "li[data-item-id]")) > 20
    assert browser.title == "querybatch - ReDoc"
    assert requested_hosts(browser) == {"127.0.0.1"}


def test_authorizing_with_a_key_lets_try_it_out_call_a_route(
    browser: WebDriver, server: ServerProcess
) -> None:
    open_page(browser, f"{server.url}/docs")
    wait_for(browser, ".opblock")
    browser.find_element(By.CSS_SELECTOR, ".auth-wrapper .authorize").click()
    browser.find_element(By.CSS_SELECTOR, "input[aria-label='auth-bearer-value']").send_keys(
        ADMIN_KEY
    )
    browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .modal-btn.authorize").click()
    browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .btn-done").click()
    whoami = browser.find_element(
        By.XPATH, "//div[contains(@class, 'opblock-get')][.//*[@data-path='/whoami']]"
    )
    whoami.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    WebDriverWait(whoami, 30).until(
        lambda block: block.find_element(By.CSS_SELECTOR, ".try-out__btn")
    ).click()
    whoami.find_element(By.CSS_SELECTOR, ".execute").click()
    answer = WebDriverWait(whoami, 60).until(
        lambda block: block.find_element(By.CSS_SELECTOR, ".live-responses-table tr.response")
    )
    assert answer.find_element(By.CSS_SELECTOR, ".response-col_status").text.strip() == "200"
    assert '"role": "admin"' in answer.text
    assert requested_hosts(browser) == {"127.0.0.1"}
