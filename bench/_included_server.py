"""``querybatch serve`` with its routes as they were before they were held flat: every router
included, once and again under each prefix (``python -m bench._included_server serve``).

Only :mod:`bench.routing` runs it, as the baseline of the same run. It is the real command
with the app's routes rebuilt after :func:`~querybatch.api.app.create_app` built them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

import querybatch.api.app as app_module
from querybatch.api.prefixes import PrefixMount, flat_routes
from querybatch.api.routes import health, metrics
from querybatch.cli import main


def included(app: FastAPI) -> FastAPI:
    """``app`` with each router included (lazily, by FastAPI's wrappers) where its routes were."""
    routes = app.router.routes
    held = {id(r) for r in flat_routes((health.router, metrics.router, *app_module.API_ROUTERS))}
    moved = [r for r in routes if id(r) in held or isinstance(r, PrefixMount)]
    at = routes.index(moved[0])
    rest = [r for r in routes[at:] if r not in moved]
    del routes[at:]
    app.include_router(health.router)
    app.include_router(metrics.router)
    for router in app_module.API_ROUTERS:
        app.include_router(router)
    for prefix in app_module.PREFIXES:
        for router in app_module.API_ROUTERS:
            app.include_router(router, prefix=prefix, include_in_schema=False)
    routes.extend(rest)
    return app


def _create_included_app(*args: Any, **kwargs: Any) -> FastAPI:
    return included(_create_app(*args, **kwargs))


_create_app = app_module.create_app

if __name__ == "__main__":
    app_module.create_app = _create_included_app  # what ``serve`` imports when it runs
    main()
