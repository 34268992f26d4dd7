"""The response models write the answers byte for byte as clients know them.

The expected bytes are what the hand-built answers were before the models wrote them: key
order, nulls that are sent, keys that are left out, floats and non-ASCII text.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from querybatch.api import batch_shapes, shapes
from querybatch.api.answer import model_response, public_base
from querybatch.api.schemas import BatchQueryItem, DataResponse, QueryBatchResponse, RequestMeta
from querybatch.domain.batch import BatchSettings
from querybatch.domain.fields import FieldInfo
from querybatch.domain.query import QuerySpec
from querybatch.domain.status import BatchStatus, QueryStatus
from querybatch.store.codec import encode_spec
from querybatch.store.records import (
    BatchRecord,
    Counts,
    ErrorInfo,
    QueryRecord,
    ResultRecord,
    SubQueryState,
)

SPEC = {
    "ds_id": "DEMO_ADS",
    "accounts": ["ads-0001"],
    "start_date": "2026-01-01",
    "end_date": "2026-01-02",
    "fields": ["date", "clicks", "nope"],
    "segments": [],
    "users": [],
    "filter": None,
    "order_rows": [],
    "max_rows": 1000,
    "settings": {"no_headers": True, "x": 0.1},
    "date_range_type": None,
    "compare_type": None,
}
RUNNING = QueryRecord(
    id=1,
    account="acme",
    schedule_id="qrb_0123456789ab_query_1",
    batch_id="qrb_0123456789ab",
    batch_settings=BatchSettings(),
    position=1,
    status=QueryStatus.RUNNING,
    ds_id="DEMO_ADS",
    spec=QuerySpec.model_validate(SPEC),
    fingerprint="f",
    request_id=None,
    created_at=1.0,
    start_time=1767225600.5,
    end_time=None,
    expires_at=None,
    attempt=1,
    error=None,
    excluded_accounts=None,
    result=None,
    cache_used=False,
    cache_time=None,
)
STOPPED = dataclasses.replace(
    RUNNING,
    status=QueryStatus.STOPPED,
    end_time=1767225601.0,
    error=ErrorInfo("QUERY_STOPPED", "Cancelled"),
    excluded_accounts={},
)
FAILED = dataclasses.replace(
    RUNNING,
    status=QueryStatus.FAILURE,
    end_time=1767225601.0,
    error=ErrorInfo("ACCOUNT_ERROR", "Failed", "ads-0001: no"),
    excluded_accounts={"ads-0002": "gone"},
)
SUCCEEDED = dataclasses.replace(
    RUNNING,
    status=QueryStatus.SUCCESS,
    end_time=1767225601.0,
    result=ResultRecord("r", 2, 3, 0.25, 1.0),
    excluded_accounts={"ads-0002": "gone"},
    cache_used=True,
    cache_time=1767225600.0,
)
INFOS = [FieldInfo("date", "Date", "dim", "date"), FieldInfo("clicks", "Clicks", "met", "int")]
BATCH = BatchRecord(
    id="qrb_0123456789ab",
    kind="batch",
    account="acme",
    key_id="k",
    status=BatchStatus.RUNNING,
    settings=BatchSettings(
        description="é",
        split_accounts_policy="none",
        split_dates_policy="day",
        timeout_minutes=30,
        query_concurrency=5,
        query_output_format="json",
        add_exclude_account_errors=False,
        add_clean_data_types=True,
    ),
    columns=("date",),
    query_concurrency=5,
    timeout_seconds=60,
    created_at=1767225600.0,
    schedule_time=1767225600.0,
    start_time=None,
    end_time=None,
    cancel_time=None,
    query_amount=3,
    counts=Counts(queued=1, running=1, success=1),
)
BATCH_JSON = (
    '"schedule_time":"2026-01-01T00:00:00.000Z","start_time":null,"end_time":null,'
    '"cancel_time":null,"description":"é","split_accounts_policy":"none",'
    '"split_dates_policy":"day","timeout_minutes":30,"query_concurrency":5,'
    '"query_output_format":"json","add_exclude_account_errors":false,'
    '"add_clean_data_types":true,"query_amount":3,"created_time":"2026-01-01T00:00:00.000Z",'
    '"progress":{"queued":1,"running":1,"success":1,"failure":0,"stopped":0}'
)
SPLIT_JSON = (
    '"query_start_time":"2026-01-01T00:00:00.500Z","query_end_time":"2026-01-01T00:00:01.000Z",'
    '"split_info":{"ds_id":"DEMO_ADS","ds_accounts":["ads-0001"],"start_date":"2026-01-01",'
    '"end_date":"2026-01-02"}'
)


def status_answer(query: QueryRecord, workflow: tuple[int, int]) -> str:
    meta = shapes.status_meta("rid", query, workflow)
    return bytes(model_response(DataResponse(meta=meta, data=[])).body).decode()


def test_a_status_answer_holds_progress_and_workflow_and_nothing_else() -> None:
    assert status_answer(RUNNING, (3, 4)) == (
        '{"meta":{"request_id":"rid","schedule_id":"qrb_0123456789ab_query_1",'
        '"status_code":"RUNNING","progress":{"queries_ready":0,"queries_total":1},'
        '"workflow":{"tasks_scheduled":3,"tasks_running":4}},"data":[]}'
    )


def test_an_error_without_description_and_no_excluded_accounts_leave_those_keys_out() -> None:
    assert status_answer(STOPPED, (0, 0)) == (
        '{"meta":{"request_id":"rid","schedule_id":"qrb_0123456789ab_query_1",'
        '"status_code":"STOPPED","progress":{"queries_ready":1,"queries_total":1},'
        '"workflow":{"tasks_scheduled":0,"tasks_running":0},'
        '"error":{"code":"QUERY_STOPPED","message":"Cancelled"}},"data":[]}'
    )


def test_a_failure_answers_its_error_then_the_excluded_accounts() -> None:
    assert status_answer(FAILED, (0, 0)) == (
        '{"meta":{"request_id":"rid","schedule_id":"qrb_0123456789ab_query_1",'
        '"status_code":"FAILURE","progress":{"queries_ready":1,"queries_total":1},'
        '"workflow":{"tasks_scheduled":0,"tasks_running":0},'
        '"error":{"code":"ACCOUNT_ERROR","message":"Failed","description":"ads-0001: no"},'
        '"excluded_accounts":{"ads-0002":"gone"}},"data":[]}'
    )


def test_the_meta_of_rows_describes_every_field_and_keeps_an_empty_paginate() -> None:
    meta = shapes.rows_meta("rid", SUCCEEDED, INFOS, {})
    assert meta.model_dump_json(by_alias=True) == (
        '{"request_id":"rid","schedule_id":"qrb_0123456789ab_query_1","status_code":"SUCCESS",'
        '"progress":{"queries_ready":1,"queries_total":1},"query":{"ds_id":"DEMO_ADS",'
        '"start_date":"2026-01-01","end_date":"2026-01-02","date_range_type":"custom",'
        '"ds_accounts":["ads-0001"],"ds_segments":[],"ds_users":[],"fields":['
        '{"id":"date","field_id":"date","field_name":"Date","field_type":"dim",'
        '"field_split":"row","data_type":"date","data_column":0,"visible":true},'
        '{"id":"clicks","field_id":"clicks","field_name":"Clicks","field_type":"met",'
        '"field_split":"","data_type":"int","data_column":1,"visible":true},'
        '{"id":"nope","field_id":"nope","field_name":"nope","field_type":"dim",'
        '"field_split":"row","data_type":"string","data_column":2,"visible":true}],'
        '"filter":"","order_rows":[],"max_rows":1000,"compare_type":"none",'
        '"settings":{"no_headers":true,"x":0.1}},"result":{"total_columns":3,"total_rows":2,'
        '"run_seconds":0.25,"data_sampled":false,"cache_used":true,'
        '"cache_time":"2026-01-01T00:00:00.000Z"},"paginate":{},'
        '"excluded_accounts":{"ads-0002":"gone"}}'
    )


def test_a_batch_answer_starts_with_its_type_and_leaves_out_a_missing_callback() -> None:
    data = batch_shapes.query_batch(BATCH, "http://h/v2")
    answer = QueryBatchResponse(meta=RequestMeta(request_id="rid_0123456789"), data=data)
    assert bytes(model_response(answer).body).decode() == (
        '{"meta":{"request_id":"rid_0123456789"},"data":{"@type":"query_batch",'
        '"batch_id":"qrb_0123456789ab","status_code":"RUNNING",' + BATCH_JSON + ","
        '"links":{"status":{"href":"http://h/v2/query/batch/qrb_0123456789ab/status"}}}}'
    )


def test_a_batch_callback_comes_before_its_links() -> None:
    hooked = dataclasses.replace(BATCH, callback_url="https://example.com/hook")
    shape = batch_shapes.query_batch(hooked, "http://h")
    assert shape.model_dump_json(by_alias=True) == (
        '{"@type":"query_batch","batch_id":"qrb_0123456789ab","status_code":"RUNNING",'
        + BATCH_JSON
        + ',"callback_url":"https://example.com/hook",'
        '"links":{"status":{"href":"http://h/query/batch/qrb_0123456789ab/status"}}}'
    )


def page_state(query: QueryRecord) -> SubQueryState:
    """What a status page reads of ``query``."""
    return SubQueryState(
        id=query.id,
        schedule_id=query.schedule_id,
        status=query.status,
        ds_id=query.ds_id,
        spec_text=encode_spec(query.spec),
        start_time=query.start_time,
        end_time=query.end_time,
        error=query.error,
        excluded_accounts=query.excluded_accounts,
        total_rows=query.result.total_rows if query.result else None,
    )


def test_status_page_items_are_written_once_per_state_of_their_sub_query() -> None:
    items = batch_shapes.ItemJson()
    running, stopped = page_state(RUNNING), page_state(STOPPED)
    first = items.of(running, "http://h")
    assert items.of(running, "http://h") is first
    assert items.of(stopped, "http://h") != first
    assert items.page([running, stopped], "http://h") == (
        b"[" + first + b"," + batch_shapes.item_json(stopped, "http://h") + b"]"
    )


def test_a_stopped_sub_query_sends_a_null_description_and_no_result() -> None:
    item = batch_shapes.item_json(page_state(STOPPED), "http://h")
    assert item.decode() == (
        '{"@type":"batch_query","schedule_id":"qrb_0123456789ab_query_1",'
        '"status_code":"STOPPED",' + SPLIT_JSON + ',"error_info":{"status":409,'
        '"code":"QUERY_STOPPED","message":"Cancelled","description":null},"result_info":null}'
    )


def test_a_successful_sub_query_links_its_results_and_names_excluded_accounts() -> None:
    item = batch_shapes.item_json(page_state(SUCCEEDED), "http://h")
    assert item.decode() == (
        '{"@type":"batch_query","schedule_id":"qrb_0123456789ab_query_1",'
        '"status_code":"SUCCESS",' + SPLIT_JSON + ',"error_info":null,"result_info":'
        '{"total_rows":2,"results_url":"http://h/query/results?'
        'schedule_id=qrb_0123456789ab_query_1"},"excluded_accounts":{"ads-0002":"gone"}}'
    )


def as_the_model_writes(item: bytes) -> bytes:
    """``item`` read as the documented model (``BatchQueryItem``) and written by it."""
    return BatchQueryItem.model_validate_json(item).model_dump_json(by_alias=True).encode()


def test_status_page_items_are_written_as_their_model_writes_them() -> None:
    for query in (RUNNING, STOPPED, FAILED, SUCCEEDED):
        item = batch_shapes.item_json(page_state(query), "http://h/v2")
        assert item == as_the_model_writes(item)


texts = st.text(max_size=12)
epochs = st.none() | st.floats(-1e12, 1e12, allow_nan=False) | st.integers(0, 2**31)


@given(
    schedule_id=texts,
    status=st.sampled_from(list(QueryStatus)),
    ds_id=texts,
    accounts=st.lists(texts, max_size=3),
    dates=st.tuples(texts, texts),
    times=st.tuples(epochs, epochs),
    error=st.none()
    | st.builds(
        ErrorInfo,
        st.sampled_from(["QUERY_STOPPED", "DATA_SOURCE_ERROR", "X"]),
        texts,
        st.none() | texts,
    ),
    excluded=st.none() | st.dictionaries(texts, texts, max_size=2),
    total_rows=st.none() | st.integers(0, 10**12),
    base=st.sampled_from(["http://h", "https://[::1]:8443/prefix", "http://h/v2"]),
)
def test_any_status_page_item_is_written_as_its_model_writes_it(
    schedule_id: str,
    status: QueryStatus,
    ds_id: str,
    accounts: list[str],
    dates: tuple[str, str],
    times: tuple[float | None, float | None],
    error: ErrorInfo | None,
    excluded: dict[str, str] | None,
    total_rows: int | None,
    base: str,
) -> None:
    spec = {"accounts": accounts, "start_date": dates[0], "end_date": dates[1], "fields": []}
    state = SubQueryState(
        id=1,
        schedule_id=schedule_id,
        status=status,
        ds_id=ds_id,
        spec_text=orjson.dumps(spec).decode(),
        start_time=times[0],
        end_time=times[1],
        error=error,
        excluded_accounts=excluded,
        total_rows=total_rows,
    )
    item = batch_shapes.item_json(state, base)
    assert item == as_the_model_writes(item)


@pytest.mark.parametrize(
    "scope",
    [
        {"headers": [(b"host", b"example.com:8443")], "scheme": "https"},
        {"headers": [(b"host", b"[::1]:8080")]},
        {"headers": [], "server": ("::1", 8080)},
        {"headers": [], "server": ("10.0.0.1", 80)},
        {"headers": [(b"host", b"bad host:x")], "server": ("127.0.0.1", 8080)},
        {"headers": [(b"host", b"h")], "root_path": "/prefix"},
    ],
)
def test_the_base_of_links_is_the_frameworks_base_url(scope: dict[str, Any]) -> None:
    request = Request({"type": "http", "path": "/query/status", "query_string": b"", **scope})
    services = SimpleNamespace(settings=SimpleNamespace(public_url=None))
    expected = str(request.base_url).rstrip("/")
    assert public_base(request, services) == expected  # type: ignore[arg-type]
    assert public_base(request, services) == expected  # type: ignore[arg-type]


def datetime_iso_time(epoch: float) -> str:
    from datetime import UTC, datetime

    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


@given(
    st.floats(0.0, 253_402_300_799.0)
    | st.integers(0, 10**10).map(lambda s: s + 0.9999995)
    | st.integers(0, 10**10).map(lambda s: s + 0.0005)
    | st.integers(0, 2 * 10**9).map(lambda s: s / 1000)
)
def test_a_time_is_written_as_datetime_writes_it(epoch: float) -> None:
    assert shapes.iso_time(epoch) == datetime_iso_time(epoch)


def test_times_at_the_edges_of_a_second_and_of_the_calendar() -> None:
    for epoch in (0.0, 0.0000005, 0.0000015, 59.9999995, 1_764_460_800.4995, 253_402_300_799.0):
        assert shapes.iso_time(epoch) == datetime_iso_time(epoch)
    assert shapes.iso_time(-1.5) == datetime_iso_time(-1.5)  # before 1970: datetime's own way
    assert shapes.iso_time(None) is None
    assert batch_shapes.iso_time(1e20) is None  # no calendar shows it


@given(st.text(max_size=30) | st.from_regex(r"qrb_[0-9a-f]{12}_query_[0-9]{1,7}", fullmatch=True))
def test_a_results_url_quotes_its_schedule_id_as_urlencode_does(schedule_id: str) -> None:
    from urllib.parse import urlencode

    state = SubQueryState(1, schedule_id, QueryStatus.SUCCESS, "D", "{}", 1.0, 2.0, None, None, 5)
    assert batch_shapes._results_url(state, "http://h") == (
        "http://h/query/results?" + urlencode({"schedule_id": schedule_id})
    )
