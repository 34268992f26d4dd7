"""Planning a batch: every query checked, split per account and date piece, and numbered."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from typing import Any

import pytest

from querybatch.connectors.registry import SourceRegistry
from querybatch.domain.batch import BatchSettings
from querybatch.domain.query import SpecError
from querybatch.domain.splitting import SplitDatesPolicy
from querybatch.engine.batches import PlannedBatch, plan_batch
from querybatch.engine.planner import Planner
from querybatch.store.codec import encode_spec

TODAY = date(2026, 2, 1)
BATCH = "qrb_000000000abc"


@pytest.fixture
def planner(sources: SourceRegistry) -> Planner:
    return Planner(sources)


def raw(**changes: Any) -> dict[str, Any]:
    """One query of a batch body, as a client sends it."""
    return {
        "ds_id": "FAKE",
        "ds_accounts": ["acc-1"],
        "start_date": "2026-01-01",
        "end_date": "2026-01-01",
        "fields": ["date", "clicks"],
    } | changes


async def plan(
    planner: Planner,
    queries: Any,
    *,
    accounts: str = "none",
    dates: str = "none",
    max_subqueries: int = 1000,
) -> PlannedBatch:
    settings = BatchSettings(split_accounts_policy=accounts, split_dates_policy=dates)
    return await plan_batch(BATCH, settings, queries, planner, TODAY, max_subqueries)


async def refused(planner: Planner, queries: Any, **options: Any) -> SpecError:
    with pytest.raises(SpecError) as caught:
        await plan(planner, queries, **options)
    return caught.value


def pieces(planned: PlannedBatch) -> list[tuple[str, tuple[str, ...], str, str]]:
    """(schedule id, accounts, start, end) of every sub-query."""
    return [
        (
            piece.schedule_id,
            piece.accounts,
            piece.start_date.isoformat(),
            piece.end_date.isoformat(),
        )
        for piece in planned.subqueries
    ]


# -- splitting ------------------------------------------------------------------------------


async def test_a_query_is_split_per_account_then_per_day(planner: Planner) -> None:
    query = raw(ds_accounts=["acc-1", "acc-2"], end_date="2026-01-03")
    planned = await plan(planner, [query], accounts="all", dates="day")
    assert pieces(planned) == [
        (f"{BATCH}_query_1", ("acc-1",), "2026-01-01", "2026-01-01"),
        (f"{BATCH}_query_2", ("acc-1",), "2026-01-02", "2026-01-02"),
        (f"{BATCH}_query_3", ("acc-1",), "2026-01-03", "2026-01-03"),
        (f"{BATCH}_query_4", ("acc-2",), "2026-01-01", "2026-01-01"),
        (f"{BATCH}_query_5", ("acc-2",), "2026-01-02", "2026-01-02"),
        (f"{BATCH}_query_6", ("acc-2",), "2026-01-03", "2026-01-03"),
    ]


async def test_without_split_policies_each_query_is_one_sub_query(planner: Planner) -> None:
    query = raw(ds_accounts=["acc-1", "acc-2"], end_date="2026-01-31")
    planned = await plan(planner, [query, query])
    assert pieces(planned) == [
        (f"{BATCH}_query_1", ("acc-1", "acc-2"), "2026-01-01", "2026-01-31"),
        (f"{BATCH}_query_2", ("acc-1", "acc-2"), "2026-01-01", "2026-01-31"),
    ]


async def test_a_month_split_follows_calendar_months(planner: Planner) -> None:
    planned = await plan(
        planner, [raw(start_date="2026-01-20", end_date="2026-03-05")], dates="month"
    )
    assert [(start, end) for _, _, start, end in pieces(planned)] == [
        ("2026-01-20", "2026-01-31"),
        ("2026-02-01", "2026-02-28"),
        ("2026-03-01", "2026-03-05"),
    ]


async def test_sub_queries_of_later_queries_are_numbered_after_earlier_ones(
    planner: Planner,
) -> None:
    first = raw(ds_accounts=["acc-1", "acc-2"])
    second = raw(ds_accounts=["acc-3"], fields=["account", "clicks"])
    planned = await plan(planner, [first, second], accounts="all")
    assert [(sid, accounts) for sid, accounts, _, _ in pieces(planned)] == [
        (f"{BATCH}_query_1", ("acc-1",)),
        (f"{BATCH}_query_2", ("acc-2",)),
        (f"{BATCH}_query_3", ("acc-3",)),
    ]
    assert planned.columns == ["date", "clicks", "account"]


async def test_interleaved_sub_queries_are_numbered_piece_by_piece_across_the_queries(
    planner: Planner,
) -> None:
    first = raw(end_date="2026-01-03")
    second = raw(ds_accounts=["acc-2"], end_date="2026-01-02")  # fewer pieces: drops out
    settings = BatchSettings(split_dates_policy="day")
    planned = await plan_batch(
        BATCH, settings, [first, second], planner, TODAY, 1000, interleaved=True
    )
    assert pieces(planned) == [
        (f"{BATCH}_query_1", ("acc-1",), "2026-01-01", "2026-01-01"),
        (f"{BATCH}_query_2", ("acc-2",), "2026-01-01", "2026-01-01"),
        (f"{BATCH}_query_3", ("acc-1",), "2026-01-02", "2026-01-02"),
        (f"{BATCH}_query_4", ("acc-2",), "2026-01-02", "2026-01-02"),
        (f"{BATCH}_query_5", ("acc-1",), "2026-01-03", "2026-01-03"),
    ]
    assert len(planned.subqueries) == 5


async def test_a_split_per_account_with_no_accounts_named_takes_every_account_of_the_source(
    planner: Planner,
) -> None:
    planned = await plan(planner, [raw(ds_accounts=[])], accounts="all")
    assert [accounts for _, accounts, _, _ in pieces(planned)] == [("acc-1",), ("acc-2",)]


async def test_relative_dates_resolve_against_today(planner: Planner) -> None:
    query = raw(start_date=None, end_date=None, date_range_type="last_3_days")
    planned = await plan(planner, [query], dates="day")
    yesterday = TODAY - timedelta(days=1)
    assert [start for _, _, start, _ in pieces(planned)] == [
        (yesterday - timedelta(days=n)).isoformat() for n in (2, 1, 0)
    ]


async def test_a_sub_query_carries_the_fingerprint_of_the_query_it_stands_for(
    planner: Planner,
) -> None:
    planned = await plan(planner, [raw(ds_accounts=["acc-1", "acc-2"])], accounts="all")
    first, second = planned.subqueries
    assert first.fingerprint == first.spec.fingerprint()
    assert first.spec_text == encode_spec(first.spec)
    assert second.fingerprint == second.spec.fingerprint()
    assert first.fingerprint != second.fingerprint


@pytest.mark.parametrize("dates", ["none", "day", "week", "month"])
async def test_the_sub_queries_cover_every_account_and_day_exactly_once(
    planner: Planner, dates: SplitDatesPolicy
) -> None:
    start = date(2025, 12, 1)  # a Monday, so week pieces start whole and end clipped
    for accounts, days in itertools.product((1, 3), (1, 6, 7, 8, 31, 32, 60, 366)):
        names = [f"acc-{n}" for n in range(accounts)]
        end = start + timedelta(days=days - 1)
        query = raw(ds_accounts=names, start_date=start.isoformat(), end_date=end.isoformat())
        planned = await plan(planner, [query], accounts="all", dates=dates, max_subqueries=2000)
        covered: list[tuple[str, date]] = []
        for piece in planned.subqueries:
            first, last = piece.start_date, piece.end_date
            days_of = [first + timedelta(n) for n in range((last - first).days + 1)]
            covered += [(account, day) for account in piece.accounts for day in days_of]
        expected = [(account, start + timedelta(n)) for account in names for n in range(days)]
        assert sorted(covered) == sorted(expected), (accounts, days)


# -- bounds and refusals --------------------------------------------------------------------


async def test_a_batch_of_more_queries_than_allowed_is_refused(planner: Planner) -> None:
    error = await refused(planner, [raw()] * 4, max_subqueries=3)
    assert (error.parameter, str(error)) == (
        "queries",
        "The batch has 4 queries; at most 3 are allowed",
    )


async def test_a_batch_that_splits_into_more_sub_queries_than_allowed_is_refused(
    planner: Planner,
) -> None:
    query = raw(ds_accounts=["acc-1", "acc-2"], end_date="2026-01-05")
    error = await refused(planner, [query], accounts="all", dates="day", max_subqueries=9)
    assert (error.parameter, str(error)) == (
        "queries",
        "The batch would hold 10 sub-queries after splitting; at most 9 are allowed",
    )


async def test_a_batch_that_splits_into_exactly_the_allowed_number_is_taken(
    planner: Planner,
) -> None:
    query = raw(ds_accounts=["acc-1", "acc-2"], end_date="2026-01-05")
    planned = await plan(planner, [query], accounts="all", dates="day", max_subqueries=10)
    assert len(planned.subqueries) == 10


async def test_an_empty_batch_is_refused(planner: Planner) -> None:
    empty: list[Any] = [[], None, {"ds_id": "FAKE"}]
    for queries in empty:
        error = await refused(planner, queries)
        assert error.parameter == "queries"


async def test_a_query_with_an_unknown_field_is_refused_naming_its_index(
    planner: Planner,
) -> None:
    error = await refused(planner, [raw(), raw(fields=["date", "reach"])])
    assert error.parameter == "queries[1].fields"


async def test_a_query_on_an_unknown_data_source_is_refused_naming_its_index(
    planner: Planner,
) -> None:
    error = await refused(planner, [raw(), raw(), raw(ds_id="NOPE")])
    assert error.parameter == "queries[2].ds_id"


async def test_a_malformed_query_is_refused_naming_its_index_and_parameter(
    planner: Planner,
) -> None:
    error = await refused(planner, [raw(), raw(max_rows=-1)])
    assert error.parameter == "queries[1].max_rows"


async def test_a_query_whose_dates_do_not_resolve_is_refused_naming_its_index(
    planner: Planner,
) -> None:
    error = await refused(planner, [raw(start_date="2026-01-05", end_date="2026-01-01")])
    assert error.parameter == "queries[0].start_date"
