"""The console's query explorer in a real browser (issue 17): run a query, see its rows and
chart, and copy it as curl, an SDK call and a batch body.

One server and one browser serve the module (see ``test_console`` for the browser's set-up).
After each test no request went beyond loopback, no key was in a URL or the server's log,
and the page logged no error. The rows shown are compared with what the API answers to the
same request, fetched here with httpx; the copied texts are checked without running them
(the curl's URL is fetched, the SDK call is parsed, the batch body is posted).
"""

from __future__ import annotations

import ast
import json
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

from browser import assert_clean, axe_violations, drain, shown, sign_in, wait
from support import ADMIN_KEY, ServerProcess

DEPLOYMENTS = ("embedded",)

ACCOUNTS = ("ads-0001", "ads-0002")
START, END = "2026-01-01", "2026-01-07"
SHOWN = {"offset_start": "0", "offset_end": "999"}  # the page shows the first 1,000 rows


@pytest.fixture(autouse=True)
def clean_browser(browser: WebDriver, server: ServerProcess) -> Iterator[None]:
    """After each test: no request beyond loopback, no key in a URL, no error logged."""
    drain(browser)
    yield
    assert_clean(browser, [ADMIN_KEY], server)


@pytest.fixture(scope="module")
def explorer(browser: WebDriver, server: ServerProcess) -> WebDriver:
    """The browser signed in (once for the module)."""
    sign_in(browser, server, ADMIN_KEY)
    return browser


def open_explorer(driver: WebDriver, server: ServerProcess) -> None:
    driver.get(f"{server.url}/console/explore")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#metrics input"))


def fill(
    driver: WebDriver,
    fields: tuple[str, ...] = ("date", "clicks"),
    filter_text: str = "",
    range_type: str = "custom",
    dates: tuple[str, str] = (START, END),
) -> None:
    """Choose DEMO_ADS, ``ACCOUNTS`` (found through the account filter), ``fields``, the
    dates and the filter."""
    Select(driver.find_element(By.ID, "source")).select_by_value("DEMO_ADS")
    search = driver.find_element(By.ID, "account-filter")
    for account in ACCOUNTS:
        search.clear()
        search.send_keys(account)
        wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#accounts input")) == 1)
        box = driver.find_element(By.CSS_SELECTOR, f"#accounts input[value='{account}']")
        if not box.is_selected():
            box.click()
    search.send_keys(Keys.BACKSPACE * len(ACCOUNTS[-1]))  # typed, so the list shows all again
    for field in fields:
        box = driver.find_element(By.CSS_SELECTOR, f".choices input[value='{field}']")
        if not box.is_selected():
            box.click()
    Select(driver.find_element(By.ID, "range-type")).select_by_value(range_type)
    # A date input's typing depends on the browser's locale; set the value as a picker does.
    driver.execute_script(
        "for (const [id, value] of [['start-date', arguments[0]], ['end-date', arguments[1]]]) {"
        "  const input = document.getElementById(id); input.value = value;"
        "  input.dispatchEvent(new Event('change')); }",
        *dates,
    )
    filter_input = driver.find_element(By.ID, "filter")
    filter_input.clear()
    if filter_text:
        filter_input.send_keys(filter_text)


def run(driver: WebDriver) -> None:
    driver.execute_script("document.getElementById('run-status').textContent = ''")
    driver.find_element(By.ID, "run").click()
    wait(
        driver,
        lambda d: (
            d.find_element(By.ID, "run-status").text.startswith("Done")
            or d.find_element(By.ID, "run-error").is_displayed()
        ),
    )


def table_rows(driver: WebDriver) -> list[list[str]]:
    rows: list[list[str]] = driver.execute_script(
        "return [...document.querySelectorAll('#rows tbody tr')]"
        ".map(r => [...r.cells].map(c => c.textContent))"
    )
    return rows


def api_rows(api: httpx.Client, params: dict[str, str]) -> list[list[str]]:
    answer = api.get("/query/data/json", params={**params, **SHOWN})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["meta"]["status_code"] == "SUCCESS", body
    rows: list[list[str]] = body["data"][1:]
    return rows


def texts(driver: WebDriver) -> dict[str, str]:
    return {
        name: driver.find_element(By.ID, f"copy-{name}").get_attribute("textContent") or ""
        for name in ("curl", "sdk", "batch")
    }


