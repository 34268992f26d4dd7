"""``python -m bench.transfer_load`` cannot rot: querybatch and dlt, PostgreSQL and DuckDB, at
2,000 rows.

The figures of so small a run mean nothing and are not checked; what is checked is that each
load ran and left every row in the database (the benchmark counts them, and sums a column,
itself and fails otherwise).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("dlt")

REPO = Path(__file__).resolve().parents[2]
ROWS = 2000

pytestmark = pytest.mark.slow


def test_each_system_loads_every_row_into_each_database(tmp_path: Path, postgres_url: str) -> None:
    out = tmp_path / "transfer_load.json"
    env = {**os.environ, "QB_BENCH_POSTGRES_URL": postgres_url}
    command = [sys.executable, "-m", "bench.transfer_load", "--rows", str(ROWS), "--no-wait"]
    done = subprocess.run(
        [*command, "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    for system in ("querybatch", "dlt"):
        for database in ("postgres", "duckdb"):
            key = f"{system}_{database}"
            assert figures[f"{key}_rows_stored"] == ROWS, key
            assert figures[f"{key}_rows_loaded"] == ROWS, key
            assert figures[f"{key}_rows_per_s"] > 0, key
            assert figures[f"{key}_peak_rss_mb"] > 0, key
        assert system in done.stdout
    for database in ("postgres", "duckdb"):
        assert f"querybatch_to_dlt_{database}_rows_per_s" in figures
