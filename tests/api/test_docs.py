"""The documentation pages' files and the key schemes of /openapi.json, over HTTP.

The pages themselves are rendered in a browser with no outside network in
tests/e2e/test_docs_offline.py.
"""

from __future__ import annotations

import re

import httpx

from support import ServerProcess

DEPLOYMENTS = ("embedded",)


def assets_of(page: str) -> list[str]:
    """The script, style and icon URLs a documentation page loads."""
    return re.findall(r'(?:src|href)="([^"]+)"', page)


def test_the_docs_pages_load_only_files_of_this_server(server: ServerProcess) -> None:
    for page in ("/docs", "/redoc"):
        answer = httpx.get(server.url + page, timeout=30)
        assert answer.status_code == 200
        urls = assets_of(answer.text)
        assert urls and all(url.startswith(("/docs/", "/redoc/")) for url in urls), urls


def test_the_docs_files_need_no_key_and_are_cached_for_long(server: ServerProcess) -> None:
    page = httpx.get(server.url + "/docs", timeout=30).text
    for url in assets_of(page):
        answer = httpx.get(server.url + url, timeout=30)
        assert answer.status_code == 200, url
        assert "max-age=31536000" in answer.headers["cache-control"], url
    logo = httpx.get(server.url + "/redoc/logo-mini.svg", timeout=30)
    assert logo.status_code == 200
    assert logo.headers["content-type"].startswith("image/svg")


def test_an_unknown_docs_file_is_a_404_in_the_envelope(server: ServerProcess) -> None:
    answer = httpx.get(server.url + "/docs/no-such-file.js", timeout=30)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "NOT_FOUND"


def test_openapi_declares_the_bearer_and_api_key_schemes(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearerAuth"]["description"],
    }
    assert schemes["apiKey"]["type"] == "apiKey"
    assert (schemes["apiKey"]["in"], schemes["apiKey"]["name"]) == ("query", "api_key")
    assert spec["security"] == [{"bearerAuth": []}, {"apiKey": []}]


def test_openapi_marks_the_routes_that_need_no_key(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    open_operations = {
        (method, path)
        for path, operations in paths.items()
        for method, operation in operations.items()
        if operation.get("security") == []
    }
    assert open_operations == {
        ("get", "/healthz"),
        ("get", "/metrics"),
        ("put", "/cache/{handler}"),
        ("get", "/batches/{batch}/results"),
    }
