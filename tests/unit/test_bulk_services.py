"""BulkBatches and Uploads on a real store, without HTTP: tenancy, cancel, delete, listing,
and what an upload accepts. The pipelines are a recording double: these are the rules the
routes used to hold, not the lifecycle (tests/api/test_bulk_batches.py drives that)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from itertools import pairwise
from pathlib import Path
from typing import cast

import pytest

from querybatch.domain.bulk import BulkBatchRequest, BulkStatus
from querybatch.engine.bulk import BulkRunner
from querybatch.engine.bulk_batches import BulkBatches, BulkRecord
from querybatch.engine.service import Caller
from querybatch.engine.uploads import Uploads
from querybatch.errors import Conflict, NotFound, PayloadTooLarge
from querybatch.settings import Settings
from querybatch.store.store import Store

TENANT = Caller(account="acct", key_id="key_1")
OTHER = Caller(account="other", key_id="key_2")
LIMIT = 64


class Pipelines:
    """Records what the services hand to the bulk pipelines of the node."""

    def __init__(self) -> None:
        self.made: list[str] = []
        self.poked: list[str] = []
        self.deleted: list[BulkRecord] = []

    async def created(self, batch_id: str) -> None:
        self.made.append(batch_id)

    def poke(self, batch_id: str) -> None:
        self.poked.append(batch_id)

    async def delete(self, record: BulkRecord) -> None:
        self.deleted.append(record)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'b.db'}", result_ttl=3600)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def pipelines() -> Pipelines:
    return Pipelines()


@pytest.fixture
def batches(store: Store, pipelines: Pipelines) -> BulkBatches:
    return BulkBatches(store, cast(BulkRunner, pipelines))


@pytest.fixture
def uploads(store: Store, tmp_path: Path) -> Uploads:
    return Uploads(store, Settings(data_dir=tmp_path, max_upload_bytes=LIMIT))


async def body(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def filled_upload(uploads: Uploads, caller: Caller = TENANT) -> str:
    upload = await uploads.create(caller)
    await uploads.receive(upload.handler, body(b'{"a":1}\n'), None)
    return upload.handler


async def new_batch(batches: BulkBatches, uploads: Uploads, caller: Caller = TENANT) -> str:
    handler = await filled_upload(uploads, caller)
    request = BulkBatchRequest(handler=handler, operation="get_data")
    return (await batches.create(caller, request)).id


async def test_a_new_batch_is_handed_to_this_nodes_pipelines(
    batches: BulkBatches, uploads: Uploads, pipelines: Pipelines
) -> None:
    batch_id = await new_batch(batches, uploads)
    assert pipelines.made == [batch_id]
    record = await batches.get(TENANT, batch_id)
    assert (record.status, record.account, record.key_id) == (BulkStatus.NEW, "acct", "key_1")


async def test_a_batch_needs_a_filled_upload_of_the_same_tenant(
    batches: BulkBatches, uploads: Uploads
) -> None:
    empty = await uploads.create(TENANT)
    with pytest.raises(Conflict):
        await batches.create(TENANT, BulkBatchRequest(handler=empty.handler, operation="get_data"))
    theirs = await filled_upload(uploads, OTHER)
    with pytest.raises(NotFound):
        await batches.create(TENANT, BulkBatchRequest(handler=theirs, operation="get_data"))


@pytest.mark.parametrize("ident", ["nope", "00000000-0000-0000-0000-000000000000", "A" * 300])
async def test_an_unknown_or_malformed_batch_is_not_found(batches: BulkBatches, ident: str) -> None:
    with pytest.raises(NotFound) as raised:
        await batches.get(TENANT, ident)
    assert raised.value.message == f"No batch '{ident[:64]}'"


async def test_another_tenants_batch_is_not_found_for_any_change(
    batches: BulkBatches, uploads: Uploads, pipelines: Pipelines
) -> None:
    batch_id = await new_batch(batches, uploads, OTHER)
    for attempt in (batches.get, batches.cancel, batches.delete):
        with pytest.raises(NotFound):
            await attempt(TENANT, batch_id)
    assert (await batches.get(OTHER, batch_id)).status is BulkStatus.NEW
    assert pipelines.poked == [] and pipelines.deleted == []


async def test_a_cancel_moves_the_batch_and_wakes_its_pipeline_once(
    batches: BulkBatches, uploads: Uploads, pipelines: Pipelines
) -> None:
    batch_id = await new_batch(batches, uploads)
    assert (await batches.cancel(TENANT, batch_id)).status is BulkStatus.CANCEL
    assert (await batches.cancel(TENANT, batch_id)).status is BulkStatus.CANCEL
    assert pipelines.poked == [batch_id]


async def test_a_batch_writing_its_results_cannot_be_cancelled(
    batches: BulkBatches, uploads: Uploads, store: Store
) -> None:
    batch_id = await new_batch(batches, uploads)
    path = [
        BulkStatus.COPYING,
        BulkStatus.COPIED,
        BulkStatus.VALIDATING,
        BulkStatus.PROCESSING,
        BulkStatus.PROCESSED,
        BulkStatus.WRITING_RESULTS,
    ]
    for source, target in pairwise([BulkStatus.NEW, *path]):
        assert await store.bulk.move(batch_id, source, target, 2.0)
    with pytest.raises(Conflict) as raised:
        await batches.cancel(TENANT, batch_id)
    assert raised.value.message == "A batch in status 'writing_results' cannot be cancelled"
    assert (await batches.get(TENANT, batch_id)).status is BulkStatus.WRITING_RESULTS


async def test_a_delete_answers_the_batch_as_it_went_and_hands_it_over(
    batches: BulkBatches, uploads: Uploads, pipelines: Pipelines
) -> None:
    batch_id = await new_batch(batches, uploads)
    gone = await batches.delete(TENANT, batch_id)
    assert gone.status is BulkStatus.DELETING
    assert gone.updated_ts == round(gone.updated_ts, 3)
    assert [record.id for record in pipelines.deleted] == [batch_id]


async def test_pages_run_oldest_first_and_newest_first_within_both_bounds(
    batches: BulkBatches, uploads: Uploads
) -> None:
    ids = [await new_batch(batches, uploads) for _ in range(3)]
    await new_batch(batches, uploads, OTHER)
    # Batches created within the same millisecond are ordered by id.
    created = {i: (await batches.get(TENANT, i)).created_ts for i in ids}
    made = sorted(ids, key=lambda i: (created[i], i))
    first = await batches.page(TENANT, ge=None, le=None, after=None, limit=2)
    assert list(first.statuses) == made[:2]
    assert first.after is not None and first.after[1] == made[1]
    rest = await batches.page(TENANT, ge=None, le=None, after=first.after, limit=2)
    assert (list(rest.statuses), rest.after) == (made[2:], None)
    newest = await batches.page(TENANT, ge=0, le=32503680000, after=None, limit=10)
    assert list(newest.statuses) == made[::-1]
    assert set(newest.statuses.values()) == {"new"}


async def test_a_batch_without_results_has_nothing_to_download(
    batches: BulkBatches, uploads: Uploads
) -> None:
    batch_id = await new_batch(batches, uploads)
    with pytest.raises(NotFound):
        await batches.download(batch_id)


async def test_an_upload_takes_one_file_and_reports_its_size_and_hash(uploads: Uploads) -> None:
    upload = await uploads.create(TENANT)
    received = await uploads.receive(upload.handler, body(b"ab", b"cd\n"), 5)
    assert (received.size, received.sha256) == (5, hashlib.sha256(b"abcd\n").hexdigest())
    with pytest.raises(Conflict):
        await uploads.receive(upload.handler, body(b"x"), None)


async def test_an_oversized_file_is_refused_and_leaves_the_upload_open(uploads: Uploads) -> None:
    upload = await uploads.create(TENANT)
    with pytest.raises(PayloadTooLarge):
        await uploads.receive(upload.handler, body(b"x"), LIMIT + 1)
    with pytest.raises(PayloadTooLarge):
        await uploads.receive(upload.handler, body(b"x" * LIMIT, b"y"), None)
    assert (await uploads.receive(upload.handler, body(b"z" * LIMIT), LIMIT)).size == LIMIT


async def test_only_the_owner_withdraws_an_upload_and_then_it_is_gone(uploads: Uploads) -> None:
    upload = await uploads.create(TENANT)
    with pytest.raises(NotFound):
        await uploads.withdraw(OTHER, upload.handler)
    await uploads.withdraw(TENANT, upload.handler)
    with pytest.raises(NotFound):
        await uploads.withdraw(TENANT, upload.handler)
    with pytest.raises(NotFound):
        await uploads.receive(upload.handler, body(b"x"), None)


async def test_an_upload_a_batch_is_copying_cannot_be_withdrawn(
    batches: BulkBatches, uploads: Uploads
) -> None:
    handler = await filled_upload(uploads)
    await batches.create(TENANT, BulkBatchRequest(handler=handler, operation="get_data"))
    with pytest.raises(Conflict) as raised:
        await uploads.withdraw(TENANT, handler)
    assert raised.value.message == "A batch is copying this upload"
