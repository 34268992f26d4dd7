"""The demo connector: deterministic, aggregated, lazy synthetic data with failure knobs."""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import aclosing
from datetime import date, timedelta
from typing import Any

import pytest

from querybatch.connectors import demo, demo_rows
from querybatch.connectors.base import FetchRequest
from querybatch.connectors.demo import CHUNK_ROWS, DemoConfig, DemoConnector, demo_sources
from querybatch.domain.fields import Row
from querybatch.domain.filters import Condition, Filter, OrderKey
from querybatch.errors import AccountErrors, ConnectorError, TransientConnectorError

START = date(2024, 1, 1)


@pytest.fixture(autouse=True)
def _clean_stats() -> Iterator[None]:
    DemoConnector.reset_stats()
    yield
    DemoConnector.reset_stats()


def make(dataset: str = "ads", **config: Any) -> DemoConnector:
    ds_id = f"DEMO_{dataset.upper()}"
    return DemoConnector(ds_id, DemoConfig(dataset=dataset, **config))


def request(
    connector: DemoConnector,
    fields: Sequence[str],
    *,
    accounts: Sequence[str] = (),
    days: int = 7,
    settings: Mapping[str, Any] | None = None,
    **extra: Any,
) -> FetchRequest:
    return FetchRequest(
        ds_id=connector.ds_id,
        accounts=tuple(accounts),
        start_date=START,
        end_date=START + timedelta(days=days - 1),
        fields=tuple(fields),
        settings=dict(settings or {}),
        **extra,
    )


async def collect(connector: DemoConnector, req: FetchRequest) -> list[Row]:
    rows: list[Row] = []
    async for chunk in connector.fetch(req):
        assert 0 < len(chunk) <= CHUNK_ROWS
        rows.extend(chunk)
    return rows


def column_sums(rows: Sequence[Row], key: int, value: int) -> dict[Any, int]:
    sums: dict[Any, int] = defaultdict(int)
    for row in rows:
        cell = row[value]
        assert isinstance(cell, int)
        sums[row[key]] += cell
    return dict(sums)


# --- configuration, fields and accounts ---------------------------------------------------


async def test_demo_sources_have_many_accounts_each() -> None:
    sources = demo_sources()
    assert set(sources) == {"DEMO_ADS", "DEMO_WEB"}
    for ds_id, prefix in (("DEMO_ADS", "ads"), ("DEMO_WEB", "web")):
        logins = await sources[ds_id].accounts()
        accounts = sorted(
            (a for login in logins for a in login.accounts), key=lambda a: a.account_id
        )
        assert len(accounts) >= 20
        assert accounts[0].account_id == f"{prefix}-0001"
        assert accounts[0].account_name == f"Demo {prefix.capitalize()} Account 1"
        assert [a.group_name for a in accounts[:3]] == ["North", "South", "North"]


def test_demo_sources_pass_server_defaults() -> None:
    sources = demo_sources(latency_ms=5, fail_accounts=["ads-0002"], rows_per_day=3)
    config = sources["DEMO_WEB"].demo_config
    assert (config.latency_ms, config.fail_accounts, config.rows_per_day) == (5, ["ads-0002"], 3)
    assert DemoConnector.from_mapping("X", {"dataset": "web", "accounts": 3}).ds_id == "X"


