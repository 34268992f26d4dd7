"""Which engine should the ``files`` connector query CSV and Parquet files with?

Generates a 1,000,000-row orders file as Parquet and as CSV, then runs two typical connector
queries with DuckDB and with pyarrow, both streaming with bounded memory: ``narrow`` filters a
date range and two accounts and groups by day and account; ``wide`` filters the date range only
and groups by day, account and product (tens of thousands of groups). Both sum two metrics and
average a third.

- DuckDB: one SQL statement over ``read_parquet``/``read_csv`` with bound parameters, the result
  fetched in chunks;
- pyarrow: ``pyarrow.dataset`` scanned batch by batch with the filter pushed into the scan,
  each batch grouped with ``Table.group_by`` and the partial aggregates merged at the end.

Prints input rows per second (best of three) for each engine and format and writes
``bench/results/files_engine.json``. Run it as ``python -m bench.files_engine``.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq

ROWS = 1_000_000
ACCOUNTS = 50
DAYS = 365
CHUNK = 10_000
RESULTS = Path(__file__).parent / "results" / "files_engine.json"
START, END = "2024-02-01", "2024-05-31"
PICKED = ["store-007", "store-031"]


def generate(directory: Path) -> tuple[Path, Path]:
    """Write the same 1M rows as Parquet and as CSV; their paths."""
    index = pa.array(range(ROWS), pa.int64())
    first = date(2024, 1, 1)
    days = [(first + timedelta(days=d)).isoformat() for d in range(DAYS)]
    stores = [f"store-{n:03d}" for n in range(ACCOUNTS)]
    table = pa.table(
        {
            "day": pc.take(pa.array(days), pc.divide(index, ROWS // DAYS + 1)),
            "store_id": pc.take(pa.array(stores), pc.bit_wise_and(index, 31)),
            "product": pc.cast(pc.bit_wise_and(pc.multiply(index, 7), 255), pa.string()),
            "units": pc.add(pc.bit_wise_and(index, 7), 1),
            "revenue": pc.divide(pc.cast(pc.bit_wise_and(index, 1023), pa.float64()), 7.0),
        }
    )
    parquet, csv = directory / "orders.parquet", directory / "orders.csv"
    pq.write_table(table, parquet, row_group_size=100_000)
    pacsv.write_csv(table, csv)
    return parquet, csv


def with_duckdb(path: Path, fmt: str, wide: bool) -> int:
    """The query in DuckDB, fetched in chunks; the number of groups."""
    reader = "read_parquet" if fmt == "parquet" else "read_csv"
    keys = ", ".join(_keys(wide))
    where = "day >= ? AND day <= ?" + ("" if wide else " AND store_id IN (?, ?)")
    sql = (
        f"SELECT {keys}, sum(units), sum(revenue), avg(revenue) FROM {reader}(?) "
        f"WHERE {where} GROUP BY {keys}"
    )
    with duckdb.connect() as con:
        cursor = con.execute(sql, [str(path), START, END, *([] if wide else PICKED)])
        groups = 0
        while chunk := cursor.fetchmany(CHUNK):
            groups += len(chunk)
    return groups


def _keys(wide: bool) -> list[str]:
    return ["day", "store_id", "product"] if wide else ["day", "store_id"]


def with_pyarrow(path: Path, fmt: str, wide: bool) -> int:
    """The query in pyarrow: a filtered batch scan, partial group-bys, one merge."""
    dataset = pads.dataset(path, format="parquet" if fmt == "parquet" else "csv")
    day, store = pc.field("day"), pc.field("store_id")
    if fmt == "csv":  # pyarrow infers ISO dates in CSV as date32; compare with dates
        lo, hi = date.fromisoformat(START), date.fromisoformat(END)
    else:
        lo, hi = START, END  # type: ignore[assignment]
    flt = (day >= lo) & (day <= hi)
    if not wide:
        flt = flt & store.isin(PICKED)
    keys = _keys(wide)
    partials = []
    for batch in dataset.to_batches(
        columns=[*keys, "units", "revenue"], filter=flt, batch_size=CHUNK * 10
    ):
        if batch.num_rows:
            partials.append(
                pa.Table.from_batches([batch])
                .group_by(keys)
                .aggregate([("units", "sum"), ("revenue", "sum"), ("revenue", "count")])
            )
    merged = (
        pa.concat_tables(partials)
        .group_by(keys)
        .aggregate([("units_sum", "sum"), ("revenue_sum", "sum"), ("revenue_count", "sum")])
    )
    averages = pc.divide(merged["revenue_sum_sum"], merged["revenue_count_sum"])
    columns = [*(merged[k] for k in keys), merged["units_sum_sum"], merged["revenue_sum_sum"]]
    groups = 0
    # Python tuples, as the connector yields them (DuckDB's fetchmany pays for this too).
    for offset in range(0, merged.num_rows, CHUNK):
        chunk = [c.slice(offset, CHUNK).to_pylist() for c in (*columns, averages)]
        groups += len(list(zip(*chunk, strict=True)))
    return groups


def measure(
    run: Callable[[Path, str, bool], int], path: Path, fmt: str, wide: bool
) -> dict[str, float]:
    """Best of three runs, as seconds and input rows per second."""
    best = float("inf")
    groups = 0
    for _ in range(3):
        began = time.perf_counter()
        groups = run(path, fmt, wide)
        best = min(best, time.perf_counter() - began)
    return {"seconds": round(best, 4), "rows_per_second": round(ROWS / best), "groups": groups}


def main() -> None:
    """Generate the files, time both engines on both formats, print and save the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        parquet, csv = generate(Path(tmp))
        results: dict[str, dict[str, dict[str, float]]] = {}
        for fmt, path in (("parquet", parquet), ("csv", csv)):
            for query, wide in (("narrow", False), ("wide", True)):
                results[f"{fmt}/{query}"] = {
                    "duckdb": measure(with_duckdb, path, fmt, wide),
                    "pyarrow": measure(with_pyarrow, path, fmt, wide),
                }
    for case, engines in results.items():
        for engine, figures in engines.items():
            print(
                f"{case:15} {engine:8} {figures['rows_per_second']:>14,.0f} rows/s "
                f"({figures['seconds']:.3f} s, {figures['groups']:.0f} groups)"
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "rows": ROWS,
                "duckdb": duckdb.__version__,
                "pyarrow": pa.__version__,
                "python": platform.python_version(),
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
