"""Requests of public Supermetrics clients, replayed over plain HTTP: a key's query history,
account aliases, paging both ways, pretty output."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support import ServerProcess, assert_error, client

DEPLOYMENTS = ("embedded",)


@pytest.fixture
def fresh(server: ServerProcess, api: httpx.Client) -> Iterator[httpx.Client]:
    """A client with a key of its own, made for this test (so its history starts empty)."""
    made = api.post("/keys", json={"name": f"k-{uuid.uuid4().hex[:6]}", "role": "analyst"})
    assert made.status_code == 201, made.text
    with client(server, made.json()["secret"]) as http:
        yield http


def run(http: httpx.Client, ds_id: str, account: str, **extra: Any) -> dict[str, Any]:
    params = {
        "ds_id": ds_id,
        "ds_accounts": account,
        "fields": "date",
        "start_date": "2026-01-01",
        "end_date": "2026-01-02",
        **extra,
    }
    answer = http.get("/query/data/json", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


# -- /query/history ------------------------------------------------------------------------


def test_a_new_key_has_an_empty_history_which_tests_the_key(
    fresh: httpx.Client, server: ServerProcess
) -> None:
    answer = fresh.get("/query/history", params={"ds_ids": "AC"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"] == []
    assert answer.json()["meta"]["next_cursor"] is None
    key = fresh.headers["authorization"].removeprefix("Bearer ")
    by_param = httpx.get(server.url + "/query/history", params={"api_key": key, "ds_ids": "AC"})
    assert by_param.status_code == 200
    assert_error(
        httpx.get(server.url + "/query/history", params={"api_key": "qb_wrong"}),
        401,
        "UNAUTHORIZED",
    )


def test_the_history_lists_the_keys_queries_newest_first_filtered_and_paged(
    fresh: httpx.Client, api: httpx.Client
) -> None:
    # Dates no other test asks for: a query another key ran first would be reused, not run.
    dates = {"start_date": "2019-03-01", "end_date": "2019-03-02"}
    ran = [
        run(fresh, "DEMO_ADS", "ads-0001", **dates),
        run(fresh, "DEMO_WEB", "web-0001", **dates),
        run(fresh, "DEMO_ADS", "ads-0002", **dates),
    ]
    run(api, "DEMO_ADS", "ads-0003", **dates)  # another key's query is not in this key's history
    listed = fresh.get("/query/history").json()["data"]
    assert [q["schedule_id"] for q in listed] == [r["meta"]["schedule_id"] for r in reversed(ran)]
    first = listed[-1]
    assert first["ds_id"] == "DEMO_ADS" and first["status"] == "SUCCESS"
    assert first["total_rows"] == 2 and first["request_id"] == ran[0]["meta"]["request_id"]
    assert first["created_time"].endswith("Z") and first["end_time"] >= first["start_time"]

    ads = fresh.get("/query/history", params={"ds_ids": "DEMO_ADS,NOPE"}).json()["data"]
    assert [q["ds_id"] for q in ads] == ["DEMO_ADS", "DEMO_ADS"]
    repeated = fresh.get("/query/history", params=[("ds_ids", "DEMO_WEB"), ("ds_ids", "DEMO_ADS")])
    assert len(repeated.json()["data"]) == 3

    seen, cursor = [], None
    while True:
        page = fresh.get(
            "/query/history", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
        )
        assert page.status_code == 200, page.text
        seen += [q["schedule_id"] for q in page.json()["data"]]
        cursor = page.json()["meta"]["next_cursor"]
        if cursor is None:
            break
    assert seen == [q["schedule_id"] for q in listed]


def test_history_parameters_are_bounded(fresh: httpx.Client) -> None:
    assert_error(fresh.get("/query/history", params={"limit": 0}), 400, "BAD_REQUEST")
    assert_error(fresh.get("/query/history", params={"cursor": "nonsense"}), 400, "BAD_REQUEST")
    many = ",".join(f"DS{n}" for n in range(51))
    assert_error(fresh.get("/query/history", params={"ds_ids": many}), 400, "BAD_REQUEST")


# -- account lists -------------------------------------------------------------------------


def every_account(api: httpx.Client, ds_id: str, **params: str) -> list[str]:
    logins = api.get("/query/accounts", params={"ds_id": ds_id, **params}).json()["data"]
    return [a["account_id"] for login in logins for a in login["accounts"]]


def test_all_accounts_names_every_account_the_source_offers(api: httpx.Client) -> None:
    every = every_account(api, "DEMO_ADS")
    answer = run(
        api,
        "DEMO_ADS",
        "list.all_accounts",
        fields="date,account_id",
        start_date="2018-05-01",
        end_date="2018-05-01",
        max_rows="1000",
    )
    assert answer["meta"]["status_code"] == "SUCCESS"
    assert sorted(row[1] for row in answer["data"][1:]) == sorted(every)


def test_all_accounts_follows_the_named_logins(api: httpx.Client) -> None:
    logins = api.get("/query/accounts", params={"ds_id": "DEMO_ADS"}).json()["data"]
    user = logins[0]["ds_user"]
    answer = run(
        api,
        "DEMO_ADS",
        "list.all_accounts",
        ds_user=user,
        fields="date,account_id",
        start_date="2018-05-02",
        end_date="2018-05-02",
        max_rows="1000",
    )
    assert sorted(row[1] for row in answer["data"][1:]) == sorted(
        a["account_id"] for a in logins[0]["accounts"]
    )


def test_a_batch_splits_all_accounts_into_real_accounts(api: httpx.Client) -> None:
    every = every_account(api, "DEMO_ADS")
    body = {
        "queries": [
            {
                "ds_id": "DEMO_ADS",
                "ds_accounts": ["list.all_accounts"],
                "fields": ["date", "impressions"],
                "start_date": "2018-06-01",
                "end_date": "2018-06-02",
            }
        ],
        "split_accounts_policy": "all",
    }
    made = api.post("/query/batch", json=body)
    assert made.status_code == 201, made.text
    batch = made.json()["data"]
    assert batch["query_amount"] == len(every)
    status = api.get(f"/query/batch/{batch['batch_id']}/status", params={"limit": 1000})
    assert status.status_code == 200, status.text
    named = [i["split_info"]["ds_accounts"] for i in status.json()["data"]]
    assert sorted(a for accounts in named for a in accounts) == sorted(every)


def test_an_unknown_account_list_is_a_bad_request_naming_ds_accounts(api: httpx.Client) -> None:
    params = {
        "ds_id": "DEMO_ADS",
        "ds_accounts": "list.some_accounts",
        "fields": "date",
        "start_date": "2026-01-01",
        "end_date": "2026-01-02",
    }
    body = assert_error(api.get("/query/data/json", params=params), 400, "BAD_REQUEST")
    assert "ds_accounts" in body["error"]["message"]
    assert "list.all_accounts" in body["error"]["description"]


# -- paging both ways ----------------------------------------------------------------------

ACCOUNTS_155 = "ads-0001,ads-0002,ads-0003,ads-0004,ads-0005"  # x 31 days = 155 rows


@pytest.fixture(scope="module")
def rows_155(server: ServerProcess) -> str:
    """The schedule id of a finished query of 155 rows."""
    with client(server) as api:
        answer = run(
            api,
            "DEMO_ADS",
            ACCOUNTS_155,
            fields="date,account_id",
            start_date="2017-01-01",
            end_date="2017-01-31",
            max_rows="1000",
        )
    assert answer["meta"]["result"]["total_rows"] == 155
    schedule_id: str = answer["meta"]["schedule_id"]
    return schedule_id


def walk(api: httpx.Client, url: str, direction: str) -> list[tuple[str, int]]:
    """(url, rows) of every page from ``url`` following ``meta.paginate[direction]``."""
    pages: list[tuple[str, int]] = []
    next_url: str | None = url
    while next_url is not None:
        answer = api.get(next_url)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append((str(answer.url), len(body["data"]) - 1))
        next_url = body["meta"]["paginate"].get(direction)
        assert len(pages) < 10
    return pages


def query_of(url: str) -> dict[str, str]:
    return dict(httpx.URL(url).params)


def test_prev_of_a_last_partial_page_walks_back_the_same_pages(
    api: httpx.Client, rows_155: str
) -> None:
    last = api.get(
        "/query/results", params={"schedule_id": rows_155, "offset": 100, "limit": 100}
    ).json()
    assert len(last["data"]) == 1 + 55
    prev = query_of(last["meta"]["paginate"]["prev"])
    assert (prev["offset"], prev["limit"]) == ("0", "100")
    assert "next" not in last["meta"]["paginate"]

    forward = walk(api, f"/query/results?schedule_id={rows_155}&offset=0&limit=40", "next")
    assert [rows for _, rows in forward] == [40, 40, 40, 35]
    backward = walk(api, forward[-1][0], "prev")
    assert [query_of(u) for u, _ in backward] == [query_of(u) for u, _ in reversed(forward)]


def test_offset_start_and_end_walk_the_same_pages_both_ways(
    api: httpx.Client, rows_155: str
) -> None:
    last = api.get(
        "/query/status",
        params={"schedule_id": rows_155, "offset_start": 100, "offset_end": 199},
    ).json()
    assert len(last["data"]) == 1 + 55
    prev = query_of(last["meta"]["paginate"]["prev"])
    assert (prev["offset_start"], prev["offset_end"]) == ("0", "99")
    first = f"/query/status?schedule_id={rows_155}&offset_start=0&offset_end=49"
    forward = walk(api, first, "next")
    assert [rows for _, rows in forward] == [50, 50, 50, 5]
    backward = walk(api, forward[-1][0], "prev")
    assert [query_of(u) for u, _ in backward] == [query_of(u) for u, _ in reversed(forward)]


# -- pretty output -------------------------------------------------------------------------


def test_pretty_true_indents_json_answers_and_changes_nothing_else(
    api: httpx.Client, rows_155: str
) -> None:
    params = {"schedule_id": rows_155, "offset": 0, "limit": 3}
    compact = api.get("/query/results", params=params)
    pretty = api.get("/query/results", params={**params, "pretty": "true"})
    assert pretty.status_code == 200
    assert pretty.text.startswith('{\n  "meta": {\n')
    assert "\n" not in compact.text
    assert int(pretty.headers["content-length"]) == len(pretty.content)
    without_ids = {"request_id": None}
    assert pretty.json()["data"] == compact.json()["data"]
    assert pretty.json()["meta"] | without_ids == compact.json()["meta"] | without_ids
    error = api.get("/query/results", params={"schedule_id": "nope", "pretty": "1"})
    assert_error(error, 404, "STATUS_NOT_FOUND")
    assert error.text.startswith("{\n")
    assert "\n" not in api.get("/query/results", params={**params, "pretty": "false"}).text
    csv = api.get("/query/data/csv", params={"schedule_id": rows_155, "pretty": "true"})
    assert csv.status_code == 200 and csv.text.startswith("Date,")
