"""Transfer loads beside dlt: the same rows into PostgreSQL and DuckDB, querybatch and dlt.

The rows (default 1,000,000) are made once: columns ``date`` (the data date, an ISO string
as transfer rows carry dates), ``account``, ``campaign`` (text), ``impressions``,
``clicks`` (integers) and ``cost`` (a float), 100 accounts with an equal share each. Each
load then runs in a subprocess of its own, which reads the rows from a pickle before the
clock starts:

- ``querybatch``: one ``Destination.load`` of a transfer run's slice (every account of one
  data date), the rows given as one ``RowChunk`` per account, as a transfer run gives them,
  through the ``DWH_POSTGRESQL`` driver (COPY) and the ``DWH_DUCKDB`` driver (Arrow);
- ``dlt``: ``pipeline.run`` of a resource yielding one ``pyarrow.Table`` per account (dlt's
  fastest documented path for data in memory; the tables are built from the rows before
  the clock starts, and the time that took is shown apart, as is the rate counting it),
  ``write_disposition="replace"``; into PostgreSQL with ``loader_file_format="csv"`` (COPY,
  the format dlt's docs recommend for Arrow), into DuckDB with dlt's default for Arrow
  (Parquet).

PostgreSQL gets a schema per load (dropped afterwards), DuckDB a file per load (in a
temporary directory). Per load: wall seconds, rows per second, CPU seconds of the loading
process (its threads and children; not the PostgreSQL server's) and its peak RSS (the rows
in memory included: the same for both). After each load the benchmark counts the rows and
sums the clicks in the database, and fails if either is not what was loaded.

Needs PostgreSQL (``QB_BENCH_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``) and dlt (``pip install -e '.[bench]'``). Run
it as ``python -m bench.transfer_load [--rows 1000000]``; figures go to
``bench/results/transfer_load.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import random
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from bench._common import Figures, describe_machine, parser, ratio, run

NAME = "transfer_load"
REPO = Path(__file__).resolve().parents[1]
POSTGRES = os.environ.get("QB_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SYSTEMS = ("querybatch", "dlt")
DATABASES = ("postgres", "duckdb")
ACCOUNTS = 100
DATA_DATE = date(2026, 11, 1)
TABLE = "ads_daily"
COLUMNS = (
    ("date", "date"),
    ("campaign", "string"),
    ("impressions", "integer"),
    ("clicks", "integer"),
    ("cost", "float"),
)
FIGURES = ("wall_s", "rows_per_s", "cpu_s", "peak_rss_mb", "rows_loaded")
Chunks = dict[str, list[tuple[Any, ...]]]


# -- the rows ---------------------------------------------------------------------------------


def make_rows(n: int) -> Chunks:
    """``n`` rows (date, campaign, impressions, clicks, cost) split over the accounts."""
    rng = random.Random(18)
    day = DATA_DATE.isoformat()
    chunks: Chunks = {}
    for a in range(ACCOUNTS):
        count = n // ACCOUNTS + (1 if a < n % ACCOUNTS else 0)
        rows = []
        for i in range(count):
            impressions = rng.randrange(0, 100_000)
            clicks = rng.randrange(0, 1 + impressions // 20)
            rows.append((day, f"campaign {a}-{i % 500}", impressions, clicks, clicks * 0.37))
        chunks[f"acc{a:04d}"] = rows
    return chunks


def clicks_of(chunks: Chunks) -> int:
    """The sum of the clicks column, for checking what a database holds."""
    return sum(row[3] for rows in chunks.values() for row in rows)


# -- one load, in a subprocess ----------------------------------------------------------------


def _pg_parts() -> dict[str, Any]:
    parts = urlsplit(POSTGRES.replace("+psycopg", ""))
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "database_name": parts.path.lstrip("/"),
        "username": parts.username or "postgres",
        **({"password": parts.password} if parts.password else {}),
    }


async def _querybatch_chunks(chunks: Chunks) -> AsyncIterator[Any]:
    from querybatch.destinations.base import RowChunk

    for account, rows in chunks.items():
        yield RowChunk(account, rows)


def load_querybatch(database: str, target: str, chunks: Chunks) -> tuple[float, int]:
    """Load through querybatch's driver; (wall seconds, rows it says it loaded)."""
    from querybatch.destinations.base import Column, DestinationContext, Slice
    from querybatch.destinations.duckdb import DuckDBDestination
    from querybatch.destinations.postgresql import PostgresDestination

    columns = [Column(name, kind) for name, kind in COLUMNS]  # type: ignore[arg-type]
    part = Slice(1, DATA_DATE, tuple(chunks))
    if database == "postgres":
        fields = {**_pg_parts(), "schema": target}
        destination: Any = PostgresDestination.from_fields(fields, DestinationContext(Path(".")))
    else:
        file = Path(target)
        destination = DuckDBDestination.from_fields(
            {"path": file.name}, DestinationContext(file.parent)
        )

    async def go() -> int:
        result = await destination.load(TABLE, part, columns, _querybatch_chunks(chunks))
        return int(result.rows)

    began = time.perf_counter()
    rows = asyncio.run(go())
    return time.perf_counter() - began, rows


