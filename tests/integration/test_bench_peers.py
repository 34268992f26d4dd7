"""``python -m bench.peers`` cannot rot: the whole comparison, every system, at N=200.

The figures of so small a run mean nothing and are not checked; what is checked is that each
system ran the whole workload, stored every row once and gave them all back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support import run_bench

SYSTEMS = ("querybatch", "querybatch_scaled_out", "celery", "arq", "procrastinate")
N = 200

pytestmark = pytest.mark.slow


def test_every_system_runs_the_workload_to_the_last_row_once(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    figures, printed = run_bench(
        "peers",
        tmp_path / "peers.json",
        *("--n", str(N), "--no-wait"),
        timeout=600,
        QB_BENCH_POSTGRES_URL=postgres_url,
        QB_BENCH_REDIS_URL=redis_url,
    )
    for system in SYSTEMS:
        assert figures[f"{system}_lost"] == 0, system
        assert figures[f"{system}_ran_twice"] == 0, system
        assert figures[f"{system}_rows_read"] == N * 5, system
        assert figures[f"{system}_makespan_s"] > 0, system
        assert figures[f"{system}_cpu_ms_per_subquery"] > 0, system
        assert figures[f"{system}_peak_memory_mb"] > 0, system
    # The table names every system and querybatch's standing against the best peer.
    for system in SYSTEMS:
        assert system in printed
    assert "querybatch_makespan_s_to_best_peer" in figures
