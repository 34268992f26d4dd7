"""``/healthz`` (no key needed): is the server ready, can its store read and write."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from querybatch.api.answer import json_response
from querybatch.api.deps import ServicesDep

router = APIRouter(tags=["Operations"])


@router.get("/healthz", name="healthz", operation_id="healthz")
async def healthz(services: ServicesDep) -> Response:
    """200 with ``status: ok`` when the store answers and takes writes and the executor
    answers, else 503 saying which part is ``unreachable`` or ``unwritable`` (and why).

    ``workers`` says how many worker processes are alive and how many seconds ago one was
    last seen, ``queued`` how many sub-queries wait; ``status: degraded`` (still 200: this
    node is fine) when sub-queries wait and no worker is alive to run them. The write is a
    real one, made at most every few seconds (see ``Database.write_problem``); workers and
    queue are read at most every two seconds.
    """
    health = await services.operations.health()
    store = "ok"
    if not health.store_reachable:
        store = "unreachable"
    elif health.write_problem:
        store = "unwritable"
    status = "ok"
    if not health.healthy:
        status = "unavailable"
    elif health.degraded:
        status = "degraded"
    body: dict[str, Any] = {
        "status": status,
        "store": store,
        "executor": "ok" if health.executor_reachable else "unreachable",
        "workers": {
            "alive": health.workers.alive,
            "last_seen_seconds": _seconds(health.workers.last_seen_seconds),
        },
        "queued": health.queued,
    }
    if health.write_problem:
        body["store_error"] = health.write_problem
    return json_response(body, 200 if health.healthy else 503)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
