"""A node checks at start that Celery can use its broker, not only that Redis answers.

Seen with a benchmark environment where another package pinned redis-py below what Celery's
transport accepts: the node started, answered, and failed every hand-over to the broker.
"""

from __future__ import annotations

import pytest
import redis

from querybatch.engine.executors.celery import check_broker
from querybatch.errors import ConfigurationError, ServiceUnavailable
from querybatch.settings import Settings


def test_a_reachable_broker_that_celery_can_use_passes(redis_url: str) -> None:
    check_broker(Settings(executor="celery", broker_url=redis_url))


def test_a_redis_client_celery_cannot_use_stops_the_start_with_the_fix(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis, "VERSION", (5, 3, 1))
    with pytest.raises(ConfigurationError) as raised:
        check_broker(Settings(executor="celery", broker_url=redis_url))
    assert raised.value.message == "Celery cannot use the installed Redis client"
    assert "pip install 'querybatch[celery]'" in (raised.value.description or "")


def test_an_unreachable_broker_is_named_without_its_password() -> None:
    settings = Settings(executor="celery", broker_url="redis://:secret@127.0.0.1:1/0")
    with pytest.raises(ServiceUnavailable) as raised:
        check_broker(settings)
    assert "secret" not in raised.value.message
