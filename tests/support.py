"""Helpers the tests share: a real server process on a free port, and clients for it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ADMIN_KEY = "qb_test_admin_key_0123456789abcdefghijklmnopqrst"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """``querybatch serve`` in a child process, as a user starts it."""

    data_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        env = {
            **os.environ,
            "QB_DATA_DIR": str(self.data_dir),
            "QB_HOST": "127.0.0.1",
            "QB_PORT": str(self.port),
            "QB_ADMIN_KEY": ADMIN_KEY,
            "QB_TICK_SECONDS": "0.1",
            **self.env,
        }
        self.log_path = self.data_dir / f"server-{self.port}.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "querybatch", "serve", "--log-level", "warning"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def kill(self) -> None:
        """kill -9: no shutdown, no cleanup, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


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
