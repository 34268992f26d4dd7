"""The documentation pages (/docs, /redoc) and the security schemes /openapi.json declares.

Swagger UI and ReDoc come from the ``fastapi-standalone-docs`` package (which bundles their
distributions and licences), so the pages work with no outside network; their files are
served with long cache headers, the package version in each URL busting the cache when it
changes. Neither the pages nor their files need a key.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, Response
from starlette.types import Scope

from querybatch.api.deps import Authorize

ASSETS = Path(str(importlib.resources.files("fastapi_standalone_docs") / "static"))
ASSETS_VERSION = importlib.metadata.version("fastapi-standalone-docs")
CACHE_CONTROL = "public, max-age=31536000, immutable"

SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key of this server: `Authorization: Bearer <key>`.",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "query",
        "name": "api_key",
        "description": "An API key of this server in the `api_key` query parameter.",
    },
}
# Either scheme authorises a request.
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKey": []}]


class CachedStaticFiles(StaticFiles):
    """Static files a browser may keep for a year (their URLs change with their version)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        """The file, with a long-lived ``Cache-Control``."""
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = CACHE_CONTROL
        return response


def install_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc from the package's assets, and declare the key schemes.

    The app must be built with ``docs_url=None, redoc_url=None``.
    """
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False, name="swagger_ui_html")
    async def swagger_ui_html(request: Request) -> HTMLResponse:
        root = _root(request.scope)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{root}/docs/swagger-ui-bundle.js?v={ASSETS_VERSION}",
            swagger_css_url=f"{root}/docs/swagger-ui.css?v={ASSETS_VERSION}",
            swagger_favicon_url=f"{root}/docs/fastapi/favicon.png",
            # No online validator badge (it would call out), and the key survives a reload.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False, name="redoc_html")
    async def redoc_html(request: Request) -> HTMLResponse:
        root = _root(request.scope)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{root}/redoc/redoc.standalone.js?v={ASSETS_VERSION}",
            redoc_favicon_url=f"{root}/docs/fastapi/favicon.png",
            with_google_fonts=False,
        )

    # The more specific mount first. ReDoc loads its logo from <page>/logo-mini.svg.
    app.mount("/docs/fastapi", CachedStaticFiles(directory=ASSETS / "fastapi"), "docs_favicon")
    app.mount("/docs", CachedStaticFiles(directory=ASSETS / "swagger"), "swagger_ui_assets")
    app.mount("/redoc", CachedStaticFiles(directory=ASSETS / "redoc"), "redoc_assets")
    _declare_security(app)


def _root(scope: Scope) -> str:
    return str(scope.get("root_path", "")).rstrip("/")


def _declare_security(app: FastAPI) -> None:
    """Make /openapi.json declare the bearer and ``api_key`` schemes, as FastAPI documents.

    Every operation needs one of them, but those whose route has no :class:`Authorize`
    dependency (health, metrics, signed links), which say so with an empty ``security``.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            schema["security"] = SECURITY
            for path, route in _routes(app):
                operations = schema["paths"].get(path, {})
                if not any(isinstance(d.call, Authorize) for d in route.dependant.dependencies):
                    for method in route.methods or ():
                        if method.lower() in operations:
                            operations[method.lower()]["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _routes(app: FastAPI) -> Iterator[tuple[str, APIRoute]]:
    """(path, route) of every API route, including those of routers included lazily."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before routers were included lazily
        for route in app.routes:
            if isinstance(route, APIRoute):
                yield route.path_format, route
        return
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute) and context.path_format:
            yield context.path_format, context.original_route