def test_a_query_shows_the_apis_rows_and_a_chart_of_its_metric_by_date(
    explorer: WebDriver, server: ServerProcess, api: httpx.Client, shots: Path
) -> None:
    open_explorer(explorer, server)
    fill(explorer)
    assert "(2 of " in explorer.find_element(By.ID, "accounts-count").text
    run(explorer)
    assert not explorer.find_element(By.ID, "run-error").is_displayed()
    expected = api_rows(
        api,
        {
            "ds_id": "DEMO_ADS",
            "ds_accounts": ",".join(ACCOUNTS),
            "fields": "date,clicks",
            "start_date": START,
            "end_date": END,
            "max_rows": "10000",
        },
    )
    assert expected and table_rows(explorer) == expected
    headers = [th.text for th in explorer.find_elements(By.CSS_SELECTOR, "#rows thead th")]
    assert headers == ["Date", "Clicks"]
    assert f"{len(expected)} rows" in explorer.find_element(By.ID, "result-note").text

    shown(explorer, "#chart-card")
    assert explorer.find_elements(By.CSS_SELECTOR, "#chart canvas")
    legend = explorer.execute_script(
        "return [...document.querySelectorAll('#chart .u-legend .u-series .u-label')]"
        ".map(e => e.textContent)"
    )
    assert "Clicks" in legend
    explorer.save_screenshot(str(shots / "explore.png"))
    assert axe_violations(explorer) == []


def test_the_table_shows_the_first_1000_rows_and_says_how_many_there_are(
    explorer: WebDriver, server: ServerProcess, api: httpx.Client
) -> None:
    open_explorer(explorer, server)
    fill(explorer, fields=("date", "account_id", "clicks"), dates=("2024-06-01", END))
    run(explorer)
    params = {
        "ds_id": "DEMO_ADS",
        "ds_accounts": ",".join(ACCOUNTS),
        "fields": "date,account_id,clicks",
        "start_date": "2024-06-01",
        "end_date": END,
        "max_rows": "10000",
    }
    total = int(api.get("/query/data/json", params=params).headers["X-Total-Rows"])
    assert total > 1000
    rows = table_rows(explorer)
    assert len(rows) == 1000 and rows == api_rows(api, params)
    note = explorer.find_element(By.ID, "result-note").text
    assert note == f"{total:,} rows; the first 1,000 are shown."


def test_the_copied_curl_sdk_call_and_batch_body_are_the_same_query(
    explorer: WebDriver, server: ServerProcess, api: httpx.Client
) -> None:
    open_explorer(explorer, server)
    fill(explorer, fields=("date", "account_id", "clicks", "cost"), filter_text="clicks > 300")
    run(explorer)
    shown_rows = table_rows(explorer)
    assert shown_rows
    copied = texts(explorer)
    for text in copied.values():
        assert ADMIN_KEY not in text
    # Headless Chromium may refuse the clipboard; then the text is selected instead.
    explorer.find_element(By.CSS_SELECTOR, "[data-copy=copy-curl]").click()
    wait(explorer, lambda d: d.find_element(By.ID, "copy-message").text)

    # curl: the key comes from the shell; the URL is this query, and answers these rows.
    words = shlex.split(copied["curl"].replace("\\\n", " "))
    assert words[:3] == ["curl", "-H", "Authorization: Bearer $QB_API_KEY"]
    url = urlsplit(words[3])
    assert f"{url.scheme}://{url.netloc}" == server.url and url.path == "/query/data/json"
    params = dict(parse_qsl(url.query))
    assert params == {
        "ds_id": "DEMO_ADS",
        "ds_accounts": ",".join(ACCOUNTS),
        "fields": "date,account_id,clicks,cost",
        "start_date": START,
        "end_date": END,
        "filter": "clicks > 300",
        "max_rows": "10000",
    }
    assert api_rows(api, params) == shown_rows

    # The SDK: the official client's call with the same arguments, the key from the environment.
    tree = ast.parse(copied["sdk"])
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    execute = next(
        c for c in calls if isinstance(c.func, ast.Attribute) and c.func.attr == "execute"
    )
    assert ast.unparse(execute.func) == "client.queries.execute"
    assert {k.arg: ast.literal_eval(k.value) for k in execute.keywords} == {
        "ds_id": "DEMO_ADS",
        "ds_accounts": list(ACCOUNTS),
        "fields": ["date", "account_id", "clicks", "cost"],
        "start_date": START,
        "end_date": END,
        "filter_": "clicks > 300",
        "max_rows": 10000,
    }
    made = next(c for c in calls if ast.unparse(c.func) == "SupermetricsClient")
    made_with = {k.arg: ast.unparse(k.value) for k in made.keywords}
    assert made_with == {
        "api_key": "os.environ['QB_API_KEY']",
        "base_url": repr(server.url),
    }

    # The batch body: the same query, accepted by the API.
    body = json.loads(copied["batch"])
    assert body["queries"] == [
        {
            "ds_id": "DEMO_ADS",
            "ds_accounts": list(ACCOUNTS),
            "fields": ["date", "account_id", "clicks", "cost"],
            "start_date": START,
            "end_date": END,
            "filter": "clicks > 300",
            "max_rows": 10000,
        }
    ]
    created = api.post("/query/batch", json=body)
    assert created.status_code == 201, created.text


