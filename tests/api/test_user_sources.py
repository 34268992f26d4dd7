"""User data sources through a real server started with ``QB_SOURCES`` pointing at a TOML file.

The file defines a SQLite table (``SHOP``), a Parquet file (``FILES``) and a JSON API on
loopback (``STATS``); answers of the data API are compared with the same aggregation computed
directly in SQL, with pyarrow and from the upstream's rows.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from upstream import ACCOUNTS, Upstream, serve, stats_rows

from support import ServerProcess, running_server

# The API node lists sources, fields and accounts, and refuses bad queries, itself; the
# queries run where the deployment runs them (a Celery worker reads QB_SOURCES too) (BOTH).
DEPLOYMENTS = ("embedded",)
BOTH = pytest.mark.deployments("embedded", "scaleout")

TOKEN = "api-token-for-the-loopback-upstream"
SOURCES = """
[sources.SHOP]
connector = "sql"
url = "sqlite:///{db}"
table = "orders"
date_column = "day"
account_column = "store_id"
account_name_column = "store_name"
dimensions = ["day", "store_id", "product"]
metrics = {{ revenue = "sum", units = "sum", unit_price = "avg" }}
fields = {{ revenue = {{ name = "Revenue (EUR)", data_type = "currency" }} }}

[sources.FILES]
connector = "files"
path = "{parquet}"
date_column = "day"
account_column = "store_id"
dimensions = ["product"]
metrics = {{ units = "sum" }}

