"""``/healthz`` (no key needed): is the server ready, can it reach its store."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from querybatch.api.answer import json_response
from querybatch.api.deps import ServicesDep

router = APIRouter(tags=["Operations"])


@router.get("/healthz", name="healthz", operation_id="healthz")
async def healthz(services: ServicesDep) -> Response:
    """200 with ``status: ok`` when the store and the executor answer, else 503."""
    store_ok = await services.store.db.read(services.store.db.ping)
    executor_ok = await services.engine.executor.healthy()
    healthy = store_ok and executor_ok
    body = {
        "status": "ok" if healthy else "unavailable",
        "store": "ok" if store_ok else "unreachable",
        "executor": "ok" if executor_ok else "unreachable",
    }
    return json_response(body, 200 if healthy else 503)
