"""The documentation pages work in a browser cut off from every host but this machine.

Debian's Chromium, driven headless by Selenium through Debian's chromedriver (nothing is
downloaded), resolves no name and reaches no address beyond loopback: every other request
goes to a proxy that is not there. The pages must render from the server's own files, and
the browser's network log must show no request to any other host.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.wait import WebDriverWait

from browser import chromium
from support import ADMIN_KEY, ServerProcess

DEPLOYMENTS = ("embedded",)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium(height=2000) as driver:
        yield driver


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
