"""Every kind of bad input: the precise status and code, the envelope, and nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import ADMIN_KEY, ServerProcess, assert_error, client, running_server

# Refused while the request is parsed or authenticated, before the store or the executor
# is involved; the Redis rate limiter of a scale-out runs in test_ops_hardening's copy.
DEPLOYMENTS = ("embedded",)

GOOD = {
    "ds_id": "DEMO_ADS",
    "ds_accounts": "ads-0001",
    "fields": "date,impressions",
    "start_date": "2026-01-01",
    "end_date": "2026-01-02",
}


def row_counts(server: ServerProcess) -> dict[str, int]:
    """How many rows each table of the server's store holds."""
    return {
        table: server.count(table)
        for table in ("batches", "queries", "results", "result_chunks", "api_keys")
    }


@pytest.fixture(scope="module")
def small_limit_server(
    deployment: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("limited"), QB_RATE_LIMIT="5") as server:
        yield server


BAD_DATA_REQUESTS = [
    pytest.param({"ds_id": "NOPE"}, "ds_id", id="unknown data source"),
    pytest.param({"fields": "date,nope"}, "fields", id="unknown field"),
    pytest.param({"fields": ""}, "fields", id="no fields"),
    pytest.param({"start_date": "2026-02-30"}, "start_date", id="impossible date"),
    pytest.param({"start_date": "next tuesday"}, "start_date", id="unparseable date"),
    pytest.param({"start_date": "2026-03-01"}, "start_date", id="start after end"),
    pytest.param({"max_rows": "many"}, "max_rows", id="wrong type"),
    pytest.param({"max_rows": "1000001"}, "max_rows", id="too many rows"),
    pytest.param({"sync_timeout": "3601"}, "sync_timeout", id="sync timeout too long"),
    pytest.param({"offset_start": "-1"}, "offset_start", id="negative offset"),
    pytest.param({"cache_minutes": "10081"}, "cache_minutes", id="cache too old"),
    pytest.param({"schedule_id": "has spaces"}, "schedule_id", id="bad schedule id"),
    pytest.param({"ds_accounts": "a b"}, "ds_accounts", id="bad account id"),
    pytest.param({"filter": "impressions >"}, "filter", id="filter without value"),
    pytest.param({"filter": "nope > 1"}, "filter", id="filter on unknown field"),
    pytest.param({"filter": "x" * 5001}, "filter", id="filter too long"),
    pytest.param({"order_rows": "clicks sideways"}, "order_rows", id="bad order direction"),
    pytest.param({"order_rows": "clicks desc"}, "order_rows", id="order on unrequested field"),
    pytest.param({"settings": "{not json"}, "settings", id="settings not an object"),
    pytest.param({"fields": ",".join(f"f{i}" for i in range(101))}, "fields", id="too many"),
]


@pytest.mark.parametrize(("change", "parameter"), BAD_DATA_REQUESTS)
def test_a_bad_data_parameter_is_a_bad_request_naming_it_and_changes_nothing(
    server: ServerProcess, api: httpx.Client, change: dict[str, str], parameter: str
) -> None:
    before = row_counts(server)
    response = api.get("/query/data/json", params={**GOOD, **change})
    body = assert_error(response, 400, "BAD_REQUEST")
    assert parameter in body["error"]["message"]
    assert row_counts(server) == before


def test_malformed_json_parameter_is_a_bad_request(
    server: ServerProcess, api: httpx.Client
) -> None:
    before = row_counts(server)
    response = api.get("/query/data/json", params={"json": '{"ds_id": '})
    assert "not valid JSON" in assert_error(response, 400, "BAD_REQUEST")["error"]["message"]
    response = api.get("/query/data/json", params={"json": "[1, 2]"})
    assert_error(response, 400, "BAD_REQUEST")
    assert row_counts(server) == before


def test_malformed_json_body_is_a_bad_request(server: ServerProcess, api: httpx.Client) -> None:
    before = row_counts(server)
    response = api.post(
        "/query/data/json", content=b'{"ds_id": "DEMO', headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "BAD_REQUEST")
    assert row_counts(server) == before


def test_a_body_of_an_unreadable_type_is_unsupported(
    server: ServerProcess, api: httpx.Client
) -> None:
    response = api.post(
        "/query/data/json", content=b"<xml/>", headers={"content-type": "application/xml"}
    )
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_an_oversized_body_is_refused_before_it_is_read(
    tmp_path: Path,
) -> None:
    with (
        running_server(tmp_path / "small", QB_MAX_BODY_BYTES="2048") as server,
        client(server) as api,
    ):
        before = row_counts(server)
        response = api.post("/query/data/json", json={**GOOD, "padding": "x" * 4096})
        assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert row_counts(server) == before


