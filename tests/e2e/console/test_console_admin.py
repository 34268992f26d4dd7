"""The console's keys and roles page and its sources page, in a real browser (issue 17).

As in ``test_console``: Debian's headless Chromium cut off from every host but this machine,
one server and one browser for the module, and after each test no request beyond loopback,
no key (a new key's secret included) in a URL or the server's log, and no error logged.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

from browser import assert_clean, axe_violations, drain, shown, sign_in, wait
from support import ADMIN_KEY, ServerProcess, assert_error, client, run_cli

DEPLOYMENTS = ("embedded",)

XSS = "<img src=x onerror=alert(1)><script>alert(2)</script>"

# Every secret the module's tests make, for the checks after each test.
SECRETS: list[str] = []


@pytest.fixture(scope="module")
def keys(server: ServerProcess) -> dict[str, str]:
    """A viewer of the admin's account, and an admin of another account."""
    with client(server) as admin:
        made = admin.post("/keys", json={"name": "console viewer", "role": "viewer"})
        assert made.status_code == 201, made.text
        viewer = made.json()["secret"]
    other = run_cli(
        server,
        "keys",
        "create",
        "--name",
        "other-tenant-key",
        "--role",
        "admin",
        "--account",
        "other",
        "-q",
    )
    assert other.returncode == 0, other.stderr
    SECRETS.extend([ADMIN_KEY, viewer, other.stdout.strip()])
    return {"admin": ADMIN_KEY, "viewer": viewer, "other": other.stdout.strip()}


@pytest.fixture(autouse=True)
def clean_browser(
    browser: WebDriver, keys: dict[str, str], server: ServerProcess
) -> Iterator[None]:
    """After each test: no request beyond loopback, no key in a URL, no error logged."""
    drain(browser)
    yield
    assert_clean(browser, SECRETS, server)


def key_rows(driver: WebDriver) -> dict[str, dict[str, Any]]:
    """The keys table: each row's name, role, revoked cell and revoke button (or None),
    read again if the page replaced the table meanwhile."""
    for _ in range(20):
        try:
            return read_key_rows(driver)
        except StaleElementReferenceException:
            time.sleep(0.1)
    return read_key_rows(driver)


def read_key_rows(driver: WebDriver) -> dict[str, dict[str, Any]]:
    found = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "#keys tbody tr"):
        cells = row.find_elements(By.TAG_NAME, "td")
        buttons = row.find_elements(By.TAG_NAME, "button")
        found[row.get_attribute("data-key-id") or ""] = {
            "name": cells[0].text,
            "role": cells[2].text,
            "revoked": cells[4].text,
            "button": buttons[0] if buttons else None,
        }
    return found


def open_keys_page(driver: WebDriver, server: ServerProcess) -> None:
    driver.find_element(By.ID, "nav-keys").click()
    wait(driver, lambda d: urlsplit(d.current_url).path == "/console/keys")
    shown(driver, "#keys tbody tr")
    shown(driver, "#roles tbody tr")


def create_key_in_page(driver: WebDriver, name: str, role: str) -> str:
    """Create a key with the page's form; the secret it shows."""
    field = shown(driver, "#key-name")
    field.clear()
    field.send_keys(name)
    Select(driver.find_element(By.ID, "key-role")).select_by_value(role)
    driver.find_element(By.CSS_SELECTOR, "#new-key button[type=submit]").click()
    secret_field = shown(driver, "#created-secret")
    secret: str = wait(driver, lambda d: secret_field.get_attribute("value"))
    SECRETS.append(secret)
    return secret


def no_alert(driver: WebDriver) -> bool:
    try:
        driver.switch_to.alert.text  # noqa: B018  # raises when there is none
    except NoAlertPresentException:
        return True
    return False


