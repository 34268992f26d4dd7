"""Rows are data: every route that returns rows, or starts queries, needs get_data."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from support import ServerProcess, assert_error, client, wait_until

# Whether a route needs get_data is decided from the key's role before any row is read; the
# rows and statuses themselves are read in both deployments by test_batches and the others.
DEPLOYMENTS = ("embedded",)

QUERY = {
    "ds_id": "DEMO_ADS",
    "ds_accounts": "ads-0001",
    "fields": "date,clicks",
    "start_date": "2026-01-01",
    "end_date": "2026-01-02",
}


@dataclass(frozen=True)
class Finished:
    """A finished query batch and a completed bulk batch of the admin's account."""

    batch_id: str
    schedule_id: str
    bulk_id: str


@pytest.fixture(scope="module")
def finished(server: ServerProcess) -> Finished:
    with client(server) as admin:
        made = admin.post("/query/batch", json={"queries": [QUERY]})
        assert made.status_code == 201, made.text
        batch_id = made.json()["data"]["batch_id"]
        wait_until(
            lambda: admin.get(f"/query/batch/{batch_id}").json()["data"]["status_code"] == "STOPPED"
        )
        upload = admin.post("/cache").json()
        assert httpx.put(upload["url"], content=orjson.dumps(QUERY) + b"\n").status_code == 200
        bulk = admin.post("/batches", json={"handler": upload["handler"], "operation": "get_data"})
        bulk_id = bulk.json()["batch"]
        wait_until(lambda: admin.get(f"/batches/{bulk_id}").json()["status"] == "completed")
    return Finished(batch_id, f"{batch_id}_query_1", bulk_id)


def key_with(server: ServerProcess, effect: str, *actions: str) -> str:
    name = f"rows-{uuid.uuid4().hex[:8]}"
    with client(server) as admin:
        role = {"name": name, "effect": effect, "actions": list(actions)}
        assert admin.post("/roles", json=role).status_code == 201
        made = admin.post("/keys", json={"name": name, "role": name})
        assert made.status_code == 201, made.text
        secret: str = made.json()["secret"]
        return secret


@pytest.fixture
def no_data(server: ServerProcess) -> Iterator[httpx.Client]:
    """A key whose role allows everything but get_data."""
    with client(server, key_with(server, "deny", "get_data")) as http:
        yield http


@pytest.fixture
def with_data(server: ServerProcess) -> Iterator[httpx.Client]:
    """A key whose role allows everything."""
    with client(server, key_with(server, "deny")) as http:
        yield http


def denied_for_get_data(response: httpx.Response) -> None:
    body = assert_error(response, 403, "PERMISSION_ERROR")
    assert "'get_data'" in body["error"]["message"]


def row_requests(found: Finished) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        "query results": ("GET", "/query/results", {"params": {"schedule_id": found.schedule_id}}),
        "batch download": ("GET", f"/query/batch/{found.batch_id}/download", {}),
        "bulk download link": (
            "GET",
            f"/batches/{found.bulk_id}",
            {"params": {"download": "true"}},
        ),
        "query data": ("GET", "/query/data/json", {"params": QUERY}),
    }


ROUTES = ["query results", "batch download", "bulk download link"]
ROUTES += ["query data"]


@pytest.mark.parametrize("route", ROUTES)
def test_a_key_denied_get_data_reads_no_rows(
    no_data: httpx.Client, finished: Finished, route: str
) -> None:
    method, path, options = row_requests(finished)[route]
    denied_for_get_data(no_data.request(method, path, **options))


@pytest.mark.parametrize("route", ROUTES)
def test_a_key_allowed_get_data_reads_the_rows(
    with_data: httpx.Client, finished: Finished, route: str
) -> None:
    method, path, options = row_requests(finished)[route]
    response = with_data.request(method, path, **options)
    assert response.status_code == 200, response.text
    if route == "bulk download link":
        assert response.json()["download"]["url"]


def test_a_key_denied_get_data_sees_a_finished_querys_status_without_its_rows(
    no_data: httpx.Client, with_data: httpx.Client, finished: Finished
) -> None:
    params = {"schedule_id": finished.schedule_id}
    watched = no_data.get("/query/status", params=params)
    assert watched.status_code == 200, watched.text
    assert watched.json()["meta"]["status_code"] == "SUCCESS"
    assert watched.json()["data"] == []
    read = with_data.get("/query/status", params=params)
    assert read.status_code == 200, read.text
    assert read.json()["data"], "a key allowed get_data gets the rows"


def test_a_key_denied_get_data_creates_no_query_batch(
    no_data: httpx.Client, server: ServerProcess
) -> None:
    before = server.count("batches")
    denied_for_get_data(no_data.post("/query/batch", json={"queries": [QUERY]}))
    assert server.count("batches") == before


def test_creating_a_query_batch_names_the_missing_action(server: ServerProcess) -> None:
    with client(server, key_with(server, "allow", "get_data")) as only_data:
        refused = only_data.post("/query/batch", json={"queries": [QUERY]})
        body = assert_error(refused, 403, "PERMISSION_ERROR")
        assert "'create_query_batch'" in body["error"]["message"]


def test_a_key_denied_get_data_still_reads_statuses_and_batches(
    no_data: httpx.Client, finished: Finished, server: ServerProcess
) -> None:
    assert no_data.get(f"/query/batch/{finished.batch_id}").status_code == 200
    assert no_data.get(f"/query/batch/{finished.batch_id}/status").status_code == 200
    assert no_data.get(f"/batches/{finished.bulk_id}").status_code == 200
    # A query that has not run yet has no rows: its status needs no get_data.
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86_400))
    with client(server) as admin:
        made = admin.post("/query/batch", json={"queries": [QUERY], "schedule_time": later})
        assert made.status_code == 201, made.text
        waiting = f"{made.json()['data']['batch_id']}_query_1"
        status = no_data.get("/query/status", params={"schedule_id": waiting})
        assert status.status_code == 200, status.text
        assert status.json()["meta"]["status_code"] != "SUCCESS"
        admin.delete(f"/query/batch/{made.json()['data']['batch_id']}")
