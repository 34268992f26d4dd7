"""When the store fails: lost deadlocks are retried, and runs stop waiting on a dead store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from querybatch.engine.executors.recorder import Recorder
from querybatch.errors import StoreUnavailable
from querybatch.store.database import WRITE_ATTEMPTS, Database, StoreConflict
from querybatch.store.records import WorkItem


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    opened = Database(f"sqlite:///{tmp_path / 'f.db'}")
    yield opened
    opened.close()


async def test_a_write_that_lost_a_deadlock_runs_again(db: Database) -> None:
    calls = 0

    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < WRITE_ATTEMPTS:
            raise StoreConflict("The database asked to retry the transaction")
        return "written"

    assert await db.write(flaky) == "written"
    assert calls == WRITE_ATTEMPTS


async def test_a_write_that_keeps_losing_gives_up(db: Database) -> None:
    calls = 0

    def hopeless() -> None:
        nonlocal calls
        calls += 1
        raise StoreConflict("The database asked to retry the transaction")

    with pytest.raises(StoreConflict):
        await db.write(hopeless)
    assert calls == WRITE_ATTEMPTS


async def test_other_store_errors_are_not_retried(db: Database) -> None:
    calls = 0

    def down() -> None:
        nonlocal calls
        calls += 1
        raise StoreUnavailable("The database is unavailable")

    with pytest.raises(StoreUnavailable):
        await db.write(down)
    assert calls == 1


async def test_when_the_store_is_down_waiting_runs_fail_and_the_recorder_goes_on() -> None:
    healthy = False

    async def record_runs(started: list[Any], ended: list[Any], *_: Any) -> Any:
        if not healthy:
            raise StoreUnavailable("The database is unavailable")
        return [True] * len(started), [True] * len(ended), []

    store = SimpleNamespace(runs=SimpleNamespace(record_runs=record_runs))
    recorder = Recorder(store, 30, lambda _ids: None)  # type: ignore[arg-type]
    recorder.start()
    item = WorkItem(1, "qrb_000000000001", "acme", 1, {}, "fp")
    with pytest.raises(StoreUnavailable):
        await recorder.started(item)
    healthy = True
    assert await asyncio.wait_for(recorder.started(item), 5) is True
    await recorder.close()
