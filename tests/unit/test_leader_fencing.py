"""A leader that froze keeps its PostgreSQL session, and with it the scheduler lock, for as
long as its kernel answers; a node that wants to lead ends its sessions once it has been
silent long enough, and never a live leader's, nor a session that is not querybatch's."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from querybatch.store.database import LOCK_PING_SECONDS, SESSION_PREFIX, Database

SCHEDULER_LOCK = 0x51BA7C6


@pytest.fixture
def url(pg_schema: tuple[str, str]) -> str:
    return pg_schema[0]


@pytest.fixture
def database(url: str) -> Iterator[Database]:
    db = Database(url)
    yield db
    db.close()


def frozen_holder(url: str, name: str) -> psycopg.Connection:
    """A session holding the scheduler lock of the schema and then doing nothing, as the
    lock session of a node stopped with SIGSTOP."""
    conn = psycopg.connect(url, autocommit=True, application_name=name)
    locked = conn.execute(
        "SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))", (SCHEDULER_LOCK,)
    ).fetchone()
    assert locked == (True,)
    return conn


def alive(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def test_a_silent_leaders_sessions_are_ended_and_the_lock_taken(
    url: str, database: Database
) -> None:
    holder = frozen_holder(url, f"{SESSION_PREFIX}frozen-host:4242")
    other = psycopg.connect(
        url, autocommit=True, application_name=f"{SESSION_PREFIX}frozen-host:4242"
    )
    assert database.try_lock("scheduler") is False
    time.sleep(1.2)
    assert database.fence_silent_holder("scheduler", silent_seconds=30) is None  # not yet
    fenced = database.fence_silent_holder("scheduler", silent_seconds=1)
    assert fenced == f"{SESSION_PREFIX}frozen-host:4242"
    assert not alive(holder) and not alive(other)  # every session of that process
    assert database.try_lock("scheduler") is True


def test_a_live_leader_is_never_fenced_however_idle_its_event_loop(
    url: str, database: Database
) -> None:
    leader = Database(url)
    try:
        assert leader.try_lock("scheduler") is True
        # Its lock session is used by a thread of its own, whatever the node does.
        time.sleep(LOCK_PING_SECONDS * 1.6)
        assert (
            database.fence_silent_holder("scheduler", silent_seconds=LOCK_PING_SECONDS * 1.5)
            is None
        )
        assert leader.lock_alive("scheduler") is True
        assert database.try_lock("scheduler") is False
    finally:
        leader.close()


def test_a_lock_held_by_a_session_that_is_not_querybatchs_is_left_alone(
    url: str, database: Database
) -> None:
    stranger = frozen_holder(url, "psql")
    time.sleep(1.2)
    assert database.fence_silent_holder("scheduler", silent_seconds=1) is None
    assert alive(stranger)
    stranger.close()
