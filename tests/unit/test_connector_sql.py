"""The ``sql`` connector against real databases: SQLite, PostgreSQL, and DuckDB files.

Every pushed-down filter is checked against the engine's own evaluation of the same filter
(:func:`compile_filter` on the unfiltered rows), so SQL and Python never disagree.
"""

from __future__ import annotations

import sqlite3
import tracemalloc
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from querybatch.connectors.base import FetchRequest
from querybatch.connectors.sql import SqlConnector
from querybatch.domain.fields import Row
from querybatch.domain.filters import compile_filter, parse_filter, parse_order
from querybatch.errors import (
    AccountErrors,
    ConfigurationError,
    ConnectorError,
    TransientConnectorError,
)
from support import free_port

PRODUCTS = ("brand", "promo_50%", "o'reilly", "back\\slash", "under_score", "UPPER", "Ünïcode")
STORES = {"s1": "Store One", "s2": "Store Two", "s3": "Store Three"}
FIELDS = ("day", "store_id", "product", "units", "revenue")
START, END = date(2024, 1, 2), date(2024, 1, 8)
ALL_TYPES = {
    "day": "date",
    "store_id": "string",
    "store_name": "string",
    "product": "string",
    "units": "int",
    "revenue": "float",
    "unit_price": "float",
}


def raw_rows() -> list[dict[str, Any]]:
    """The orders table: 10 days x 3 stores x 8 products (one NULL product)."""
    rows = []
    for d in range(10):
        for s, store in enumerate(STORES):
            for p, product in enumerate((*PRODUCTS, None)):
                units = (d + 1) * (p + 1) % 7 + s
                rows.append(
                    {
                        "day": date(2024, 1, 1) + timedelta(days=d),
                        "store_id": store,
                        "store_name": STORES[store],
                        "product": product,
                        "units": units,
                        "revenue": units * 2.5 + p / 4,
                        "unit_price": 2.5 + p,
                    }
                )
    return rows