@pytest.mark.parametrize(
    "values", [{"dataset": "ads", "accounts": 0}, {"dataset": "tv"}, {"dataset": "ads", "x": 1}]
)
def test_config_is_validated(values: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DemoConnector.from_mapping("DEMO", values)


async def test_field_metadata() -> None:
    ads = {f.field_id: f for f in await make("ads").fields()}
    assert list(ads) == [
        "date",
        "year_month",
        "account_id",
        "account_name",
        "campaign_id",
        "campaign_name",
        "impressions",
        "clicks",
        "cost",
        "conversions",
        "ctr",
        "cpc",
    ]
    assert (ads["date"].field_type, ads["date"].data_type) == ("dim", "date")
    assert (ads["clicks"].field_type, ads["clicks"].data_type, ads["clicks"].aggregation) == (
        "met",
        "int",
        "sum",
    )
    assert (ads["cost"].data_type, ads["ctr"].data_type, ads["cpc"].data_type) == (
        "currency",
        "percent",
        "currency",
    )
    assert ads["ctr"].aggregation == ads["cpc"].aggregation == "avg"
    assert all(f.description and f.group_name and f.field_name for f in ads.values())

    web = {f.field_id: f for f in await make("web").fields()}
    assert {"page_path", "device_category", "sessions", "users", "pageviews"} <= set(web)
    assert web["pageviews_per_session"].data_type == "float"
    assert not web["device_category"].is_metric and web["sessions"].is_metric


async def test_logins_and_users_filter() -> None:
    connector = make("ads", accounts=5)
    logins = await connector.accounts()
    assert [login.ds_user for login in logins] == [
        "ads.team@demo.example",
        "ads.agency@demo.example",
    ]
    assert [a.account_id for a in logins[0].accounts] == ["ads-0001", "ads-0003", "ads-0005"]
    assert [a.account_id for a in logins[1].accounts] == ["ads-0002", "ads-0004"]

    only = await connector.accounts(["ADS.Agency@Demo.Example"])
    assert [login.ds_user for login in only] == ["ads.agency@demo.example"]
    assert await connector.accounts(["nobody@demo.example"]) == []
    web_logins = await make("web").accounts(["web.team@demo.example"])
    assert web_logins[0].accounts[0].account_id == "web-0001"


# --- rows -----------------------------------------------------------------------------------


async def test_same_request_gives_same_rows_and_seed_changes_them() -> None:
    fields = ["date", "account_id", "campaign_name", "impressions", "clicks", "cost"]
    first = await collect(make(), request(make(), fields))
    again = await collect(make(), request(make(), fields))
    assert first == again
    assert len(first) == 7 * 25 * 5
    other = await collect(make(seed=1), request(make(), fields))
    assert [r[:3] for r in other] == [r[:3] for r in first]
    assert other != first


async def test_rows_follow_requested_field_order_and_deterministic_order() -> None:
    connector = make(accounts=3)
    rows = await collect(connector, request(connector, ["clicks", "campaign_id", "date"], days=2))
    assert rows[0][1:] == ("c-001", "2024-01-01")
    days = [str(r[2]) for r in rows]
    assert days == sorted(days)
    assert [r[1] for r in rows[:5]] == ["c-001", "c-002", "c-003", "c-004", "c-005"]
    named = await collect(connector, request(connector, ["account_name", "campaign_name"], days=1))
    assert named[0] == ("Demo Ads Account 1", "Campaign 001")
    assert named[5] == ("Demo Ads Account 2", "Campaign 001")
    assert named[-1] == ("Demo Ads Account 3", "Campaign 005")


async def test_aggregation_sums_and_derived_metrics() -> None:
    connector = make()
    fine = await collect(connector, request(connector, ["date", "campaign_id", "clicks"]))
    by_date = await collect(
        connector, request(connector, ["date", "clicks", "impressions", "ctr", "cost", "cpc"])
    )
    assert len(by_date) == 7
    assert {r[0]: r[1] for r in by_date} == column_sums(fine, 0, 2)
    for _, clicks, impressions, ctr, cost, cpc in by_date:
        assert isinstance(clicks, int) and isinstance(impressions, int)
        assert isinstance(cost, float) and clicks > 0
        assert ctr == round(clicks / impressions * 100, 2)
        assert cpc == round(cost / clicks, 2)
        assert cost == round(cost, 2)

    (totals,) = await collect(connector, request(connector, ["clicks", "cost"]))
    assert totals[0] == sum(r[1] for r in by_date)  # type: ignore[misc]
    assert totals[1] == pytest.approx(sum(r[4] for r in by_date))  # type: ignore[misc]


async def test_year_month_and_account_grouping() -> None:
    connector = make(accounts=4)
    days = await collect(connector, request(connector, ["date", "account_id", "clicks"], days=45))
    months = await collect(connector, request(connector, ["year_month", "clicks"], days=45))
    assert [r[0] for r in months] == ["2024-01", "2024-02"]
    by_month: dict[str, int] = defaultdict(int)
    for day, _, clicks in days:
        assert isinstance(day, str) and isinstance(clicks, int)
        by_month[day[:7]] += clicks
    assert dict(months) == by_month  # type: ignore[arg-type]
    accounts = await collect(connector, request(connector, ["account_id", "clicks"], days=45))
    assert dict(accounts) == column_sums(days, 1, 2)  # type: ignore[arg-type]


async def test_web_dataset_rows() -> None:
    connector = make("web", accounts=2)
    fields = [
        "date",
        "account_id",
        "page_path",
        "device_category",
        "users",
        "sessions",
        "pageviews",
    ]
    rows = await collect(connector, request(connector, fields, days=3))
    assert len(rows) == 3 * 2 * 8
    assert rows[0][2:4] == ("/page-001", "desktop")
    assert [r[3] for r in rows[:4]] == ["desktop", "mobile", "tablet", "desktop"]
    for row in rows:
        users, sessions, pageviews = row[4:]
        assert isinstance(users, int) and isinstance(sessions, int) and isinstance(pageviews, int)
        assert 0 < users <= sessions <= pageviews
    devices = await collect(
        connector, request(connector, ["device_category", "pageviews_per_session"], days=3)
    )
    assert [r[0] for r in devices] == ["desktop", "mobile", "tablet"]
    assert all(isinstance(r[1], float) and r[1] >= 1 for r in devices)


async def test_rows_per_day_setting_and_config() -> None:
    connector = make(accounts=1, rows_per_day=2)
    rows = await collect(connector, request(connector, ["date", "campaign_id"], days=1))
    assert rows == [("2024-01-01", "c-001"), ("2024-01-01", "c-002")]
    more = request(connector, ["campaign_id"], days=1, settings={"demo_rows_per_day": "4"})
    assert len(await collect(connector, more)) == 4


async def test_large_request_streams_in_bounded_memory() -> None:
    connector = make(accounts=1)
    req = request(
        connector,
        ["date", "campaign_name", "impressions"],
        days=1000,
        settings={"demo_rows_per_day": 1000},
    )
    seen = 0
    traced_peak = 0
    tracemalloc.start()
    try:
        async with aclosing(connector.fetch(req)) as chunks:
            async for chunk in chunks:
                assert len(chunk) <= CHUNK_ROWS
                seen += len(chunk)
                if tracemalloc.is_tracing() and seen >= 150_000:
                    # Tracing slows allocation ~5x, so only the first 150k rows are traced.
                    traced_peak = tracemalloc.get_traced_memory()[1]
                    tracemalloc.stop()
    finally:
        tracemalloc.stop()
    assert seen == 1_000_000
    # Holding 150k such rows would take over 20 MB; one day's groups plus a chunk is far less.
    assert 0 < traced_peak < 4_000_000
    assert DemoConnector.in_flight["DEMO_ADS"] == 0


async def test_abandoned_stream_stops_generating() -> None:
    connector = make(accounts=1)
    req = request(
        connector, ["date", "campaign_id"], days=1000, settings={"demo_rows_per_day": 1000}
    )
    async with aclosing(connector.fetch(req)) as chunks:
        first = await anext(chunks)
        assert len(first) == CHUNK_ROWS
        assert DemoConnector.in_flight["DEMO_ADS"] == 1
    assert DemoConnector.in_flight["DEMO_ADS"] == 0


# --- knobs: latency, failures, concurrency --------------------------------------------------


async def test_latency_is_honoured() -> None:
    connector = make(accounts=1)
    started = time.perf_counter()
    await collect(connector, request(connector, ["clicks"], settings={"demo_latency_ms": "50"}))
    assert time.perf_counter() - started >= 0.05

    slow = make(accounts=1, latency_ms=30)
    started = time.perf_counter()
    await collect(slow, request(slow, ["clicks"]))
    assert time.perf_counter() - started >= 0.03


async def test_fail_accounts_raise_account_errors_naming_only_them() -> None:
    connector = make(fail_accounts=["ads-0002"])
    req = request(
        connector,
        ["clicks"],
        accounts=["ads-0001", "ads-0002", "ads-0003", "ads-0004"],
        settings={"demo_fail_accounts": " ads-0004, ads-0009 "},
    )
    with pytest.raises(AccountErrors) as caught:
        await collect(connector, req)
    assert set(caught.value.failures) == {"ads-0002", "ads-0004"}

    listed = request(connector, ["clicks"], settings={"demo_fail_accounts": ["ads-0007"]})
    with pytest.raises(AccountErrors) as caught:
        await collect(connector, listed)
    assert set(caught.value.failures) == {"ads-0002", "ads-0007"}

    fine = request(connector, ["clicks"], accounts=["ads-0001", "ads-0003"])
    assert len(await collect(connector, fine)) == 1


async def test_unknown_accounts_raise_account_errors() -> None:
    connector = make(accounts=3)
    req = request(connector, ["clicks"], accounts=["ads-0001", "ads-0004", "web-0001", "x"])
    with pytest.raises(AccountErrors) as caught:
        await collect(connector, req)
    assert set(caught.value.failures) == {"ads-0004", "web-0001", "x"}
    assert "not found" in caught.value.failures["x"]


async def test_transient_failures_then_success() -> None:
    connector = make(accounts=2)
    req = request(connector, ["clicks"], settings={"demo_transient_failures": 2})
    for _ in range(2):
        with pytest.raises(TransientConnectorError):
            await collect(connector, req)
    assert len(await collect(connector, req)) == 1
    assert len(await collect(connector, req)) == 1
    other = request(connector, ["impressions"], settings={"demo_transient_failures": 2})
    with pytest.raises(TransientConnectorError):
        await collect(connector, other)


async def test_in_flight_and_peak_under_concurrency() -> None:
    connector = make(accounts=2)
    req = request(connector, ["date", "clicks"], settings={"demo_latency_ms": 30})
    results = await asyncio.gather(*(collect(connector, req) for _ in range(5)))
    assert all(rows == results[0] for rows in results)
    assert DemoConnector.peak["DEMO_ADS"] == 5
    assert DemoConnector.in_flight["DEMO_ADS"] == 0
    DemoConnector.reset_stats()
    assert DemoConnector.peak == {} and DemoConnector.in_flight == {}


async def test_cancelled_fetch_leaves_in_flight() -> None:
    connector = make(accounts=1)
    req = request(connector, ["clicks"], settings={"demo_latency_ms": 1000})
    task = asyncio.create_task(collect(connector, req))
    await asyncio.sleep(0.01)
    assert DemoConnector.in_flight["DEMO_ADS"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert DemoConnector.in_flight["DEMO_ADS"] == 0


# --- pushdown -------------------------------------------------------------------------------


def where(*conditions: tuple[str, str, str]) -> Filter:
    return Filter((tuple(Condition(f, op, v) for f, op, v in conditions),))  # type: ignore[arg-type]


async def test_filter_on_requested_metric() -> None:
    connector = make()
    fields = ["date", "campaign_id", "clicks"]
    everything = await collect(connector, request(connector, fields))
    clicks = [r[2] for r in everything]
    assert all(isinstance(c, int) for c in clicks)
    threshold = sorted(clicks)[len(clicks) // 2]  # type: ignore[type-var]
    filtered = await collect(
        connector, request(connector, fields, filter=where(("clicks", ">", str(threshold))))
    )
    assert filtered == [r for r in everything if r[2] > threshold]  # type: ignore[operator]
    assert 0 < len(filtered) < len(everything)


async def test_filter_on_unrequested_dimension_applies_before_aggregation() -> None:
    connector = make()
    fine = await collect(connector, request(connector, ["date", "campaign_id", "clicks"]))
    req = request(
        connector,
        ["date", "clicks", "ctr"],
        filter=where(("campaign_id", "==", "c-002"), ("clicks", ">", "0")),
    )
    rows = await collect(connector, req)
    assert {r[0]: r[1] for r in rows} == {r[0]: r[2] for r in fine if r[1] == "c-002"}

    nothing = request(connector, ["date", "clicks"], filter=where(("campaign_id", "==", "zz")))
    assert await collect(connector, nothing) == []
    (totals,) = await collect(
        connector, request(connector, ["clicks"], filter=where(("account_id", "==", "zz")))
    )
    assert totals == (0,)


async def test_filter_naming_unrequested_metric_or_unknown_field_fails() -> None:
    connector = make()
    with pytest.raises(ConnectorError, match="filter field cost must be requested"):
        await collect(connector, request(connector, ["date"], filter=where(("cost", ">", "1"))))
    with pytest.raises(ConnectorError, match="nope"):
        await collect(connector, request(connector, ["date"], filter=where(("nope", "==", "1"))))
    mixed_or = Filter(
        (
            (Condition("campaign_id", "==", "c-001"),),
            (Condition("clicks", ">", "5"),),
        )
    )
    with pytest.raises(ConnectorError, match="not supported"):
        await collect(connector, request(connector, ["date", "clicks"], filter=mixed_or))


async def test_or_filter_on_unrequested_dimensions() -> None:
    connector = make(accounts=3)
    fine = await collect(connector, request(connector, ["account_id", "campaign_id", "clicks"]))
    either = Filter(
        (
            (Condition("campaign_id", "==", "c-001"),),
            (Condition("account_id", "==", "ads-0002"), Condition("campaign_id", "=@", "5")),
        )
    )
    (total,) = await collect(connector, request(connector, ["clicks"], filter=either))
    expected = [r[2] for r in fine if r[1] == "c-001" or r[:2] == ("ads-0002", "c-005")]
    assert total == (sum(expected),)  # type: ignore[arg-type]


async def test_max_rows_limits_only_unordered_requests() -> None:
    connector = make()
    fields = ["date", "account_id", "campaign_id", "clicks"]
    everything = await collect(connector, request(connector, fields))
    limited = await collect(connector, request(connector, fields, max_rows=2500))
    assert limited == everything[:2500]
    ordered = request(connector, fields, max_rows=10, order_rows=(OrderKey("clicks", True),))
    assert len(await collect(connector, ordered)) == len(everything)
    assert await collect(connector, request(connector, fields, max_rows=0)) == []


# --- guards ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "settings", "message"),
    [
        (["clicks", "sessions"], {}, "unknown field 'sessions'"),
        (["clicks"], {"demo_rows_per_day": "many"}, "demo_rows_per_day"),
        (["clicks"], {"demo_rows_per_day": 0}, "demo_rows_per_day"),
        (["clicks"], {"demo_latency_ms": "-5"}, "demo_latency_ms"),
        (["clicks"], {"demo_transient_failures": True}, "demo_transient_failures"),
        (["clicks"], {"demo_fail_accounts": 7}, "demo_fail_accounts"),
    ],
)
async def test_bad_requests_raise_connector_error(
    fields: list[str], settings: dict[str, Any], message: str
) -> None:
    connector = make(accounts=1)
    with pytest.raises(ConnectorError, match=message):
        await collect(connector, request(connector, fields, settings=settings))
    assert DemoConnector.in_flight["DEMO_ADS"] == 0


# --- bounds: every per-query knob has a maximum ------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"demo_rows_per_day": 100_000_000},
            "demo_rows_per_day must be an integer from 1 to 10000",
        ),
        ({"demo_rows_per_day": "10001"}, "demo_rows_per_day must be an integer from 1 to 10000"),
        ({"demo_latency_ms": 1e12}, "demo_latency_ms must be a number from 0 to 600000"),
        ({"demo_latency_ms": 600_001}, "demo_latency_ms must be a number from 0 to 600000"),
        (
            {"demo_transient_failures": 11},
            "demo_transient_failures must be an integer from 0 to 10",
        ),
        ({"demo_fail_accounts": ["x"] * 10_001}, "names 10001 accounts; the maximum is 10000"),
    ],
)
async def test_a_setting_over_its_maximum_fails_the_fetch_before_any_work(
    settings: dict[str, Any], message: str
) -> None:
    connector = make(accounts=1)
    with pytest.raises(ConnectorError, match=message) as caught:
        await collect(connector, request(connector, ["clicks"], settings=settings))
    assert not isinstance(caught.value, TransientConnectorError)


