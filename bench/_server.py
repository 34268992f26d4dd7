"""A real ``querybatch serve`` process for benchmarks, with its CPU time, memory and store size.

The server runs on the embedded default (SQLite in a temporary data directory, in-process
executor) on a free port, configured through ``QB_`` environment variables as an operator
would. Only the benchmarks use this module; the tests have their own helper.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType

import httpx
import psutil  # type: ignore[import-untyped]

from bench._common import Profiling

ADMIN_KEY = "qb_bench_admin_key_0123456789abcdefghijklmnopqrst"
MB = 1024 * 1024


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BenchServer:
    """``python -m querybatch serve`` in a child process, measured with psutil.

    Use it as a context manager: the server is healthy inside the block and stopped (and its
    temporary data directory removed) after it.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        timeout: float = 60.0,
        module: str = "querybatch",
    ) -> None:
        self.extra_env = dict(env or {})
        self.timeout = timeout
        self.module = module  # run as ``python -m MODULE serve``
        self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="qb-bench-")
        self.data_dir = Path(self._tmp.name)
        self.process: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None

    @property
    def url(self) -> str:
        """The base URL the server listens on."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        """The SQLite file of the embedded default."""
        return self.data_dir / "querybatch.db"

    @property
    def pid(self) -> int:
        """The server's process id (for py-spy)."""
        assert self.process is not None
        return self.process.pid

    def headers(self) -> dict[str, str]:
        """Request headers authenticating as the admin key."""
        return {"Authorization": f"Bearer {ADMIN_KEY}"}

    def client(self, timeout: float = 120.0) -> httpx.Client:
        """A synchronous client for the server, authenticated as the admin."""
        return httpx.Client(base_url=self.url, headers=self.headers(), timeout=timeout)

    def start(self) -> BenchServer:
        """Start the server and wait until ``/healthz`` answers 200."""
        env = {
            **os.environ,
            "QB_DATA_DIR": str(self.data_dir),
            "QB_HOST": "127.0.0.1",
            "QB_PORT": str(self.port),
            "QB_ADMIN_KEY": ADMIN_KEY,
            "QB_RATE_LIMIT": "1000000000",
            **self.extra_env,
        }
        log = (self.data_dir / "server.log").open("ab")
        with log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, "serve", "--log-level", "warning"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.ps = psutil.Process(self.process.pid)
        self._await_health()
        return self

    def _await_health(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited early:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the server did not become healthy:\n{self.log()}")

    def log(self) -> str:
        """What the server wrote to stdout and stderr."""
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process has used so far (all its threads)."""
        assert self.ps is not None
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def disk_write_bytes(self) -> int:
        """Bytes the server has caused to be written to storage so far (Linux: dirtied pages)."""
        assert self.ps is not None
        try:
            return int(self.ps.io_counters().write_bytes)
        except (AttributeError, psutil.Error):  # not available on this platform
            return 0

    def thread_cpu(self) -> dict[int, float]:
        """CPU seconds each of the server's threads has used so far, by native thread id."""
        assert self.ps is not None
        return {t.id: float(t.user_time + t.system_time) for t in self.ps.threads()}

    def rss_mb(self) -> float:
        """The server's resident memory now, in MiB."""
        assert self.ps is not None
        return float(self.ps.memory_info().rss) / MB

    def store_bytes(self) -> int:
        """Bytes the store's live pages take (read through the WAL, free pages excluded)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)) as db:
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            free = db.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * page_size)

    def store_file_bytes(self) -> int:
        """Bytes the SQLite file and its write-ahead log take on disk now."""
        files = (self.db_path, self.db_path.with_name(self.db_path.name + "-wal"))
        return sum(f.stat().st_size for f in files if f.exists())

    def table_rows(self, *tables: str) -> dict[str, int]:
        """How many rows each of ``tables`` holds now."""
        with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)) as db:
            return {t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}

    @contextlib.contextmanager
    def profiled(self, profiling: Profiling | None) -> Iterator[None]:
        """Sample the server with py-spy while the block runs (nothing when not profiling).

        Writes collapsed stacks (``--format raw``), one line per distinct stack with its
        sample count, thread ids included; ``gil`` keeps only samples holding the GIL.
        ``python -m bench.profile_summary FILE`` sums them up per function.
        """
        if profiling is None:
            yield
            return
        output, gil = profiling.path, profiling.gil
        exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
            "py-spy"
        )
        if exe is None:
            raise RuntimeError("py-spy is not installed: pip install py-spy")
        command = [exe, "record", "--pid", str(self.pid), "--rate", "200", "--threads"]
        command += ["--format", "raw", "--output", str(output), *(["--gil"] if gil else [])]
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # attaching takes a moment
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            _, err = spy.communicate(timeout=60)
            if spy.returncode not in (0, -signal.SIGINT):
                print(f"py-spy failed ({spy.returncode}): {err.decode(errors='replace')}")

    def stop(self) -> None:
        """Stop the server as an operator would (SIGTERM), killing it if it hangs."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def __enter__(self) -> BenchServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._tmp.cleanup()


class Sampler:
    """Calls :meth:`sample` every ``interval`` seconds on a background thread while
    :meth:`running`."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        """Take one sample (on the sampler's thread)."""
        raise NotImplementedError

    def begin(self) -> None:
        """Before the first sample (on the caller's thread)."""

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    @contextlib.contextmanager
    def running(self) -> Iterator[Sampler]:
        """Sample while the block runs."""
        self.begin()
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


class RssSampler(Sampler):
    """Samples a process's RSS on a background thread; the peak since :meth:`reset`."""

    def __init__(self, server: BenchServer, interval: float = 0.02) -> None:
        super().__init__(interval)
        self.server = server
        self.peak_mb = 0.0

    def reset(self) -> None:
        """Start a new peak from the current RSS."""
        self.peak_mb = self.server.rss_mb()

    def begin(self) -> None:
        self.reset()

    def sample(self) -> None:
        with contextlib.suppress(psutil.Error):
            self.peak_mb = max(self.peak_mb, self.server.rss_mb())
