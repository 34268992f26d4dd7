"""A load killed with SIGKILL at random points leaves each row in the destination once.

A child process loads a slice (12 accounts of 4,000 rows) into PostgreSQL, a DuckDB file
and a Parquet directory, announcing each chunk before it hands it over; the test kills it
after a random number of chunks, or a random moment after the last one (inside the commit
or the files' moves). PostgreSQL and DuckDB take the slice as three slices of four
accounts in one ``load_parts`` (a group of transfer runs' loads), which must be as atomic
as one load. What the destination holds must then be the previous load of the slice or the
new one, whole, never a mix; files are replaced account by account, so there each
account's rows must be its previous or its new ones, whole. Loading the slice again must
end with the new rows, each once. The kill points come from a seeded generator, printed on
failure.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from transfer_support import duckdb_rows, postgres_fields, postgres_rows

ACCOUNTS = tuple(f"acct-{n:02d}" for n in range(12))
ROWS_PER_ACCOUNT = 4_000
KILLS_PER_KIND = 4
SEED = 20261128

CHILD = r"""
import asyncio, json, sys
from datetime import date
from pathlib import Path
from querybatch.destinations.base import Column, DestinationContext, RowChunk, Slice, SliceRows
from querybatch.destinations.duckdb import DuckDBDestination
from querybatch.destinations.files import FilesDestination
from querybatch.destinations.postgresql import PostgresDestination

spec = json.loads(sys.argv[1])
kinds = {
    "postgresql": PostgresDestination, "duckdb": DuckDBDestination, "parquet": FilesDestination
}
context = DestinationContext(Path(spec["root"]))
destination = kinds[spec["kind"]].from_fields(spec["fields"], context)
columns = [Column("day", "date"), Column("campaign", "string"), Column("clicks", "integer")]

announced = 0

async def chunks(accounts):
    global announced
    for account in accounts:
        print(f"chunk {announced}", flush=True)
        announced += 1
        rows = [("2026-11-01", f"{spec['tag']}{i}", i) for i in range(spec["rows"])]
        yield RowChunk(account, rows)
        await asyncio.sleep(0)

async def main():
    accounts, size = spec["accounts"], len(spec["accounts"]) // spec["parts"]
    groups = [accounts[n : n + size] for n in range(0, len(accounts), size)]
    parts = [
        SliceRows(Slice(7, date(2026, 11, 1), tuple(group)), chunks(group)) for group in groups
    ]
    await destination.load_parts("orders", columns, parts)
    print("loaded", flush=True)

asyncio.run(main())
"""


def load(spec: dict[str, Any], kill_after: tuple[int, float] | None) -> bool:
    """Run one load in a child; kill it after ``kill_after`` = (chunks announced, then
    seconds). Whether the load said it finished."""
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        try:
            for line in child.stdout:
                if line.strip() == "loaded":
                    break
                if kill_after is not None and line.strip() == f"chunk {kill_after[0]}":
                    time.sleep(kill_after[1])
                    child.send_signal(signal.SIGKILL)
                    break
            child.wait(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        if child.returncode == -signal.SIGKILL:
            return False
        assert child.returncode == 0, child.stderr.read()
        return True


def expected(tag: str) -> list[tuple[Any, ...]]:
    return sorted(
        (7, "2026-11-01", account, "2026-11-01", f"{tag}{i}", i)
        for account in ACCOUNTS
        for i in range(ROWS_PER_ACCOUNT)
    )


def reader(
    kind: str, root: Path, request: pytest.FixtureRequest
) -> tuple[dict[str, Any], Callable[[], list[tuple[Any, ...]]]]:
    """The destination's fields, and a way to read its table back as sorted tuples."""
    select = (
        "SELECT _qb_transfer_id, CAST(_qb_data_date AS {t}), _qb_account,"
        " CAST(day AS {t}), campaign, clicks FROM {table}"
    )
    if kind == "postgresql":
        url, schema = request.getfixturevalue("pg_schema")
        fields = postgres_fields(request.getfixturevalue("postgres_url"), schema)
        statement = select.format(t="text", table=f'"{schema}".orders')
        return fields, lambda: sorted(postgres_rows(url, schema, "orders", statement))
    if kind == "duckdb":
        file = root / "db" / "warehouse.duckdb"
        statement = select.format(t="VARCHAR", table="main.orders")
        return {"path": "db/warehouse.duckdb"}, lambda: sorted(
            duckdb_rows(file, "orders", statement)
        )

    def read_files() -> list[tuple[Any, ...]]:
        import pyarrow.dataset as ds

        path = root / "lake" / "orders"
        if not path.exists():
            return []
        table = ds.dataset(str(path), format="parquet", partitioning="hive").to_table()
        return sorted(
            (
                r["_qb_transfer_id"],
                str(r["data_date"]),
                r["_qb_account"],
                str(r["day"]),
                r["campaign"],
                r["clicks"],
            )
            for r in table.to_pylist()
        )

    return {"path": "lake", "format": "parquet"}, read_files


def assert_each_account_whole(
    held: list[tuple[Any, ...]],
    old: list[tuple[Any, ...]],
    new: list[tuple[Any, ...]],
    point: tuple[int, float],
) -> None:
    """Files replace a slice account by account, each account's file in one step (no file
    system moves several files at once): each account holds its old rows or its new ones,
    whole, and no row is there twice."""
    for account in ACCOUNTS:
        rows = [row for row in held if row[2] == account]
        was = [row for row in old if row[2] == account]
        now = [row for row in new if row[2] == account]
        assert rows in (was, now), f"kill at {point}: {account} holds {len(rows)} rows, a mix"


@pytest.mark.parametrize("kind", ["postgresql", "duckdb", "parquet"])
def test_a_load_killed_at_random_points_leaves_each_row_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    root = tmp_path / "team"
    fields, read = reader(kind, root, request)
    spec = {"kind": kind, "fields": fields, "root": str(root), "accounts": list(ACCOUNTS)}
    spec["rows"] = ROWS_PER_ACCOUNT
    # Files load the slices of a load_parts one by one (each atomic alone): one slice there.
    spec["parts"] = 1 if kind == "parquet" else 3
    assert load({**spec, "tag": "old"}, None)
    old, new = expected("old"), expected("new")
    assert read() == old
    chooser = random.Random(f"{SEED}-{kind}")
    points = [
        (chooser.randrange(len(ACCOUNTS)), chooser.uniform(0, 0.05))
        for _ in range(KILLS_PER_KIND - 1)
    ]
    points.append((len(ACCOUNTS) - 1, chooser.uniform(0.0, 0.3)))  # in or near the commit
    interrupted = 0
    for point in points:
        done = load({**spec, "tag": "new"}, point)
        held = read()
        if kind == "parquet":
            assert_each_account_whole(held, old, new, point)
        else:
            assert held in (old, new), f"kill at {point}: {len(held)} rows, a mix"
        interrupted += not done and held == old
        if held != old:  # the kill came after (files: during) the commit; start again
            assert load({**spec, "tag": "old"}, None)
            assert read() == old
    assert interrupted, "no kill landed before the load ended: the test tested nothing"
    assert load({**spec, "tag": "new"}, None)
    assert read() == new
