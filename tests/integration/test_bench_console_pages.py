"""``python -m bench.console_pages`` cannot rot: every console page's requests, at small N.

The figures of so small a run mean nothing and are not checked; what is checked is that the
benchmark stored the big batch and the others, and timed every request each console page
makes on load, and the batch page's filters, with its verdict against the bound.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support import run_bench

N, OTHERS = 300, 5
TIMED = (
    "html_overview",
    "html_batch",
    "html_explore",
    "html_bulk",
    "html_keys",
    "html_sources",
    "html_sign_in",
    "whoami",
    "batch_list",
    "bulk_list",
    "activity",
    "batch",
    "page",
    "failures",
    "sources",
    "accounts",
    "fields",
    "keys",
    "roles",
    "account",
    "account_status",
    "date",
    "date_status",
)

pytestmark = pytest.mark.slow


def test_every_console_page_request_is_timed_with_the_batches_in_the_store(
    tmp_path: Path,
) -> None:
    flags = ["--n", str(N), "--others", str(OTHERS), "--requests", "2", "--no-wait"]
    figures, printed = run_bench(
        "console_pages", tmp_path / "console_pages.json", *flags, timeout=600
    )
    assert figures["n"] == N and figures["others"] == OTHERS
    assert figures["batches_listed"] == OTHERS + 1
    assert figures["failures"] > 0  # two of the accounts fail
    for name in TIMED:
        assert 0 < figures[f"{name}_p50_ms"] <= figures[f"{name}_p95_ms"], name
        assert figures[f"{name}_under_bound"] in (0, 1), name
        assert name in printed
