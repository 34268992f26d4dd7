"""The routes held flat in the app, and served again under each older prefix by a mount.

Since FastAPI 0.137, ``include_router`` keeps each included router as a wrapper that matches
its routes lazily through a per-route context, and the app walks every wrapper in turn
(then matches again inside the chosen one): with each router included three times, routing
cost more than some answers (see docs/performance.md). FastAPI has no flat inclusion, so the
app holds the routers' own routes (``router.routes``: their paths are whole and nothing is
added at inclusion, so they are what the wrappers matched and ran), and each prefix is one
:class:`PrefixMount` of a router holding the same routes. A mount leaves the request's
``path`` whole and moves the prefix into ``root_path``, which the framework strips before
matching: everything that echoes the path (404 and 405 messages, signed links, the prefix a
link is made under) still sees the path the client sent, and ``app_root_path`` keeps the
base URL of links.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fastapi import APIRouter
from starlette.routing import BaseRoute, Mount


def flat_routes(routers: Iterable[APIRouter]) -> list[BaseRoute]:
    """The routes of ``routers``, in order, to be held by the app itself.

    An ``APIRouter`` builds each route whole (its prefix, tags, dependencies, responses and
    body limit included), so a route held flat answers as it did included. What only an
    inclusion applies is refused: a router included in the router, the router's own form
    limits. (``app.dependency_overrides`` do not reach these routes; nothing here sets any.)
    """
    routes: list[BaseRoute] = []
    for router in routers:
        if router.form_limits:
            raise ValueError(f"{router!r}: form limits are applied only by an inclusion")
        for route in router.routes:
            if not hasattr(route, "path"):
                raise ValueError(f"{route!r}: an included router cannot be held flat")
            routes.append(route)
    return routes


class PrefixMount(Mount):
    """``routes`` under ``prefix``: ``{prefix}/x`` is served as ``/x`` is.

    The bare ``{prefix}/`` is not matched (a mount's pattern would take it), so that ``GET
    {prefix}`` answers 404 as it always did rather than a redirect to ``{prefix}/``, which
    the framework offers for any path a route matches with a slash added.
    """

    def __init__(self, prefix: str, routes: list[BaseRoute]) -> None:
        super().__init__(prefix, app=APIRouter(routes=routes))
        self.path_regex = re.compile(f"^{re.escape(prefix)}/(?P<path>.+)$")
