"""Helpers the tests share: a real server process on a free port, and clients for it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from pytest import TempPathFactory

ADMIN_KEY = "qb_test_admin_key_0123456789abcdefghijklmnopqrst"
REPO = Path(__file__).resolve().parents[1]

# "embedded" (SQLite, in-process executor) or "scaleout" (PostgreSQL, Celery over Redis):
# set per test by the `deployment` fixture, read by every server the tests start.
DEPLOYMENT = {"mode": "embedded", "postgres": "", "redis": ""}
_SCHEMAS: set[str] = set()


def scaleout() -> bool:
    """Whether the current test runs against PostgreSQL and Celery workers."""
    return DEPLOYMENT["mode"] == "scaleout"


def scaleout_schema(data_dir: Path) -> str:
    """The PostgreSQL schema of a scale-out server on ``data_dir`` (its Celery queue is named
    the same way), so a server restarted on the same directory finds the same state again."""
    import hashlib

    return "qbt_" + hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]


def _scaleout_env(data_dir: Path) -> dict[str, str]:
    """Settings of a scale-out stack whose state is private to ``data_dir``."""
    import psycopg

    schema = scaleout_schema(data_dir)
    queue = schema.replace("_", "-")
    plain = DEPLOYMENT["postgres"].replace("postgresql+psycopg://", "postgresql://")
    if schema not in _SCHEMAS:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{schema}"')
        _SCHEMAS.add(schema)
    separator = "&" if "?" in plain else "?"
    return {
        "QB_DATABASE_URL": f"{plain}{separator}options=-csearch_path%3D{schema}",
        "QB_EXECUTOR": "celery",
        "QB_BROKER_URL": DEPLOYMENT["redis"],
        "QB_CELERY_QUEUE": queue,
        # Short leases, so that work of a killed process is taken back within seconds.
        "QB_LEASE_SECONDS": "3",
        "QB_QUEUED_LEASE_SECONDS": "6",
    }


def drop_scaleout_schemas() -> None:
    """Remove the schemas the scale-out runs created, but those of the shared servers."""
    dropped = _SCHEMAS - {scaleout_schema(shared.data_dir) for shared in _SHARED.values()}
    if not dropped:
        return
    import psycopg

    plain = DEPLOYMENT["postgres"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        for schema in sorted(dropped):
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    _SCHEMAS.difference_update(dropped)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """``querybatch serve`` in a child process, as a user starts it (and, in a scale-out
    deployment, ``querybatch worker`` processes beside it)."""

    data_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    workers: int | None = None
    # --concurrency of each worker started with the server: one process runs every chunk it
    # holds at once, and each more process costs the suite its start (about 2 s of CPU).
    worker_processes_each: int = 1
    process: subprocess.Popen[bytes] | None = None
    worker_processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    log_path: Path | None = None
    log_level: str = "warning"
    full_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        """Where this server keeps its state."""
        sqlite = f"sqlite:///{self.data_dir / 'querybatch.db'}"
        return self.full_env.get("QB_DATABASE_URL") or sqlite

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.full_env = {
            **os.environ,
            "QB_DATA_DIR": str(self.data_dir),
            "QB_HOST": "127.0.0.1",
            "QB_PORT": str(self.port),
            "QB_ADMIN_KEY": ADMIN_KEY,
            "QB_TICK_SECONDS": "0.1",
            **(_scaleout_env(self.data_dir) if scaleout() else {}),
            **self.env,
        }
        env = self.full_env
        self.log_path = self.data_dir / f"server-{self.port}.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "querybatch", "serve", "--log-level", self.log_level],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._await_health(timeout)
        count = self.workers if self.workers is not None else (1 if scaleout() else 0)
        for _ in range(count):
            self.start_worker(self.worker_processes_each)
        return self

    def start_worker(self, concurrency: int = 1) -> subprocess.Popen[bytes]:
        """Start one more ``querybatch worker`` on this server's store and broker."""
        assert self.log_path is not None
        with (self.data_dir / "workers.log").open("ab") as log:
            # A session of its own, so that killing the worker kills its pool processes too.
            worker = subprocess.Popen(
                [sys.executable, "-m", "querybatch", "worker", "--concurrency", str(concurrency)],
                env=self.full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.worker_processes.append(worker)
        return worker

    def sql(self, statement: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows of a query on this server's database (tests look at what was stored)."""
        from sqlalchemy import create_engine, text

        url = self.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(statement), params)]
        finally:
            engine.dispose()

    def count(self, table: str) -> int:
        """How many rows ``table`` holds."""
        return int(self.sql(f"SELECT count(*) FROM {table}")[0][0])

    def _await_health(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def worker_log(self) -> str:
        """What the workers started with this server logged (they share one file)."""
        path = self.data_dir / "workers.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop the server and its workers as an operator would (SIGTERM)."""
        for worker in self.worker_processes:
            if worker.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.pid, signal.SIGTERM)
        for process in [*self.worker_processes, self.process]:
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def kill(self) -> None:
        """kill -9 of the server and its workers: no shutdown, no cleanup, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        for worker in self.worker_processes:
            kill_worker(worker)


def kill_worker(worker: subprocess.Popen[bytes]) -> None:
    """kill -9 of a worker and its pool processes, as when its machine dies."""
    if worker.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(5)


# Servers that the test modules of this process share, by deployment and log level.
_SHARED: dict[str, ServerProcess] = {}


def shared_server(
    deployment: str, tmp_path_factory: TempPathFactory, log_level: str = "warning"
) -> ServerProcess:
    """The shared server of this deployment logging at ``log_level``, started if need be
    (again, if a test ended it)."""
    name = f"{deployment}-{log_level}"
    shared = _SHARED.get(name)
    if shared is None or shared.process is None or shared.process.poll() is not None:
        data_dir = tmp_path_factory.mktemp(f"shared-{name}")
        shared = _SHARED[name] = ServerProcess(data_dir, log_level=log_level).start()
    return shared


def stop_shared_servers() -> None:
    """Stop the shared servers and remove what they kept."""
    for shared in _SHARED.values():
        shared.stop()
    _SHARED.clear()
    drop_scaleout_schemas()


@contextlib.contextmanager
def running_server(data_dir: Path, **env: str) -> Iterator[ServerProcess]:
    """A started server, stopped at the end of the block."""
    server = ServerProcess(data_dir, env).start()
    try:
        yield server
    finally:
        server.stop()


def client(server: ServerProcess, key: str = ADMIN_KEY, **kwargs: Any) -> httpx.Client:
    """An httpx client for the server authenticated with ``key``."""
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60, **kwargs
    )


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Check an error response is the documented envelope with this status and code."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"meta", "error"}, body
    assert set(body["meta"]) == {"request_id"}
    assert 8 <= len(body["meta"]["request_id"]) <= 64
    assert body["error"]["code"] == code, body
    assert set(body["error"]) <= {"code", "message", "description"}
    assert 0 < len(body["error"]["message"]) <= 255
    assert response.headers["x-ratelimit-limit"]
    assert response.headers["x-ratelimit-remaining"]
    return body


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def run_bench(
    name: str, out: Path, *flags: str, timeout: float = 300.0, **env: str
) -> tuple[dict[str, Any], str]:
    """Run ``python -m bench.NAME`` from the repository as a user would (its figures written
    to ``out``), failing with its output unless it succeeds; its figures and what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *flags, "--out", str(out)],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures: dict[str, Any] = orjson.loads(out.read_bytes())
    return figures, done.stdout