def load_dlt(database: str, target: str, chunks: Chunks, work_dir: Path) -> tuple[float, int]:
    """Load with dlt from Arrow tables; (wall seconds, rows dlt says it loaded)."""
    import pyarrow as pa

    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt

    schema = pa.schema(
        [
            ("date", pa.date32()),
            ("account", pa.string()),
            ("campaign", pa.string()),
            ("impressions", pa.int64()),
            ("clicks", pa.int64()),
            ("cost", pa.float64()),
        ]
    )
    built = time.perf_counter()
    tables = []
    for account, rows in chunks.items():
        date_col, campaign, impressions, clicks, cost = zip(*rows, strict=True)
        tables.append(
            pa.Table.from_arrays(
                [
                    pa.array(date_col, pa.string()).cast(pa.date32()),
                    pa.array([account] * len(rows), pa.string()),
                    pa.array(campaign, pa.string()),
                    pa.array(impressions, pa.int64()),
                    pa.array(clicks, pa.int64()),
                    pa.array(cost, pa.float64()),
                ],
                schema=schema,
            )
        )
    print(json.dumps({"arrow_build_s": time.perf_counter() - built}), file=sys.stderr)

    @dlt.resource(name=TABLE, write_disposition="replace")
    def ads_daily() -> Iterator[pa.Table]:
        yield from tables

    if database == "postgres":
        pg = _pg_parts()
        # dlt insists on a password; PostgreSQL with trust authentication ignores it.
        credentials = (
            f"postgresql://{pg['username']}:{pg.get('password', 'unused')}@{pg['host']}:"
            f"{pg['port']}/{pg['database_name']}"
        )
        destination: Any = dlt.destinations.postgres(credentials=credentials)
        file_format: Any = "csv"
        dataset = target
    else:
        destination = dlt.destinations.duckdb(credentials=target)
        file_format = None
        dataset = "bench"
    pipeline = dlt.pipeline(
        pipeline_name=f"qb_bench_{database}",
        destination=destination,
        dataset_name=dataset,
        pipelines_dir=str(work_dir / "pipelines"),
    )
    began = time.perf_counter()
    info = pipeline.run(ads_daily(), loader_file_format=file_format)
    wall = time.perf_counter() - began
    info.raise_on_failed_jobs()
    rows = int(pipeline.last_trace.last_normalize_info.row_counts.get(TABLE, 0))
    return wall, rows


def child(system: str, database: str, target: str, data: Path) -> None:
    """Run one load and print its figures as JSON on the last line of stdout."""
    with data.open("rb") as f:
        chunks: Chunks = pickle.load(f)
    # The drivers are imported before the clock starts, for both systems.
    import duckdb  # noqa: F401
    import pyarrow  # noqa: F401

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu_before = _cpu()
    if system == "querybatch":
        wall, rows = load_querybatch(database, target, chunks)
    else:
        wall, rows = load_dlt(database, target, chunks, data.parent / f"dlt-{database}")
    cpu = _cpu() - cpu_before
    peak = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    figures = {
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": peak / 1024,
        "rss_rows_in_memory_mb": rss_before,
        "rows_loaded": rows,
    }
    print(json.dumps(figures))


def _cpu() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


# -- the parent: run each load, check what the database holds ---------------------------------


def stored(database: str, target: str, system: str) -> tuple[int, int]:
    """(rows, sum of clicks) the load left in the database."""
    if database == "postgres":
        schema = target
        with psycopg.connect(POSTGRES.replace("+psycopg", "")) as conn:
            row = conn.execute(
                f'SELECT count(*), coalesce(sum(clicks), 0) FROM "{schema}"."{TABLE}"'
            ).fetchone()
    else:
        import duckdb

        table = f'"bench"."{TABLE}"' if system == "dlt" else f'"main"."{TABLE}"'
        conn = duckdb.connect(target, read_only=True)
        try:
            row = conn.execute(f"SELECT count(*), coalesce(sum(clicks), 0) FROM {table}").fetchone()
        finally:
            conn.close()
    assert row is not None
    return int(row[0]), int(row[1])


