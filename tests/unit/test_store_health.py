"""The store's write check behind /healthz: a real write, made at most every few seconds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from querybatch.store.database import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    opened = Database(f"sqlite:///{tmp_path / 'f.db'}")
    opened.migrate()
    yield opened
    opened.close()


async def test_a_store_that_takes_writes_has_no_write_problem(db: Database) -> None:
    assert await db.write_problem() is None


async def test_a_store_that_refuses_writes_says_why(tmp_path: Path, db: Database) -> None:
    read_only = Database(f"sqlite:///file:{tmp_path / 'f.db'}?mode=ro&uri=true")
    try:
        assert read_only.ping()
        problem = await read_only.write_problem()
    finally:
        read_only.close()
    assert problem is not None and "readonly" in problem


async def test_the_write_is_made_at_most_once_per_interval(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = 0
    heartbeat = db.heartbeat

    def counted() -> None:
        nonlocal writes
        writes += 1
        heartbeat()

    monkeypatch.setattr(db, "heartbeat", counted)
    for _ in range(50):
        assert await db.write_problem() is None
    assert writes == 1


async def test_a_write_problem_is_reported_until_a_later_write_works(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from querybatch.errors import StoreUnavailable
    from querybatch.store import database

    def refused() -> None:
        raise StoreUnavailable("The database is unavailable", "disk I/O error")

    monkeypatch.setattr(database, "WRITE_CHECK_SECONDS", 0.0)
    monkeypatch.setattr(db, "heartbeat", refused)
    assert await db.write_problem() == "disk I/O error"
    monkeypatch.undo()
    monkeypatch.setattr(database, "WRITE_CHECK_SECONDS", 0.0)
    assert await db.write_problem() is None
