"""Every tenant-controlled input is bounded: while the server handles the worst of each
(settings, filters, dates, list sizes, body depth and size), ``/healthz`` answers within 1 s,
and the request is refused with a 4xx or completes at once (issue 10)."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from support import ServerProcess, responsive, running_server, wait_until

SETTLE = 30.0  # seconds accepted work may take to end; past that it counts as unbounded
RUN_WHILE_WATCHED = 3.0  # seconds an accepted batch runs under watch before it is cancelled
MAX_BODY = 16 * 1024 * 1024  # QB_MAX_BODY_BYTES of this module's server

# A hostile body, query string or data query is refused while it is parsed, or run by the
# node itself in the embedded deployment (the harder case for /healthz); what a batch
# accepts is stored and dispatched by the deployment's scheduler, and list filters reach the
# store's own date and number types, so those tests run scaled out too (BOTH).
DEPLOYMENTS = ("embedded",)
BOTH = pytest.mark.deployments("embedded", "scaleout")


@pytest.fixture(scope="module")
def server(deployment: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with a body bound small enough to exceed cheaply, big enough for 4 MB."""
    data_dir = tmp_path_factory.mktemp(f"bounds-{deployment}")
    with running_server(data_dir, QB_MAX_BODY_BYTES=str(MAX_BODY)) as started:
        yield started


def query(**overrides: Any) -> dict[str, Any]:
    """A small valid DEMO_ADS query; attacks override one input each."""
    return {
        "ds_id": "DEMO_ADS",
        "ds_accounts": ["ads-0001"],
        "fields": ["date", "campaign_name", "impressions"],
        "start_date": "2026-01-01",
        "end_date": "2026-01-01",
        "sync_timeout": int(SETTLE),
        **overrides,
    }