def run_cli(server: ServerProcess, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``querybatch ARGS`` through the real entry point, configured like ``server``."""
    return subprocess.run(
        [sys.executable, "-m", "querybatch", *args],
        env={**(server.full_env or os.environ), "QB_DATA_DIR": str(server.data_dir), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


HEALTH_BUDGET = 1.0  # seconds /healthz may take while a hostile request is handled


@dataclass
class HealthWatch:
    """Polls ``/healthz`` from a thread; ``latencies`` are its answers' times (inf: none)."""

    url: str
    latencies: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def poll(self) -> None:
        with httpx.Client(timeout=HEALTH_BUDGET * 5) as http:
            while not self.stop.is_set():
                began = time.monotonic()
                try:
                    healthy = http.get(self.url).status_code == 200
                except httpx.HTTPError:
                    healthy = False
                self.latencies.append(time.monotonic() - began if healthy else float("inf"))
                self.stop.wait(0.05)


@contextlib.contextmanager
def responsive(server: ServerProcess, settle: float = 30.0) -> Iterator[HealthWatch]:
    """Run a block while /healthz is polled; fail unless every poll answered within 1 s.

    ``settle`` is how long the poller may take to notice the block ended (a poll that hangs
    longer counts as unbounded).
    """
    watch = HealthWatch(server.url + "/healthz")
    thread = threading.Thread(target=watch.poll, daemon=True)
    thread.start()
    wait_until(lambda: watch.latencies)  # polling before the attack starts
    try:
        yield watch
    finally:
        watch.stop.set()
        thread.join(settle)
    slowest = max(watch.latencies)
    assert slowest < HEALTH_BUDGET, f"/healthz took {slowest:.2f}s during the attack"


class PrivateRedis:
    """A Redis of one test's own, which the test may kill and start again on the same port."""

    def __init__(self, binary: str | None = None) -> None:
        found = binary or shutil.which("redis-server")
        if found is None:
            raise RuntimeError("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.command = [
            found,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Start it and wait until it accepts connections."""
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """kill -9: everything it held (queued messages included) is lost."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None
