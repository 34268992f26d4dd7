"""The console's pages and files: a small Starlette app that the API mounts at /console.

Pages are Jinja2 templates (autoescaped) that carry no data, only where the console and
the API are; their scripts do the rest through the public API. Static files are served
with their content hash in the URL, so a browser keeps them until they change.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import re
from os import PathLike
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Scope

from querybatch.console.headers import SecurityHeaders

CONSOLE_PATH = "/console"
STATIC = Path(str(importlib.resources.files("querybatch.console") / "static"))
CACHE_FOREVER = "public, max-age=31536000, immutable"
# What a batch id may look like in a page's path (the API answers "not found" for the rest).
BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def asset_versions(directory: Path = STATIC) -> dict[str, str]:
    """Each static file's path (relative, with '/') and the first 12 hex of its SHA-256."""
    return {
        path.relative_to(directory).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


class VersionedStaticFiles(StaticFiles):
    """The console's files; kept a year by the browser when asked for by a versioned URL."""

    def file_response(
        self,
        full_path: PathLike[str] | str,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        """The file, with a long ``Cache-Control`` when its URL names its version."""
        response = super().file_response(full_path, stat_result, scope, status_code)
        versioned = b"v=" in scope.get("query_string", b"")
        response.headers["Cache-Control"] = CACHE_FOREVER if versioned else "no-cache"
        return response


class Pages:
    """Renders the console's page shells."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("querybatch.console", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.versions = asset_versions()

    def render(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> Response:
        """``template`` as an HTML page that no cache keeps."""
        root = str(request.scope.get("root_path", "")).rstrip("/")
        api = root[: -len(CONSOLE_PATH)] if root.endswith(CONSOLE_PATH) else ""

        def static(name: str) -> str:
            return f"{root}/static/{name}?v={self.versions[name]}"

        html = self.env.get_template(template).render(
            console=root, api=api, static=static, **context
        )
        return HTMLResponse(html, status, headers={"Cache-Control": "no-store"})

    async def overview(self, request: Request) -> Response:
        """The overview: running and recent query batches."""
        return self.render(request, "overview.html")

    async def sign_in(self, request: Request) -> Response:
        """The sign-in page."""
        return self.render(request, "sign_in.html")

    async def batch(self, request: Request) -> Response:
        """One query batch; an id that cannot be one is not found."""
        batch_id = str(request.path_params["batch_id"])
        if BATCH_ID.fullmatch(batch_id) is None:
            return self.render(request, "not_found.html", status=404)
        return self.render(request, "batch.html", batch_id=batch_id)

    async def bulk(self, request: Request) -> Response:
        """The account's bulk batches, and a new one from a JSON Lines file."""
        return self.render(request, "bulk.html")

    async def bulk_batch(self, request: Request) -> Response:
        """One bulk batch; an id that cannot be one is not found."""
        batch_id = str(request.path_params["batch_id"])
        if BATCH_ID.fullmatch(batch_id) is None:
            return self.render(request, "not_found.html", status=404)
        return self.render(request, "bulk_batch.html", batch_id=batch_id)

    async def keys(self, request: Request) -> Response:
        """The account's keys and roles (the role must allow managing them)."""
        return self.render(request, "keys.html")

    async def sources(self, request: Request) -> Response:
        """The configured data sources, and a chosen one's fields and accounts."""
        return self.render(request, "sources.html")

    async def explore(self, request: Request) -> Response:
        """The query explorer: build a query, run it, copy it as a script."""
        return self.render(request, "explore.html")

    async def not_found(self, request: Request, exc: Exception) -> Response:
        """The page of a console path that names no page."""
        return self.render(request, "not_found.html", status=404)

    async def to_overview(self, request: Request) -> Response:
        """``/console/batches`` is the overview."""
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return RedirectResponse(f"{root}/", status_code=307)


async def to_console(request: Request) -> Response:
    """``/console`` is ``/console/``, answered ahead of the API's routes: the router's own
    redirect to the slashed path would walk (and so prepare) every one of them first."""
    return RedirectResponse(request.url.replace(path=f"{request.url.path}/"), status_code=307)


def console_app() -> ASGIApp:
    """The console as an ASGI app, to be mounted at :data:`CONSOLE_PATH`."""
    pages = Pages()
    routes = [
        Route("/", pages.overview, methods=["GET"], name="overview"),
        Route("/sign-in", pages.sign_in, methods=["GET"], name="sign_in"),
        Route("/explore", pages.explore, methods=["GET"], name="explore"),
        Route("/batches", pages.to_overview, methods=["GET"]),
        Route("/batches/{batch_id}", pages.batch, methods=["GET"], name="batch"),
        Route("/bulk", pages.bulk, methods=["GET"], name="bulk"),
        Route("/bulk/{batch_id}", pages.bulk_batch, methods=["GET"], name="bulk_batch"),
        Route("/keys", pages.keys, methods=["GET"], name="keys"),
        Route("/sources", pages.sources, methods=["GET"], name="sources"),
        Mount("/static", VersionedStaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={404: pages.not_found})
    return SecurityHeaders(app)
