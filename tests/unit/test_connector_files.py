"""The ``files`` connector on generated CSV and Parquet files, checked against pyarrow."""

from __future__ import annotations

import importlib.util
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from querybatch.connectors.base import FetchRequest
from querybatch.connectors.files import FilesConnector
from querybatch.domain.fields import Row
from querybatch.domain.filters import compile_filter, parse_filter, parse_order
from querybatch.errors import AccountErrors, ConfigurationError, ConnectorError

pytest.importorskip("duckdb_engine")

PRODUCTS = ("brand", "promo_50%", "o'reilly", "back\\slash", "under_score", "Ünïcode")
FIELDS = ("day", "store_id", "product", "units", "revenue")
TYPES = {
    "day": "date",
    "store_id": "string",
    "product": "string",
    "units": "int",
    "revenue": "float",
}
START, END = date(2024, 1, 2), date(2024, 1, 6)


def orders(days: int = 8, first: date = date(2024, 1, 1)) -> pa.Table:
    rows: dict[str, list[Any]] = defaultdict(list)
    for d in range(days):
        for s in range(3):
            for p, product in enumerate(PRODUCTS):
                units = (d + 1) * (p + 2) % 9 + s
                rows["day"].append(first + timedelta(days=d))
                rows["store_id"].append(f"s{s + 1}")
                rows["product"].append(product)
                rows["units"].append(units)
                rows["revenue"].append(units * 1.25 + p)
    return pa.table(rows)


@pytest.fixture(params=["parquet", "csv"])
def files(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Two files of the same format, read through one glob."""
    table = orders()
    half = table.num_rows // 2
    for n, part in enumerate((table.slice(0, half), table.slice(half))):
        path = tmp_path / f"orders-{n}.{request.param}"
        if request.param == "parquet":
            pq.write_table(part, path)
        else:
            pacsv.write_csv(part, path)
    return str(tmp_path / f"orders-*.{request.param}")


def settings(path: str, **overrides: Any) -> dict[str, Any]:
    return {
        "path": path,
        "date_column": "day",
        "account_column": "store_id",
        "dimensions": ["product"],
        "metrics": {"units": "sum", "revenue": "sum"},
        "chunk_rows": 5,
        **overrides,
    }


@pytest.fixture
async def shop(files: str) -> Any:
    connector = FilesConnector.from_mapping("FILES", settings(files))
    await connector.open()
    yield connector
    await connector.close()


def request(fields: tuple[str, ...] = FIELDS, *accounts: str, **kw: Any) -> FetchRequest:
    return FetchRequest("FILES", accounts, START, END, fields, **kw)


async def fetch(connector: Any, req: FetchRequest) -> list[Row]:
    return [row async for chunk in connector.fetch(req) for row in chunk]


def pyarrow_totals(keys: list[str], accounts: tuple[str, ...] = ()) -> dict[Any, tuple[Any, ...]]:
    """The reference aggregation, computed by pyarrow."""
    table = orders()
    mask = pc.and_(
        pc.greater_equal(table["day"], pa.scalar(START)),
        pc.less_equal(table["day"], pa.scalar(END)),
    )
    if accounts:
        mask = pc.and_(mask, pc.is_in(table["store_id"], pa.array(accounts)))
    grouped = table.filter(mask).group_by(keys).aggregate([("units", "sum"), ("revenue", "sum")])
    return {
        tuple(str(r[k]) for k in keys): (r["units_sum"], r["revenue_sum"])
        for r in grouped.to_pylist()
    }


async def test_fields_and_accounts_come_from_the_files(shop: FilesConnector) -> None:
    assert {f.field_id: f.data_type for f in await shop.fields()} == TYPES
    (login,) = await shop.accounts()
    assert [a.account_id for a in login.accounts] == ["s1", "s2", "s3"]


async def test_grouped_rows_equal_the_pyarrow_aggregation(shop: FilesConnector) -> None:
    rows = await fetch(shop, request(("day", "store_id", "units", "revenue"), "s1", "s3"))
    expected = pyarrow_totals(["day", "store_id"], ("s1", "s3"))
    assert {r[:2]: (r[2], pytest.approx(r[3])) for r in rows} == expected
    assert all(isinstance(r[0], str) and isinstance(r[2], int) for r in rows)


@pytest.mark.parametrize(
    "text",
    [
        "product =@ 50%",
        "product =@ _",
        "product == o'reilly",
        "product =@ \\",
        "product =~ ^[a-z]+$",
        "product !~ o.r",
        "units > 10 OR product == brand",
        "units >= 5 AND revenue < 20",
        "store_id == \"x' OR '1'='1\"",
    ],
)
async def test_pushed_down_filters_match_the_engine_evaluation(
    shop: FilesConnector, text: str
) -> None:
    flt = parse_filter(text)
    everything = await fetch(shop, request())
    keep = compile_filter(flt, FIELDS, TYPES)  # type: ignore[arg-type]
    assert sorted(await fetch(shop, request(filter=flt))) == sorted(
        r for r in everything if keep(r)
    )


async def test_order_and_limit_are_applied(shop: FilesConnector) -> None:
    rows = await fetch(
        shop, request(("product", "units"), order_rows=parse_order("units desc"), max_rows=2)
    )
    expected = sorted(
        ((k[0], v[0]) for k, v in pyarrow_totals(["product"]).items()), key=lambda r: -r[1]
    )
    assert rows == expected[:2]


async def test_hostile_accounts_and_fields_change_nothing(shop: FilesConnector) -> None:
    with pytest.raises(AccountErrors) as caught:
        await fetch(shop, request(("units",), "s1", "x' OR '1'='1"))
    assert list(caught.value.failures) == ["x' OR '1'='1"]
    with pytest.raises(ConnectorError, match="unknown field"):
        await fetch(shop, request(("units; DROP TABLE orders",)))


async def test_mistakes_name_the_key(tmp_path: Path, files: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^sources\.FILES\.path: no file matches"):
        await FilesConnector.from_mapping("FILES", settings(str(tmp_path / "none*.csv"))).open()
    with pytest.raises(ConfigurationError, match=r"^sources\.FILES\.format: cannot tell"):
        FilesConnector.from_mapping("FILES", settings(str(tmp_path / "orders.data")))
    with pytest.raises(ConfigurationError, match=r"^sources\.FILES\.dimensions: column 'colour'"):
        await FilesConnector.from_mapping("FILES", settings(files, dimensions=["colour"])).open()


async def test_new_files_matching_the_glob_are_read_by_the_next_query(
    tmp_path: Path, files: str, shop: FilesConnector
) -> None:
    before = await fetch(shop, request(("units",)))
    extra = orders(days=1, first=START)
    path = tmp_path / f"orders-9.{files.rsplit('.', 1)[1]}"
    pq.write_table(extra, path) if files.endswith("parquet") else pacsv.write_csv(extra, path)
    after = await fetch(shop, request(("units",)))
    assert after[0][0] == before[0][0] + pc.sum(extra["units"]).as_py()


def test_a_missing_duckdb_asks_for_the_files_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "duckdb" else real(name, *a)
    )
    with pytest.raises(ConfigurationError, match=r"querybatch\[files\]"):
        FilesConnector.from_mapping("FILES", settings("x.csv"))
