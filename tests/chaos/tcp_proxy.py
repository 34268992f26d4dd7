"""A TCP forwarder in a thread of the test process, which can refuse or drop connections.

Put in front of PostgreSQL, it makes the database unreachable the way a network or a host
failure does: ``refuse()`` stops listening and drops every forwarded connection, so that a
client's next connect is refused (ECONNREFUSED) rather than only its session terminated.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any

from support import free_port

BUFFER = 64 * 1024


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream``; the test thread steers it."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tcp-proxy", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepted = 0  # connections forwarded since the start, for the self-test

    def start(self) -> TcpProxy:
        """Start the thread and listen."""
        self._thread.start()
        self.accept()
        return self

    def accept(self) -> None:
        """Listen (again) on the same port."""
        self._call(self._listen())

    def refuse(self) -> None:
        """Stop listening and drop every open connection: connects are refused from now on."""
        self._call(self._refuse())

    def terminate_all(self) -> None:
        """Drop every open connection (both sides see a reset); keep listening."""
        self._call(self._drop())

    def close(self) -> None:
        """Refuse, end every forwarding task, and stop the thread."""
        if not self._thread.is_alive():
            return
        self._call(self._refuse())
        self._call(self._settle())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @property
    def open_connections(self) -> int:
        """Forwarded connections open now (each counts once, not per side)."""
        return len(self._transports) // 2

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _listen(self) -> None:
        if self._server is None:
            # reuse_address (the default on POSIX): the port is taken again at once although
            # connections of the last listen are in TIME_WAIT.
            self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def _refuse(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self._drop()
        if server is not None:
            await server.wait_closed()

    async def _drop(self) -> None:
        for transport in list(self._transports):
            transport.abort()  # type: ignore[attr-defined]
        self._transports.clear()

    async def _settle(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._transports.add(writer.transport)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                writer.transport.abort()
                return
            if self._server is None or writer.transport not in self._transports:
                # Refused or dropped while the upstream connection was being opened.
                writer.transport.abort()
                up_writer.transport.abort()
                return
            self._transports.add(up_writer.transport)
            self.accepted += 1
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._tasks.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction; at its end close the other side too (reset on an error)."""
        try:
            while data := await reader.read(BUFFER):
                writer.write(data)
                await writer.drain()
            writer.close()  # what was written still goes out
        except (ConnectionError, OSError):
            writer.transport.abort()
        finally:
            self._transports.discard(writer.transport)
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
