"""The ``http`` connector against a JSON REST API served on loopback."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from upstream import ACCOUNTS, Upstream, serve, stats_rows

from querybatch.connectors.base import FetchRequest
from querybatch.connectors.http import HttpConnector
from querybatch.domain.fields import Row
from querybatch.errors import (
    AccountErrors,
    ConfigurationError,
    ConnectorError,
    TransientConnectorError,
    UpstreamRateLimited,
)

TOKEN = "s3cr3t-token-never-shown"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    yield from serve(Upstream(token=TOKEN))


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATS_TOKEN", TOKEN)


def settings(upstream: Upstream, **overrides: Any) -> dict[str, Any]:
    return {
        "url": upstream.url + "/v1/accounts/{account}/stats",
        "accounts": [*ACCOUNTS, "forbidden", "flaky", "limited", "broken", "a/../b?x=1"],
        "rows_path": "data.rows",
        "date_column": "date",
        "dimensions": ["campaign"],
        "metrics": {"clicks": "sum", "cost": "sum"},
        "columns": {"clicks": "stats.clicks", "cost": "stats.cost"},
        "fields": {"clicks": {"data_type": "int"}, "cost": {"data_type": "currency"}},
        "params": {"start_date": "from", "end_date": "to"},
        "pagination": {"style": "page", "size_param": "per_page", "size": 4},
        "auth_env": "STATS_TOKEN",
        "backoff": 0,
        **overrides,
    }


def source(upstream: Upstream, **overrides: Any) -> HttpConnector:
    connector = HttpConnector.from_mapping("STATS", settings(upstream, **overrides))
    assert isinstance(connector, HttpConnector)
    return connector


def request(fields: tuple[str, ...], *accounts: str, **kw: Any) -> FetchRequest:
    return FetchRequest(
        "STATS", accounts, kw.pop("start", date(2024, 1, 2)), date(2024, 1, 5), fields, **kw
    )


async def fetch(connector: HttpConnector, req: FetchRequest) -> list[Row]:
    await connector.open()
    try:
        return [row async for chunk in connector.fetch(req) for row in chunk]
    finally:
        await connector.close()


def expected(accounts: tuple[str, ...], by_campaign: bool) -> dict[Any, list[float]]:
    totals: dict[Any, list[float]] = defaultdict(lambda: [0, 0.0])
    for account in accounts:
        for row in stats_rows(account):
            if "2024-01-02" <= row["date"][:10] <= "2024-01-05":
                key = (account, row["campaign"]) if by_campaign else account
                totals[key][0] += row["stats"]["clicks"]
                totals[key][1] += float(row["stats"]["cost"])
    return totals


@pytest.mark.parametrize(
    "pagination",
    [
        {"style": "page", "size_param": "per_page", "size": 4},
        {"style": "page", "size": 4},
        {"style": "offset", "size": 5},
        {"style": "cursor", "cursor_path": "next_cursor"},
        {"style": "next_link", "next_path": "links.next"},
    ],
)
async def test_every_pagination_style_reads_all_pages_and_groups_rows(
    upstream: Upstream, token_env: None, pagination: dict[str, Any]
) -> None:
    connector = source(upstream, pagination=pagination)
    rows = await fetch(connector, request(("account_id", "campaign", "clicks", "cost"), *ACCOUNTS))
    totals = expected(ACCOUNTS, by_campaign=True)
    assert {(r[0], r[1]): [r[2], r[3]] for r in rows} == {
        k: [v[0], pytest.approx(v[1])] for k, v in totals.items()
    }
    assert all(isinstance(r[2], int) and isinstance(r[3], float) for r in rows)


async def test_rows_are_grouped_by_the_requested_dimensions_only(
    upstream: Upstream, token_env: None
) -> None:
    rows = await fetch(source(upstream), request(("account_name", "clicks"), *ACCOUNTS))
    assert sorted(rows) == sorted((a, v[0]) for a, v in expected(ACCOUNTS, False).items())


async def test_dates_are_days_and_rows_outside_the_range_are_dropped(
    upstream: Upstream, token_env: None
) -> None:
    connector = source(upstream, params={"start_date": None, "end_date": None})
    rows = await fetch(connector, request(("date", "clicks"), "acc-1"))
    assert [r[0] for r in sorted(rows)] == ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]


async def test_the_token_comes_from_the_environment_and_is_sent_as_bearer(
    upstream: Upstream, token_env: None
) -> None:
    await fetch(source(upstream), request(("clicks",), "acc-1"))
    assert {h["authorization"] for _, _, h in upstream.calls} == {f"Bearer {TOKEN}"}
    assert {q["from"] for _, q, _ in upstream.calls} == {"2024-01-02"}


async def test_a_missing_token_variable_stops_open_naming_the_key(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STATS_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match=r"^sources\.STATS\.auth_env: .*STATS_TOKEN"):
        await source(upstream).open()


async def test_a_wrong_token_fails_without_showing_it(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATS_TOKEN", "wrong-token-value")
    with pytest.raises(ConnectorError) as caught:
        await fetch(source(upstream), request(("clicks",), "acc-1"))
    assert "401" in caught.value.message
    assert "wrong-token-value" not in repr(caught.value) and TOKEN not in repr(caught.value)


async def test_server_errors_are_retried_in_the_connector(
    upstream: Upstream, token_env: None
) -> None:
    rows = await fetch(source(upstream, retries=2), request(("clicks",), "flaky"))
    assert rows and rows[0][0] > 0
    assert len(upstream.calls) > 2


async def test_persistent_server_errors_become_transient_after_the_tries(
    upstream: Upstream, token_env: None
) -> None:
    with pytest.raises(TransientConnectorError, match="503") as caught:
        await fetch(source(upstream, retries=2), request(("clicks",), "broken"))
    assert len(upstream.calls) == 3
    assert TOKEN not in repr(caught.value)


async def test_429_raises_upstream_rate_limited_with_retry_after(
    upstream: Upstream, token_env: None
) -> None:
    with pytest.raises(UpstreamRateLimited) as caught:
        await fetch(source(upstream), request(("clicks",), "acc-1", "limited"))
    assert caught.value.retry_after == 7
    assert [p for p, _, _ in upstream.calls].count("/v1/accounts/limited/stats") == 1


async def test_a_forbidden_or_unknown_account_is_reported_alone(
    upstream: Upstream, token_env: None
) -> None:
    with pytest.raises(AccountErrors) as caught:
        await fetch(source(upstream), request(("clicks",), "acc-1", "forbidden", "nobody"))
    assert set(caught.value.failures) == {"forbidden", "nobody"}
    assert "403" in caught.value.failures["forbidden"]
    rows = await fetch(source(upstream), request(("clicks",), "acc-1"))
    assert rows == [(expected(("acc-1",), False)["acc-1"][0],)]


async def test_account_ids_are_escaped_into_the_url_path(
    upstream: Upstream, token_env: None
) -> None:
    assert await fetch(source(upstream), request(("clicks",), "a/../b?x=1"))
    assert {p for p, _, _ in upstream.calls} == {"/v1/accounts/a%2F..%2Fb%3Fx%3D1/stats"}


async def test_next_links_to_another_host_are_not_followed(
    upstream: Upstream, token_env: None
) -> None:
    connector = source(upstream, pagination={"style": "next_link", "next_path": "elsewhere"})
    with pytest.raises(ConnectorError, match="another host"):
        await fetch(connector, request(("clicks",), "acc-1"))
    assert len(upstream.calls) == 1


def test_url_placeholders_are_checked() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        HttpConnector.from_mapping(
            "X", {"url": "http://h/{tenant}", "accounts": ["a"], "metrics": {"m": "sum"}}
        )


async def test_fields_list_account_dimensions_and_configured_fields(upstream: Upstream) -> None:
    fields = {f.field_id: f for f in await source(upstream).fields()}
    assert list(fields) == ["account_id", "account_name", "date", "campaign", "clicks", "cost"]
    assert (fields["date"].data_type, fields["clicks"].data_type) == ("date", "int")
    assert fields["cost"].data_type == "currency" and fields["cost"].is_metric