async def test_a_huge_value_is_cut_short_in_the_message() -> None:
    connector = make(accounts=1)
    with pytest.raises(ConnectorError) as caught:
        await collect(
            connector, request(connector, ["clicks"], settings={"demo_rows_per_day": "9" * 5000})
        )
    assert len(caught.value.message) < 200


async def test_every_setting_at_its_maximum_is_accepted() -> None:
    connector = make(accounts=1)
    most = request(
        connector, ["campaign_id", "clicks"], days=1, settings={"demo_rows_per_day": 10_000}
    )
    assert len(await collect(connector, most)) == 10_000
    flaky = request(connector, ["clicks"], settings={"demo_transient_failures": 10})
    with pytest.raises(TransientConnectorError, match="1 of 10"):
        await collect(connector, flaky)


async def test_transient_failure_memory_forgets_the_oldest_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(demo, "_TRANSIENT_MEMORY", 3)
    connector = make(accounts=5)
    for n in range(1, 6):
        req = request(
            connector,
            ["clicks"],
            accounts=[f"ads-{n:04d}"],
            settings={"demo_transient_failures": 1},
        )
        with pytest.raises(TransientConnectorError):
            await collect(connector, req)
    assert len(DemoConnector._transient_attempts) == 3


# --- no generation on the event loop ------------------------------------------------------