def create_orders(url: str, table: str = "orders") -> None:
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    orders = sa.Table(
        table,
        meta,
        sa.Column("day", sa.Date),
        sa.Column("store_id", sa.String(20)),
        sa.Column("store_name", sa.String(40)),
        sa.Column("product", sa.String(40)),
        sa.Column("units", sa.Integer),
        sa.Column("revenue", sa.Float),
        sa.Column("unit_price", sa.Float),
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(orders.insert(), raw_rows())
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shop.db'}"
        create_orders(url)
        return url
    pg_url, _ = request.getfixturevalue("pg_schema")
    create_orders(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    return str(pg_url)


def settings(url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "url": url,
        "table": "orders",
        "date_column": "day",
        "account_column": "store_id",
        "account_name_column": "store_name",
        "dimensions": ["day", "store_id", "product"],
        "metrics": {"units": "sum", "revenue": "sum", "unit_price": "avg"},
        "chunk_rows": 7,
        **overrides,
    }


@pytest.fixture
async def shop(db_url: str) -> Any:
    connector = SqlConnector.from_mapping("SHOP", settings(db_url))
    await connector.open()
    yield connector
    await connector.close()


def request(fields: tuple[str, ...] = FIELDS, *accounts: str, **kw: Any) -> FetchRequest:
    return FetchRequest("SHOP", accounts, START, END, fields, **kw)


async def fetch(connector: Any, req: FetchRequest) -> list[Row]:
    return [row async for chunk in connector.fetch(req) for row in chunk]


def reference(fields: tuple[str, ...], accounts: tuple[str, ...] = ()) -> dict[Any, list[Any]]:
    """The same aggregation done in Python on the raw rows."""
    dims = [f for f in fields if f in ("day", "store_id", "product", "store_name")]
    groups: dict[Any, list[Any]] = defaultdict(lambda: [0, 0.0])
    for row in raw_rows():
        if START <= row["day"] <= END and (not accounts or row["store_id"] in accounts):
            key = tuple(row[d].isoformat() if d == "day" else row[d] for d in dims)
            groups[key][0] += row["units"]
            groups[key][1] += row["revenue"]
    return groups


async def test_fields_are_typed_from_the_columns(shop: SqlConnector) -> None:
    fields = {f.field_id: f for f in await shop.fields()}
    assert {k: f.data_type for k, f in fields.items()} == ALL_TYPES
    assert [k for k, f in fields.items() if f.is_metric] == ["units", "revenue", "unit_price"]
    assert fields["unit_price"].aggregation == "avg"


async def test_accounts_are_the_distinct_account_ids_with_names(shop: SqlConnector) -> None:
    (login,) = await shop.accounts()
    assert [(a.account_id, a.account_name) for a in login.accounts] == list(STORES.items())
    assert await shop.accounts(["someone.else"]) == []


async def test_rows_are_grouped_by_the_requested_dimensions_and_typed(shop: SqlConnector) -> None:
    rows = await fetch(shop, request(("store_id", "product", "units", "revenue")))
    expected = reference(("store_id", "product"))
    assert {r[:2]: [r[2], pytest.approx(r[3])] for r in rows} == {
        k: list(v) for k, v in expected.items()
    }
    assert all(isinstance(r[2], int) and isinstance(r[3], float) for r in rows)


async def test_dates_are_iso_strings_and_the_range_is_inclusive(shop: SqlConnector) -> None:
    rows = await fetch(shop, request(("day", "units"), "s1"))
    assert sorted(r[0] for r in rows) == [
        (START + timedelta(days=i)).isoformat() for i in range((END - START).days + 1)
    ]
    expected = reference(("day",), ("s1",))
    assert {r[0]: r[1] for r in rows} == {k[0]: v[0] for k, v in expected.items()}


async def test_no_dimension_gives_one_row_of_totals_and_none_when_nothing_matches(
    shop: SqlConnector,
) -> None:
    totals = reference(())[()]
    assert await fetch(shop, request(("units",))) == [(totals[0],)]
    assert await fetch(shop, request(("units",), filter=parse_filter("product == nothing"))) == []


@pytest.mark.parametrize(
    "text",
    [
        "product == o'reilly",
        "product == back\\slash",
        "product =@ 50%",
        "product =@ _",
        "product =@ \\",
        'product =@ "O\'REI"',
        "product =@ ünï",
        "product !@ 50%",
        "product != brand",
        "product =~ ^[a-z]+$",
        "product !~ o.r",
        "product > p AND product <= under_score",
        "units > 20 OR revenue < 10",
        "product == brand OR units > 30",
        "units >= 4 AND product =@ r",
        "day >= 2024-01-03 AND day < 2024-01-05",
        "units == abc",
        "units != abc",
        "store_id == \"x' OR '1'='1\"",
        "revenue == 3.75",
    ],
)
async def test_pushed_down_filters_match_the_engine_evaluation(
    shop: SqlConnector, text: str
) -> None:
    flt = parse_filter(text)
    everything = await fetch(shop, request())
    keep = compile_filter(flt, FIELDS, ALL_TYPES)  # type: ignore[arg-type]
    expected = sorted((r for r in everything if keep(r)), key=repr)
    assert sorted(await fetch(shop, request(filter=flt)), key=repr) == expected


async def test_sqlite_regexp_speaks_re2_like_the_engine(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    create_orders(url)
    shop = SqlConnector.from_mapping("SHOP", settings(url))
    await shop.open()
    try:
        # \pL is RE2 (and not Python re) syntax: SQLite's REGEXP must be the RE2 one.
        flt = parse_filter(r"product =~ ^\pL+$")
        rows = await fetch(shop, request(("product", "units"), filter=flt))
        assert sorted(r[0] for r in rows) == ["UPPER", "brand", "Ünïcode"]
        bomb = parse_filter("product =~ (.*?){14}X")
        assert await fetch(shop, request(("product", "units"), filter=bomb)) == []
    finally:
        await shop.close()


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?<=a)b", "x" * 1001])
async def test_a_pattern_re2_refuses_fails_the_fetch_for_good(
    shop: SqlConnector, pattern: str
) -> None:
    flt = parse_filter(f"product =~ {pattern}")
    with pytest.raises(ConnectorError, match="invalid filter") as caught:
        await fetch(shop, request(filter=flt))
    assert not isinstance(caught.value, TransientConnectorError)


async def test_filters_on_fields_not_requested_apply_to_raw_rows(shop: SqlConnector) -> None:
    rows = await fetch(
        shop, request(("store_id", "units"), filter=parse_filter("product == brand"))
    )
    expected: dict[str, int] = defaultdict(int)
    for row in raw_rows():
        if START <= row["day"] <= END and row["product"] == "brand":
            expected[row["store_id"]] += row["units"]
    assert dict(rows) == dict(expected)  # type: ignore[arg-type]


async def test_order_and_limit_are_pushed_down(shop: SqlConnector) -> None:
    req = request(("product", "units"), order_rows=parse_order("units desc, product"), max_rows=3)
    rows = await fetch(shop, req)
    everything = sorted(
        ((k[0], v[0]) for k, v in reference(("product",)).items()),
        key=lambda r: (-r[1], r[0] is None, r[0] or ""),
    )
    assert rows == everything[:3]
    assert SqlConnector.pushdown == {"filter", "order", "limit"}


async def test_nulls_sort_last_in_either_direction(shop: SqlConnector) -> None:
    for order in ("product", "product desc"):
        rows = await fetch(shop, request(("product",), order_rows=parse_order(order)))
        assert rows[-1] == (None,)


async def test_unknown_and_hostile_account_ids_are_account_errors(
    shop: SqlConnector, db_url: str
) -> None:
    hostile = "x' OR '1'='1"
    with pytest.raises(AccountErrors) as caught:
        await fetch(shop, request(("units",), "s1", hostile, "s1'; DROP TABLE orders; --"))
    assert set(caught.value.failures) == {hostile, "s1'; DROP TABLE orders; --"}
    rows = await fetch(shop, request(("store_id", "units"), "s1", "s2"))
    assert sorted(rows) == sorted((k[0], v[0]) for k, v in reference(("store_id",)).items())[:2]
    assert _count(db_url) == len(raw_rows())


async def test_hostile_field_names_are_rejected_before_any_sql(
    shop: SqlConnector, db_url: str
) -> None:
    with pytest.raises(ConnectorError, match="unknown field"):
        await fetch(shop, request(("units; DROP TABLE orders",)))
    bad = SqlConnector.from_mapping(
        "SHOP", settings(db_url, columns={"units": "units; DROP TABLE orders"})
    )
    with pytest.raises(ConfigurationError, match=r"^sources\.SHOP\.columns\.units: column"):
        await bad.open()
    assert _count(db_url) == len(raw_rows())


def _count(url: str) -> int:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM orders")).scalar_one()
    engine.dispose()
    return int(count)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"table": "nope"}, r"^sources\.SHOP\.table: table or view 'nope' does not exist"),
        ({"date_column": "when"}, r"^sources\.SHOP\.date_column: column 'when' does not exist"),
        ({"account_column": "x"}, r"^sources\.SHOP\.account_column: column 'x' does not exist"),
        ({"dimensions": ["colour"]}, r"^sources\.SHOP\.dimensions: column 'colour'"),
        ({"metrics": {"profit": "sum"}}, r"^sources\.SHOP\.metrics\.profit: column 'profit'"),
        (
            {"dimensions": ["day"], "metrics": {"product": "sum"}},
            r"^sources\.SHOP\.metrics\.product: .*needs numbers",
        ),
        ({"date_column": "units"}, r"^sources\.SHOP\.date_column: column 'units' is INTEGER"),
    ],
)
async def test_open_names_the_key_that_does_not_match_the_table(
    db_url: str, overrides: dict[str, Any], message: str
) -> None:
    connector = SqlConnector.from_mapping("SHOP", settings(db_url, **overrides))
    with pytest.raises(ConfigurationError, match=message):
        await connector.open()


