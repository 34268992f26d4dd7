"""The bulk batch lifecycle: its transition table, and the store refusing what it forbids."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from pydantic import ValidationError

from querybatch.domain.bulk import (
    BULK_TRANSITIONS,
    CANCELLABLE,
    FINAL_BULK_STATUSES,
    BulkBatchRequest,
    BulkStatus,
    IllegalTransition,
    can_move,
    check_move,
)
from querybatch.store.store import Store

S = BulkStatus
HAPPY_PATH = [
    S.NEW,
    S.COPYING,
    S.COPIED,
    S.VALIDATING,
    S.PROCESSING,
    S.PROCESSED,
    S.WRITING_RESULTS,
    S.COMPLETED,
]


def test_the_happy_path_is_a_chain_of_allowed_moves() -> None:
    for current, target in pairwise(HAPPY_PATH):
        assert can_move(current, target), (current, target)


def test_a_hash_mismatch_and_a_failed_validation_end_the_batch() -> None:
    assert can_move(S.COPYING, S.HASH_MISMATCH)
    assert can_move(S.VALIDATING, S.VALIDATION_FAILED)
    assert FINAL_BULK_STATUSES == {S.HASH_MISMATCH, S.VALIDATION_FAILED, S.COMPLETED, S.CANCELLED}


def test_a_cancel_is_accepted_until_results_are_written() -> None:
    for status in S:
        assert can_move(status, S.CANCEL) == (status in CANCELLABLE), status
    assert S.WRITING_RESULTS not in CANCELLABLE
    assert [s for s in (S.CANCEL, S.CANCELLING, S.CANCELLED) if s in CANCELLABLE] == []
    assert can_move(S.CANCEL, S.CANCELLING) and can_move(S.CANCELLING, S.CANCELLED)


def test_every_status_but_deleting_may_be_deleted_and_deleting_leads_nowhere() -> None:
    for status in S:
        assert can_move(status, S.DELETING) == (status is not S.DELETING)
    assert BULK_TRANSITIONS[S.DELETING] == frozenset()


def test_final_statuses_lead_only_to_deleting() -> None:
    for status in FINAL_BULK_STATUSES:
        assert status.is_final
        assert BULK_TRANSITIONS[status] == {S.DELETING}


def test_no_status_moves_to_itself_or_back_to_new() -> None:
    for status, targets in BULK_TRANSITIONS.items():
        assert status not in targets
        assert S.NEW not in targets


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.NEW, S.COMPLETED),
        (S.COPYING, S.PROCESSING),
        (S.COPIED, S.COPYING),
        (S.VALIDATION_FAILED, S.PROCESSING),
        (S.COMPLETED, S.CANCEL),
        (S.CANCELLED, S.CANCELLING),
        (S.PROCESSING, S.COMPLETED),
    ],
)
def test_an_illegal_move_raises(current: BulkStatus, target: BulkStatus) -> None:
    with pytest.raises(IllegalTransition):
        check_move(current, target)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'b.db'}", result_ttl=3600)
    try:
        yield opened
    finally:
        opened.close()


def _new_batch(store: Store) -> str:
    upload = store.files.create.blocking("acct", "upload", 1.0, expires_at=10_000.0)
    part = store.files.create.blocking("acct", "part", 1.0, expires_at=10_000.0)
    store.files.write_chunks.blocking(part.id, [(0, b"{}\n")])
    assert store.files.finish_upload.blocking(upload.id, part.id, 3, "0" * 64, 10_000.0)
    record = store.bulk.create.blocking(
        account="acct",
        key_id="key_1",
        operation="get_data",
        hash=None,
        description=None,
        upload_id=upload.id,
        now=2.0,
    )
    return record.id


def test_the_store_moves_only_from_the_expected_status(store: Store) -> None:
    batch_id = _new_batch(store)
    assert store.bulk.move.blocking(batch_id, S.NEW, S.COPYING, 3.0)
    assert not store.bulk.move.blocking(batch_id, S.NEW, S.COPYING, 4.0)  # it is not new any more
    record = store.bulk.get.blocking(batch_id)
    assert record is not None
    assert (record.status, record.created_ts, record.updated_ts) == (S.COPYING, 2.0, 3.0)


def test_the_store_refuses_an_illegal_move_and_changes_nothing(store: Store) -> None:
    batch_id = _new_batch(store)
    with pytest.raises(IllegalTransition):
        store.bulk.move.blocking(batch_id, S.NEW, S.COMPLETED, 3.0)
    record = store.bulk.get.blocking(batch_id)
    assert record is not None and record.status is S.NEW and record.updated_ts == 2.0


def test_a_batch_of_another_tenant_is_not_found(store: Store) -> None:
    batch_id = _new_batch(store)
    assert store.bulk.get.blocking(batch_id, "acct") is not None
    assert store.bulk.get.blocking(batch_id, "other") is None


def test_the_create_request_checks_hash_description_and_operation() -> None:
    ok = BulkBatchRequest.model_validate(
        {"handler": "upl_1", "operation": "get_data", "hash": "a" * 64, "description": {"k_1": 1}}
    )
    assert ok.hash == "a" * 64
    for bad in (
        {"operation": "get_data"},
        {"handler": "upl_1", "operation": "drop_tables"},
        {"handler": "upl_1", "operation": "get_data", "hash": "A" * 64},
        {"handler": "upl_1", "operation": "get_data", "hash": "a" * 63},
        {"handler": "upl_1", "operation": "get_data", "description": {"Bad": 1}},
        {"handler": "upl_1", "operation": "get_data", "description": {"1x": 1}},
        {"handler": "upl_1", "operation": "get_data", "description": {"x" * 65: 1}},
    ):
        with pytest.raises(ValidationError):
            BulkBatchRequest.model_validate(bad)
