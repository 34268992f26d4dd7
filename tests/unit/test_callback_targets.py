"""Callback delivery: checked after resolution, pinned to the checked address, never rebound."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, cast

import httpx
import pytest

from querybatch.domain.batch import BatchSettings
from querybatch.domain.callback_policy import CallbackAllow, CallbackRefused
from querybatch.domain.status import BatchStatus
from querybatch.engine.callback_targets import CallbackTargets, PinnedTarget, origin_of
from querybatch.engine.callbacks import CallbackSender
from querybatch.store.records import BatchRecord, Counts
from querybatch.store.store import Store


class FakeResolver:
    """Answers each lookup of a name with the next of its scripted answers."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        scripted = self.answers[host]
        return scripted.pop(0) if len(scripted) > 1 else scripted[0]


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, str]]]] = []
    status: ClassVar[int] = 204

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, dict(self.headers)))
        self.send_response(self.status)
        if self.status in (301, 302, 307, 308):
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[int]:
    """A local HTTP server recording the callbacks it gets; yields its port."""
    _Receiver.received, _Receiver.status = [], 204
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def sender(targets: CallbackTargets, attempts: int = 1) -> CallbackSender:
    # Delivery itself never touches the store.
    return CallbackSender(cast(Store, None), b"secret", targets, attempts=attempts, backoff=0)


async def test_a_host_that_rebinds_to_loopback_after_the_check_gets_no_callback(
    receiver: int,
) -> None:
    resolver = FakeResolver({"hooks.example": [["93.184.215.14"], ["127.0.0.1"]]})
    targets = CallbackTargets(CallbackAllow(), resolver)
    url = f"http://hooks.example:{receiver}/hook"
    await targets.check_new(url)  # at creation it led outside
    reason = await sender(targets).deliver(url, b"{}")
    assert reason is not None and "127.0.0.1" in reason
    assert _Receiver.received == []


async def test_a_host_with_one_internal_address_among_public_ones_is_refused() -> None:
    resolver = FakeResolver({"hooks.example": [["93.184.215.14", "10.0.0.7"]]})
    targets = CallbackTargets(CallbackAllow(), resolver)
    with pytest.raises(CallbackRefused, match=r"10\.0\.0\.7"):
        await targets.check_new("https://hooks.example/hook")


async def test_a_host_that_does_not_resolve_yet_is_accepted_at_creation() -> None:
    async def nothing(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    await CallbackTargets(CallbackAllow(), nothing).check_new("https://later.example/hook")


async def test_delivery_connects_to_the_checked_address_with_the_original_host_header(
    receiver: int,
) -> None:
    resolver = FakeResolver({"hooks.example": [["127.0.0.1"]]})
    targets = CallbackTargets(CallbackAllow.parse(["127.0.0.1"]), resolver)
    url = f"http://hooks.example:{receiver}/hook?x=1"
    assert await sender(targets).deliver(url, b"{}") is None
    [(path, headers)] = _Receiver.received
    assert path == "/hook?x=1"
    assert headers["Host"] == f"hooks.example:{receiver}"
    assert resolver.lookups == ["hooks.example"]


async def test_every_attempt_is_checked_again(receiver: int) -> None:
    resolver = FakeResolver({"hooks.example": [["127.0.0.1"], ["10.0.0.1"]]})
    targets = CallbackTargets(CallbackAllow.parse(["127.0.0.1/32"]), resolver)
    _Receiver.status = 500
    reason = await sender(targets, attempts=3).deliver(f"http://hooks.example:{receiver}/", b"{}")
    assert reason is not None and "10.0.0.1" in reason
    assert len(_Receiver.received) == 1  # the second attempt was refused before connecting


async def test_a_redirect_is_not_followed(receiver: int) -> None:
    targets = CallbackTargets(CallbackAllow.parse(["127.0.0.1"]))
    _Receiver.status = 302
    reason = await sender(targets).deliver(f"http://127.0.0.1:{receiver}/hook", b"{}")
    assert reason == "HTTP 302"
    assert [path for path, _ in _Receiver.received] == ["/hook"]


def test_logs_name_only_the_origin_of_a_callback_url() -> None:
    origin = origin_of("https://user:pw@hooks.example:8443/secret/path?token=abc")
    assert origin == "https://hooks.example:8443"


async def test_a_failing_delivery_is_logged_without_its_url_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(host: str, port: int) -> list[str]:
        raise RuntimeError("resolver exploded")

    batch = BatchRecord(
        id="qrb_000000000001",
        kind="batch",
        account="acme",
        key_id="k",
        status=BatchStatus.STOPPED,
        settings=BatchSettings(),
        columns=(),
        query_concurrency=1,
        timeout_seconds=60,
        created_at=1.0,
        schedule_time=1.0,
        start_time=1.0,
        end_time=2.0,
        cancel_time=None,
        query_amount=1,
        counts=Counts(success=1),
        callback_url="https://hooks.example/secret-path?token=abc",
    )
    with caplog.at_level(logging.WARNING, logger="querybatch.engine.callbacks"):
        await sender(CallbackTargets(CallbackAllow(), broken))._deliver(batch)
    [record] = caplog.records
    assert "qrb_000000000001" in record.getMessage()
    assert "https://hooks.example" in record.getMessage()
    assert "secret-path" not in record.getMessage() and "token" not in record.getMessage()
    assert record.exc_info is not None  # the traceback is kept, not lost with the task


def test_an_https_request_is_pinned_to_the_address_and_verified_against_the_name() -> None:
    target = PinnedTarget(httpx.URL("https://hooks.example/hook"), ("2606:4700::1111", "1.1.1.1"))
    url, headers, extensions = target.request_for(0)
    assert str(url) == "https://[2606:4700::1111]/hook"
    assert headers == {"Host": "hooks.example"}
    assert extensions == {"sni_hostname": "hooks.example"}
    assert target.request_for(1)[0].host == "1.1.1.1"  # the next attempt, the next address