def test_an_admin_creates_a_key_whose_secret_is_shown_once_and_works(
    browser: WebDriver, server: ServerProcess, api: httpx.Client
) -> None:
    sign_in(browser, server, ADMIN_KEY)
    open_keys_page(browser, server)
    roles = [o.text for o in Select(browser.find_element(By.ID, "key-role")).options]
    assert {"admin", "analyst", "viewer"} <= set(roles)
    secret = create_key_in_page(browser, "made in the console", "analyst")
    assert secret.startswith("qb_")
    assert "made in the console" in shown(browser, "#created-name").text

    browser.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"origin": server.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )
    browser.find_element(By.ID, "copy-secret").click()
    wait(browser, lambda d: "Copied" in d.find_element(By.ID, "copy-message").text)
    copied = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "navigator.clipboard.readText().then(done, e => done('failed: ' + e));"
    )
    assert copied == secret

    with client(server, secret) as made:
        whoami = made.get("/whoami")
        assert whoami.status_code == 200, whoami.text
        assert whoami.json()["role"] == "analyst"
        assert whoami.json()["key"]["name"] == "made in the console"
    listed = {row["name"]: row for row in key_rows(browser).values()}
    assert listed["made in the console"]["role"] == "analyst"
    # The secret is in the page's DOM only: no storage, no URL, no cookie.
    assert secret not in browser.execute_script(
        "return JSON.stringify([Object.values(sessionStorage), Object.values(localStorage),"
        " document.cookie, location.href, history.length && history.state])"
    )

    browser.refresh()
    shown(browser, "#keys tbody tr")
    assert not browser.find_element(By.ID, "created").is_displayed()
    assert secret not in browser.page_source
    assert secret not in browser.execute_script(
        "return document.documentElement.outerHTML + JSON.stringify(Object.values(sessionStorage))"
    )
    assert browser.find_element(By.ID, "created-secret").get_attribute("value") == ""

    # Leaving the page and coming back does not bring it back either.
    create_key_in_page(browser, "left behind", "viewer")
    browser.find_element(By.CSS_SELECTOR, "nav a[href='/console/']").click()
    wait(browser, lambda d: urlsplit(d.current_url).path == "/console/")
    browser.back()
    shown(browser, "#keys tbody tr")
    assert browser.find_element(By.ID, "created-secret").get_attribute("value") == ""
    assert SECRETS[-1] not in browser.page_source


def test_revoke_asks_first_and_the_revoked_key_is_refused(
    browser: WebDriver, server: ServerProcess, api: httpx.Client, shots: Path
) -> None:
    made = api.post("/keys", json={"name": "to revoke", "role": "viewer"}).json()
    SECRETS.append(made["secret"])
    sign_in(browser, server, ADMIN_KEY)
    open_keys_page(browser, server)
    row = key_rows(browser)[made["id"]]
    assert row["revoked"] == "—"
    row["button"].click()
    dialog = shown(browser, "#confirm-revoke")
    assert "to revoke" in dialog.text
    browser.save_screenshot(str(shots / "keys-revoke-confirm.png"))
    assert browser.switch_to.active_element.get_attribute("value") == "keep"
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)  # the keyboard says no
    wait(browser, lambda d: not dialog.is_displayed())
    time.sleep(0.3)  # a DELETE sent by mistake would have arrived by now
    with client(server, made["secret"]) as kept:
        assert kept.get("/whoami").status_code == 200

    key_rows(browser)[made["id"]]["button"].click()
    shown(browser, "#confirm-revoke-button").click()
    wait(browser, lambda d: key_rows(d)[made["id"]]["revoked"] != "—")
    assert key_rows(browser)[made["id"]]["button"] is None
    assert "Revoked to revoke" in browser.find_element(By.ID, "key-message").text
    with client(server, made["secret"]) as revoked:
        assert_error(revoked.get("/whoami"), 401, "UNAUTHORIZED")


def test_a_custom_role_is_created_offered_for_keys_and_deleted(
    browser: WebDriver, server: ServerProcess, api: httpx.Client
) -> None:
    name = f"reader-{uuid.uuid4().hex[:6]}"
    sign_in(browser, server, ADMIN_KEY)
    open_keys_page(browser, server)
    admin = browser.find_element(By.CSS_SELECTOR, "#roles tr[data-role='admin']").text
    assert "built-in" in admin and "(every action)" in admin
    shown(browser, "#role-name").send_keys(name)
    Select(browser.find_element(By.ID, "role-effect")).select_by_value("allow")
    browser.find_element(By.ID, "role-actions").send_keys("get_query_batch, list_query_batches")
    browser.find_element(By.CSS_SELECTOR, "#new-role button[type=submit]").click()
    row = shown(browser, f"#roles tr[data-role='{name}']")
    assert "custom" in row.text and "get_query_batch, list_query_batches" in row.text
    assert name in [o.text for o in Select(browser.find_element(By.ID, "key-role")).options]
    stored = {r["name"]: r for r in api.get("/roles").json()["roles"]}[name]
    assert stored["actions"] == ["get_query_batch", "list_query_batches"]

    # A bad action name is refused with the server's message, and nothing is created.
    browser.find_element(By.ID, "role-name").send_keys("bad-one")
    browser.find_element(By.ID, "role-actions").send_keys("no_such_action")
    browser.find_element(By.CSS_SELECTOR, "#new-role button[type=submit]").click()
    wait(browser, lambda d: "BAD_REQUEST" in d.find_element(By.ID, "role-message").text)
    assert "bad-one" not in {r["name"] for r in api.get("/roles").json()["roles"]}

    row.find_element(By.TAG_NAME, "button").click()
    shown(browser, "#confirm-delete-role-button").click()
    wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, f"#roles tr[data-role='{name}']"))
    assert name not in {r["name"] for r in api.get("/roles").json()["roles"]}