def drop_schema(schema: str) -> None:
    with psycopg.connect(POSTGRES.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def load_one(system: str, database: str, data: Path, n: int, clicks: int) -> Figures:
    """One load in a subprocess, checked; its figures."""
    tag = secrets.token_hex(3)
    if database == "postgres":
        target = f"qb_bench_{system}_{tag}"
    else:
        target = str(data.parent / f"{system}-{tag}.duckdb")
    command = [sys.executable, "-m", "bench.transfer_load", "--child", system, database, target]
    command.append(str(data))
    try:
        done = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=3600, env=os.environ
        )
        if done.returncode != 0:
            raise SystemExit(
                f"{system} load into {database} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        figures: Figures = json.loads(done.stdout.strip().splitlines()[-1])
        for line in done.stderr.splitlines():
            if line.startswith('{"arrow_build_s"'):
                figures.update(json.loads(line))
        rows, clicks_stored = stored(database, target, system)
    finally:
        if database == "postgres":
            drop_schema(target)
    if rows != n or clicks_stored != clicks or figures["rows_loaded"] != n:
        raise SystemExit(
            f"{system} into {database}: {rows} rows stored (clicks {clicks_stored}), "
            f"{figures['rows_loaded']:.0f} reported loaded; expected {n} rows (clicks {clicks})"
        )
    figures["rows_stored"] = rows
    figures["rows_per_s"] = n / figures["wall_s"]
    # From the same Python rows for both: dlt's Arrow tables had to be built from them too.
    figures["rows_per_s_from_rows"] = n / (figures["wall_s"] + figures.get("arrow_build_s", 0.0))
    return figures


def measure(n: int) -> Figures:
    """Each system's figures per database, and querybatch's ratios to dlt."""
    figures: Figures = {"rows": n, "accounts": ACCOUNTS}
    chunks = make_rows(n)
    clicks = clicks_of(chunks)
    with tempfile.TemporaryDirectory(prefix="qb-transfer-load-") as tmp:
        data = Path(tmp) / "rows.pickle"
        with data.open("wb") as f:
            pickle.dump(chunks, f, protocol=pickle.HIGHEST_PROTOCOL)
        del chunks
        for database in DATABASES:
            for system in SYSTEMS:
                for key, value in load_one(system, database, data, n, clicks).items():
                    figures[f"{system}_{database}_{key}"] = value
    for database in DATABASES:
        for key in ("rows_per_s", "rows_per_s_from_rows", "wall_s", "cpu_s", "peak_rss_mb"):
            figures[f"querybatch_to_dlt_{database}_{key}"] = ratio(
                figures[f"querybatch_{database}_{key}"], figures[f"dlt_{database}_{key}"]
            )
    return figures


def report(figures: Figures) -> None:
    """One table: a row per figure, a column per system and database."""
    cols = [(s, d) for d in DATABASES for s in SYSTEMS]
    print(
        f"\ntransfer loads: {figures['rows']:,.0f} rows, {figures['accounts']:.0f} accounts"
        f"  [{describe_machine()}]"
    )
    width = 18
    print(" " * 24 + "".join(f"{f'{s} {d}':>{width}}" for s, d in cols))
    keys = ("rows_stored", "rss_rows_in_memory_mb", "arrow_build_s", "rows_per_s_from_rows")
    for key in (*FIGURES, *keys):
        cells = ""
        for s, d in cols:
            value = figures.get(f"{s}_{d}_{key}")
            cells += f"{'-':>{width}}" if value is None else f"{value:>{width},.2f}"
        print(f"  {key:<22}{cells}")
    for database in DATABASES:
        rate = figures[f"querybatch_to_dlt_{database}_rows_per_s"]
        verdict = "target met (>= 1)" if rate >= 1 else "TARGET MISSED (< 1)"
        print(f"  querybatch/dlt rows/s, {database:<8} {rate:>8.2f}  {verdict}, aim 2")
        from_rows = figures[f"querybatch_to_dlt_{database}_rows_per_s_from_rows"]
        print(f"    counting dlt's Arrow build from the rows: {from_rows:.2f}")


def main(argv: list[str] | None = None) -> Figures | None:
    """Parse the flags, measure, print and write the figures (or run one load: ``--child``)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        system, database, target, data = argv[1:5]
        child(system, database, target, Path(data))
        return None
    args = parser(NAME, __doc__)
    args.add_argument("--rows", type=int, default=1_000_000, help="default %(default)s")
    args.add_argument(
        "--no-wait",
        action="store_true",
        help="start at once, not once the machine is quiet (a smoke test: figures mean little)",
    )
    ns = args.parse_args(argv)
    if ns.rows < ACCOUNTS:
        args.error(f"--rows must be at least {ACCOUNTS}")
    return run(NAME, ns.out, lambda: measure(ns.rows), report, wait_for_quiet=not ns.no_wait)


if __name__ == "__main__":
    main()