[sources.STATS]
connector = "http"
url = "{upstream}/v1/accounts/{{account}}/stats"
accounts = [{{ id = "acc-1", name = "First" }}, "acc-2", "acc-3", "forbidden"]
rows_path = "data.rows"
date_column = "date"
dimensions = ["campaign"]
metrics = {{ clicks = "sum" }}
columns = {{ clicks = "stats.clicks" }}
fields = {{ clicks = {{ data_type = "int" }} }}
params = {{ start_date = "from", end_date = "to" }}
pagination = {{ style = "cursor" }}
auth_env = "QB_TEST_STATS_TOKEN"
"""


def orders() -> list[tuple[Any, ...]]:
    rows = []
    for d in range(6):
        for s in (1, 2, 3):
            for p in range(4):
                units = (d + 2) * (p + 1) % 5 + s
                day = (date(2024, 3, 1) + timedelta(days=d)).isoformat()
                rows.append((day, f"s{s}", f"Store {s}", f"p{p}", units * 1.5, units, 1.5 + p))
    return rows


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    yield from serve(Upstream(token=TOKEN))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    db = root / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE orders (day DATE, store_id TEXT, store_name TEXT, product TEXT, "
            "revenue REAL, units INTEGER, unit_price REAL)"
        )
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)", orders())
    parquet = root / "orders.parquet"
    columns = list(zip(*orders(), strict=True))
    table = pa.table(
        {
            "day": pa.array([date.fromisoformat(d) for d in columns[0]]),
            "store_id": pa.array(columns[1]),
            "product": pa.array(columns[3]),
            "units": pa.array(columns[5], pa.int64()),
        }
    )
    pq.write_table(table, parquet)
    return {"db": db, "parquet": parquet, "root": root}


@pytest.fixture(scope="module")
def server(deployment: str, files: dict[str, Path], upstream: Upstream) -> Iterator[ServerProcess]:
    text = SOURCES.format(db=files["db"], parquet=files["parquet"], upstream=upstream.url)
    path = files["root"] / "sources.toml"
    path.write_text(text)
    env = {"QB_SOURCES": str(path), "QB_TEST_STATS_TOKEN": TOKEN}
    with running_server(files["root"] / f"data-{deployment}", **env) as started:
        yield started


def data(api: httpx.Client, **params: Any) -> list[list[str]]:
    query = {
        "schedule_id": "u_" + uuid.uuid4().hex[:20],
        "settings": '{"no_headers": true}',
        **params,
    }
    body = api.get("/query/data/json", params=query).json()
    assert body["meta"]["status_code"] == "SUCCESS", body
    rows: list[list[str]] = body["data"]
    return rows


def test_sources_lists_every_configured_source_with_its_connector_type(
    api: httpx.Client,
) -> None:
    body = api.get("/query/sources").json()
    assert body["meta"]["request_id"]
    listed = {s["ds_id"]: s["connector"] for s in body["data"]}
    assert {k: v for k, v in listed.items() if k in ("SHOP", "FILES", "STATS")} == {
        "SHOP": "sql",
        "FILES": "files",
        "STATS": "http",
    }
    assert list(listed) == sorted(listed)


def test_fields_list_each_sources_dimensions_and_metrics(api: httpx.Client) -> None:
    body = api.get("/query/fields", params={"ds_id": "SHOP"}).json()
    fields = {f["field_id"]: f for f in body["data"]}
    assert list(fields) == [
        "store_name",
        "day",
        "store_id",
        "product",
        "revenue",
        "units",
        "unit_price",
    ]
    assert fields["revenue"]["field_name"] == "Revenue (EUR)"
    assert fields["revenue"]["data_type"] == "currency"
    assert (fields["day"]["field_type"], fields["day"]["data_type"]) == ("dim", "date")
    assert fields["unit_price"]["is_non_aggregatable"] is True
    files = api.get("/query/fields", params={"ds_id": "FILES"}).json()["data"]
    assert {f["field_id"]: f["data_type"] for f in files} == {
        "day": "date",
        "store_id": "string",
        "product": "string",
        "units": "int",
    }
    stats = api.get("/query/fields", params={"ds_id": "STATS"}).json()["data"]
    assert [f["field_id"] for f in stats] == [
        "account_id",
        "account_name",
        "date",
        "campaign",
        "clicks",
    ]


def test_accounts_list_what_each_source_holds(api: httpx.Client) -> None:
    shop = api.get("/query/accounts", params={"ds_id": "SHOP"}).json()["data"]
    assert [(a["account_id"], a["account_name"]) for a in shop[0]["accounts"]] == [
        ("s1", "Store 1"),
        ("s2", "Store 2"),
        ("s3", "Store 3"),
    ]
    files = api.get("/query/accounts", params={"ds_id": "FILES"}).json()["data"]
    assert [a["account_id"] for a in files[0]["accounts"]] == ["s1", "s2", "s3"]
    stats = api.get("/query/accounts", params={"ds_id": "STATS"}).json()["data"]
    assert [a["account_name"] for a in stats[0]["accounts"]][:2] == ["First", "acc-2"]


@BOTH
def test_sql_rows_equal_the_same_aggregation_in_sql(
    api: httpx.Client, files: dict[str, Path]
) -> None:
    rows = data(
        api,
        ds_id="SHOP",
        ds_accounts="s1,s3",
        fields="day,product,units,revenue",
        start_date="2024-03-02",
        end_date="2024-03-04",
    )
    with sqlite3.connect(files["db"]) as conn:
        expected = conn.execute(
            "SELECT day, product, sum(units), sum(revenue) FROM orders WHERE store_id IN "
            "('s1', 's3') AND day BETWEEN '2024-03-02' AND '2024-03-04' GROUP BY day, product"
        ).fetchall()
    got = {(r[0], r[1]): (int(r[2]), float(r[3])) for r in rows}
    assert got == {(d, p): (u, pytest.approx(r)) for d, p, u, r in expected}


@BOTH
def test_sql_filter_order_and_max_rows_are_honoured(
    api: httpx.Client, files: dict[str, Path]
) -> None:
    rows = data(
        api,
        ds_id="SHOP",
        fields="product,units",
        start_date="2024-03-01",
        end_date="2024-03-06",
        filter="product != p0 AND units > 10",
        order_rows="units desc",
        max_rows=2,
    )
    with sqlite3.connect(files["db"]) as conn:
        expected = conn.execute(
            "SELECT product, sum(units) AS u FROM orders WHERE product != 'p0' GROUP BY product "
            "HAVING u > 10 ORDER BY u DESC LIMIT 2"
        ).fetchall()
    assert [(r[0], int(r[1])) for r in rows] == expected


@BOTH
def test_parquet_rows_equal_the_pyarrow_aggregation(
    api: httpx.Client, files: dict[str, Path]
) -> None:
    rows = data(
        api,
        ds_id="FILES",
        ds_accounts="s2",
        fields="day,product,units",
        start_date="2024-03-01",
        end_date="2024-03-03",
    )
    table = pq.read_table(files["parquet"])
    mask = pc.and_(
        pc.equal(table["store_id"], "s2"),
        pc.less_equal(table["day"], pa.scalar(date(2024, 3, 3))),
    )
    grouped = table.filter(mask).group_by(["day", "product"]).aggregate([("units", "sum")])
    expected = {(str(r["day"]), r["product"]): r["units_sum"] for r in grouped.to_pylist()}
    assert {(r[0], r[1]): int(r[2]) for r in rows} == expected


@BOTH
def test_http_rows_equal_the_upstream_rows_summed(api: httpx.Client) -> None:
    rows = data(
        api,
        ds_id="STATS",
        ds_accounts="acc-1,acc-2",
        fields="account_name,campaign,clicks",
        start_date="2024-01-03",
        end_date="2024-01-07",
    )
    expected: dict[tuple[str, str], int] = defaultdict(int)
    for account, name in (("acc-1", "First"), ("acc-2", "acc-2")):
        for row in stats_rows(account):
            if "2024-01-03" <= row["date"][:10] <= "2024-01-07":
                expected[name, row["campaign"]] += row["stats"]["clicks"]
    assert {(r[0], r[1]): int(r[2]) for r in rows} == expected
    assert set(ACCOUNTS) >= {"acc-1", "acc-2"}


@BOTH
def test_a_forbidden_http_account_fails_its_query_naming_it(api: httpx.Client) -> None:
    query = {
        "schedule_id": "u_" + uuid.uuid4().hex[:20],
        "ds_id": "STATS",
        "ds_accounts": "acc-1,forbidden",
        "fields": "clicks",
        "start_date": "2024-01-01",
        "end_date": "2024-01-02",
    }
    body = api.get("/query/data/json", params=query).json()
    assert body["meta"]["status_code"] == "FAILURE"
    assert "forbidden" in str(body)
    assert TOKEN not in str(body)


def test_an_unknown_field_is_a_bad_request_before_anything_runs(api: httpx.Client) -> None:
    query = {
        "ds_id": "SHOP",
        "fields": "units; DROP TABLE orders",
        "start_date": "2024-03-01",
        "end_date": "2024-03-02",
    }
    response = api.get("/query/data/json", params=query)
    assert response.status_code == 400
    assert api.get("/query/fields", params={"ds_id": "SHOP"}).status_code == 200
