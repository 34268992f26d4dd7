"""Every test here runs against a scale-out stack: PostgreSQL, Redis and Celery workers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import DEPLOYMENT, drop_scaleout_schemas


@pytest.fixture(autouse=True)
def scaleout_only(postgres_url: str, redis_url: str) -> Iterator[None]:
    DEPLOYMENT.update(mode="scaleout", postgres=postgres_url, redis=redis_url)
    yield
    DEPLOYMENT["mode"] = "embedded"
    drop_scaleout_schemas()
