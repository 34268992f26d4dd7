"""The engine of one embedded node, assembled: batches in, runs out, cancel and restart.

The real scheduler loop, local executor, recorder and store on a temporary directory, with
the scripted data source; waits are on the engine's own notices, never on the clock.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fakes import WAIT, Hold, ScriptedConnector, claim, create_batch, queries_of, within

from querybatch.connectors.registry import SourceRegistry
from querybatch.domain.status import BatchStatus, QueryStatus
from querybatch.engine.executors.local import LocalExecutor
from querybatch.engine.factory import build_executor
from querybatch.engine.query_batches import QueryBatches
from querybatch.engine.service import Caller, Engine
from querybatch.settings import Settings
from querybatch.store.records import BatchRecord
from querybatch.store.store import Store

CALLER = Caller("acme", "key_1")


@pytest.fixture
def engine(tmp_path: Path, store: Store, sources: SourceRegistry) -> Engine:
    """An engine of the embedded default, not started yet."""
    settings = Settings(
        data_dir=tmp_path,
        database_url="sqlite:///" + str(tmp_path / "qb.db"),
        executor="local",
        demo_sources=False,
        workers=8,
        retries=1,
        retry_backoff=0,
    )
    return Engine(settings, store, sources, build_executor(settings, store, sources))


@pytest.fixture
async def started(engine: Engine) -> AsyncIterator[Engine]:
    """The engine, started, and stopped after the test."""
    await engine.start()
    yield engine
    await within(engine.stop())


def body(**settings: Any) -> dict[str, Any]:
    """A batch of one query for two accounts over two days."""
    query = {
        "ds_id": "FAKE",
        "ds_accounts": ["acc-1", "acc-2"],
        "start_date": "2026-01-01",
        "end_date": "2026-01-02",
        "fields": ["date", "account", "clicks"],
    }
    return {"queries": [query], **settings}


async def wait_stopped(engine: Engine, store: Store, batch_id: str) -> None:
    """Wait until the batch has stopped, woken by the engine's notice that it did."""

    async def stopped() -> bool:
        return await store.jobs.batch_status(batch_id) == "STOPPED"

    assert await within(engine.waiters.wait(batch_id, WAIT, stopped))


async def test_a_batch_submitted_to_the_engine_runs_every_sub_query_to_success(
    started: Engine, store: Store, connector: ScriptedConnector
) -> None:
    batch, created = await QueryBatches(started).submit(
        CALLER, body(split_accounts_policy="all", split_dates_policy="day")
    )
    assert created
    await wait_stopped(started, store, batch.id)
    queries = await queries_of(store, batch.id)
    assert [q.status for q in queries] == [QueryStatus.SUCCESS] * 4
    asked = sorted((c.accounts, c.start_date.isoformat()) for c in connector.calls)
    assert asked == [
        (("acc-1",), "2026-01-01"),
        (("acc-1",), "2026-01-02"),
        (("acc-2",), "2026-01-01"),
        (("acc-2",), "2026-01-02"),
    ]


async def test_cancelling_a_batch_while_sub_queries_run_keeps_results_and_starts_nothing_new(
    started: Engine, store: Store, connector: ScriptedConnector
) -> None:
    first, second, third = Hold(), Hold(), Hold()
    connector.script.extend([first, second, third])
    batch, _ = await QueryBatches(started).submit(
        CALLER, body(split_accounts_policy="all", split_dates_policy="day", query_concurrency=2)
    )
    await within(first.entered.wait())
    await within(second.entered.wait())
    first.release.set()
    await within(third.entered.wait())  # the freed slot went to the third sub-query
    assert isinstance(started.executor, LocalExecutor)
    await within(started.executor.recorder.drain())
    await QueryBatches(started).stop(batch)
    await wait_stopped(started, store, batch.id)
    assert (second.cancelled, third.cancelled) == (True, True)
    queries = await queries_of(store, batch.id)
    assert [q.status for q in queries] == [QueryStatus.SUCCESS] + [QueryStatus.STOPPED] * 3
    assert queries[0].result is not None
    stopped = await stored_batch(store, batch)
    assert stopped.status == BatchStatus.STOPPED
    assert stopped.cancel_time is not None
    assert len(connector.calls) == 3


async def test_a_start_runs_again_the_sub_queries_a_previous_process_left_claimed(
    engine: Engine, store: Store
) -> None:
    await create_batch(store, "qrb_restart", size=3, now=time.time())
    left = await claim(store, "qrb_restart", 2, time.time())  # the process died with these
    await engine.start()
    try:
        await wait_stopped(engine, store, "qrb_restart")
    finally:
        await within(engine.stop())
    queries = await queries_of(store, "qrb_restart")
    assert [q.status for q in queries] == [QueryStatus.SUCCESS] * 3
    assert [q.attempt for q in queries[: len(left)]] == [2, 2]


async def stored_batch(store: Store, batch: BatchRecord) -> BatchRecord:
    record = await store.jobs.get_batch(batch.account, batch.id, time.time())
    assert record is not None
    return record


async def test_expiry_holds_back_exactly_while_the_engine_is_at_work(
    started: Engine, store: Store, connector: ScriptedConnector
) -> None:
    assert not started.expiry.busy() and not started.at_work()
    hold = Hold()
    connector.script.append(hold)
    batch, _ = await QueryBatches(started).submit(CALLER, body())
    await within(hold.entered.wait())
    assert started.expiry.busy() and started.at_work()
    hold.release.set()
    await wait_stopped(started, store, batch.id)
    await within(started.scheduler.tick())
    assert not started.expiry.busy() and not started.at_work()
