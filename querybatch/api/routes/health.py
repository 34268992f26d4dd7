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

    The write is a real one, made at most every few seconds (see ``Database.write_problem``).
    """
    health = await services.operations.health()
    store = "ok"
    if not health.store_reachable:
        store = "unreachable"
    elif health.write_problem:
        store = "unwritable"
    body: dict[str, Any] = {
        "status": "ok" if health.healthy else "unavailable",
        "store": store,
        "executor": "ok" if health.executor_reachable else "unreachable",
    }
    if health.write_problem:
        body["store_error"] = health.write_problem
    return json_response(body, 200 if health.healthy else 503)
