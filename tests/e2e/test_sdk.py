"""The official Supermetrics SDK, unchanged, against a live server."""

from __future__ import annotations

import time

import pytest
from supermetrics import SupermetricsClient
from supermetrics._generated.supermetrics_api_client.models.data_query_settings import (
    DataQuerySettings,
)
from supermetrics.exceptions import (
    SupermetricsAuthError,
    SupermetricsNotFoundError,
    SupermetricsValidationError,
)

from support import ServerProcess

# A client of the wire format: the answers it parses (pending, polled to completion) are
# tested in both deployments by tests/api/test_data_api.py.
DEPLOYMENTS = ("embedded",)


def test_execute_returns_rows(sdk: SupermetricsClient) -> None:
    result = sdk.queries.execute(
        ds_id="DEMO_ADS",
        ds_accounts=["ads-0001", "ads-0002"],
        fields=["date", "account_id", "impressions", "clicks"],
        start_date="2026-01-01",
        end_date="2026-01-07",
    )
    assert result is not None
    assert result.meta.status_code == "SUCCESS"
    assert result.data[0] == ["Date", "Account ID", "Impressions", "Clicks"]
    assert len(result.data) == 1 + 7 * 2
    assert result.meta.result.total_rows == 14
    assert [f.data_column for f in result.meta.query.fields] == [0, 1, 2, 3]


def test_a_short_sync_timeout_answers_pending_and_get_results_polls_to_completion(
    sdk: SupermetricsClient,
) -> None:
    pending = sdk.queries.execute(
        ds_id="DEMO_WEB",
        ds_accounts=["web-0003"],
        fields=["date", "page_path", "sessions"],
        start_date="2026-03-01",
        end_date="2026-03-02",
        sync_timeout=0,
        settings=DataQuerySettings.from_dict({"demo_latency_ms": 800}),
    )
    assert pending is not None
    assert pending.meta.status_code in ("SCHEDULED", "QUEUED", "RUNNING")
    assert pending.data == []
    deadline = time.monotonic() + 20
    result = sdk.queries.get_results(query_id=pending.meta.request_id)
    while result is not None and result.meta.status_code != "SUCCESS":
        assert time.monotonic() < deadline, result.meta.status_code
        time.sleep(0.1)
        result = sdk.queries.get_results(query_id=pending.meta.request_id)
    assert result is not None
    assert len(result.data) == 1 + 2 * 8
    by_schedule_id = sdk.queries.get_results(query_id=pending.meta.schedule_id)
    assert by_schedule_id is not None and by_schedule_id.data == result.data


def test_accounts_list_flattens_the_logins(sdk: SupermetricsClient) -> None:
    accounts = sdk.accounts.list(ds_id="DEMO_ADS")
    assert len(accounts) >= 20
    assert accounts[0].account_id.startswith("ads-")


def test_bad_input_raises_the_validation_error_with_our_code(sdk: SupermetricsClient) -> None:
    with pytest.raises(SupermetricsValidationError) as caught:
        sdk.queries.execute(
            ds_id="DEMO_ADS",
            ds_accounts=["ads-0001"],
            fields=["no_such_field"],
            start_date="2026-01-01",
            end_date="2026-01-02",
        )
    assert caught.value.status_code == 400
    assert caught.value.error_code == "BAD_REQUEST"
    assert "no_such_field" in caught.value.message
    with pytest.raises(SupermetricsValidationError):
        sdk.accounts.list(ds_id="NOT_A_SOURCE")


def test_an_unknown_key_raises_the_auth_error(server: ServerProcess) -> None:
    with (
        SupermetricsClient(api_key="qb_nobody", base_url=server.url) as stranger,
        pytest.raises(SupermetricsAuthError) as caught,
    ):
        stranger.accounts.list(ds_id="DEMO_ADS")
    assert caught.value.error_code == "UNAUTHORIZED"


def test_polling_an_unknown_query_raises_not_found(sdk: SupermetricsClient) -> None:
    with pytest.raises(SupermetricsNotFoundError) as caught:
        sdk.queries.get_results(query_id="no_such_query")
    assert caught.value.error_code == "STATUS_NOT_FOUND"
