"""The proxy the chaos suite puts in front of PostgreSQL refuses and drops as it says."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.chaos


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A server on a thread that sends back whatever it gets, on each connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])

    def echo(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(1024):
                conn.sendall(data)

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield port
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()


@pytest.fixture
def proxy(echo_port: int) -> Iterator[TcpProxy]:
    started = TcpProxy("127.0.0.1", echo_port).start()
    yield started
    started.close()


def echoed(conn: socket.socket, data: bytes = b"ping") -> bytes:
    conn.sendall(data)
    return conn.recv(1024)


def dropped(conn: socket.socket) -> bool:
    """Whether the other end has closed or reset the connection."""
    try:
        return conn.recv(1024) == b""
    except ConnectionResetError:
        return True


def connect(proxy: TcpProxy) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    assert echoed(conn) == b"ping"
    return conn


def test_terminate_all_drops_open_connections_and_keeps_accepting(proxy: TcpProxy) -> None:
    with connect(proxy) as first:
        proxy.terminate_all()
        assert dropped(first)
    with connect(proxy):
        assert proxy.open_connections == 1


def test_refuse_drops_open_connections_and_refuses_new_ones_until_accept(
    proxy: TcpProxy,
) -> None:
    with connect(proxy) as first:
        proxy.refuse()
        assert dropped(first)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    proxy.accept()
    with connect(proxy):
        assert proxy.accepted == 2
