"""A worker process's runtime: the chunks Celery's threads hand in run at once on one event
loop, each returns once its own sub-queries are written and announced, and a sub-query
delivered again while it runs here is not run twice.

The real runtime, store, recorder and runner, with the scripted data source in place of the
configured ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fakes import Hold, ScriptedConnector, claim, create_batch, queries_of, within

from querybatch.connectors.registry import SourceRegistry
from querybatch.domain.status import QueryStatus
from querybatch.engine.executors import runtime as runtime_module
from querybatch.engine.executors.runtime import WorkerRuntime
from querybatch.settings import Settings
from querybatch.store.records import WorkItem
from querybatch.store.store import Store


@dataclass
class Announced:
    """What the runtime told the leader, notice by notice."""

    notices: list[list[int]] = field(default_factory=list)
    stopped: list[list[str]] = field(default_factory=list)

    def __call__(self, items: Sequence[WorkItem], stopped: Sequence[str]) -> None:
        self.notices.append([item.query_id for item in items])
        self.stopped.append(list(stopped))

    @property
    def ids(self) -> list[int]:
        return [query_id for notice in self.notices for query_id in notice]


@pytest.fixture
async def worker(
    store: Store, sources: SourceRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[WorkerRuntime, Announced]]:
    monkeypatch.setattr(runtime_module, "build_sources", lambda _settings: sources)
    announced = Announced()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'qb.db'}", data_dir=tmp_path)
    runtime = WorkerRuntime(settings, announced)
    await runtime.open()
    yield runtime, announced
    await within(runtime.close())


async def test_chunks_run_at_once_and_each_returns_when_its_own_sub_queries_are_announced(
    worker: tuple[WorkerRuntime, Announced], store: Store, connector: ScriptedConnector
) -> None:
    runtime, announced = worker
    await create_batch(store, "qrb_chunks", size=3, now=time.time())
    first, second, third = await claim(store, "qrb_chunks", 3, time.time())
    hold = Hold()
    connector.script.append(hold)
    held = asyncio.create_task(runtime.run([first]))
    await within(hold.entered.wait())
    # The first chunk holds its only sub-query; the second runs and ends meanwhile.
    await within(runtime.run([second, third]))
    assert not held.done()
    assert sorted(announced.ids) == [second.query_id, third.query_id]
    assert announced.stopped == [[]] * len(announced.notices)  # one sub-query still runs
    hold.release.set()
    await within(held)
    assert announced.ids[-1] == first.query_id
    # The notice of the batch's last sub-query says the batch stopped, so that the leader
    # tells its pollers and waiters at once, not when it next reads the store.
    assert announced.stopped[-1] == ["qrb_chunks"]
    queries = await queries_of(store, "qrb_chunks")
    assert [q.status for q in queries] == [QueryStatus.SUCCESS] * 3


async def test_a_sub_query_delivered_again_while_it_runs_here_runs_once(
    worker: tuple[WorkerRuntime, Announced], store: Store, connector: ScriptedConnector
) -> None:
    runtime, announced = worker
    await create_batch(store, "qrb_again", size=1, now=time.time())
    [item] = await claim(store, "qrb_again", 1, time.time())
    hold = Hold()
    connector.script.append(hold)
    original = asyncio.create_task(runtime.run([item]))
    await within(hold.entered.wait())
    copy = asyncio.create_task(runtime.run([item]))  # the broker delivered it twice
    await asyncio.sleep(0.05)
    assert not copy.done()  # it waits for the run under way
    hold.release.set()
    await within(asyncio.gather(original, copy))
    assert len(connector.calls) == 1
    assert announced.ids == [item.query_id]
    [query] = await queries_of(store, "qrb_again")
    assert query.status == QueryStatus.SUCCESS


async def test_an_empty_chunk_returns_at_once(worker: tuple[WorkerRuntime, Announced]) -> None:
    runtime, announced = worker
    await within(runtime.run([]))
    assert announced.notices == []
