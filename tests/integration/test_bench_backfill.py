"""``python -m bench.backfill`` cannot rot: a 3-day backfill of 3 accounts beside the same
sub-queries as one batch, on a real server.

The figures of so small a run mean nothing and are not checked; what is checked is that both
ran and the destination holds exactly the batch's rows, each (date, account) slice once (the
benchmark checks that itself and fails otherwise).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAYS, ACCOUNTS = 3, 3

pytestmark = pytest.mark.slow


def test_the_backfill_and_the_batch_both_run_and_every_row_is_loaded_once(
    tmp_path: Path,
) -> None:
    out = tmp_path / "backfill.json"
    command = [sys.executable, "-m", "bench.backfill", "--no-wait", "--latency-ms", "1"]
    command += ["--days", str(DAYS), "--accounts", str(ACCOUNTS), "--concurrency", "10"]
    done = subprocess.run(
        [*command, "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["subqueries"] == DAYS * ACCOUNTS
    assert figures["rows_loaded"] > 0
    assert figures["backfill_makespan_s"] > 0 and figures["batch_makespan_s"] > 0
    assert figures["ratio"] > 0
    assert "backfill / batch" in done.stdout
