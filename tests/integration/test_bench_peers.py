"""``python -m bench.peers`` cannot rot: the whole comparison, every system, at N=200.

The figures of so small a run mean nothing and are not checked; what is checked is that each
system ran the whole workload, stored every row once and gave them all back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMS = ("querybatch", "querybatch_scaled_out", "celery", "arq", "procrastinate")
N = 200

pytestmark = pytest.mark.slow


def test_every_system_runs_the_workload_to_the_last_row_once(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    out = tmp_path / "peers.json"
    env = {**os.environ, "QB_BENCH_POSTGRES_URL": postgres_url, "QB_BENCH_REDIS_URL": redis_url}
    done = subprocess.run(
        [sys.executable, "-m", "bench.peers", "--n", str(N), "--no-wait", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    for system in SYSTEMS:
        assert figures[f"{system}_lost"] == 0, system
        assert figures[f"{system}_ran_twice"] == 0, system
        assert figures[f"{system}_rows_read"] == N * 5, system
        assert figures[f"{system}_makespan_s"] > 0, system
        assert figures[f"{system}_cpu_ms_per_subquery"] > 0, system
        assert figures[f"{system}_peak_memory_mb"] > 0, system
    # The table names every system and querybatch's standing against the best peer.
    for system in SYSTEMS:
        assert system in done.stdout
    assert "querybatch_makespan_s_to_best_peer" in figures
