"""The app's route table: routes held flat, each served again under every prefix."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match, Mount

from querybatch.api.app import API_ROUTERS, PREFIXES, create_app
from querybatch.api.prefixes import PrefixMount, flat_routes
from querybatch.settings import Settings


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return create_app(Settings(data_dir=Path(tmp_path_factory.mktemp("routes"))))


def matched(routes: list[BaseRoute], method: str, path: str) -> BaseRoute | None:
    """The route that serves ``method path``, looking inside mounts as the router does."""
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    while True:
        for route in routes:
            match, child = route.matches(scope)
            if match == Match.FULL:
                break
        else:
            return None
        if not isinstance(route, Mount):
            return route
        scope.update(child)
        routes = route.routes


def test_the_app_holds_no_included_router(app: FastAPI) -> None:
    # FastAPI's wrapper of an included router has no path: it matches its routes lazily.
    assert [type(r).__name__ for r in app.routes if not hasattr(r, "path")] == []


@pytest.mark.parametrize("prefix", PREFIXES)
def test_every_api_route_is_the_same_route_under_a_prefix(app: FastAPI, prefix: str) -> None:
    for route in flat_routes(API_ROUTERS):
        assert isinstance(route, APIRoute)
        path = route.path_format.replace("{rest}", "a/b").format_map(
            {name: "1" for name in route.param_convertors}
        )
        method = sorted(route.methods)[0]
        found = matched(app.routes, method, path)
        assert found is not None, (method, path)
        assert matched(app.routes, method, prefix + path) is found, (method, prefix + path)


def test_only_api_routes_are_under_a_prefix(app: FastAPI) -> None:
    for path in ("/healthz", "/metrics", "/openapi.json", "/docs", "/console", "/", ""):
        for prefix in PREFIXES:
            assert matched(app.routes, "GET", prefix + path) is None, prefix + path


def test_a_router_that_includes_a_router_is_not_held_flat() -> None:
    outer, inner = APIRouter(), APIRouter()
    inner.add_api_route("/x", lambda: None)
    outer.include_router(inner)
    with pytest.raises(ValueError, match="cannot be held flat"):
        flat_routes([outer])


def test_a_prefix_mount_leaves_the_path_whole() -> None:
    mount = PrefixMount("/v2", [])
    scope = {"type": "http", "method": "GET", "path": "/v2/whoami", "root_path": ""}
    match, child = mount.matches(scope)
    assert match == Match.FULL and child["root_path"] == "/v2" and child["app_root_path"] == ""
    assert mount.matches({**scope, "path": "/v2/"})[0] == Match.NONE
