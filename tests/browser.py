"""Headless Chromium cut off from every host but this machine, for the browser tests.

Debian's Chromium driven by Selenium through Debian's chromedriver (nothing is downloaded):
names other than loopback do not resolve, and what still goes out (an address written as
such) is sent to a proxy that is not there; loopback bypasses proxies. Every request and
every message the page logs is recorded, so that a test can say no request left loopback,
no key went into a URL and no error was logged (a Content-Security-Policy violation is one).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from support import ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DEAD_PROXY = "127.0.0.1:9"  # nothing listens there: a request it would carry fails at once
AXE = Path(__file__).parent / "e2e" / "vendor" / "axe-core" / "axe.min.js"


@contextmanager
def chromium(downloads: Path | None = None, height: int = 1400) -> Iterator[WebDriver]:
    """The browser; skipped without Chromium, except in CI (``QB_CI``), where that fails."""
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
        f"--window-size=1280,{height}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
        f"--proxy-server=http://{DEAD_PROXY}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    if downloads is not None:
        options.add_experimental_option(
            "prefs",
            {"download.default_directory": str(downloads), "download.prompt_for_download": False},
        )
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def drain(driver: WebDriver) -> tuple[list[str], list[str]]:
    """The URLs requested and the errors logged since the last call."""
    urls = []
    for entry in driver.get_log("performance"):  # type: ignore[no-untyped-call]
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    errors = [
        entry["message"]
        for entry in driver.get_log("browser")  # type: ignore[no-untyped-call]
        # A page of the API answering 404 or 403 is logged by the browser; it is expected.
        if entry["level"] == "SEVERE"
        and "the server responded with a status of" not in entry["message"]
    ]
    return urls, errors


def assert_clean(driver: WebDriver, secrets: list[str], server: ServerProcess) -> None:
    """Since the last drain: no request beyond loopback, no secret in a URL or the server's
    log, no error logged by the page."""
    urls, errors = drain(driver)
    hosts = {urlsplit(url).hostname for url in urls if url.startswith(("http", "ws"))}
    assert hosts <= {"127.0.0.1"}, hosts
    for url in urls:
        assert not any(secret in url for secret in secrets), url
    assert not errors, errors
    assert not any(secret in server.log() for secret in secrets)


def wait(driver: WebDriver, condition: Any, timeout: float = 30) -> Any:
    """What ``condition`` returns once it is truthy; an element the page replaced while the
    condition read it (a live table redrawn) makes it read again."""
    return WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    ).until(condition)


def shown(driver: WebDriver, css: str, timeout: float = 30) -> WebElement:
    """The element ``css`` once it is displayed."""

    def found(d: WebDriver) -> WebElement | bool:
        elements = d.find_elements(By.CSS_SELECTOR, css)
        return elements[0] if elements and elements[0].is_displayed() else False

    element: WebElement = wait(driver, found, timeout)
    return element


def sign_in(driver: WebDriver, server: ServerProcess, key: str) -> None:
    """Sign the console in with ``key``; the overview is shown."""
    driver.get(f"{server.url}/console/sign-in")
    field = shown(driver, "#key")
    assert driver.switch_to.active_element == field  # the page starts in the key's field
    field.clear()
    field.send_keys(key, Keys.ENTER)
    wait(driver, lambda d: urlsplit(d.current_url).path == "/console/")
    shown(driver, "#who")


def axe_violations(driver: WebDriver) -> list[dict[str, Any]]:
    """What axe-core (run from the tests' copy, never the page's) finds at WCAG 2 AA."""
    driver.execute_script(AXE.read_text())
    found: dict[str, Any] = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'best-practice']})"
        ".then(r => done(r), e => done({violations: [{id: String(e), nodes: []}]}));"
    )
    return [
        {"id": v["id"], "nodes": [n.get("target") for n in v["nodes"]][:3]}
        for v in found["violations"]
    ]
