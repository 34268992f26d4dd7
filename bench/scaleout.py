"""Scale-out throughput: sub-queries per second with 1, 2 and 4 Celery worker processes.

For each worker count W, a ``querybatch serve`` process (QB_EXECUTOR=celery, PostgreSQL in
a schema of its own, Redis as the broker) and one ``querybatch worker --concurrency W`` run a
batch of N distinct instant (L=0) demo sub-queries; the rate is N over the batch's
``end_time - start_time``. The baseline, in the same run: N no-op Celery tasks (one per
item, the plain way) on a Celery worker with 2 prefork processes on the same Redis, timed
from the first send to the last task done.

Needs PostgreSQL and Redis: ``QB_BENCH_POSTGRES_URL`` (default
postgresql://postgres@127.0.0.1:5432/test) and ``QB_BENCH_REDIS_URL`` (default
redis://127.0.0.1:6379/0). Run it as ``python -m bench.scaleout [--n 4000]``; figures go to
``bench/results/scaleout.json``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import psycopg
import redis

from bench._batch import batch_body
from bench._common import Figures, parser, print_figures, ratio, run, target
from bench._server import ADMIN_KEY, free_port

NAME = "scaleout"
WORKER_COUNTS = (1, 2, 4)
POSTGRES = os.environ.get("QB_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("QB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CONCURRENCY = 400


@contextlib.contextmanager
def deployment_env() -> Iterator[dict[str, str]]:
    """The settings of a scale-out deployment whose state lives in a PostgreSQL schema of its
    own (dropped after) and whose work goes through a Redis queue of its own."""
    tag = secrets.token_hex(5)
    schema = f"qb_bench_{tag}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in POSTGRES else "?"
    try:
        yield {
            "QB_DATABASE_URL": f"{POSTGRES}{separator}options=-csearch_path%3D{schema}",
            "QB_EXECUTOR": "celery",
            "QB_BROKER_URL": REDIS,
            "QB_CELERY_QUEUE": f"qb-bench-{tag}",
        }
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextlib.contextmanager
def worker_pool(env: dict[str, str], processes: int) -> Iterator[subprocess.Popen[bytes]]:
    """``querybatch worker --concurrency processes`` for the deployment of ``env``."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "querybatch", "worker", "--concurrency", str(processes)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield worker
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)


@contextlib.contextmanager
def stack(workers: int) -> Iterator[str]:
    """A scale-out deployment of one API node and ``workers`` pool processes; its URL."""
    with deployment_env() as deployment:
        port = free_port()
        env = {
            **deployment,
            "QB_PORT": str(port),
            "QB_ADMIN_KEY": ADMIN_KEY,
            "QB_RATE_LIMIT": "1000000000",
            "QB_MAX_QUERY_CONCURRENCY": str(CONCURRENCY),
            "QB_ACCOUNT_CONCURRENCY": str(CONCURRENCY),
            "QB_DATA_DIR": f"/tmp/{deployment['QB_CELERY_QUEUE']}",
        }
        command = [sys.executable, "-m", "querybatch", "serve", "--log-level", "warning"]
        server = subprocess.Popen(command, env={**os.environ, **env})
        try:
            url = f"http://127.0.0.1:{port}"
            _await(lambda: httpx.get(url + "/healthz", timeout=1).status_code == 200)
            with worker_pool(env, workers):
                yield url
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)


def _await(ready: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if ready():  # type: ignore[operator]
                return
        time.sleep(0.1)
    raise RuntimeError("the deployment did not come up")


def engine_rate(workers: int, n: int) -> float:
    """Sub-queries per second of one batch of ``n`` on ``workers`` pool processes."""
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with stack(workers) as url, httpx.Client(base_url=url, headers=headers, timeout=120) as api:
        # A first small batch warms the workers (imports, connections) up.
        for size in (20, n):
            batch = api.post("/query/batch", json=batch_body(size, CONCURRENCY)).json()["data"]
            while batch["status_code"] != "STOPPED":
                time.sleep(0.05)
                batch = api.get(f"/query/batch/{batch['batch_id']}").json()["data"]
        assert batch["progress"]["success"] == n, batch["progress"]
        started = datetime.fromisoformat(batch["start_time"]).timestamp()
        ended = datetime.fromisoformat(batch["end_time"]).timestamp()
    return n / (ended - started)


def noop_rate(workers: int, n: int) -> float:
    """No-op Celery tasks per second, one per item, on ``workers`` prefork processes."""
    queue = f"qb-bench-noop-{secrets.token_hex(4)}"
    env = {**os.environ, "QB_BENCH_NOOP_BROKER": REDIS, "QB_BENCH_NOOP_QUEUE": queue}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench._noop_celery",
            "worker",
            "-c",
            str(workers),
            "-Q",
            queue,
            "--loglevel",
            "warning",
            "--without-gossip",
            "--without-mingle",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        os.environ.update(QB_BENCH_NOOP_BROKER=REDIS, QB_BENCH_NOOP_QUEUE=queue)
        from bench import _noop_celery

        counter = redis.Redis.from_url(REDIS)
        key = f"{queue}:done"
        counter.delete(key)
        time.sleep(3)  # the worker starts
        began = time.perf_counter()
        for index in range(n):
            _noop_celery.app.send_task("qb_bench.noop", args=[index], queue=queue)
        while int(counter.get(key) or 0) < n:
            time.sleep(0.01)
        seconds = time.perf_counter() - began
        counter.delete(key)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)
    return n / seconds


def measure(n: int) -> Figures:
    """The engine's rate per worker count, and the no-op baseline with 2 workers."""
    figures: Figures = {"n": n, "concurrency": CONCURRENCY}
    for workers in WORKER_COUNTS:
        figures[f"subqueries_per_s_{workers}w"] = engine_rate(workers, n)
    figures["celery_noop_per_s_2w"] = noop_rate(2, n)
    figures["ratio_2w_to_noop"] = ratio(
        figures["subqueries_per_s_2w"], figures["celery_noop_per_s_2w"]
    )
    return figures


def report(figures: Figures) -> None:
    """Print the figures and the target: at least the no-op rate with the same workers."""
    met = figures["subqueries_per_s_2w"] >= figures["celery_noop_per_s_2w"]
    print_figures(
        f"scaleout: N={figures['n']:.0f} instant sub-queries, PostgreSQL + Redis",
        [
            ("subqueries_per_s_1w", figures["subqueries_per_s_1w"], "1 worker process"),
            ("subqueries_per_s_2w", figures["subqueries_per_s_2w"], "2 worker processes"),
            ("subqueries_per_s_4w", figures["subqueries_per_s_4w"], "4 worker processes"),
            ("celery_noop_per_s_2w", figures["celery_noop_per_s_2w"], "no-op task per item"),
            (
                "ratio_2w_to_noop",
                figures["ratio_2w_to_noop"],
                f"target >= 1: {target(met)}",
            ),
        ],
    )


def main(argv: list[str] | None = None) -> Figures:
    """Parse the flags, measure, print and write the figures."""
    args = parser(NAME, __doc__)
    args.add_argument("--n", type=int, default=4000, help="sub-queries (default %(default)s)")
    ns = args.parse_args(argv)
    return run(NAME, ns.out, lambda: measure(ns.n), report)


if __name__ == "__main__":
    main()
