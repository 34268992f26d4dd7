"""The destination contract, against the real things: PostgreSQL, DuckDB files, Parquet and
CSV on a local directory and on S3 (moto in server mode). Each load is read back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from querybatch.destinations.base import (
    Column,
    Destination,
    DestinationContext,
    RowChunk,
    Slice,
    SliceRows,
)
from querybatch.destinations.duckdb import DuckDBDestination
from querybatch.destinations.files import FilesDestination
from querybatch.destinations.postgresql import PostgresDestination
from querybatch.errors import BadRequest, DestinationUnreachable, LoadRejected
from transfer_support import duckdb_rows, postgres_fields, postgres_rows

COLUMNS = [Column("day", "date"), Column("campaign", "string"), Column("clicks", "integer")]
DAY = date(2026, 11, 1)
Reader = Callable[[], list[tuple[Any, ...]]]


@dataclass
class Target:
    """A destination under test and a way to read its table back as sorted tuples of
    (transfer id, data date as text, account, *data columns)."""

    destination: Destination
    read: Reader


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, Any]]:
    """A moto S3 server on 127.0.0.1 and a fresh bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing-secret"}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **credentials).create_bucket(
        Bucket="loads"
    )
    yield {"endpoint": endpoint, **credentials}
    server.stop()


def _read_dataset(path: str, fmt: str, filesystem: Any = None) -> list[tuple[Any, ...]]:
    import pyarrow.dataset as ds

    if filesystem is None and not Path(path).exists():
        return []
    if filesystem is not None and not filesystem.exists(path):
        return []
    table = ds.dataset(path, format=fmt, partitioning="hive", filesystem=filesystem).to_table()
    rows = table.to_pylist()
    return sorted(
        (
            r["_qb_transfer_id"],
            str(r["data_date"]),
            r["_qb_account"],
            str(r["day"]),
            r["campaign"],
            r["clicks"],
        )
        for r in rows
    )


def _sql_rows(
    fetch: Callable[[str], Sequence[tuple[Any, ...]]], table: str
) -> list[tuple[Any, ...]]:
    rows = fetch(
        f"SELECT _qb_transfer_id, CAST(_qb_data_date AS VARCHAR), _qb_account,"
        f" CAST(day AS VARCHAR), campaign, clicks FROM {table}"
    )
    return sorted(tuple(r) for r in rows)


KINDS = ["postgresql", "duckdb", "parquet", "csv", "s3-parquet"]