def test_a_relative_date_range_is_the_apis_named_range_in_every_copy(
    explorer: WebDriver, server: ServerProcess, api: httpx.Client
) -> None:
    open_explorer(explorer, server)
    fill(explorer, range_type="last_7_days")
    assert not explorer.find_element(By.ID, "fixed-dates").is_displayed()
    run(explorer)
    copied = texts(explorer)
    url = shlex.split(copied["curl"].replace("\\\n", " "))[3]
    params = dict(parse_qsl(urlsplit(url).query))
    assert params["date_range_type"] == "last_7_days"
    assert "start_date" not in params and "end_date" not in params
    assert api_rows(api, params) == table_rows(explorer)
    assert 'date_range_type="last_7_days"' in copied["sdk"]
    body = json.loads(copied["batch"])
    assert body["queries"][0]["date_range_type"] == "last_7_days"
    created = api.post("/query/batch", json=body)
    assert created.status_code == 201, created.text


# Wraps the page's fetch: a new query (no schedule id) carries ``settings`` (set before it).
ADD_SETTINGS = (
    "const fetched = window.fetch;"
    "window.fetch = (url, options) => fetched("
    "  String(url).includes('/query/data/json?') && !String(url).includes('schedule_id=')"
    "    ? `${url}&settings=${encodeURIComponent(settings)}` : url, options);"
)


@contextmanager
def query_settings(driver: WebDriver, settings: dict[str, Any]) -> Iterator[None]:
    """Pages opened meanwhile add ``settings`` (the demo source's knobs, which the form does
    not offer) to each new query they run; polls by schedule id are left as they are."""
    script = f"const settings = {json.dumps(json.dumps(settings))};" + ADD_SETTINGS
    added = driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": script})
    try:
        yield
    finally:
        driver.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": added["identifier"]}
        )


def test_a_query_outliving_the_first_wait_is_polled_until_its_rows_come(
    explorer: WebDriver, server: ServerProcess, api: httpx.Client
) -> None:
    with query_settings(explorer, {"demo_latency_ms": 7000}):
        open_explorer(explorer, server)
        fill(explorer)
        explorer.find_element(By.ID, "run").click()
        wait(explorer, lambda d: "asking again" in d.find_element(By.ID, "run-status").text)
        run_finished = wait(
            explorer, lambda d: d.find_element(By.ID, "run-status").text.startswith("Done")
        )
        assert run_finished
    urls, _ = drain(explorer)
    asked = [urlsplit(u) for u in urls if "/query/data/json?" in u]
    polls = [dict(parse_qsl(u.query)) for u in asked if "schedule_id=" in u.query]
    assert polls and set(polls[0]) == {"schedule_id", "sync_timeout", "offset_start", "offset_end"}
    expected = api_rows(
        api,
        {
            "ds_id": "DEMO_ADS",
            "ds_accounts": ",".join(ACCOUNTS),
            "fields": "date,clicks",
            "start_date": START,
            "end_date": END,
        },
    )
    assert table_rows(explorer) == expected


def test_a_query_that_fails_shows_its_error(explorer: WebDriver, server: ServerProcess) -> None:
    with query_settings(explorer, {"demo_fail_accounts": ACCOUNTS[1]}):
        open_explorer(explorer, server)
        fill(explorer)
        run(explorer)
    error = shown(explorer, "#run-error").text
    assert "ACCOUNT_ERROR" in error and ACCOUNTS[1] in error


def test_the_apis_error_is_shown_for_a_bad_filter(
    explorer: WebDriver, server: ServerProcess, api: httpx.Client
) -> None:
    open_explorer(explorer, server)
    fill(explorer, filter_text="clicks >>> 3")
    run(explorer)
    error = shown(explorer, "#run-error").text
    expected = api.get(
        "/query/data/json",
        params={
            "ds_id": "DEMO_ADS",
            "ds_accounts": ",".join(ACCOUNTS),
            "fields": "date,clicks",
            "start_date": START,
            "end_date": END,
            "filter": "clicks >>> 3",
        },
    )
    assert expected.status_code == 400
    envelope = expected.json()["error"]
    assert envelope["message"] in error and envelope["description"] in error
    assert "BAD_REQUEST" in error
    assert all(ADMIN_KEY not in text for text in texts(explorer).values())
