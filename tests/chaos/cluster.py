"""A scale-out cluster of one test's own, every part of which the test may break.

Two API nodes on one PostgreSQL schema, two ``querybatch worker --concurrency 1``, and a
Redis of the cluster's own as the broker. Every process reaches PostgreSQL through a
``TcpProxy``, so that the test can refuse or drop their connections; the test itself reads
the database directly.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from tcp_proxy import TcpProxy

from support import PrivateRedis, ServerProcess, _scaleout_env, kill_worker, wait_until

LEASE_SECONDS = 5.0
QUEUED_LEASE_SECONDS = 10.0
WORKERS = 2
WORKER_CONCURRENCY = 1  # one process runs every chunk it holds at once
LEADER_GAUGE = re.compile(r"^querybatch_node_leader (\S+)$", re.MULTILINE)


def _with_port(url: str, port: int) -> str:
    """``url`` with its host and port replaced by 127.0.0.1:``port`` (user and query kept)."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


class Cluster:
    """The processes of one deployment, started, broken and started again by a test."""

    def __init__(self, data_dir: Path, postgres_url: str) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
        upstream = urlsplit(plain)
        self.redis = PrivateRedis()
        self.proxy = TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 5432)
        # The schema (and queue) of the data directory, as every server of the tests has.
        self.direct_url = _scaleout_env(data_dir)["QB_DATABASE_URL"]
        self.env = {
            "QB_DATABASE_URL": _with_port(self.direct_url, self.proxy.port),
            "QB_BROKER_URL": self.redis.url,
            "QB_LEASE_SECONDS": str(LEASE_SECONDS),
            "QB_QUEUED_LEASE_SECONDS": str(QUEUED_LEASE_SECONDS),
        }
        self.nodes: list[ServerProcess] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.starts = 0
        self.started_at = 0.0  # wall-clock time of the last start of the processes

    # Starting and stopping

    def start(self) -> Cluster:
        """Redis, the proxy, then both nodes and both workers at once."""
        self.redis.start()
        self.proxy.start()
        self.start_processes()
        return self

    def start_processes(self) -> None:
        """Start both nodes and both workers (again) on the same data; wait for the nodes."""
        self.starts += 1
        self.started_at = time.time()
        if self.starts == 1:
            # Workers refuse a database not yet migrated, and the nodes would migrate it
            # only as they start: done first, so that everything can start at once.
            from querybatch.store.database import Database

            database = Database(self.direct_url)
            try:
                database.migrate()
            finally:
                database.close()
        self.nodes = [ServerProcess(self.data_dir, self.env, workers=0) for _ in range(2)]
        self.workers = [self._start_worker(n) for n in range(WORKERS)]
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            for started in [pool.submit(node.start) for node in self.nodes]:
                started.result()

    def _start_worker(self, number: int) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            **_scaleout_env(self.data_dir),
            **self.env,
            "QB_DATA_DIR": str(self.data_dir),
        }
        with (self.data_dir / f"worker-{number}.log").open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
            # A session of its own: a signal to the group reaches the supervisor, the Celery
            # worker and its pool processes alike.
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "querybatch",
                    "worker",
                    "--concurrency",
                    str(WORKER_CONCURRENCY),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_for_workers(self, timeout: float = 60.0) -> None:
        """Until every worker started last has told Redis it is ready (its first heartbeat;
        the beats of workers of an earlier start are older than it)."""
        import redis

        key = f"{_scaleout_env(self.data_dir)['QB_CELERY_QUEUE']}:workers"

        def ready() -> bool:
            ended = [w for w in self.workers if w.poll() is not None]
            assert not ended, f"a worker exited: {self.processes()}\n" + "\n".join(
                self.log_lines(".")[-20:]
            )
            return int(client.zcount(key, self.started_at, "+inf")) >= len(self.workers)

        with redis.Redis.from_url(self.redis.url) as client:
            wait_until(ready, timeout=timeout)

    def kill_all(self) -> None:
        """kill -9 of every node and worker (Redis and the database stay)."""
        for node in self.nodes:
            self.kill_node(node)
        for worker in self.workers:
            kill_worker(worker)

    @staticmethod
    def kill_node(node: ServerProcess) -> None:
        """kill -9 of one API node alone (its workers are the cluster's, not its own)."""
        if node.process is not None and node.process.poll() is None:
            node.process.kill()
            node.process.wait(5)

    def whole(self) -> bool:
        """Whether every node and worker of the last start still runs."""
        processes = [node.process for node in self.nodes] + list(self.workers)
        return all(process is not None and process.poll() is None for process in processes)

    def restart(self) -> None:
        """kill -9 of the nodes and workers left, then all of them again on the same data,
        ready to work (Redis and the proxy stay)."""
        self.kill_all()
        self.start_processes()
        self.wait_for_workers()

    def close(self) -> None:
        """kill -9 of everything (stopped processes too): the test is over, its schema goes
        next."""
        self.kill_all()
        self.redis.stop()
        self.proxy.close()

    # Looking at it

    def leader(self) -> ServerProcess:
        """The node that schedules (its /metrics says so), once exactly one does."""

        def one_leader() -> ServerProcess | None:
            leading = [node for node in self.nodes if self._leads(node)]
            return leading[0] if len(leading) == 1 else None

        found: ServerProcess = wait_until(one_leader)
        return found

    def follower(self) -> ServerProcess:
        """A node that does not lead."""
        leader = self.leader()
        return next(node for node in self.nodes if node is not leader)

    @staticmethod
    def _leads(node: ServerProcess) -> bool:
        try:
            metrics = httpx.get(node.url + "/metrics", timeout=5).text
        except httpx.HTTPError:
            return False
        found = LEADER_GAUGE.search(metrics)
        return found is not None and float(found.group(1)) == 1.0

    def live_node(self) -> ServerProcess:
        """A node whose process runs (to read results from)."""
        return next(n for n in self.nodes if n.process is not None and n.process.poll() is None)

    def sql(self, statement: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows of a query on the cluster's schema, read directly (not through the proxy)."""
        with psycopg.connect(self.direct_url, autocommit=True, connect_timeout=5) as conn:
            return [tuple(row) for row in conn.execute(statement, params).fetchall()]

    def processes(self) -> str:
        """Which processes still run, and the exit codes of those that ended."""
        parts = [f"node {n.port}: {_state(n.process)}" for n in self.nodes]
        parts += [f"worker {i}: {_state(w)}" for i, w in enumerate(self.workers)]
        return ", ".join(parts)

    def log_lines(self, pattern: str) -> list[str]:
        """Lines of every node and worker log of the cluster that match ``pattern``."""
        found = re.compile(pattern)
        lines = []
        for path in sorted(self.data_dir.glob("*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if found.search(line):
                    lines.append(f"{path.name}: {line[:300]}")
        return lines


def _state(process: subprocess.Popen[bytes] | None) -> str:
    if process is None:
        return "not started"
    code = process.poll()
    return "running" if code is None else f"exited {code}"
