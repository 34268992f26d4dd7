"""Bounds of tenant inputs, checked where they are parsed: no value can fail later."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from querybatch.api.batch_shapes import query_batch
from querybatch.api.links import Links
from querybatch.api.params import MAX_JSON_DEPTH, nesting_exceeds, parse_params
from querybatch.domain.batch import BatchSettings
from querybatch.domain.dates import DateRangeError, epoch_seconds, resolve_date_range
from querybatch.domain.query import (
    MAX_LIST_ITEMS,
    MAX_LITERAL_CHARS,
    MAX_SETTINGS_CHARS,
    MAX_SETTINGS_DEPTH,
    DataRequest,
)
from querybatch.domain.splitting import split_query
from querybatch.domain.status import BatchStatus
from querybatch.engine.batches import request_hash
from querybatch.errors import BadRequest, LinkInvalid
from querybatch.store.records import BatchRecord, Counts

LINKS = Links(b"secret")


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "schedule_time",
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "1999-12-31T23:59:59Z",
        "2999-01-01T00:00:00Z",
    ],
)
def test_a_schedule_time_outside_2000_to_a_year_ahead_is_refused(schedule_time: str) -> None:
    with pytest.raises(ValidationError, match="schedule_time"):
        BatchSettings.model_validate({"schedule_time": schedule_time})


def test_a_schedule_time_of_2000_or_later_is_accepted() -> None:
    settings = BatchSettings.model_validate({"schedule_time": "2000-01-01T00:00:00Z"})
    assert settings.schedule_time is not None


@pytest.mark.parametrize("value", [datetime(1, 1, 1), datetime(9999, 12, 31), datetime(1969, 1, 1)])
def test_a_filter_time_outside_1970_to_2999_is_refused(value: datetime) -> None:
    with pytest.raises(ValueError, match="created_after"):
        epoch_seconds(value, "created_after")


def test_a_naive_filter_time_means_utc() -> None:
    assert epoch_seconds(datetime(1970, 1, 2), "t") == 86400.0


@pytest.mark.parametrize("start", ["9999-12-31", "0001-01-01", "2201-01-01"])
def test_query_dates_far_out_are_refused_before_any_arithmetic(start: str) -> None:
    with pytest.raises(DateRangeError, match="outside the supported years"):
        resolve_date_range(start, start, None, date(2026, 1, 1))


@pytest.mark.parametrize("policy", ["day", "week", "month"])
def test_the_last_supported_days_split_without_overflow(policy: Any) -> None:
    start, end = resolve_date_range("2200-12-01", "2200-12-31", None, date(2026, 1, 1))
    pieces = split_query(("a",), start, end, "none", policy)
    assert pieces[-1][2] == date(2200, 12, 31)


def test_a_stored_time_no_calendar_can_show_is_listed_as_null() -> None:
    batch = BatchRecord(
        id="qrb_000000000001",
        kind="batch",
        account="acme",
        key_id="k",
        status=BatchStatus.QUEUED,
        settings=BatchSettings(),
        columns=(),
        query_concurrency=1,
        timeout_seconds=60,
        created_at=1.0,
        schedule_time=-62135596800.0 - 14 * 3600,  # 0001-01-01T00:00:00+14:00
        start_time=float("nan"),
        end_time=1e20,
        cancel_time=None,
        query_amount=1,
        counts=Counts(queued=1),
    )
    shape = query_batch(batch, "http://h").model_dump(mode="json", by_alias=True)
    assert shape["schedule_time"] is None and shape["start_time"] is None
    assert shape["end_time"] is None and shape["created_time"] == "1970-01-01T00:00:01.000Z"


@pytest.mark.parametrize(
    "settings",
    [
        "{" + " " * MAX_SETTINGS_CHARS + "}",  # too long, even as JSON
        str({"k": "x" * MAX_LITERAL_CHARS}),  # a long Python literal
        {"k": "x" * (MAX_SETTINGS_CHARS + 1)},
        {f"k{i}": i for i in range(1001)},
        {"k": nested(MAX_SETTINGS_DEPTH)},
        "{'k': {1, 2}}",  # a set is no JSON value
        "{'k': 1j}",
        {"k": 2**64},
        {1: "x"},
        "{'k': 1e999}",
    ],
    ids=lambda v: str(v)[:30],
)
def test_settings_beyond_the_bounds_or_not_json_are_refused(settings: Any) -> None:
    with pytest.raises(ValidationError, match="settings"):
        DataRequest.model_validate({"settings": settings})


def test_settings_as_a_short_python_literal_are_read() -> None:
    request = DataRequest.model_validate({"settings": "{'no_headers': True, 'n': [1, (2, 3)]}"})
    assert request.settings == {"no_headers": True, "n": [1, (2, 3)]}


def test_settings_as_json_up_to_the_bound_are_read() -> None:
    text = '{"k": "' + "x" * (MAX_SETTINGS_CHARS - 20) + '"}'
    assert len(DataRequest.model_validate({"settings": text}).settings["k"]) > MAX_LITERAL_CHARS


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("fields", ",".join(["clicks"] * 20_000)),
        ("fields", ["clicks"] * (MAX_LIST_ITEMS + 1)),
        ("ds_accounts", ["a" * 40_000, "b" * 40_000]),
        ("ds_segments", "s," * 40_000),
    ],
    ids=["long comma string", "long array", "long items", "long segments"],
)
def test_list_parameters_are_bounded_before_they_are_split(name: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=name):
        DataRequest.model_validate({name: value})


def test_nesting_is_measured_without_recursion() -> None:
    assert not nesting_exceeds({"a": nested(MAX_JSON_DEPTH - 1)}, MAX_JSON_DEPTH)
    assert nesting_exceeds({"a": nested(MAX_JSON_DEPTH)}, MAX_JSON_DEPTH)
    assert nesting_exceeds(nested(100_000), MAX_JSON_DEPTH)


def test_a_body_orjson_cannot_write_is_a_spec_error_not_a_crash() -> None:
    from querybatch.domain.query import SpecError

    with pytest.raises(SpecError):
        request_hash({"queries": nested(300)})
    with pytest.raises(SpecError):
        request_hash({"n": 2**70})


@pytest.mark.parametrize(
    "expires",
    [
        "nan",
        "NaN",
        "inf",
        "-inf",
        "-1",
        "1e30",
        "1" * 12,
        "100.5000",
        " 100",
        "\uff11\uff10\uff10",
        "0x10",
    ],
)
def test_a_link_whose_expiry_is_not_the_servers_form_is_invalid(expires: str) -> None:
    signature = LINKS.signature("PUT", "/cache/upl_1", expires)  # even a matching signature
    with pytest.raises(LinkInvalid) as caught:
        LINKS.verify("PUT", "/cache/upl_1", expires, signature, now=1.0)
    assert type(caught.value) is LinkInvalid


@pytest.mark.parametrize("signature", ["é", "é" * 64, "\x00" * 64, "g" * 64, "a" * 65])
def test_a_link_whose_signature_is_not_hex_is_invalid(signature: str) -> None:
    with pytest.raises(LinkInvalid) as caught:
        LINKS.verify("PUT", "/cache/upl_1", "100.500", signature, now=1.0)
    assert type(caught.value) is LinkInvalid


@pytest.mark.parametrize(
    "settings",
    ["[" * 990 + "]" * 990, "[1, 2]", '"text"', "5", ["x"] * 5000],
    ids=["990 deep list", "list", "string", "number", "long list"],
)
def test_settings_that_are_not_an_object_are_a_bad_request_naming_settings(
    settings: Any,
) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_params(DataRequest, {"ds_id": "DEMO_ADS", "settings": settings})
    assert "'settings'" in refused.value.message
    assert len(refused.value.description or "") < 600
