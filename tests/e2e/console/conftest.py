"""What every browser test of the console shares: one server that logs requests (so that a
test can look for keys in its log), shared by the console's modules; one Chromium per module
saving downloads; where screenshots go."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver

from browser import chromium
from support import ServerProcess, shared_server


@pytest.fixture(scope="module")
def server(deployment: str, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """The console modules' server, logging at info."""
    return shared_server(deployment, tmp_path_factory, log_level="info")


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser saves files."""
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[WebDriver]:
    with chromium(downloads) as driver:
        yield driver


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``QB_CONSOLE_SCREENSHOTS`` if set (``docs/console/`` holds the
    committed ones), else a temporary directory."""
    chosen = os.environ.get("QB_CONSOLE_SCREENSHOTS")
    directory = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory
