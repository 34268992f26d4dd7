"""The planner: a query is checked against what its data source offers before it is taken."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from fakes import DAY, FilteringConnector, spec

from querybatch.connectors.registry import SourceRegistry
from querybatch.domain.filters import parse_filter
from querybatch.domain.query import QuerySpec, SpecError
from querybatch.engine.executors.fetch import fetch_request
from querybatch.engine.planner import Planner


@pytest.fixture
def planner(sources: SourceRegistry) -> Planner:
    return Planner(sources)


def query(**changes: Any) -> QuerySpec:
    values: dict[str, Any] = {
        "ds_id": "FAKE",
        "accounts": ("acc-1",),
        "start_date": DAY,
        "end_date": DAY,
        "fields": ("date", "clicks"),
    }
    return QuerySpec(**(values | changes))


async def refused(planner: Planner, spec: QuerySpec) -> SpecError:
    with pytest.raises(SpecError) as caught:
        await planner.check(spec)
    return caught.value


async def test_a_query_its_source_can_run_is_accepted(planner: Planner) -> None:
    await planner.check(
        query(
            fields=("date", "account", "clicks"),
            filter="clicks > 0 AND account != acc-2",
            order_rows=("clicks desc",),
            settings={"rows": 5},
        )
    )


async def test_an_unknown_data_source_is_refused_naming_the_known_ones(planner: Planner) -> None:
    error = await refused(planner, query(ds_id="NOPE"))
    assert error.parameter == "ds_id"
    assert str(error) == "Unknown data source 'NOPE' (known: FAKE)"


async def test_unknown_fields_are_refused_naming_each_of_them(planner: Planner) -> None:
    error = await refused(planner, query(fields=("date", "cost", "clicks", "reach")))
    assert error.parameter == "fields"
    assert str(error) == "Unknown field(s) for FAKE: cost, reach"


async def test_settings_the_source_refuses_are_refused_as_settings(planner: Planner) -> None:
    error = await refused(planner, query(settings={"speed": "max"}))
    assert error.parameter == "settings"
    assert "speed" in str(error)


async def test_a_filter_on_an_unknown_field_is_refused(planner: Planner) -> None:
    error = await refused(planner, query(filter="cost > 1"))
    assert (error.parameter, str(error)) == ("filter", "filter names unknown field(s): cost")


async def test_a_filter_on_a_field_not_asked_for_is_refused_when_querybatch_filters(
    planner: Planner,
) -> None:
    error = await refused(planner, query(filter="account == acc-1"))
    assert error.parameter == "filter"
    assert "add account to fields" in str(error)


async def test_a_filter_on_a_field_not_asked_for_is_accepted_when_the_source_filters() -> None:
    planner = Planner(SourceRegistry({"FAKE": FilteringConnector()}))
    await planner.check(query(filter="account == acc-1"))


async def test_a_filter_whose_value_does_not_fit_the_field_type_is_refused(
    planner: Planner,
) -> None:
    error = await refused(planner, query(filter="clicks > many"))
    assert error.parameter == "filter"


async def test_order_rows_must_name_a_field_of_the_query(planner: Planner) -> None:
    error = await refused(planner, query(order_rows=("account asc",)))
    assert error.parameter == "order_rows"


async def test_field_metadata_follows_the_requested_order_and_skips_unknown_fields(
    planner: Planner,
) -> None:
    found = await planner.field_metadata("FAKE", ["clicks", "nope", "date"])
    assert [f.field_id for f in found] == ["clicks", "date"]
    assert await planner.field_metadata("NOPE", ["date"]) == []


def test_a_stored_spec_becomes_the_request_its_connector_sees() -> None:
    stored = spec("acc-1", date(2026, 2, 3), ("date", "account")) | {
        "filter": "account == acc-1",
        "order_rows": ["date desc"],
        "max_rows": 10,
        "settings": {"rows": 5},
        "users": ["user@example.com"],
    }
    request = fetch_request(QuerySpec.model_validate(stored))
    assert (request.ds_id, request.accounts, request.fields) == (
        "FAKE",
        ("acc-1",),
        ("date", "account"),
    )
    assert (request.start_date, request.end_date) == (date(2026, 2, 3), date(2026, 2, 3))
    assert request.filter == parse_filter("account == acc-1")
    assert [(key.field, key.descending) for key in request.order_rows] == [("date", True)]
    assert (request.max_rows, dict(request.settings), request.users) == (
        10,
        {"rows": 5},
        ("user@example.com",),
    )