async def test_a_missing_sqlite_file_or_an_unreachable_server_stops_open(tmp_path: Path) -> None:
    missing = SqlConnector.from_mapping("SHOP", settings(f"sqlite:///{tmp_path / 'none.db'}"))
    with pytest.raises(
        ConfigurationError, match=r"^sources\.SHOP\.url: database file .* not exist"
    ):
        await missing.open()
    assert not (tmp_path / "none.db").exists()
    url = f"postgresql://qb:hunter2@127.0.0.1:{free_port()}/nothing"
    unreachable = SqlConnector.from_mapping("SHOP", settings(url))
    with pytest.raises(ConfigurationError, match=r"^sources\.SHOP\.url: cannot connect") as caught:
        await unreachable.open()
    assert "hunter2" not in caught.value.message


def test_a_url_that_is_not_a_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"^sources\.SHOP\.url: not a database URL"):
        SqlConnector.from_mapping("SHOP", settings("no url at all"))


async def test_text_dates_and_untyped_columns_work_in_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "text.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (day TEXT, acct, n)")
        conn.executemany(
            "INSERT INTO t VALUES (?, ?, ?)",
            [("2024-01-01", "a", 1), ("2024-01-02", "a", 2), ("2024-01-09", "a", 4)],
        )
    source = SqlConnector.from_mapping(
        "T",
        {
            "url": f"sqlite:///{path}",
            "table": "t",
            "date_column": "day",
            "account_column": "acct",
            "metrics": {"n": "sum"},
        },
    )
    await source.open()
    types = {f.field_id: f.data_type for f in await source.fields()}
    assert types == {"day": "date", "acct": "string", "n": "int"}
    req = FetchRequest("T", ("a",), date(2024, 1, 1), date(2024, 1, 2), ("day", "n"))
    assert await fetch(source, req) == [("2024-01-01", 1), ("2024-01-02", 2)]
    await source.close()