def nested(depth: int, leaf: Any = 1) -> Any:
    """``{"a": {"a": ... leaf}}``, ``depth`` objects deep."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def deep_json(depth: int) -> bytes:
    """A JSON document nested ``depth`` levels, written out (no recursion to build it)."""
    return b'{"a":' * depth + b"1" + b"}" * depth


def split_beyond_the_limit() -> dict[str, Any]:
    """A batch of three queries that split into 1,095,900 sub-queries (the limit: 1,000,000)."""
    return {
        "split_dates_policy": "day",
        "split_accounts_policy": "all",
        "queries": [
            query(
                start_date="2016-01-01",
                end_date="2025-12-31",
                ds_accounts=[f"ads-{n:04}" for n in range(first, first + 100)],
            )
            for first in (1, 101, 201)
        ],
    }


# id -> the data query (POST /query/data/json, JSON body) that attacks one input; built
# only when its test runs, as some are megabytes
DATA_ATTACKS: dict[str, Callable[[], dict[str, Any]]] = {
    "settings: 1e8 demo rows a day": lambda: query(settings={"demo_rows_per_day": 100_000_000}),
    "settings: 1e12 ms of demo latency": lambda: query(settings={"demo_latency_ms": 1e12}),
    # two million small nodes: what makes parsing a literal slow and big, not its length
    "settings: a 4 MB Python literal": lambda: query(settings="{'k': [" + "1," * (2 << 20) + "]}"),
    "settings: a 4 MB JSON string": lambda: query(settings='{"k": [' + "1," * (2 << 20) + "1]}"),
    "settings: nested 200 deep": lambda: query(settings=nested(200)),
    "settings: 200000 keys": lambda: query(settings={f"k{i}": i for i in range(200_000)}),
    "settings: a 2 MB value": lambda: query(settings={"note": "x" * (2 << 20)}),
    "filter: a backtracking bomb": lambda: query(filter="campaign_name =~ (.*?){14}X"),
    "filter: 1 MB long": lambda: query(filter="campaign_name == " + "x" * (1 << 20)),
    "filter: 250 clauses": lambda: query(filter=" OR ".join(["impressions > 1"] * 250)),
    "filter: 2000 parentheses deep": lambda: query(
        filter="(" * 2000 + "impressions > 1" + ")" * 2000
    ),
    "dates: the first days of the calendar": lambda: query(
        start_date="0001-01-01", end_date="0001-01-02"
    ),
    "dates: the last days of the calendar": lambda: query(
        start_date="9999-12-30", end_date="9999-12-31"
    ),
    "dates: the whole calendar": lambda: query(start_date="0001-01-01", end_date="9999-12-31"),
    "dates: three centuries": lambda: query(start_date="1900-01-01", end_date="2200-12-31"),
    "dates: a huge relative range": lambda: query(start_date="-3000000days", end_date="today"),
    "lists: 5000 accounts": lambda: query(ds_accounts=[f"ads-{n:04}" for n in range(5000)]),
    "lists: 5000 fields": lambda: query(fields=[f"f{n}" for n in range(5000)]),
    "lists: 5000 segments": lambda: query(ds_segments=[f"s{n}" for n in range(5000)]),
    "lists: 5000 order_rows": lambda: query(order_rows=[f"impressions{n}" for n in range(5000)]),
}

# id -> the body of POST /query/batch that attacks one input
BATCH_ATTACKS: dict[str, Callable[[], dict[str, Any]]] = {
    "split by day over the whole calendar": lambda: {
        "split_dates_policy": "day",
        "queries": [query(start_date="0001-01-01", end_date="9999-12-31")],
    },
    "split by day and account over ten years": split_beyond_the_limit,
    "20000 queries": lambda: {"queries": [query() for _ in range(20_000)]},
    "schedule_time in year 1": lambda: {
        "schedule_time": "0001-01-01T00:00:00+14:00",
        "queries": [query()],
    },
    "schedule_time in year 9999": lambda: {
        "schedule_time": "9999-12-31T23:59:59-14:00",
        "queries": [query()],
    },
    "a 2 MB description": lambda: {"description": "x" * (2 << 20), "queries": [query()]},
    "query_concurrency 1e12": lambda: {"query_concurrency": 10**12, "queries": [query()]},
    "timeout_minutes 1e12": lambda: {"timeout_minutes": 10**12, "queries": [query()]},
}


def settle_data(api: httpx.Client, response: httpx.Response) -> None:
    """A data query that was accepted must have ended (SUCCESS or FAILURE) in its answer."""
    status = response.json()["meta"]["status_code"]
    assert status in ("SUCCESS", "FAILURE"), f"still {status} after {SETTLE}s"


def settle_batch(api: httpx.Client, response: httpx.Response) -> None:
    """A batch that was accepted runs a while (the watch goes on), then is cancelled."""
    batch_id = response.json()["data"]["batch_id"]
    time.sleep(RUN_WHILE_WATCHED)
    cancelled = api.delete(f"/query/batch/{batch_id}")
    assert cancelled.status_code == 200, cancelled.text[:500]


def refused_or_done(
    api: httpx.Client,
    response: httpx.Response,
    settle: Callable[[httpx.Client, httpx.Response], None],
) -> None:
    """The attack was refused with a 4xx, or accepted and its work ended at once."""
    assert response.status_code < 500, response.text[:500]
    if response.is_success:
        settle(api, response)
    else:
        assert 400 <= response.status_code < 500, response.text[:500]
        assert response.json()["error"]["code"], response.text[:500]


def test_the_query_the_attacks_start_from_succeeds(api: httpx.Client) -> None:
    response = api.post("/query/data/json", json=query())
    assert response.json()["meta"]["status_code"] == "SUCCESS", response.text[:500]


@pytest.mark.parametrize("attack", DATA_ATTACKS.values(), ids=DATA_ATTACKS.keys())
def test_a_hostile_query_input_is_handled_while_the_server_stays_responsive(
    server: ServerProcess, api: httpx.Client, attack: Callable[[], dict[str, Any]]
) -> None:
    body = orjson.dumps(attack())
    with responsive(server):
        response = api.post("/query/data/json", content=body)
        refused_or_done(api, response, settle_data)


@BOTH
@pytest.mark.parametrize("attack", BATCH_ATTACKS.values(), ids=BATCH_ATTACKS.keys())
def test_a_hostile_batch_input_is_handled_while_the_server_stays_responsive(
    server: ServerProcess, api: httpx.Client, attack: Callable[[], dict[str, Any]]
) -> None:
    body = orjson.dumps(attack())
    with responsive(server):
        response = api.post("/query/batch", content=body)
        refused_or_done(api, response, settle_batch)
        # A refused or finished batch leaves the tenant's listing intact.
        assert api.get("/query/batch").status_code == 200


def test_a_split_past_max_batch_queries_is_refused_before_it_is_built(
    server: ServerProcess, api: httpx.Client
) -> None:
    with responsive(server):
        response = api.post("/query/batch", json=split_beyond_the_limit())
    assert response.status_code == 400, response.text[:500]
    assert "1000000" in response.json()["error"].get("description", ""), response.text[:500]


@BOTH
@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/query/batch", {"created_after": "0001-01-01T00:00:00"}),
        ("/query/batch", {"created_before": "9999-12-31T23:59:59-14:00"}),
        ("/query/batch", {"created_after": "0001-01-01T00:00:00+14:00"}),
        ("/batches", {"ge": "1e308", "le": "1e309"}),
        ("/batches", {"ge": "-1e308"}),
        ("/query/batch/" + "x" * 10_000 + "/status", {"offset": "10000000"}),
    ],
    ids=[
        "created_after year 1",
        "created_before year 9999",
        "created_after +14:00",
        "ge huge",
        "ge tiny",
        "long batch id",
    ],
)
def test_a_hostile_list_filter_is_handled_while_the_server_stays_responsive(
    server: ServerProcess, api: httpx.Client, path: str, params: dict[str, str]
) -> None:
    with responsive(server):
        response = api.get(path, params=params)
    assert response.status_code < 500, response.text[:500]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/query/batch", deep_json(1000)),
        ("/query/batch", b'{"queries": [' + deep_json(300) + b"]}"),
        ("/query/data/json", deep_json(1000)),
        ("/query/data/json", b'{"settings": ' + deep_json(1000) + b"}"),
        ("/batches", b'{"description": ' + deep_json(1000) + b"}"),
        ("/keys", deep_json(1000)),
        ("/roles", deep_json(1000)),
        ("/query/batch", b"[" * 100_000 + b"]" * 100_000),
    ],
    ids=["batch", "batch query", "data", "data settings", "bulk", "keys", "roles", "arrays"],
)
def test_a_deeply_nested_body_is_refused_while_the_server_stays_responsive(
    server: ServerProcess, api: httpx.Client, path: str, body: bytes
) -> None:
    with responsive(server):
        response = api.post(path, content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text[:500]


def test_a_body_over_the_limit_is_refused_before_it_is_read(
    server: ServerProcess, api: httpx.Client
) -> None:
    body = b'{"queries": ["' + b"x" * MAX_BODY + b'"]}'
    with responsive(server):
        response = api.post("/query/batch", content=body)
    assert response.status_code == 413, response.text[:500]


def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(
    server: ServerProcess, api: httpx.Client
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"description": "'
        for _ in range(MAX_BODY // (1 << 20) + 2):
            yield b"x" * (1 << 20)
        yield b'"}'

    with responsive(server):
        response = api.post("/query/batch", content=chunks())
    assert response.status_code == 413, response.text[:500]


def test_a_long_query_string_is_refused_while_the_server_stays_responsive(
    server: ServerProcess, api: httpx.Client
) -> None:
    settings = orjson.dumps({f"k{i}": "v" for i in range(1200)}).decode()  # ~60 kB encoded
    with responsive(server):
        response = api.get("/query/data/json", params=query(settings=settings))
        assert response.status_code < 500, response.text[:500]
        if response.is_success:
            settle_data(api, response)
        # Past what any client sends: the HTTP layer refuses it (httpx would not send it).
        line = raw_request(server, b"GET /query/data/json?filter=" + b"x" * (1 << 20))
    assert line.startswith(b"HTTP/1.1 4"), line


def raw_request(server: ServerProcess, request_line: bytes) -> bytes:
    """The status line the server answers a hand-written request with."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=SETTLE) as sock:
        sock.sendall(request_line + b" HTTP/1.1\r\nHost: qb\r\nConnection: close\r\n\r\n")
        return sock.recv(64).split(b"\r\n")[0]


