"""Resumable downloads through a real server: byte ranges of batch downloads, bulk results
files and /query/data exports; Parquet dates; currency rounded to cents."""

from __future__ import annotations

import hashlib
import io
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from support import ServerProcess, assert_error, client, run_cli, running_server, wait_until

SOURCES = """
[sources.TILL]
connector = "sql"
url = "sqlite:///{db}"
table = "sales"
date_column = "day"
account_column = "shop"
dimensions = ["day", "shop"]
metrics = {{ amount = "sum" }}
fields = {{ amount = {{ name = "Amount", data_type = "currency" }} }}
"""
# Cents that a floating-point sum does not add up exactly: 2065.040000000001 in SQLite.
CENTS = [12599, 1, 1] + [1999] * 97


@pytest.fixture(scope="module")
def server(deployment: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("ranges")
    db = root / "till.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE sales (day DATE, shop TEXT, amount REAL)")
        conn.executemany(
            "INSERT INTO sales VALUES ('2026-01-05', 'shop-1', ?)", [(c / 100,) for c in CENTS]
        )
    sources = root / "sources.toml"
    sources.write_text(SOURCES.format(db=db))
    with running_server(root / "data", QB_SOURCES=str(sources)) as started:
        yield started


def query(**overrides: Any) -> dict[str, Any]:
    return {
        "ds_id": "DEMO_ADS",
        "ds_accounts": ["ads-0001", "ads-0002"],
        "fields": "date,account_id,impressions,cost",
        "start_date": "2026-01-01",
        "end_date": "2026-03-31",
        **overrides,
    }


def finished_batch(api: httpx.Client, **body: Any) -> str:
    made = api.post("/query/batch", json={"queries": [query()], **body})
    assert made.status_code == 201, made.text
    batch_id: str = made.json()["data"]["batch_id"]

    def stopped() -> bool:
        return bool(api.get(f"/query/batch/{batch_id}").json()["data"]["status_code"] == "STOPPED")

    wait_until(stopped)
    return batch_id


@pytest.fixture(scope="module")
def batch_id(server: ServerProcess) -> str:
    with client(server) as api:
        return finished_batch(api, split_dates_policy="month")


@pytest.fixture(scope="module")
def whole(server: ServerProcess, batch_id: str) -> httpx.Response:
    with client(server) as api:
        response = api.get(f"/query/batch/{batch_id}/download")
    assert response.status_code == 200
    return response


def download(api: httpx.Client, batch_id: str, **headers: str | bytes) -> httpx.Response:
    return api.get(f"/query/batch/{batch_id}/download", headers=headers)


def test_a_stopped_batch_download_offers_byte_ranges_with_a_strong_etag(
    whole: httpx.Response,
) -> None:
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["etag"].startswith('"') and len(whole.content) > 1000


def test_a_range_of_a_batch_download_is_206_with_exactly_those_bytes(
    api: httpx.Client, batch_id: str, whole: httpx.Response
) -> None:
    part = download(api, batch_id, Range="bytes=100-199")
    assert part.status_code == 206
    assert part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    assert part.headers["content-length"] == "100"


def test_a_suffix_range_gives_the_last_bytes(
    api: httpx.Client, batch_id: str, whole: httpx.Response
) -> None:
    part = download(api, batch_id, Range="bytes=-64")
    assert part.status_code == 206
    assert part.content == whole.content[-64:]


def test_an_open_ended_range_resumes_to_the_end(
    api: httpx.Client, batch_id: str, whole: httpx.Response
) -> None:
    part = download(api, batch_id, Range="bytes=1000-")
    assert part.status_code == 206
    assert whole.content[:1000] + part.content == whole.content


def test_a_range_past_the_end_is_416_naming_the_length(
    api: httpx.Client, batch_id: str, whole: httpx.Response
) -> None:
    length = len(whole.content)
    response = download(api, batch_id, Range=f"bytes={length}-")
    assert_error(response, 416, "RANGE_NOT_SATISFIABLE")
    assert response.headers["content-range"] == f"bytes */{length}"


@pytest.mark.parametrize(
    "header",
    [
        "bytes=abc",
        "bytes=5-2",
        "bytes=99999999999999999999999-",
        "bytes=0-1,5-9",
        "bytes=" + ",".join(f"{n}-{n}" for n in range(1000)),
        "items=0-5",
        "bytes=\u0660-\u0665".encode(),  # Arabic-Indic digits
        "",
    ],
)
def test_a_range_header_that_is_malformed_or_multiple_gets_the_whole_body(
    api: httpx.Client, batch_id: str, whole: httpx.Response, header: str | bytes
) -> None:
    response = download(api, batch_id, Range=header)
    assert response.status_code == 200
    assert response.content == whole.content


def test_if_range_with_the_etag_serves_the_range_and_with_another_the_whole_body(
    api: httpx.Client, batch_id: str, whole: httpx.Response
) -> None:
    etag = whole.headers["etag"]
    same = download(api, batch_id, Range="bytes=0-9", **{"If-Range": etag})
    assert (same.status_code, same.content) == (206, whole.content[:10])
    other = download(api, batch_id, Range="bytes=0-9", **{"If-Range": '"changed"'})
    assert (other.status_code, other.content) == (200, whole.content)


def test_a_parquet_download_resumed_in_parts_is_the_whole_file_with_dates_as_dates(
    api: httpx.Client, batch_id: str
) -> None:
    url = f"/query/batch/{batch_id}/download?format=parquet"
    whole = api.get(url).content
    parts = [api.get(url, headers={"Range": f"bytes={n}-{n + 999}"}) for n in range(0, 3000, 1000)]
    rest = api.get(url, headers={"Range": "bytes=3000-"})
    assert {p.status_code for p in [*parts, rest]} == {206}
    assert b"".join(p.content for p in [*parts, rest]) == whole
    table = pq.read_table(io.BytesIO(whole))
    assert table.schema.field("date").type == pa.date32()
    assert table.schema.field("cost").type == pa.float64()