def test_an_unknown_format_is_a_bad_request(api: httpx.Client) -> None:
    response = api.get("/query/data/xml", params=GOOD)
    assert_error(response, 400, "BAD_REQUEST")


def test_an_unknown_schedule_id_is_status_not_found(api: httpx.Client) -> None:
    assert_error(
        api.get("/query/status", params={"schedule_id": "never_was"}), 404, "STATUS_NOT_FOUND"
    )
    assert_error(
        api.get("/query/data/json", params={"schedule_id": "never_was", "ds_id": ""}),
        404,
        "STATUS_NOT_FOUND",
    )
    assert_error(
        api.get("/query/results", params={"schedule_id": "never_was"}), 404, "STATUS_NOT_FOUND"
    )


def test_status_without_a_schedule_id_is_a_bad_request(api: httpx.Client) -> None:
    body = assert_error(api.get("/query/status"), 400, "BAD_REQUEST")
    assert "schedule_id" in body["error"]["message"]


def test_a_missing_key_is_unauthorized_with_www_authenticate(server: ServerProcess) -> None:
    response = httpx.get(server.url + "/query/data/json", params=GOOD)
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "key", ["qb_not_a_real_key", "has spaces!", "x" * 300], ids=["unknown", "malformed", "long"]
)
def test_a_bad_key_is_unauthorized(server: ServerProcess, key: str) -> None:
    response = httpx.get(
        server.url + "/query/data/json", params=GOOD, headers={"Authorization": f"Bearer {key}"}
    )
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_api_key_parameter_authenticates_too(server: ServerProcess) -> None:
    response = httpx.get(server.url + "/query/data/json", params={**GOOD, "api_key": ADMIN_KEY})
    assert response.json()["meta"]["status_code"] == "SUCCESS"


def test_problem_details_are_given_to_clients_that_ask_for_them(server: ServerProcess) -> None:
    response = httpx.get(
        server.url + "/query/status",
        params={"schedule_id": "x"},
        headers={"Accept": "application/problem+json"},
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 401
    assert problem["title"] == "Unauthorized"
    assert problem["code"] == "UNAUTHORIZED"
    assert problem["instance"] == "/query/status"
    assert problem["type"] and problem["detail"] and problem["request_id"]


def test_an_unknown_route_is_not_found_in_the_envelope(api: httpx.Client) -> None:
    assert_error(api.get("/query/nothing"), 404, "NOT_FOUND")


def test_a_wrong_method_is_not_allowed_in_the_envelope(api: httpx.Client) -> None:
    assert_error(api.delete("/query/status"), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize("prefix", ["/v2", "/enterprise/v2"])
def test_a_route_answers_alike_under_a_prefix(api: httpx.Client, prefix: str) -> None:
    plain, prefixed = api.get("/whoami"), api.get(f"{prefix}/whoami")
    assert plain.status_code == prefixed.status_code == 200
    assert prefixed.headers["x-request-id"] != plain.headers["x-request-id"]
    assert prefixed.headers["x-ratelimit-remaining"]
    for body in (plain_body := plain.json(), prefixed_body := prefixed.json()):
        body["meta"].pop("request_id")
    assert prefixed_body == plain_body


@pytest.mark.parametrize("prefix", ["/v2", "/enterprise/v2"])
def test_an_unknown_route_under_a_prefix_is_not_found_naming_the_path_sent(
    api: httpx.Client, prefix: str
) -> None:
    for path in (f"{prefix}/query/nothing", f"{prefix}/healthz", prefix, f"{prefix}/"):
        body = assert_error(api.get(path), 404, "NOT_FOUND")
        assert body["error"]["message"] == f"No route GET {path}"
    body = assert_error(api.delete(f"{prefix}/query/accounts"), 405, "METHOD_NOT_ALLOWED")
    assert body["error"]["message"] == f"DELETE is not allowed on {prefix}/query/accounts"


def test_past_the_hourly_window_requests_are_refused_with_retry_after(
    small_limit_server: ServerProcess,
) -> None:
    with client(small_limit_server) as api:
        remaining = [
            int(
                api.get("/query/accounts", params={"ds_id": "DEMO_ADS"}).headers[
                    "x-ratelimit-remaining"
                ]
            )
            for _ in range(5)
        ]
        assert remaining == [4, 3, 2, 1, 0]
        refused = api.get("/query/accounts", params={"ds_id": "DEMO_ADS"})
        assert_error(refused, 429, "TOO_MANY_REQUESTS")
        assert 0 < int(refused.headers["retry-after"]) <= 3601
        assert refused.headers["x-ratelimit-limit"] == "5"
    # Another key has its own window.
    other = httpx.get(
        small_limit_server.url + "/query/accounts",
        params={"ds_id": "DEMO_ADS"},
        headers={"Authorization": "Bearer qb_someone_else"},
    )
    assert_error(other, 401, "UNAUTHORIZED")