@BOTH
def test_a_bulk_line_with_hostile_settings_ends_while_the_server_stays_responsive(
    server: ServerProcess, api: httpx.Client
) -> None:
    lines = [
        query(settings={"demo_rows_per_day": 100_000_000}),
        query(filter="campaign_name =~ (.*?){14}X"),
        query(settings="{'k': [" + "1," * (1 << 19) + "]}"),
        query(start_date="0001-01-01", end_date="9999-12-31"),
    ]
    data = b"".join(
        orjson.dumps({k: v for k, v in q.items() if k != "sync_timeout"}) + b"\n" for q in lines
    )
    with responsive(server):
        made = api.post("/cache")
        assert made.status_code == 201, made.text
        put = httpx.put(made.json()["url"], content=data, timeout=SETTLE)
        assert put.status_code == 200, put.text
        body = {
            "handler": made.json()["handler"],
            "operation": "get_data",
            "hash": hashlib.sha256(data).hexdigest(),
        }
        created = api.post("/batches", json=body)
        assert created.status_code == 201, created.text
        batch = created.json()["batch"]
        final = {"completed", "validation_failed", "hash_mismatch", "cancelled"}
        done = wait_until(
            lambda: (s := api.get(f"/batches/{batch}").json())["status"] in final and s,
            timeout=SETTLE,
            interval=0.2,
        )
    assert done["status"] in ("completed", "validation_failed"), done