@pytest.fixture(params=KINDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """Each destination type (S3 included: slower, so only where storage matters)."""
    return build(request.param, request, tmp_path)


@pytest.fixture(params=KINDS[:-1])
def near_target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """Each destination type but S3, whose files behave as the local ones do."""
    return build(request.param, request, tmp_path)


@pytest.fixture(params=["postgresql", "duckdb"])
def sql_target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """The destination types that load several slices in one transaction."""
    return build(request.param, request, tmp_path)


def build(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    context = DestinationContext(tmp_path / "team")
    if kind == "postgresql":
        url, schema = request.getfixturevalue("pg_schema")
        fields = postgres_fields(request.getfixturevalue("postgres_url"), schema)

        def fetch_pg(statement: str) -> list[tuple[Any, ...]]:
            return postgres_rows(url, schema, "orders", statement.replace("VARCHAR", "text"))

        return Target(
            PostgresDestination.from_fields(fields, context),
            lambda: _sql_rows(fetch_pg, f'"{schema}".orders'),
        )
    if kind == "duckdb":
        destination = DuckDBDestination.from_fields({"path": "db/warehouse.duckdb"}, context)
        file = context.local_root / "db" / "warehouse.duckdb"

        def fetch_duck(statement: str) -> list[tuple[Any, ...]]:
            return duckdb_rows(file, "orders", statement)

        return Target(destination, lambda: _sql_rows(fetch_duck, "main.orders"))
    if kind in ("parquet", "csv"):
        destination = FilesDestination.from_fields({"path": "lake", "format": kind}, context)
        root = context.local_root / "lake" / "orders"
        return Target(destination, lambda: _read_dataset(str(root), kind))
    s3 = request.getfixturevalue("s3")
    import s3fs

    prefix = f"run-{request.node.name[-40:].replace('[', '-').replace(']', '')}"
    fields = {
        "storage": "s3",
        "bucket": "loads",
        "prefix": prefix,
        "endpoint_url": s3["endpoint"],
        "region": "us-east-1",
        "access_key_id": s3["aws_access_key_id"],
        "secret_access_key": s3["aws_secret_access_key"],
    }
    fs = s3fs.S3FileSystem(
        key=s3["aws_access_key_id"],
        secret=s3["aws_secret_access_key"],
        endpoint_url=s3["endpoint"],
        skip_instance_cache=True,
        use_listings_cache=False,
    )
    return Target(
        FilesDestination.from_fields(fields, context),
        lambda: _read_dataset(f"loads/{prefix}/orders", "parquet", fs),
    )


def rows_of(account: str, count: int, campaign: str = "c") -> list[tuple[Any, ...]]:
    return [("2026-11-01", f"{campaign}{i}", i) for i in range(count)]


async def chunks(
    pieces: Sequence[tuple[str, list[tuple[Any, ...]]]], fail_after: int | None = None
) -> AsyncIterator[RowChunk]:
    for index, (account, rows) in enumerate(pieces):
        if fail_after is not None and index == fail_after:
            raise RuntimeError("the source failed mid-load")
        yield RowChunk(account, rows)


def expected(transfer: int, account: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(transfer, "2026-11-01", account, *row) for row in rows]


async def test_a_load_is_read_back_as_it_was_given(target: Target) -> None:
    part = Slice(7, DAY, ("a", "b"))
    pieces = [("a", rows_of("a", 3)), ("b", rows_of("b", 2)), ("a", rows_of("a", 2, "d"))]
    result = await target.destination.load("orders", part, COLUMNS, chunks(pieces))
    assert result.rows == 7
    want = expected(7, "a", rows_of("a", 3)) + expected(7, "b", rows_of("b", 2))
    want += expected(7, "a", rows_of("a", 2, "d"))
    assert target.read() == sorted(want)


async def test_loading_the_same_slice_twice_leaves_each_row_once(target: Target) -> None:
    part = Slice(7, DAY, ("a", "b"))
    pieces = [("a", rows_of("a", 3)), ("b", rows_of("b", 2))]
    await target.destination.load("orders", part, COLUMNS, chunks(pieces))
    await target.destination.load("orders", part, COLUMNS, chunks(pieces))
    assert target.read() == sorted(
        expected(7, "a", rows_of("a", 3)) + expected(7, "b", rows_of("b", 2))
    )


async def test_an_overlapping_slice_replaces_only_its_own_accounts(target: Target) -> None:
    await target.destination.load(
        "orders",
        Slice(7, DAY, ("a", "b")),
        COLUMNS,
        chunks([("a", rows_of("a", 2)), ("b", rows_of("b", 2))]),
    )
    await target.destination.load(
        "orders",
        Slice(7, DAY, ("b", "c")),
        COLUMNS,
        chunks([("b", rows_of("b", 1, "new")), ("c", rows_of("c", 1))]),
    )
    want = expected(7, "a", rows_of("a", 2)) + expected(7, "b", rows_of("b", 1, "new"))
    want += expected(7, "c", rows_of("c", 1))
    assert target.read() == sorted(want)


async def test_an_account_of_the_slice_without_rows_ends_with_none(near_target: Target) -> None:
    target = near_target
    await target.destination.load(
        "orders",
        Slice(7, DAY, ("a", "b")),
        COLUMNS,
        chunks([("a", rows_of("a", 2)), ("b", rows_of("b", 2))]),
    )
    await target.destination.load(
        "orders", Slice(7, DAY, ("a", "b")), COLUMNS, chunks([("a", rows_of("a", 1))])
    )
    assert target.read() == expected(7, "a", rows_of("a", 1))


async def test_an_interrupted_load_leaves_the_previous_slice_intact(target: Target) -> None:
    first = [("a", rows_of("a", 2)), ("b", rows_of("b", 2))]
    await target.destination.load("orders", Slice(7, DAY, ("a", "b")), COLUMNS, chunks(first))
    before = target.read()
    again = [("a", rows_of("a", 5, "x")), ("b", rows_of("b", 5, "x"))]
    with pytest.raises(RuntimeError, match="mid-load"):
        await target.destination.load(
            "orders", Slice(7, DAY, ("a", "b")), COLUMNS, chunks(again, fail_after=1)
        )
    assert target.read() == before


async def test_rows_of_an_account_outside_the_slice_are_refused(near_target: Target) -> None:
    target = near_target
    with pytest.raises(LoadRejected, match="does not name"):
        await target.destination.load(
            "orders", Slice(7, DAY, ("a",)), COLUMNS, chunks([("z", rows_of("z", 1))])
        )


def day_rows(day: date, transfer: int, account: str, count: int, tag: str) -> list[Any]:
    """The rows of a slice of ``day`` as loaded, and as read back."""
    return [
        (transfer, day.isoformat(), account, "2026-11-01", f"{tag}{i}", i) for i in range(count)
    ]


async def test_several_slices_load_in_one_call_each_with_its_own_count(target: Target) -> None:
    days = [date(2026, 11, d) for d in (1, 2, 3)]
    parts = [
        SliceRows(
            Slice(7, day, ("a", "b")),
            chunks([("a", rows_of("a", n)), ("b", rows_of("b", 1, "b"))]),
        )
        for n, day in enumerate(days, start=1)
    ]
    results = await target.destination.load_parts("orders", COLUMNS, parts)
    assert [r.rows for r in results] == [2, 3, 4]
    want = [
        row
        for n, day in enumerate(days, start=1)
        for row in day_rows(day, 7, "a", n, "c") + day_rows(day, 7, "b", 1, "b")
    ]
    assert target.read() == sorted(want)


async def test_a_later_slice_of_a_load_replaces_an_earlier_one_it_overlaps(
    target: Target,
) -> None:
    parts = [
        SliceRows(
            Slice(7, DAY, ("a", "b")), chunks([("a", rows_of("a", 2)), ("b", rows_of("b", 2))])
        ),
        SliceRows(Slice(7, DAY, ("b",)), chunks([("b", rows_of("b", 1, "new"))])),
    ]
    results = await target.destination.load_parts("orders", COLUMNS, parts)
    assert [r.rows for r in results] == [4, 1]
    want = expected(7, "a", rows_of("a", 2)) + expected(7, "b", rows_of("b", 1, "new"))
    assert target.read() == sorted(want)


@pytest.mark.parametrize("failure", ["source", "rejected"])
async def test_a_failure_in_one_slice_leaves_every_slice_of_the_load_as_it_was(
    sql_target: Target, failure: str
) -> None:
    target = sql_target
    days = [date(2026, 11, d) for d in (1, 2, 3)]
    for day in days[:2]:  # the first two days were loaded before, the third never was
        await target.destination.load(
            "orders", Slice(7, day, ("a",)), COLUMNS, chunks([("a", rows_of("a", 2, "old"))])
        )
    before = target.read()
    bad = (
        chunks([("a", rows_of("a", 1)), ("a", rows_of("a", 1))], fail_after=1)
        if failure == "source"
        else chunks([("z", rows_of("z", 1))])  # an account the slice does not name
    )
    parts = [
        SliceRows(Slice(7, days[0], ("a",)), chunks([("a", rows_of("a", 3, "new"))])),
        SliceRows(Slice(7, days[1], ("a",)), bad),
        SliceRows(Slice(7, days[2], ("a",)), chunks([("a", rows_of("a", 3, "new"))])),
    ]
    with pytest.raises(RuntimeError if failure == "source" else LoadRejected):
        await target.destination.load_parts("orders", COLUMNS, parts)
    assert target.read() == before


async def test_a_load_of_no_slices_is_refused(tmp_path: Path) -> None:
    destination = DuckDBDestination.from_fields({}, DestinationContext(tmp_path))
    with pytest.raises(LoadRejected, match="1 to"):
        await destination.load_parts("orders", COLUMNS, [])


async def test_the_connection_test_passes(target: Target) -> None:
    await target.destination.test_connection()


@pytest.mark.parametrize("kind", [PostgresDestination, DuckDBDestination])
async def test_new_columns_and_wider_types_widen_the_table(
    kind: type[Destination], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    context = DestinationContext(tmp_path)
    if kind is DuckDBDestination:
        import duckdb

        destination = kind.from_fields({"path": "w.duckdb"}, context)

        def read() -> list[tuple[Any, ...]]:
            with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as conn:
                return conn.execute("SELECT _qb_account, clicks, cost FROM main.orders").fetchall()
    else:
        url, schema = request.getfixturevalue("pg_schema")
        fields = postgres_fields(request.getfixturevalue("postgres_url"), schema)
        destination = kind.from_fields(fields, context)

        def read() -> list[tuple[Any, ...]]:
            statement = f'SELECT _qb_account, clicks, cost FROM "{schema}".orders'
            return postgres_rows(url, schema, "orders", statement)

    await destination.load(
        "orders", Slice(1, DAY, ("a",)), COLUMNS, chunks([("a", rows_of("a", 1))])
    )
    wider = [*COLUMNS[:2], Column("clicks", "float"), Column("cost", "float")]
    await destination.load(
        "orders",
        Slice(1, date(2026, 11, 2), ("a",)),
        wider,
        chunks([("a", [("2026-11-02", "c", 2.5, 1.5)])]),
    )
    assert sorted(read(), key=str) == sorted([("a", 0.0, None), ("a", 2.5, 1.5)], key=str)


async def test_an_unreachable_postgresql_fails_the_connection_test(tmp_path: Path) -> None:
    destination = PostgresDestination.from_fields(
        {
            "host": "127.0.0.1",
            "port": 1,
            "database_name": "x",
            "username": "u",
            "password": "hunter22",
        },
        DestinationContext(tmp_path),
    )
    with pytest.raises(DestinationUnreachable) as caught:
        await destination.test_connection()
    assert "hunter22" not in str(caught.value.message) + str(caught.value.description)


async def test_a_missing_bucket_fails_the_connection_test(
    s3: dict[str, Any], tmp_path: Path
) -> None:
    destination = FilesDestination.from_fields(
        {
            "storage": "s3",
            "bucket": "no-such-bucket",
            "endpoint_url": s3["endpoint"],
            "access_key_id": s3["aws_access_key_id"],
            "secret_access_key": s3["aws_secret_access_key"],
        },
        DestinationContext(tmp_path),
    )
    with pytest.raises(DestinationUnreachable):
        await destination.test_connection()


@pytest.mark.parametrize("path", ["../escape", "/etc/x", "a/../../b", "."])
def test_a_local_path_may_not_leave_the_teams_directory(path: str, tmp_path: Path) -> None:
    with pytest.raises(BadRequest):
        DuckDBDestination.from_fields({"path": path}, DestinationContext(tmp_path)).file  # noqa: B018


@pytest.mark.parametrize("name", ["1abc", "a-b", "_qb_x", "x" * 64, 'a"b'])
async def test_unsafe_table_names_are_refused(name: str, tmp_path: Path) -> None:
    destination = DuckDBDestination.from_fields({}, DestinationContext(tmp_path))
    with pytest.raises(LoadRejected):
        await destination.load(name, Slice(1, DAY, ("a",)), COLUMNS, chunks([]))