async def test_duckdb_files_work_through_duckdb_engine(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "shop.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE TABLE orders (day DATE, store_id VARCHAR, units BIGINT)")
        conn.execute(
            "INSERT INTO orders VALUES ('2024-01-02', 's1', 3), ('2024-01-03', 's1', 4), "
            "('2024-01-03', 's2', 5)"
        )
    source = SqlConnector.from_mapping(
        "DUCK",
        {
            "url": f"duckdb:///{path}",
            "table": "orders",
            "date_column": "day",
            "account_column": "store_id",
            "metrics": {"units": "sum"},
        },
    )
    await source.open()
    rows = await fetch(
        source,
        request(("store_id", "units"), filter=parse_filter("store_id =~ 1$ OR units > 4")),
    )
    assert sorted(rows) == [("s1", 7), ("s2", 5)]
    with pytest.raises(ConfigurationError, match=r"^sources\.DUCK\.table: table or view"):
        await SqlConnector.from_mapping(
            "DUCK",
            {
                "url": f"duckdb:///{path}",
                "table": "nope",
                "date_column": "day",
                "account_column": "store_id",
            },
        ).open()
    await source.close()


# Rows of the streamed table: enough that the whole result as Python tuples (23 MB traced)
# is over four times the 5 MB that streaming it may hold (it holds 0.9 MB).
STREAMED_ROWS = 250_000


@pytest.fixture
def streamed(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "big.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE big (day DATE, acct TEXT, item INTEGER, n INTEGER)")
        conn.execute(
            "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq "
            "WHERE i < :last) INSERT INTO big SELECT '2024-01-01', 'a', i, i % 7 FROM seq",
            {"last": STREAMED_ROWS - 1},
        )
    yield f"sqlite:///{path}"


async def test_a_large_result_streams_in_chunks_with_bounded_memory(streamed: str) -> None:
    source = SqlConnector.from_mapping(
        "BIG",
        {
            "url": streamed,
            "table": "big",
            "date_column": "day",
            "account_column": "acct",
            "dimensions": ["item"],
            "metrics": {"n": "sum"},
            "chunk_rows": STREAMED_ROWS // 100,
        },
    )
    await source.open()
    req = FetchRequest("BIG", ("a",), date(2024, 1, 1), date(2024, 1, 1), ("item", "n"))
    tracemalloc.start()
    try:
        rows = chunks = total = 0
        async for chunk in source.fetch(req):
            chunks += 1
            rows += len(chunk)
            total += sum(r[1] for r in chunk)  # type: ignore[misc]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await source.close()
    assert rows == STREAMED_ROWS and chunks == 100
    assert total == sum(i % 7 for i in range(STREAMED_ROWS))
    assert peak < 5 * 1024 * 1024, peak


async def test_an_abandoned_fetch_gives_its_connection_back(db_url: str) -> None:
    source = SqlConnector.from_mapping("SHOP", settings(db_url, max_connections=1))
    for _ in range(3):
        chunks = source.fetch(request())
        assert await anext(chunks)  # type: ignore[call-overload]
        await chunks.aclose()  # type: ignore[attr-defined]
    assert len(await fetch(source, request(("units",)))) == 1
    await source.close()
