"""The official Supermetrics SDK, unchanged, over every resource this server offers: request
ids that keep resolving, logins, data source details, teams, and what is not offered."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from supermetrics import SupermetricsClient
from supermetrics._generated.supermetrics_api_client.models.data_query_settings import (
    DataQuerySettings,
)
from supermetrics.exceptions import SupermetricsNotFoundError

from support import ADMIN_KEY, ServerProcess, client, run_cli

DEPLOYMENTS = ("embedded",)


@pytest.fixture
def sdk(server: ServerProcess) -> Iterator[SupermetricsClient]:
    with SupermetricsClient(api_key=ADMIN_KEY, base_url=server.url) as sdk_client:
        yield sdk_client


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
