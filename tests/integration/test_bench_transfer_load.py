"""``python -m bench.transfer_load`` cannot rot: querybatch and dlt, PostgreSQL and DuckDB, at
2,000 rows.

The figures of so small a run mean nothing and are not checked; what is checked is that each
load ran and left every row in the database (the benchmark counts them, and sums a column,
itself and fails otherwise).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support import run_bench

pytest.importorskip("dlt")

ROWS = 2000

pytestmark = pytest.mark.slow


def test_each_system_loads_every_row_into_each_database(tmp_path: Path, postgres_url: str) -> None:
    figures, printed = run_bench(
        "transfer_load",
        tmp_path / "transfer_load.json",
        *("--rows", str(ROWS), "--no-wait"),
        QB_BENCH_POSTGRES_URL=postgres_url,
    )
    for system in ("querybatch", "dlt"):
        for database in ("postgres", "duckdb"):
            key = f"{system}_{database}"
            assert figures[f"{key}_rows_stored"] == ROWS, key
            assert figures[f"{key}_rows_loaded"] == ROWS, key
            assert figures[f"{key}_rows_per_s"] > 0, key
            assert figures[f"{key}_peak_rss_mb"] > 0, key
        assert system in printed
    for database in ("postgres", "duckdb"):
        assert f"querybatch_to_dlt_{database}_rows_per_s" in figures
