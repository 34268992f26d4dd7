"""Every test here runs once per deployment (embedded, and PostgreSQL + Celery)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _each_deployment(deployment: str) -> str:
    return deployment
