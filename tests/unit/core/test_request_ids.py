"""Extra request ids of queries: they name their query, per tenant, and go with it."""

from __future__ import annotations

from fakes import create_batch
from sqlalchemy import update

from querybatch.domain.status import BatchStatus
from querybatch.store.store import Store
from querybatch.store.tables import batches

RESULT_TTL = 3600  # the core tests' store (conftest.py)


async def test_a_request_id_names_its_query_in_its_tenant_only_and_the_first_stays(
    store: Store,
) -> None:
    await create_batch(store, "qrb_000000000001", size=2, now=1000.0)
    first, second = await store.jobs.batch_queries("qrb_000000000001", 0, 10)
    assert await store.requests.add("acme", "req-1", first.id, 1001.0)
    assert not await store.requests.add("acme", "req-1", second.id, 1002.0)
    assert await store.requests.schedule_id_of("acme", "req-1") == first.schedule_id
    assert await store.requests.schedule_id_of("globex", "req-1") is None
    assert await store.requests.add("globex", "req-1", second.id, 1003.0)


async def test_request_ids_are_removed_with_their_expired_query(store: Store) -> None:
    await create_batch(store, "qrb_000000000002", size=1, now=1000.0)
    (query,) = await store.jobs.batch_queries("qrb_000000000002", 0, 10)
    await store.requests.add("acme", "req-2", query.id, 1001.0)
    with store.db.writing() as conn:
        conn.execute(
            update(batches)
            .where(batches.c.id == "qrb_000000000002")
            .values(status=BatchStatus.STOPPED, end_time=1002.0)
        )
    assert (await store.upkeep.expire_slice(1002.0 + RESULT_TTL + 1, 100)).batches == 1
    assert await store.requests.schedule_id_of("acme", "req-2") is None
