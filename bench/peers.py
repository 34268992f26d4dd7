"""Side by side with what users would pick instead: one workload through querybatch and its peers.

The workload: N sub-queries (default 20,000), each an I/O wait of L ms (default 50) that
returns 5 small rows, at most C at once (default 200); every result is stored, and read back
(every row) once all have run. The systems, one after another on this machine:

- ``querybatch``: the embedded default (one ``querybatch serve``, SQLite), one batch of N
  demo sub-queries (``demo_rows_per_day`` 5, ``query_concurrency`` C);
- ``querybatch_scaled_out``: an API node on PostgreSQL and Redis with one
  ``querybatch worker --concurrency W`` (W pool processes, default 2);
- ``celery``: W Celery workers (gevent pool, as Celery recommends for I/O-bound tasks, C/W
  each), Redis broker and result backend, one task per sub-query sent as a group;
- ``arq``: W arq workers (``max_jobs`` C/W each) on Redis, arq keeping each job's result;
- ``procrastinate``: W procrastinate workers (concurrency C/W each) on PostgreSQL, each task
  writing its rows to a table (procrastinate keeps no results).

Per system: the makespan (first submission to the last sub-query done, as the system records
it or as seen by polling a counter every 10 ms), sub-queries per second, CPU seconds of
every process involved (server and workers; the Redis server and the PostgreSQL server where
the system uses them) per sub-query, the peak memory of the system's own processes (their
proportional set sizes, summed; and how much Redis's memory grew), the time to read every
result back, and how many sub-queries were lost or ran more than once (Celery and arq count
each run in a Redis hash: they keep no count themselves; querybatch and procrastinate count
attempts in their store).

arq pins redis-py below 6, which the Celery querybatch uses cannot work with: arq runs in an
environment of its own, which this benchmark builds with uv under ``bench/.envs/arq`` the
first time.

Needs PostgreSQL and Redis (``QB_BENCH_POSTGRES_URL``, ``QB_BENCH_REDIS_URL``, as for
``bench.scaleout``) and the peers: ``pip install -e '.[bench]'``. Run it as
``python -m bench.peers [--n 20000] [--latency-ms 50] [--concurrency 200] [--workers 2]
[--systems querybatch,celery,...]``; figures go to ``bench/results/peers.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import psutil  # type: ignore[import-untyped]
import psycopg
import redis

from bench._batch import ACCOUNTS, FIRST_DAY, batch_body, epoch, server_env, submit, wait_stopped
from bench._common import Figures, chosen, describe_machine, parser, ratio, run
from bench._server import MB, BenchServer
from bench.scaleout import POSTGRES, REDIS, deployment_env, worker_pool

T = TypeVar("T")

NAME = "peers"
REPO = Path(__file__).resolve().parents[1]
SYSTEMS = ("querybatch", "querybatch_scaled_out", "celery", "arq", "procrastinate")
PEERS = ("celery", "arq", "procrastinate")
ROWS_PER_SUBQUERY = 5
WARM_UP = 20  # sub-queries run before measuring: imports, connections, first queries
# Reading every result back takes a few tenths of a second, within which one run varies by
# half: each system reads back this many times, and the median is its figure.
READS = 5
DONE_POLL_S = 0.01
FIGURES = (
    "makespan_s",
    "subqueries_per_s",
    "cpu_ms_per_subquery",
    "own_cpu_ms_per_subquery",
    "services_cpu_ms_per_subquery",
    "peak_memory_mb",
    "redis_memory_growth_mb",
    "readback_s",
    "lost",
    "ran_twice",
)


@dataclass(frozen=True, slots=True)
class Workload:
    """What every system runs: ``n`` sub-queries of ``latency_ms``, ``concurrency`` at once,
    on ``workers`` worker processes where the system has workers."""

    n: int
    latency_ms: float
    concurrency: int
    workers: int

    @property
    def per_worker(self) -> int:
        """Each worker process's share of the concurrency."""
        return max(1, self.concurrency // self.workers)


# -- measuring processes ----------------------------------------------------------------------


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process, its live descendants and the children it has reaped."""
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
        return total
    return 0.0


def tree_memory_mb(pid: int) -> float:
    """Memory of a process and its live descendants, in MiB: their proportional set size
    (a page shared by k of them counts 1/k to each), so that forked workers sharing their
    parent's pages are not counted as copies."""
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        total = 0
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += process.memory_full_info().pss
        return total / MB
    return 0.0


def redis_pid() -> int:
    """The process id of the Redis server the peers use."""
    return int(redis.Redis.from_url(REDIS).info("server")["process_id"])


def redis_memory_mb() -> float:
    """Memory Redis holds for data now, in MiB."""
    return float(redis.Redis.from_url(REDIS).info("memory")["used_memory"]) / MB


def postgres_pid() -> int:
    """The process id of the PostgreSQL server (the postmaster: its backends are children)."""
    with psycopg.connect(POSTGRES) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert backend is not None
        # While the connection is open: its backend ends with it.
        return int(psutil.Process(int(backend[0])).ppid())


class Meter:
    """CPU and peak memory of a system while a block runs.

    ``own`` are the system's process trees (server, workers), ``services`` the shared
    servers it uses (Redis, PostgreSQL): their CPU counts, their memory is reported apart
    (PostgreSQL's shared buffers are the same whatever runs).
    """

    def __init__(self, own: Sequence[int], services: Sequence[int], uses_redis: bool) -> None:
        self.own = list(own)
        self.services = list(services)
        self.uses_redis = uses_redis
        self.own_cpu_s = 0.0
        self.services_cpu_s = 0.0
        self.peak_memory_mb = 0.0
        self.redis_growth_mb = 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_memory_mb = max(self.peak_memory_mb, sum(tree_memory_mb(p) for p in self.own))
            self._stop.wait(0.5)  # reading PSS costs the machine a little CPU

    @contextlib.contextmanager
    def measuring(self) -> Iterator[Meter]:
        """Measure while the block runs."""
        own0 = sum(tree_cpu(p) for p in self.own)
        services0 = sum(tree_cpu(p) for p in self.services)
        redis0 = redis_memory_mb() if self.uses_redis else 0.0
        sampler = threading.Thread(target=self._sample, daemon=True)
        sampler.start()
        try:
            yield self
        finally:
            self._stop.set()
            sampler.join()
            self.own_cpu_s = sum(tree_cpu(p) for p in self.own) - own0
            self.services_cpu_s = sum(tree_cpu(p) for p in self.services) - services0
            if self.uses_redis:
                self.redis_growth_mb = redis_memory_mb() - redis0


@dataclass(slots=True)
class Outcome:
    """What one system's run gave, before it becomes figures."""

    began: float  # epoch seconds of the first submission
    ended: float  # epoch seconds the last sub-query was done
    readback_s: float
    rows_read: int
    results: int  # sub-queries whose rows were read back in full
    ran_twice: int


def figures_of(work: Workload, outcome: Outcome, meter: Meter) -> Figures:
    """The figures of one system's run."""
    makespan = outcome.ended - outcome.began
    cpu = meter.own_cpu_s + meter.services_cpu_s
    return {
        "makespan_s": makespan,
        "subqueries_per_s": ratio(work.n, makespan),
        "cpu_ms_per_subquery": 1000 * cpu / work.n,
        "own_cpu_ms_per_subquery": 1000 * meter.own_cpu_s / work.n,
        "services_cpu_ms_per_subquery": 1000 * meter.services_cpu_s / work.n,
        "peak_memory_mb": meter.peak_memory_mb,
        "redis_memory_growth_mb": meter.redis_growth_mb,
        "readback_s": outcome.readback_s,
        "rows_read": outcome.rows_read,
        "lost": work.n - outcome.results,
        "ran_twice": outcome.ran_twice,
    }


@contextlib.contextmanager
def processes(commands: Sequence[Sequence[str]], env: dict[str, str]) -> Iterator[list[int]]:
    """Start each command in a session of its own; their pids. Stopped (SIGTERM) after; if
    the block fails, what they wrote is printed."""
    with tempfile.TemporaryFile() as log:
        started = [
            subprocess.Popen(
                list(command),
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for command in commands
        ]
        try:
            yield [p.pid for p in started]
        except BaseException:
            log.seek(0)
            print(log.read()[-4000:].decode(errors="replace"), file=sys.stderr)
            raise
        finally:
            for process in started:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
            for process in started:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(5)


def wait_for(done: Callable[[], bool], timeout: float, poll: float = DONE_POLL_S) -> float:
    """Poll ``done`` until it holds; the epoch time it was first seen to hold."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("the workload did not finish in time")
        time.sleep(poll)
    return time.time()


def timed_reads(read: Callable[[], T]) -> tuple[T, float]:
    """What ``read`` returns the first time, and the median of its durations over
    :data:`READS` calls."""
    began = time.perf_counter()
    first = read()
    durations = [time.perf_counter() - began]
    for _ in range(READS - 1):
        began = time.perf_counter()
        read()
        durations.append(time.perf_counter() - began)
    return first, statistics.median(durations)


def run_timeout(work: Workload) -> float:
    """Seconds any system may take: fifty times the ideal makespan, and five minutes more."""
    return 300 + 50 * work.n * work.latency_ms / 1000 / work.concurrency


# -- querybatch ------------------------------------------------------------------------------


def querybatch_body(work: Workload, first_day_offset: int = 0) -> dict[str, Any]:
    """The workload as a batch of distinct demo sub-queries, from a day on."""
    return batch_body(
        work.n,
        work.concurrency,
        FIRST_DAY + timedelta(days=first_day_offset),
        demo_rows_per_day=ROWS_PER_SUBQUERY,
    )


def run_querybatch_on(
    server: BenchServer, work: Workload, meter: Meter, attempts_over_one: Callable[[str], int]
) -> Figures:
    """The workload as one batch through ``server``'s API, measured by ``meter``."""
    warm = Workload(WARM_UP, work.latency_ms, work.concurrency, work.workers)
    with server.client(timeout=600) as client:
        # Days after the workload's: a sub-query the warm-up ran is not one it runs again.
        later = work.n // ACCOUNTS + 10
        wait_stopped(client, submit(client, querybatch_body(warm, later)), poll=0.1)
        with meter.measuring():
            began = time.time()
            batch_id = submit(client, querybatch_body(work))
            batch = wait_stopped(client, batch_id, poll=0.1)

        def read() -> int:
            rows = 0
            with client.stream(
                "GET", f"/query/batch/{batch_id}/download", params={"format": "ndjson"}
            ) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    rows += bool(line)
            return rows

        rows, readback = timed_reads(read)
    outcome = Outcome(
        began=began,
        ended=epoch(batch["end_time"]),
        readback_s=readback,
        rows_read=rows,
        results=int(batch["progress"]["success"]),
        ran_twice=attempts_over_one(batch_id),
    )
    return figures_of(work, outcome, meter)


def run_querybatch(work: Workload) -> Figures:
    """querybatch on its embedded default: one server process, SQLite, in-process runs."""
    with BenchServer(server_env(work.concurrency, work.latency_ms)) as server:

        def attempts_over_one(batch_id: str) -> int:
            import sqlite3

            with contextlib.closing(sqlite3.connect(server.db_path)) as db:
                row = db.execute(
                    "SELECT count(*) FROM queries WHERE batch_id = ? AND attempt > 1", (batch_id,)
                ).fetchone()
            return int(row[0])

        meter = Meter([server.pid], [], uses_redis=False)
        return run_querybatch_on(server, work, meter, attempts_over_one)


def run_querybatch_scaled_out(work: Workload) -> Figures:
    """querybatch scaled out: an API node, PostgreSQL, Redis, W Celery pool processes."""
    env = server_env(work.concurrency, work.latency_ms)
    with deployment_env() as deployment:
        env |= deployment
        with BenchServer(env) as server, worker_pool(env, work.workers) as worker:

            def attempts_over_one(batch_id: str) -> int:
                url = env["QB_DATABASE_URL"]
                with psycopg.connect(url) as conn:
                    row = conn.execute(
                        "SELECT count(*) FROM queries WHERE batch_id = %s AND attempt > 1",
                        (batch_id,),
                    ).fetchone()
                return int(row[0]) if row else 0

            meter = Meter([server.pid, worker.pid], [redis_pid(), postgres_pid()], uses_redis=True)
            return run_querybatch_on(server, work, meter, attempts_over_one)


# -- the peers -------------------------------------------------------------------------------


@contextlib.contextmanager
def peer_settings(system: str, work: Workload, **extra: str) -> Iterator[dict[str, str]]:
    """The environment of a peer's workers (and of its module in this process): a queue of
    its own, the workload's latency and each worker's share of the concurrency."""
    settings = {
        "QB_PEER_QUEUE": f"qb-peers-{system}-{secrets.token_hex(4)}",
        "QB_PEER_LATENCY_MS": str(work.latency_ms),
        "QB_PEER_CONCURRENCY": str(work.per_worker),
        "QB_PEER_REDIS_URL": REDIS,
        "QB_PEER_POSTGRES_URL": POSTGRES,
        **extra,
    }
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        yield settings
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        with contextlib.suppress(redis.RedisError):
            client = redis.Redis.from_url(REDIS)
            for key in client.scan_iter(match=f"*{settings['QB_PEER_QUEUE']}*", count=1000):
                client.delete(key)


def fresh_module(name: str) -> Any:
    """Import (again) a peer's module and the settings module it reads, so that both read
    the settings just set."""
    for each in ("bench._peer_work", name):
        module = sys.modules.get(each)
        module = importlib.reload(module) if module is not None else importlib.import_module(each)
    return module


def runs_counted(queue: str, n: int) -> tuple[int, int]:
    """From the runs hash of a Redis-based peer: how many of the ``n`` sub-queries ran, and
    how many ran more than once."""
    counts = redis.Redis.from_url(REDIS).hgetall(f"{queue}:runs")
    runs = [int(counts.get(str(i).encode(), 0)) for i in range(n)]
    return sum(1 for r in runs if r), sum(1 for r in runs if r > 1)


def runs_done(queue: str, expected: int) -> Callable[[], bool]:
    client = redis.Redis.from_url(REDIS)
    return lambda: int(client.hlen(f"{queue}:runs")) >= expected


def run_celery(work: Workload) -> Figures:
    """Celery: W gevent workers on Redis (broker and results), the tasks sent as a group."""
    with peer_settings("celery", work) as settings:
        module = fresh_module("bench._peer_celery")
        queue = settings["QB_PEER_QUEUE"]
        command = [sys.executable, "-m", "celery", "-A", "bench._peer_celery", "worker"]
        command += ["-P", "gevent", "-c", str(work.per_worker), "-Q", queue]
        command += ["--loglevel", "warning", "--without-gossip", "--without-mingle"]
        workers = [[*command, "-n", f"peer{i}@%h"] for i in range(work.workers)]
        with processes(workers, settings) as pids:
            from celery import group

            task = module.subquery
            warm = group(task.s(work.n + i) for i in range(WARM_UP)).apply_async()
            warm.join_native(timeout=120)
            meter = Meter(pids, [redis_pid()], uses_redis=True)
            with meter.measuring():
                began = time.time()
                result = group(task.s(i) for i in range(work.n)).apply_async()
                ended = wait_for(runs_done(queue, work.n + WARM_UP), run_timeout(work))
            values, readback = timed_reads(lambda: result.join_native(timeout=600))
            result.forget()
            warm.forget()
            _, twice = runs_counted(queue, work.n)
            complete = [v for v in values if isinstance(v, list) and len(v) == ROWS_PER_SUBQUERY]
            outcome = Outcome(
                began=began,
                ended=ended,
                readback_s=readback,
                rows_read=sum(len(v) for v in values if isinstance(v, list)),
                results=len(complete),
                ran_twice=twice,
            )
            return figures_of(work, outcome, meter)


ARQ_ENV = Path(__file__).parent / ".envs" / "arq"
ARQ_REQUIREMENT = "arq==0.28.*"


def arq_python() -> Path:
    """The Python of arq's own environment, built with uv on first use.

    arq pins redis-py below 6 and the Celery querybatch uses needs 6.4 or later, so the two
    cannot share an environment; arq's needs nothing of querybatch's.
    """
    python = ARQ_ENV / "bin" / "python"
    if not python.exists():
        uv = [sys.executable, "-m", "uv"]
        made = [*uv, "venv", "--quiet", "--python", sys.executable, str(ARQ_ENV)]
        subprocess.run(made, check=True)
        subprocess.run(
            [*uv, "pip", "install", "--quiet", "--python", str(python), ARQ_REQUIREMENT],
            check=True,
        )
    return python


def arq_command(python: Path, *args: str) -> dict[str, float]:
    """Run a command of ``bench._peer_arq`` in arq's environment; what it printed."""
    done = subprocess.run(
        [str(python), "-m", "bench._peer_arq", *args],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench._peer_arq {' '.join(args)} failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout)
    return result


def run_arq(work: Workload) -> Figures:
    """arq: W workers on Redis, arq keeping each job's result."""
    python = arq_python()
    with peer_settings("arq", work) as settings:
        queue = settings["QB_PEER_QUEUE"]
        workers = [[str(python), "-m", "bench._peer_arq", "worker"]] * work.workers
        with processes(workers, {**settings, "PYTHONPATH": str(REPO)}) as pids:
            arq_command(python, "enqueue", str(work.n), str(work.n + WARM_UP))
            wait_for(runs_done(queue, WARM_UP), 120)
            meter = Meter(pids, [redis_pid()], uses_redis=True)
            with meter.measuring():
                began = arq_command(python, "enqueue", "0", str(work.n))["began"]
                wait_for(runs_done(queue, work.n + WARM_UP), run_timeout(work))
            reads = [arq_command(python, "results", str(work.n)) for _ in range(READS)]
            read = reads[0] | {"readback_s": statistics.median(r["readback_s"] for r in reads)}
            _, twice = runs_counted(queue, work.n)
            outcome = Outcome(
                began=began,
                ended=read["finished"],
                readback_s=read["readback_s"],
                rows_read=int(read["rows_read"]),
                results=int(read["results"]),
                ran_twice=twice,
            )
            return figures_of(work, outcome, meter)


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A PostgreSQL URL whose search path is a new schema (dropped after)."""
    schema = f"qb_peers_{secrets.token_hex(5)}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in POSTGRES else "?"
    try:
        yield f"{POSTGRES}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def run_procrastinate(work: Workload) -> Figures:
    """procrastinate: W workers on PostgreSQL, each task storing its rows in a table."""
    with postgres_schema() as url, peer_settings("procrastinate", work, QB_PEER_POSTGRES_URL=url):
        module = fresh_module("bench._peer_procrastinate")
        asyncio.run(_procrastinate_schema(module))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(module.CREATE_RESULTS)
        app = "--app=bench._peer_procrastinate.app"
        # Warnings only, as the other peers: its command line logs every job at INFO.
        command = [sys.executable, "-m", "procrastinate", "--log-level", "warning", app, "worker"]
        command += ["-q", os.environ["QB_PEER_QUEUE"], "-c", str(work.per_worker)]
        with processes([command] * work.workers, dict(os.environ)) as pids:
            asyncio.run(_procrastinate_defer(module, range(work.n, work.n + WARM_UP)))
            wait_for(lambda: _stored(url) >= WARM_UP, 120, poll=0.1)
            meter = Meter(pids, [postgres_pid()], uses_redis=False)
            with meter.measuring():
                began = time.time()
                asyncio.run(_procrastinate_defer(module, range(work.n)))
                wait_for(lambda: _stored(url) >= work.n + WARM_UP, run_timeout(work), poll=0.2)

            def read() -> list[tuple[Any, ...]]:
                with psycopg.connect(url) as conn:
                    return conn.execute(
                        f"SELECT rows, runs FROM {module.RESULTS_TABLE} WHERE id < %s", (work.n,)
                    ).fetchall()

            stored, readback = timed_reads(read)
            with psycopg.connect(url) as conn:
                last = conn.execute(
                    f"SELECT extract(epoch FROM max(written_at)) FROM {module.RESULTS_TABLE} "
                    "WHERE id < %s",
                    (work.n,),
                ).fetchone()
            assert last is not None
            outcome = Outcome(
                began=began,
                ended=float(last[0]),
                readback_s=readback,
                rows_read=sum(len(rows) for rows, _ in stored),
                results=sum(1 for rows, _ in stored if len(rows) == ROWS_PER_SUBQUERY),
                ran_twice=sum(1 for _, runs in stored if runs > 1),
            )
            return figures_of(work, outcome, meter)


def _stored(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM peer_results").fetchone()
    return int(row[0]) if row else 0


async def _procrastinate_schema(module: Any) -> None:
    async with module.app.open_async():
        await module.app.schema_manager.apply_schema_async()


async def _procrastinate_defer(module: Any, indexes: range) -> None:
    async with module.app.open_async():
        for start in range(indexes.start, indexes.stop, 5000):
            chunk = range(start, min(start + 5000, indexes.stop))
            await module.subquery.batch_defer_async(*({"index": i} for i in chunk))


RUNNERS: dict[str, Callable[[Workload], Figures]] = {
    "querybatch": run_querybatch,
    "querybatch_scaled_out": run_querybatch_scaled_out,
    "celery": run_celery,
    "arq": run_arq,
    "procrastinate": run_procrastinate,
}


# -- the table -------------------------------------------------------------------------------


def measure(work: Workload, systems: Sequence[str]) -> Figures:
    """Each system's figures, prefixed with its name, and querybatch's ratios to the best peer."""
    figures: Figures = {
        "n": work.n,
        "latency_ms": work.latency_ms,
        "concurrency": work.concurrency,
        "workers": work.workers,
    }
    for system in systems:
        for key, value in RUNNERS[system](work).items():
            figures[f"{system}_{key}"] = value
    peers = [p for p in PEERS if p in systems]
    for ours in ("querybatch", "querybatch_scaled_out"):
        if ours not in systems or not peers:
            continue
        for key in ("makespan_s", "cpu_ms_per_subquery", "peak_memory_mb", "readback_s"):
            best = min(figures[f"{p}_{key}"] for p in peers)
            figures[f"{ours}_{key}_to_best_peer"] = ratio(figures[f"{ours}_{key}"], best)
    return figures


def report(figures: Figures) -> None:
    """One table: a row per figure, a column per system."""
    systems = [s for s in SYSTEMS if f"{s}_makespan_s" in figures]
    title = (
        f"peers: N={figures['n']:.0f} sub-queries of {figures['latency_ms']:.0f} ms, "
        f"C={figures['concurrency']:.0f}, {figures['workers']:.0f} worker processes"
    )
    print(f"\n{title}  [{describe_machine()}]")
    width = max(len(s) for s in systems) + 2
    print(" " * 30 + "".join(f"{s:>{width}}" for s in systems))
    for key in FIGURES:
        cells = "".join(f"{figures[f'{s}_{key}']:>{width},.3f}" for s in systems)
        print(f"  {key:<28}{cells}")
    for key in sorted(k for k in figures if k.endswith("_to_best_peer")):
        print(f"  {key:<58}{figures[key]:>10.3f}  (below 1: ahead)")


def main(argv: list[str] | None = None) -> Figures:
    """Parse the flags, measure, print and write the figures."""
    args = parser(NAME, __doc__)
    args.add_argument("--n", type=int, default=20_000, help="sub-queries (default %(default)s)")
    args.add_argument("--latency-ms", type=float, default=50.0, help="default %(default)s")
    args.add_argument("--concurrency", type=int, default=200, help="default %(default)s")
    args.add_argument("--workers", type=int, default=2, help="default %(default)s")
    args.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated (default: all)")
    args.add_argument(
        "--no-wait",
        action="store_true",
        help="start at once, not once the machine is quiet (a smoke test: figures mean little)",
    )
    ns = args.parse_args(argv)
    systems = chosen(args, ns.systems, SYSTEMS, "systems")
    work = Workload(ns.n, ns.latency_ms, ns.concurrency, ns.workers)
    return run(NAME, ns.out, lambda: measure(work, systems), report, wait_for_quiet=not ns.no_wait)


if __name__ == "__main__":
    main()