def test_a_viewer_sees_no_keys_link_and_the_page_refuses(
    browser: WebDriver, server: ServerProcess, keys: dict[str, str]
) -> None:
    sign_in(browser, server, keys["viewer"])
    assert browser.find_elements(By.ID, "nav-keys")
    assert not browser.find_element(By.ID, "nav-keys").is_displayed()
    assert browser.find_element(By.CSS_SELECTOR, "nav a[href='/console/sources']").is_displayed()
    browser.get(f"{server.url}/console/keys")
    refused = shown(browser, "#refused")
    assert "does not allow this" in refused.text
    assert not browser.find_element(By.ID, "keys-section").is_displayed()
    assert not browser.find_elements(By.CSS_SELECTOR, "#keys tbody tr")
    with client(server, keys["viewer"]) as viewer:
        assert_error(viewer.get("/keys"), 403, "PERMISSION_ERROR")
        assert_error(viewer.get("/roles"), 403, "PERMISSION_ERROR")


def test_another_accounts_keys_never_appear(
    browser: WebDriver, server: ServerProcess, keys: dict[str, str]
) -> None:
    sign_in(browser, server, ADMIN_KEY)
    open_keys_page(browser, server)
    names = {row["name"] for row in key_rows(browser).values()}
    assert "console viewer" in names and "other-tenant-key" not in names
    assert "other-tenant-key" not in browser.page_source
    # And the other account's admin sees its own key, none of this one's.
    sign_in(browser, server, keys["other"])
    open_keys_page(browser, server)
    names = {row["name"] for row in key_rows(browser).values()}
    assert "other-tenant-key" in names and "console viewer" not in names


def test_a_key_name_holding_markup_is_shown_as_text(
    browser: WebDriver, server: ServerProcess, api: httpx.Client
) -> None:
    made = api.post("/keys", json={"name": XSS, "role": "viewer"}).json()
    SECRETS.append(made["secret"])
    sign_in(browser, server, ADMIN_KEY)
    open_keys_page(browser, server)
    assert key_rows(browser)[made["id"]]["name"] == XSS
    key_rows(browser)[made["id"]]["button"].click()
    assert XSS in shown(browser, "#confirm-revoke").text
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    assert no_alert(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, "#keys img, #keys script")


def test_the_sources_page_lists_the_demo_sources_with_fields_and_accounts(
    browser: WebDriver, server: ServerProcess, keys: dict[str, str], shots: Path
) -> None:
    sign_in(browser, server, keys["viewer"])  # a viewer may read what the sources offer
    browser.find_element(By.CSS_SELECTOR, "nav a[href='/console/sources']").click()
    row = shown(browser, "#sources tr[data-ds-id='DEMO_ADS']")
    assert row.find_elements(By.TAG_NAME, "td")[1].text == "demo"
    assert browser.find_elements(By.CSS_SELECTOR, "#sources tr[data-ds-id='DEMO_WEB']")
    row.find_element(By.TAG_NAME, "a").click()
    wait(browser, lambda d: urlsplit(d.current_url).query == "ds=DEMO_ADS")
    shown(browser, "#dimensions tbody tr")
    dimensions = {
        r.get_attribute("data-field-id")
        for r in browser.find_elements(By.CSS_SELECTOR, "#dimensions tbody tr")
    }
    metrics = {
        r.get_attribute("data-field-id")
        for r in browser.find_elements(By.CSS_SELECTOR, "#metrics tbody tr")
    }
    with client(server, keys["viewer"]) as viewer:
        fields = viewer.get("/query/fields", params={"ds_id": "DEMO_ADS"}).json()["data"]
        logins = viewer.get("/query/accounts", params={"ds_id": "DEMO_ADS"}).json()["data"]
    assert metrics == {f["field_id"] for f in fields if f["entity_type"] == "ds_metric"}
    assert dimensions == {f["field_id"] for f in fields if f["entity_type"] == "ds_dimension"}
    assert "date" in dimensions and "clicks" in metrics
    accounts = {
        r.get_attribute("data-account-id")
        for r in browser.find_elements(By.CSS_SELECTOR, "#accounts tbody tr")
    }
    assert accounts == {a["account_id"] for g in logins for a in g["accounts"]}
    assert "ads-0001" in accounts
    assert f"{len(accounts)} accounts" in browser.find_element(By.ID, "accounts-note").text
    browser.save_screenshot(str(shots / "sources.png"))

    browser.get(f"{server.url}/console/sources?ds=NO_SUCH_SOURCE")
    assert "No configured data source" in shown(browser, "#source-missing").text


def test_both_pages_pass_axe_core_at_wcag_2_aa(browser: WebDriver, server: ServerProcess) -> None:
    sign_in(browser, server, ADMIN_KEY)
    open_keys_page(browser, server)
    create_key_in_page(browser, "for axe", "viewer")  # the secret's panel shown as well
    found: dict[str, list[dict[str, Any]]] = {"keys": axe_violations(browser)}
    browser.get(f"{server.url}/console/sources?ds=DEMO_ADS")
    shown(browser, "#accounts tbody tr")
    found["sources"] = axe_violations(browser)
    assert found == {"keys": [], "sources": []}
