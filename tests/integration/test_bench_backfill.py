"""``python -m bench.backfill`` cannot rot: a 3-day backfill of 3 accounts beside the same
sub-queries as one batch, on a real server.

The figures of so small a run mean nothing and are not checked; what is checked is that both
ran and the destination holds exactly the batch's rows, each (date, account) slice once (the
benchmark checks that itself and fails otherwise).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support import run_bench

DAYS, ACCOUNTS = 3, 3

pytestmark = pytest.mark.slow


def test_the_backfill_and_the_batch_both_run_and_every_row_is_loaded_once(
    tmp_path: Path,
) -> None:
    flags = ["--no-wait", "--latency-ms", "1", "--days", str(DAYS), "--accounts", str(ACCOUNTS)]
    figures, printed = run_bench(
        "backfill", tmp_path / "backfill.json", *flags, "--concurrency", "10"
    )
    assert figures["subqueries"] == DAYS * ACCOUNTS
    assert figures["rows_loaded"] > 0
    assert figures["backfill_makespan_s"] > 0 and figures["batch_makespan_s"] > 0
    assert figures["ratio"] > 0
    assert "backfill / batch" in printed
