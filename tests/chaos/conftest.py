"""Fixtures of the chaos suite: a cluster per test, the unfaulted baseline, and the figures.

Each test records what it measured; the figures are printed at the end of the run and
written as JSON to ``chaos-figures.json`` in pytest's base temporary directory (or to the
path in ``QB_CHAOS_FIGURES``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster import Cluster
from workload import SUB_QUERIES, Watch, check_rows, post_batch, stored_once

from support import DEPLOYMENT, drop_scaleout_schemas

FIGURES: list[dict[str, Any]] = []
_BASELINE: dict[str, float] = {}
_WHERE: list[Path] = []


@pytest.fixture
def scaleout(postgres_url: str) -> Iterator[str]:
    """Servers of the test run scaled out, on PostgreSQL; their schemas go at the end."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: the chaos suite starts Redis servers")
    DEPLOYMENT.update(mode="scaleout", postgres=postgres_url)
    yield postgres_url
    DEPLOYMENT["mode"] = "embedded"
    drop_scaleout_schemas()


def _started(data_dir: Path, postgres_url: str) -> Cluster:
    cluster = Cluster(data_dir, postgres_url)
    try:
        cluster.start()
        cluster.wait_for_workers()
    except BaseException:
        cluster.close()
        raise
    return cluster


@pytest.fixture
def cluster(scaleout: str, tmp_path: Path) -> Iterator[Cluster]:
    """Two API nodes and two workers on a Redis and a proxied PostgreSQL of their own."""
    started = _started(tmp_path / "cluster", scaleout)
    yield started
    started.close()


@pytest.fixture
def record(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., None]:
    """Keep one test's figures (in the run's summary and its JSON file)."""
    path = Path(
        os.environ.get("QB_CHAOS_FIGURES") or tmp_path_factory.getbasetemp() / "chaos-figures.json"
    )

    def keep(**figures: Any) -> None:
        entry = {"test": request.node.name, **figures}
        FIGURES.append(entry)
        request.node.user_properties.append(("chaos", entry))
        path.write_text(json.dumps(FIGURES, indent=2) + "\n")
        _WHERE[:] = [path]

    return keep


@pytest.fixture
def baseline(
    scaleout: str, tmp_path_factory: pytest.TempPathFactory, record: Callable[..., None]
) -> float:
    """Seconds the batch takes on the suite's cluster without a fault (measured once)."""
    if "makespan" not in _BASELINE:
        cluster = _started(tmp_path_factory.mktemp("baseline") / "cluster", scaleout)
        try:
            batch_id = post_batch(cluster.nodes[0])
            watch = Watch(cluster, batch_id)
            assert watch.until_stopped(deadline=120), f"no end after 120 s: {watch.succeeded}"
            problems = stored_once(cluster, batch_id) or check_rows(
                cluster.nodes[0], batch_id, every=6
            )
            makespan = watch.makespan()
            attempts = cluster.sql("SELECT max(attempt) FROM queries")[0][0]
        finally:
            cluster.close()
        record(
            fault="none",
            sub_queries=SUB_QUERIES,
            makespan=round(makespan, 2),
            attempts=attempts,
            problems=problems,
        )
        assert not problems, problems
        _BASELINE["makespan"] = makespan
    return _BASELINE["makespan"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures of this run's chaos tests, one line per fault."""
    if not FIGURES:
        return
    write = terminalreporter.write_line
    where = f" (also in {_WHERE[0]})" if _WHERE else ""
    terminalreporter.section("chaos figures, in seconds" + where)
    write(
        f"{'fault':<28}{'outage':>8}{'makespan':>10}{'bound':>8}{'recovery':>10}"
        f"{'stall':>8}{'attempts':>10}  result"
    )
    for entry in FIGURES:
        cells = [
            _cell(entry.get(key), width)
            for key, width in (
                ("outage", 8),
                ("makespan", 10),
                ("bound", 8),
                ("recovery", 10),
                ("stall", 8),
                ("attempts", 10),
            )
        ]
        verdict = "ok" if not entry.get("problems") else "; ".join(entry["problems"])[:120]
        write(f"{entry['fault']:<28}{''.join(cells)}  {verdict}")


def _cell(value: Any, width: int) -> str:
    if value is None:
        return f"{'-':>{width}}"
    return f"{value:>{width}.1f}" if isinstance(value, float) else f"{value!s:>{width}}"
