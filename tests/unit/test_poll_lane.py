"""The poll lane in process: what it passes on, and a failure inside it as the 500 envelope."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from querybatch.api.middleware import EdgeMiddleware
from querybatch.api.poll_budget import PollBudget
from querybatch.api.poll_lane import PollLane
from querybatch.api.ratelimit import MemoryRateLimiter


class Router:
    """Stands for the framework: answers 299 to whatever the lane passes on."""

    def __init__(self, services: Any) -> None:
        self.state = SimpleNamespace(services=services)
        self.passed: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.passed.append(f"{scope['method']} {scope['path']}?{scope['query_string'].decode()}")
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


class BrokenKeys:
    async def authenticate(self, secret: str | None) -> Any:
        raise RuntimeError("the key store broke")


def client(router: Router) -> httpx.AsyncClient:
    app = EdgeMiddleware(PollLane(router), limiter=MemoryRateLimiter(1000))  # type: ignore[arg-type]
    headers = {"Authorization": "Bearer qb_key"}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://h", headers=headers
    )


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        ("POST", "/query/status?schedule_id=s", {}),
        ("DELETE", "/query/batch/qrb_1", {}),
        ("GET", "/query/batch/qrb_1/download", {}),
        ("GET", "/query/batch", {}),
        ("GET", "/query/batch/qrb_1/status?limit=0", {}),
        ("GET", "/query/batch/qrb_1/status?offset=1234567890", {}),
        ("GET", "/query/batch/qrb_1?pretty=true", {}),
        ("GET", "/v2/query/status?schedule_id=s", {"Range": "bytes=0-1"}),
        ("PATCH", "/teams/1/backfills/1", {}),
        ("GET", "/teams/1/backfills/0", {}),
        ("GET", f"/teams/1/backfills/{2**31}", {}),
        ("GET", f"/teams/{2**63}/backfills/1", {}),
        ("GET", "/teams/1/backfills/x", {}),
        ("GET", "/teams/1/backfills/1/runs", {}),
        ("GET", "/teams/1/backfills/1?pretty=true", {}),
    ],
)
async def test_what_is_not_a_plain_poll_goes_on_to_the_router(
    method: str, target: str, headers: dict[str, str]
) -> None:
    router = Router(SimpleNamespace(keys=BrokenKeys()))
    async with client(router) as http:
        response = await http.request(method, target, headers=headers)
    assert response.status_code == 299
    assert len(router.passed) == 1


@pytest.mark.parametrize("target", ["/enterprise/v2/query/batch/qrb_1", "/v2/teams/1/backfills/7"])
async def test_a_failure_inside_a_poll_is_the_500_envelope_and_is_logged(
    target: str, caplog: pytest.LogCaptureFixture
) -> None:
    services = SimpleNamespace(
        keys=BrokenKeys(),
        settings=SimpleNamespace(max_body_bytes=1024),
        poll_budget=PollBudget(1.0, lambda: True),
    )
    router = Router(services)
    with caplog.at_level(logging.ERROR, "querybatch.api.poll_lane"):
        async with client(router) as http:
            response = await http.get(target)
    assert router.passed == []
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "INTERNAL_SERVER_ERROR"  # as the router's handler says
    assert body["meta"]["request_id"] == response.headers["x-request-id"]
    assert "the key store broke" in caplog.text