def _record_threads(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    threads: set[str] = set()
    generate, plan = demo_rows._generate, DemoConnector._plan

    def generate_here(p: demo_rows.DemoPlan) -> Iterator[list[Row]]:
        threads.add(threading.current_thread().name)
        yield from generate(p)

    def plan_here(self: DemoConnector, req: FetchRequest) -> demo_rows.DemoPlan:
        threads.add(threading.current_thread().name)
        return plan(self, req)

    monkeypatch.setattr(demo_rows, "_generate", generate_here)
    monkeypatch.setattr(DemoConnector, "_plan", plan_here)
    return threads


async def test_a_large_fetch_is_planned_and_generated_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads = _record_threads(monkeypatch)
    connector = make(accounts=2)
    req = request(connector, ["date", "clicks"], days=30, settings={"demo_rows_per_day": 100})
    assert len(await collect(connector, req)) == 30
    assert threads and threading.current_thread().name not in threads


async def test_a_tiny_fetch_runs_on_the_event_loop_without_a_thread_hop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads = _record_threads(monkeypatch)
    connector = make(accounts=1)
    assert len(await collect(connector, request(connector, ["date", "clicks"], days=3))) == 3
    assert threads == {threading.current_thread().name}


async def test_a_regex_filter_is_matched_off_the_event_loop_on_large_fetches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads = _record_threads(monkeypatch)
    connector = make(accounts=1)
    req = request(
        connector,
        ["campaign_name", "clicks"],
        days=30,
        settings={"demo_rows_per_day": 200},
        filter=where(("campaign_name", "=~", "(.*?){14}X")),
    )
    assert await collect(connector, req) == []
    assert threads and threading.current_thread().name not in threads


@pytest.mark.parametrize(
    "settings",
    [
        {"demo_rows_per_day": 100_000_000},
        {"demo_rows_per_day": 0},
        {"demo_latency_ms": 1e12},
        {"demo_latency_ms": "nan"},
        {"demo_transient_failures": 11},
        {"demo_fail_accounts": [f"ads-{n}" for n in range(10_001)]},
    ],
)
def test_settings_out_of_range_are_refused_before_a_query_is_accepted(
    settings: dict[str, Any],
) -> None:
    source = demo_sources()["DEMO_ADS"]
    with pytest.raises(ConnectorError, match=next(iter(settings))):
        source.check_settings(settings)


def test_settings_at_their_maxima_are_accepted_before_a_query_runs() -> None:
    source = demo_sources()["DEMO_ADS"]
    source.check_settings(dict(demo.SETTING_MAXIMA) | {"demo_fail_accounts": ["ads-0001"]})


async def test_a_fetch_that_would_generate_more_than_the_cap_fails_before_generating() -> None:
    source = demo_sources()["DEMO_ADS"]
    request = FetchRequest(
        ds_id="DEMO_ADS",
        accounts=(),  # all 25 accounts
        start_date=date(2020, 1, 1),
        end_date=date(2029, 12, 31),
        fields=("date", "clicks"),
        settings={"demo_rows_per_day": 10_000},
    )
    # 3,653 days x 25 accounts x 10,000 rows: generating them would take about half an hour.
    with pytest.raises(ConnectorError, match="913,250,000 raw demo rows"):
        async with aclosing(source.fetch(request)) as rows:
            async for _ in rows:
                pass
