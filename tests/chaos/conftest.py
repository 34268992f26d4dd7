"""Fixtures of the chaos suite: a cluster shared by the tests, the unfaulted baseline, and the
figures.

Each test records what it measured; the figures are printed at the end of the run and
written as JSON to ``chaos-figures.json`` in pytest's base temporary directory (or to the
path in ``QB_CHAOS_FIGURES``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cluster import Cluster
from workload import SUB_QUERIES, Watch, check_rows, post_batch, stored_once

from support import DEPLOYMENT, drop_scaleout_schemas

FIGURES: list[dict[str, Any]] = []
_BASELINE: dict[str, float] = {}
_WHERE: list[Path] = []


@pytest.fixture(scope="module")
def scaleout(postgres_url: str) -> Iterator[str]:
    """Servers of the module scaled out, on PostgreSQL; their schemas go at the end."""
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


@dataclass
class SharedCluster:
    """The module's cluster, kept from test to test: starting Redis, the proxy and a schema,
    and migrating it, cost each test about as much as its batch."""

    postgres_url: str
    base: Path
    current: Cluster | None = None
    made: int = 0

    def ready(self) -> Cluster:
        """The cluster with every process running: the one of the last test, started again
        where its fault killed a process, or a new one."""
        if self.current is None:
            self.made += 1
            self.current = _started(self.base / f"cluster-{self.made}", self.postgres_url)
        elif not self.current.whole():
            self.current.restart()
        return self.current

    def discard(self) -> None:
        """Close the cluster (a test failed on it: the next one starts afresh)."""
        if self.current is not None:
            self.current.close()
            self.current = None


@pytest.fixture(scope="module")
def shared_cluster(
    scaleout: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedCluster]:
    """The module's cluster, closed at its end."""
    shared = SharedCluster(scaleout, tmp_path_factory.mktemp("chaos"))
    yield shared
    shared.discard()


@pytest.fixture
def cluster(shared_cluster: SharedCluster, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """Two API nodes and two workers on a Redis and a proxied PostgreSQL of their own, every
    process running. A test whose batch stopped leaves nothing behind to the next; after a
    failure, the next test gets a new cluster."""
    yield shared_cluster.ready()
    report = getattr(request.node, "chaos_report", None)
    if report is None or report.failed:
        shared_cluster.discard()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep the report of a test's call, for its cluster's teardown to read."""
    report = yield
    if report.when == "call":
        item.chaos_report = report  # type: ignore[attr-defined]
    return report


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
def baseline(cluster: Cluster, record: Callable[..., None]) -> float:
    """Seconds the batch takes on the suite's cluster without a fault (measured once, on
    the module's first cluster)."""
    if "makespan" not in _BASELINE:
        batch_id = post_batch(cluster.nodes[0])
        watch = Watch(cluster, batch_id)
        assert watch.until_stopped(deadline=120), f"no end after 120 s: {watch.succeeded}"
        problems = stored_once(cluster, batch_id) or check_rows(cluster.nodes[0], batch_id, every=6)
        makespan = watch.makespan()
        attempts = cluster.sql("SELECT max(attempt) FROM queries")[0][0]
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
