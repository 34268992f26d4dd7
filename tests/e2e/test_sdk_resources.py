"""The official Supermetrics SDK, unchanged, over every resource this server offers: request
ids that keep resolving, logins, data source details, teams, and what is not offered."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from supermetrics import SupermetricsAsyncClient, SupermetricsClient
from supermetrics._generated.supermetrics_api_client.models.data_query_settings import (
    DataQuerySettings,
)
from supermetrics.exceptions import SupermetricsAPIError, SupermetricsNotFoundError

from support import ADMIN_KEY, ServerProcess, assert_error, client, run_cli

DEPLOYMENTS = ("embedded",)


def unique_dates() -> tuple[str, str]:
    """A date range no other test of the module asks for (so the query is new)."""
    day = 1 + uuid.uuid4().int % 27
    month = 1 + uuid.uuid4().int % 12
    year = 2020 + uuid.uuid4().int % 5
    return f"{year}-{month:02}-{day:02}", f"{year}-{month:02}-{day + 1:02}"


# -- every request id resolves -----------------------------------------------------------


def test_a_reused_query_answers_a_request_id_that_resolves(
    sdk: SupermetricsClient, server: ServerProcess
) -> None:
    start, end = unique_dates()
    query = {
        "ds_id": "DEMO_ADS",
        "ds_accounts": ["ads-0003"],
        "fields": ["date", "impressions"],
        "start_date": start,
        "end_date": end,
    }
    first = sdk.queries.execute(**query)
    second = sdk.queries.execute(**query)
    assert first is not None and second is not None
    assert second.meta.status_code == "SUCCESS"
    assert second.meta.schedule_id == first.meta.schedule_id
    assert second.meta.request_id != first.meta.request_id
    for request_id in (first.meta.request_id, second.meta.request_id):
        polled = sdk.queries.get_results(query_id=request_id)
        assert polled is not None and polled.data == first.data
        with client(server) as api:
            status = api.get("/query/status", params={"schedule_id": request_id})
            assert status.status_code == 200, status.text
            assert status.json()["meta"]["schedule_id"] == first.meta.schedule_id


def test_a_request_that_joined_a_running_query_can_poll_it_by_its_own_request_id(
    sdk: SupermetricsClient,
) -> None:
    start, end = unique_dates()
    query = {
        "ds_id": "DEMO_WEB",
        "ds_accounts": ["web-0002"],
        "fields": ["date", "sessions"],
        "start_date": start,
        "end_date": end,
        "sync_timeout": 0,
        "settings": DataQuerySettings.from_dict({"demo_latency_ms": 600}),
    }
    first = sdk.queries.execute(**query)
    joined = sdk.queries.execute(**query)
    assert first is not None and joined is not None
    assert joined.meta.schedule_id == first.meta.schedule_id
    deadline = time.monotonic() + 30
    result = sdk.queries.get_results(query_id=joined.meta.request_id)
    while result is not None and result.meta.status_code != "SUCCESS":
        assert time.monotonic() < deadline
        time.sleep(0.1)
        result = sdk.queries.get_results(query_id=joined.meta.request_id)
    assert result is not None and len(result.data) == 1 + 2


@pytest.fixture(scope="module")
def stranger_key(server: ServerProcess) -> str:
    """An admin key of another tenant."""
    made = run_cli(
        server,
        "keys",
        "create",
        "--name",
        "stranger",
        "--role",
        "admin",
        "--account",
        "globex",
        "--quiet",
    )
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def test_another_tenants_request_id_is_not_found(
    sdk: SupermetricsClient, server: ServerProcess, stranger_key: str
) -> None:
    start, end = unique_dates()
    query = {
        "ds_id": "DEMO_ADS",
        "ds_accounts": ["ads-0004"],
        "fields": ["date", "clicks"],
        "start_date": start,
        "end_date": end,
    }
    sdk.queries.execute(**query)
    second = sdk.queries.execute(**query)
    assert second is not None
    assert sdk.queries.get_results(query_id=second.meta.request_id) is not None
    with (
        SupermetricsClient(api_key=stranger_key, base_url=server.url) as stranger,
        pytest.raises(SupermetricsNotFoundError),
    ):
        stranger.queries.get_results(query_id=second.meta.request_id)


# -- logins ----------------------------------------------------------------------------------


def test_logins_list_get_and_get_by_username_describe_the_sources_logins(
    sdk: SupermetricsClient, server: ServerProcess
) -> None:
    logins = sdk.logins.list()
    with client(server) as api:
        accounts = api.get("/query/accounts", params={"ds_id": "DEMO_ADS"}).json()["data"]
    ads = [login for login in logins if login.ds_info.ds_id == "DEMO_ADS"]
    assert [login.username for login in ads] == [a["ds_user"] for a in accounts]
    assert len({login.login_id for login in logins}) == len(logins)

    first = ads[0]
    again = sdk.logins.get(first.login_id)
    assert again.login_id == first.login_id and again.username == first.username
    assert again.display_name == accounts[0]["display_name"]
    assert again.revoked_time is None
    found = sdk.logins.get_by_username(first.username)
    assert found.login_id == first.login_id
    with pytest.raises(SupermetricsNotFoundError):
        sdk.logins.get("lgn_no_such_login")


def test_logins_get_accounts_pages_through_a_logins_accounts(
    sdk: SupermetricsClient, server: ServerProcess
) -> None:
    login = next(g for g in sdk.logins.list() if g.ds_info.ds_id == "DEMO_ADS")
    with client(server) as api:
        listed = api.get("/query/accounts", params={"ds_id": "DEMO_ADS"}).json()["data"]
    expected = next(g["accounts"] for g in listed if g["ds_user"] == login.username)
    every = sdk.logins.get_accounts(login.login_id, limit=1000)
    assert [a.account_id for a in every] == [a["account_id"] for a in expected]
    assert [a.name for a in every] == [a["account_name"] for a in expected]
    pages = [
        sdk.logins.get_accounts(login.login_id, offset=offset, limit=5)
        for offset in range(0, len(expected), 5)
    ]
    assert [a.account_id for page in pages for a in page] == [a.account_id for a in every]
    raw = sdk.with_raw_response.logins.get_accounts(login.login_id, offset=0, limit=5)
    assert raw.json_body["meta"]["paginate"] == {"offset": 0, "limit": 5, "total": len(expected)}


# -- teams and data source details -------------------------------------------------------------


def team_id_of(server: ServerProcess, key: str = ADMIN_KEY) -> int:
    with client(server, key) as api:
        team: int = api.get("/whoami").json()["team_id"]
    return team


def test_teams_get_answers_the_callers_team_and_no_other(
    sdk: SupermetricsClient, server: ServerProcess, stranger_key: str
) -> None:
    own = team_id_of(server)
    team = sdk.teams.get(team_id=own)
    assert team.team_id == own and team.name == "default"
    assert team.display_id.startswith("SM_") and team.created_at is not None
    other = team_id_of(server, stranger_key)
    assert other != own
    with pytest.raises(SupermetricsNotFoundError):
        sdk.teams.get(team_id=other)
    with client(server) as api:
        listed = api.get("/keys").json()["keys"]
    assert {k["team_id"] for k in listed} == {own}
    cli_listed = json.loads(run_cli(server, "keys", "list", "--json").stdout)
    assert {k["team_id"] for k in cli_listed if k["account"] == "globex"} == {other}


def test_datasource_details_describe_the_source_for_the_own_team_only(
    sdk: SupermetricsClient, server: ServerProcess, stranger_key: str
) -> None:
    own = team_id_of(server)
    details = sdk.datasource_details.get(team_id=own, data_source_id="DEMO_ADS")
    assert details.id == details.name == "DEMO_ADS"
    assert details.has_account_list and details.has_fields
    settings = {s.setting_id for s in details.common_settings}
    assert "demo_latency_ms" in settings
    with client(server) as api:
        fields = api.get("/query/fields", params={"ds_id": "DEMO_ADS"}).json()["data"]
    assert [f["field_id"] for f in details["fields"]] == [f["field_id"] for f in fields]
    with pytest.raises(SupermetricsNotFoundError):
        sdk.datasource_details.get(team_id=own, data_source_id="NO_SUCH_SOURCE")
    with pytest.raises(SupermetricsNotFoundError):
        sdk.datasource_details.get(
            team_id=team_id_of(server, stranger_key), data_source_id="DEMO_ADS"
        )


async def test_the_async_client_reads_the_same_resources(server: ServerProcess) -> None:
    own = team_id_of(server)
    async with SupermetricsAsyncClient(api_key=ADMIN_KEY, base_url=server.url) as sdk:
        logins = await sdk.logins.list()
        login = await sdk.logins.get(logins[0].login_id)
        accounts = await sdk.logins.get_accounts(login.login_id)
        team = await sdk.teams.get(team_id=own)
        details = await sdk.datasource_details.get(team_id=own, data_source_id="DEMO_WEB")
    assert login.username == logins[0].username
    assert accounts and team.team_id == own and details.id == "DEMO_WEB"


# -- what a self-hosted server does not offer ----------------------------------------------------


def test_methods_not_offered_answer_501_naming_what_is_missing(
    sdk: SupermetricsClient, server: ServerProcess, stranger_key: str
) -> None:
    own = team_id_of(server)
    calls = [
        ("login links", lambda: sdk.login_links.list()),
        ("custom fields", lambda: sdk.custom_fields.list(team_id=own)),
        ("account tags", lambda: sdk.account_tags.list(team_id=own)),
        ("data blending", lambda: sdk.blends.list(team_id=own)),
        ("the connector builder", lambda: sdk.connector_builder.list(team_id=own)),
        (
            "connector logs",
            lambda: sdk.connector_builder_logs.list(team_id=own, connector_identifier="c"),
        ),
        ("team users", lambda: sdk.teams.list_users(team_id=own)),
        ("revoking logins", lambda: sdk.logins.revoke("lgn_unknown")),
    ]
    for feature, call in calls:
        with pytest.raises(SupermetricsAPIError) as caught:
            call()
        assert caught.value.status_code == 501, feature
    with client(server) as api:
        for path in (
            "/ds/login/links",
            f"/teams/{own}/custom-fields/metadata",
            f"/teams/{own}/connector_builder/connectors/x/logs",
        ):
            body = assert_error(api.get(path), 501, "NOT_IMPLEMENTED")
            assert "does not offer" in body["error"]["message"]
        # Another team's id is 404 before anything else; no key is 401.
        other = team_id_of(server, stranger_key)
        assert_error(api.get(f"/v1/teams/{other}/custom-fields"), 404, "NOT_FOUND")
    assert_error(httpx.get(server.url + "/ds/login/links"), 401, "UNAUTHORIZED")
