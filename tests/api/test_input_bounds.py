"""Hostile inputs through a real server: callbacks that reach inside, unbounded times,
settings and nesting, malformed links. Each is a 4xx that stores nothing, never a 500."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from support import (
    ServerProcess,
    assert_error,
    client,
    responsive,
    running_server,
    wait_until,
)

# Every case here is refused while the request is parsed, before the store or the executor
# is involved, so one deployment is enough (the parsing code is the same in both).
DEPLOYMENTS = ("embedded",)

QUERY: dict[str, Any] = {
    "ds_id": "DEMO_ADS",
    "ds_accounts": ["ads-0001"],
    "fields": "date,clicks",
    "start_date": "2026-01-01",
    "end_date": "2026-01-02",
}


def stored(server: ServerProcess) -> tuple[int, int]:
    """How many batches and sub-queries the server holds (of every kind)."""
    return server.count("batches"), server.count("queries")


def listed(api: httpx.Client) -> list[str]:
    response = api.get("/query/batch", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return [batch["batch_id"] for batch in response.json()["data"]]


def refused_batch(server: ServerProcess, api: httpx.Client, body: dict[str, Any]) -> str:
    """POST a batch that must be a 400 storing nothing; the error message."""
    before, batches = stored(server), listed(api)
    response = api.post("/query/batch", json=body)
    error = assert_error(response, 400, "BAD_REQUEST")["error"]
    assert stored(server) == before and listed(api) == batches
    return f"{error['message']} {error.get('description', '')}"


def nested(depth: int) -> str:
    return '{"queries": ' + "[" * depth + "]" * depth + "}"


# -- callbacks ---------------------------------------------------------------------------

INTERNAL_CALLBACKS = [
    "http://127.0.0.1/",
    "http://127.0.0.1./",
    "http://169.254.169.254./latest/meta-data/",
    "http://%31%32%37%2e%30%2e%30%2e%31/",
    "http://%6c%6f%63%61%6c%68%6f%73%74/",
    "http://127.0.0.1%00.example.com/",
    "http://xn--localhost-/",
    "http://127.0.0.1:22/",
    "http://localhost/hook",
    "http://localhost./hook",
    "http://api.localhost/hook",
    "http://0.0.0.0/",
    "http://0/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7f.1/",
    "http://127.1/",
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[fe80::1]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "http://192.168.0.1/",
    "http://172.16.0.1/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "https://user:pw@example.com/",
    "http://user@example.com/",
    "http://example.com/\r\nX-Injected: 1",
    "http://example.com/a b",
    "http://example.com/\t",
    "http://example.com\\@127.0.0.1/",
    "gopher://example.com/",
]


@pytest.mark.parametrize("callback_url", INTERNAL_CALLBACKS)
def test_a_callback_to_an_internal_address_or_with_userinfo_is_refused_and_nothing_stored(
    server: ServerProcess, api: httpx.Client, callback_url: str
) -> None:
    message = refused_batch(server, api, {"queries": [QUERY], "callback_url": callback_url})
    assert "callback_url" in message


def test_a_callback_to_the_server_itself_is_refused(
    server: ServerProcess, api: httpx.Client
) -> None:
    body = {"queries": [QUERY], "callback_url": f"{server.url}/query/batch"}
    assert "callback_url" in refused_batch(server, api, body)


def test_the_refusal_does_not_echo_the_password_of_a_callback_url(
    server: ServerProcess, api: httpx.Client
) -> None:
    body = {"queries": [QUERY], "callback_url": "https://user:hunter2@example.com/"}
    assert "hunter2" not in refused_batch(server, api, body)


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(dict(self.headers))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.received = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("allow", ["127.0.0.1", "127.0.0.0/8", "10.0.0.0/8, 127.0.0.1/32"])
def test_the_operator_opens_an_internal_callback_target_with_qb_callback_allow(
    tmp_path_factory: pytest.TempPathFactory, receiver: str, allow: str
) -> None:
    with (
        running_server(tmp_path_factory.mktemp("allow"), QB_CALLBACK_ALLOW=allow) as server,
        client(server) as api,
    ):
        created = api.post("/query/batch", json={"queries": [QUERY], "callback_url": receiver})
        assert created.status_code == 201, created.text
        wait_until(lambda: _Receiver.received, timeout=30)
        # Only what was opened: the next address is still refused.
        body = {"queries": [QUERY], "callback_url": "http://127.0.0.2/hook"}
        if "/8" not in allow:
            assert "callback_url" in refused_batch(server, api, body)


def test_an_allowed_host_name_opens_that_name_only(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with (
        running_server(tmp_path_factory.mktemp("name"), QB_CALLBACK_ALLOW="localhost") as server,
        client(server) as api,
    ):
        ok = api.post(
            "/query/batch", json={"queries": [QUERY], "callback_url": "http://localhost:9/"}
        )
        assert ok.status_code == 201, ok.text
        body = {"queries": [QUERY], "callback_url": "http://127.0.0.1:9/"}
        assert "callback_url" in refused_batch(server, api, body)


# -- times ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule_time",
    [
        "0001-01-01T00:00:00+14:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59-14:00",
        "1999-12-31T23:59:59Z",
        "2999-01-01T00:00:00Z",
    ],
)
def test_a_schedule_time_out_of_range_is_refused_and_the_listing_still_works(
    server: ServerProcess, api: httpx.Client, schedule_time: str
) -> None:
    body = {"queries": [QUERY], "schedule_time": schedule_time}
    assert "schedule_time" in refused_batch(server, api, body)
    assert api.get("/query/batch").status_code == 200


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("created_after", "0001-01-01T00:00:00"),
        ("created_after", "0001-01-01T00:00:00+14:00"),
        ("created_before", "9999-12-31T23:59:59-14:00"),
        ("created_before", "9999-12-31T23:59:59"),
    ],
)
def test_a_list_filter_time_out_of_range_is_a_bad_request(
    api: httpx.Client, name: str, value: str
) -> None:
    error = assert_error(api.get("/query/batch", params={name: value}), 400, "BAD_REQUEST")
    assert name in error["error"]["message"]


def test_a_list_filter_time_in_range_lists(api: httpx.Client) -> None:
    response = api.get("/query/batch", params={"created_after": "2000-01-01T00:00:00"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "1e300", "1e20"])
@pytest.mark.parametrize("name", ["ge", "le"])
def test_a_bulk_list_filter_out_of_range_is_a_bad_request(
    api: httpx.Client, name: str, value: str
) -> None:
    assert_error(api.get("/batches", params={name: value}), 400, "BAD_REQUEST")


@pytest.mark.parametrize("split", ["none", "day", "week", "month"])
@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_query_dates_at_the_ends_of_the_calendar_are_refused(
    server: ServerProcess, api: httpx.Client, day: str, split: str
) -> None:
    query = {**QUERY, "start_date": day, "end_date": day}
    body = {"queries": [query], "split_dates_policy": split}
    assert "start_date" in refused_batch(server, api, body)


def test_a_data_query_at_the_end_of_the_calendar_is_refused(api: httpx.Client) -> None:
    params = {**QUERY, "start_date": "9999-12-31", "end_date": "9999-12-31", "sync_timeout": 0}
    assert_error(api.get("/query/data/json", params=params), 400, "BAD_REQUEST")


# -- settings and sizes ------------------------------------------------------------------


def test_settings_as_a_4_mb_literal_are_refused_fast_and_the_server_stays_responsive(
    server: ServerProcess,
) -> None:
    literal = "{'a': '" + "x" * (4 * 1024 * 1024) + "'}"
    bodies = [
        {"json": {**QUERY, "settings": literal}},  # a JSON body
        {"data": {**QUERY, "settings": literal}},  # a form body
        {"json": {**QUERY, "settings": "{" + "'k': [1, 2, 3], " * 250_000 + "}"}},
    ]
    before = stored(server)
    with responsive(server), ThreadPoolExecutor(4) as pool, client(server) as api:

        def post(body: dict[str, Any]) -> httpx.Response:
            return api.post("/query/data/json", **body)

        answers = list(pool.map(post, bodies * 2))
    for answer in answers:
        error = assert_error(answer, 400, "BAD_REQUEST")["error"]
        assert "settings" in error["message"]
    assert stored(server) == before


def test_a_batch_with_huge_settings_is_refused_and_stores_nothing(
    server: ServerProcess, api: httpx.Client
) -> None:
    query = {**QUERY, "settings": {"k": "x" * (1024 * 1024)}}
    assert "settings" in refused_batch(server, api, {"queries": [query]})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("fields", ",".join(["clicks"] * 30_000)),
        ("ds_accounts", ["ads-0001"] * 100_000),
        ("ds_segments", "s," * 100_000),
    ],
    ids=["fields", "accounts", "segments"],
)
def test_long_lists_are_refused_and_store_nothing(
    server: ServerProcess, api: httpx.Client, name: str, value: Any
) -> None:
    before = stored(server)
    response = api.post("/query/data/json", json={**QUERY, name: value, "sync_timeout": 0})
    assert name in assert_error(response, 400, "BAD_REQUEST")["error"]["message"]
    assert stored(server) == before


@pytest.mark.parametrize("depth", [33, 255, 256, 512, 1023, 1024, 1025, 5000])
def test_a_body_nested_too_deeply_is_a_bad_request_that_stores_nothing(
    server: ServerProcess, api: httpx.Client, depth: int
) -> None:
    before = stored(server)
    for path in ("/query/batch", "/query/data/json", "/batches"):
        response = api.post(
            path, content=nested(depth), headers={"content-type": "application/json"}
        )
        assert_error(response, 400, "BAD_REQUEST")
    assert stored(server) == before


def test_a_body_nested_within_the_bound_is_read(api: httpx.Client) -> None:
    # 31 levels inside the body object: read, then refused for what it says, not its depth.
    response = api.post(
        "/query/batch", content=nested(31), headers={"content-type": "application/json"}
    )
    error = assert_error(response, 400, "BAD_REQUEST")["error"]
    assert "nested" not in error["message"]


# -- links ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires", "signature"),
    [
        ("1", "%C3%A9"),
        ("1", "%C3%A9" * 32),
        ("1", "%00" * 64),
        ("nan", "0" * 64),
        ("NaN", "0" * 64),
        ("inf", "0" * 64),
        ("-1", "0" * 64),
        ("1e308", "0" * 64),
        ("9" * 400, "0" * 64),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"), [("PUT", "/cache/upl_x"), ("GET", "/batches/bat_x/results")]
)
def test_a_malformed_signed_link_is_link_invalid(
    server: ServerProcess, method: str, path: str, expires: str, signature: str
) -> None:
    url = f"{server.url}{path}?expires={expires}&signature={signature}"
    response = httpx.request(method, url, content=b"x", timeout=30)
    assert_error(response, 403, "LINK_INVALID")
