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
    db = services.store.db
    store_ok = await db.read(db.ping)
    write_problem = await db.write_problem() if store_ok else None
    executor_ok = await services.engine.executor.healthy()
    healthy = store_ok and write_problem is None and executor_ok
    body: dict[str, Any] = {
        "status": "ok" if healthy else "unavailable",
        "store": "unreachable" if not store_ok else "unwritable" if write_problem else "ok",
        "executor": "ok" if executor_ok else "unreachable",
    }
    if write_problem:
        body["store_error"] = write_problem
    return json_response(body, 200 if healthy else 503)