def test_a_running_batch_download_is_sent_whole_without_ranges(api: httpx.Client) -> None:
    slow = query(settings={"demo_latency_ms": 3000})
    made = api.post("/query/batch", json={"queries": [slow]})
    batch_id = made.json()["data"]["batch_id"]
    response = download(api, batch_id, Range="bytes=0-0")
    api.delete(f"/query/batch/{batch_id}")
    assert response.status_code == 200
    assert response.headers["accept-ranges"] == "none"


def test_another_tenants_batch_download_is_not_found_with_a_range(
    server: ServerProcess, batch_id: str
) -> None:
    made = run_cli(server, "keys", "create", "--name", "o", "--account", "other-range", "-q")
    with client(server, made.stdout.strip()) as other:
        assert_error(download(other, batch_id, Range="bytes=0-9"), 404, "NOT_FOUND")


def test_a_key_without_get_data_is_refused_a_range_of_a_download(
    server: ServerProcess, api: httpx.Client, batch_id: str
) -> None:
    made = api.post("/keys", json={"name": "viewer-range", "role": "viewer"})
    with client(server, made.json()["secret"]) as viewer:
        assert_error(download(viewer, batch_id, Range="bytes=0-9"), 403, "PERMISSION_ERROR")


def bulk_results_link(api: httpx.Client) -> str:
    operations = [
        query(ds_accounts=f"ads-{1 + n:04}", start_date="2026-01-01", end_date="2026-01-31")
        for n in range(12)
    ]
    data = b"".join(orjson.dumps(o) + b"\n" for o in operations)
    made = api.post("/cache").json()
    assert httpx.put(made["url"], content=data, timeout=60).status_code == 200
    batch = api.post("/batches", json={"handler": made["handler"], "operation": "get_data"})
    batch_id = batch.json()["batch"]

    def link() -> str | None:
        found = api.get(f"/batches/{batch_id}", params={"download": "true"}).json()
        return found["download"]["url"] if found["status"] == "completed" else None

    url: str = wait_until(link, timeout=60)
    return url


def test_a_bulk_results_file_serves_ranges_with_its_sha256_as_etag(api: httpx.Client) -> None:
    url = bulk_results_link(api)
    whole = httpx.get(url, timeout=60)
    length = len(whole.content)
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["etag"] == f'"{hashlib.sha256(whole.content).hexdigest()}"'
    assert whole.headers["content-length"] == str(length)
    middle = httpx.get(url, headers={"Range": "bytes=7-70"}, timeout=60)
    assert (middle.status_code, middle.content) == (206, whole.content[7:71])
    tail = httpx.get(url, headers={"Range": "bytes=-5"}, timeout=60)
    assert (tail.status_code, tail.content) == (206, whole.content[-5:])
    beyond = httpx.get(url, headers={"Range": f"bytes={length}-{length + 9}"}, timeout=60)
    assert_error(beyond, 416, "RANGE_NOT_SATISFIABLE")
    assert beyond.headers["content-range"] == f"bytes */{length}"


def data_params(**overrides: Any) -> dict[str, Any]:
    return {"schedule_id": "r_" + uuid.uuid4().hex[:20], **query(), **overrides}


def test_a_csv_export_of_query_data_serves_ranges(api: httpx.Client) -> None:
    params = data_params()
    whole = api.get("/query/data/csv", params=params)
    assert whole.headers["accept-ranges"] == "bytes"
    part = api.get("/query/data/csv", params=params, headers={"Range": "bytes=20-"})
    assert (part.status_code, part.content) == (206, whole.content[20:])


def test_a_large_csv_export_past_one_chunk_serves_ranges(api: httpx.Client) -> None:
    accounts = [f"ads-{n:04}" for n in range(1, 11)]
    params = data_params(
        ds_accounts=accounts, end_date="2026-12-31", fields="date,account_id", max_rows=5000
    )
    whole = api.get("/query/data/csv", params=params)
    assert int(whole.headers["x-total-rows"]) > 2000
    part = api.get("/query/data/csv", params=params, headers={"Range": "bytes=50000-50099"})
    assert (part.status_code, part.content) == (206, whole.content[50000:50100])


def test_a_json_export_carries_its_request_id_so_it_is_sent_whole(api: httpx.Client) -> None:
    params = data_params()
    response = api.get("/query/data/json", params=params, headers={"Range": "bytes=0-9"})
    assert response.status_code == 200
    assert response.headers["accept-ranges"] == "none"
    assert response.json()["meta"]["status_code"] == "SUCCESS"


def test_a_currency_sum_over_many_rows_is_shown_to_the_cent(api: httpx.Client) -> None:
    params = {
        "ds_id": "TILL",
        "fields": "day,amount",
        "start_date": "2026-01-01",
        "end_date": "2026-01-31",
        "schedule_id": "c_" + uuid.uuid4().hex[:20],
    }
    body = api.get("/query/data/json", params=params).json()
    assert body["meta"]["status_code"] == "SUCCESS", body
    assert body["data"][1] == ["2026-01-05", f"{sum(CENTS) / 100:.2f}"]
    typed = api.get("/query/data/ndjson", params=params).content
    assert orjson.loads(typed.splitlines()[0])["amount"] == round(sum(CENTS) / 100, 2)
