"""Bulk files in the store: chunked writing, reading lines across chunk boundaries, copying."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from querybatch.domain.bulk import BulkStatus
from querybatch.engine.bulk_io import ChunkWriter, Line, copy_file, read_lines
from querybatch.store.bulk_files import CHUNK_BYTES
from querybatch.store.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'f.db'}", result_ttl=3600)
    try:
        yield opened
    finally:
        opened.close()


def stored(store: Store, *chunks: bytes) -> str:
    file = store.files.create.blocking("acct", "batch", 1.0)
    store.files.write_chunks.blocking(file.id, list(enumerate(chunks)))
    return file.id


async def lines_of(store: Store, file_id: str, max_line: int = 100) -> list[Line]:
    return [line async for block in read_lines(store, file_id, max_line) for line in block]


async def test_lines_are_numbered_and_joined_across_chunks(store: Store) -> None:
    file_id = stored(store, b'{"a":1}\n{"b"', b":2}\r\n\n", b'{"c":3}')
    assert await lines_of(store, file_id) == [
        Line(1, b'{"a":1}'),
        Line(2, b'{"b":2}'),
        Line(3, b""),
        Line(4, b'{"c":3}'),
    ]


async def test_a_final_line_break_ends_the_last_line_without_adding_one(store: Store) -> None:
    assert await lines_of(store, stored(store, b"x\n", b"y\n")) == [Line(1, b"x"), Line(2, b"y")]
    assert await lines_of(store, stored(store)) == []


async def test_an_overlong_line_is_reported_without_being_kept(store: Store) -> None:
    file_id = stored(store, b"a" * 60, b"b" * 60 + b"\nok\n", b"c" * 150)
    assert await lines_of(store, file_id, max_line=100) == [
        Line(1, None),
        Line(2, b"ok"),
        Line(3, None),
    ]


async def test_the_writer_cuts_chunks_and_hashes_what_it_wrote(store: Store) -> None:
    data = bytes(range(256)) * (CHUNK_BYTES // 100)
    file = store.files.create.blocking("acct", "batch", 1.0)
    writer = ChunkWriter(store, file.id)
    for start in range(0, len(data), 70_000):
        await writer.write(data[start : start + 70_000])
    await writer.close()
    chunks = store.files.read_chunks.blocking(file.id, 0, 100)
    assert [len(c) for c in chunks[:-1]] == [CHUNK_BYTES] * (len(chunks) - 1)
    assert b"".join(chunks) == data
    record = store.files.get.blocking(file.id)
    assert record is not None and record.state == "complete"
    assert (record.size, record.sha256) == (len(data), hashlib.sha256(data).hexdigest())


async def test_a_copy_has_the_same_bytes_and_hash(store: Store) -> None:
    source = stored(store, b"one\n", b"two\n")
    target = store.files.create.blocking("acct", "batch", 1.0)
    size, sha = await copy_file(store, source, target.id)
    assert (size, sha) == (8, hashlib.sha256(b"one\ntwo\n").hexdigest())
    assert b"".join(store.files.read_chunks.blocking(target.id, 0, 10)) == b"one\ntwo\n"


def filled_upload(store: Store, expires_at: float = 10_000.0) -> str:
    upload = store.files.create.blocking("acct", "upload", 1.0, expires_at=expires_at)
    part = store.files.create.blocking("acct", "part", 1.0, expires_at=expires_at)
    store.files.write_chunks.blocking(part.id, [(0, b"{}\n")])
    assert store.files.finish_upload.blocking(upload.id, part.id, 3, "0" * 64, expires_at)
    return upload.id


def test_an_upload_a_batch_is_copying_is_neither_withdrawn_nor_swept(store: Store) -> None:
    handler = filled_upload(store, expires_at=50.0)
    batch = store.bulk.create.blocking(
        account="acct",
        key_id="key_1",
        operation="get_data",
        hash=None,
        description=None,
        upload_id=handler,
        now=2.0,
    )
    assert store.files.withdraw_upload.blocking("acct", handler, 3.0) == "busy"
    assert store.files.sweep.blocking(100.0, grace=0.0) == 0
    assert store.files.get.blocking(handler) is not None
    assert store.bulk.move.blocking(batch.id, BulkStatus.NEW, BulkStatus.COPYING, 4.0)
    assert store.files.withdraw_upload.blocking("acct", handler, 5.0) == "busy"
    assert store.bulk.move.blocking(batch.id, BulkStatus.COPYING, BulkStatus.COPIED, 6.0)
    assert store.files.withdraw_upload.blocking("other", handler, 7.0) == "missing"
    assert store.files.withdraw_upload.blocking("acct", handler, 8.0) == "deleted"
    assert store.files.get.blocking(handler) is None


def test_the_sweep_drops_expired_uploads_but_spares_an_empty_one_in_its_grace(
    store: Store,
) -> None:
    filled = filled_upload(store, expires_at=50.0)
    empty = store.files.create.blocking("acct", "upload", 1.0, expires_at=50.0).id
    assert store.files.sweep.blocking(60.0, grace=100.0) == 1
    assert store.files.get.blocking(filled) is None and store.files.get.blocking(empty) is not None
    assert store.files.sweep.blocking(200.0, grace=100.0) == 1
    assert store.files.get.blocking(empty) is None


def test_a_second_filling_of_an_upload_is_refused_and_drops_its_part(store: Store) -> None:
    handler = filled_upload(store)
    part = store.files.create.blocking("acct", "part", 1.0, expires_at=10_000.0)
    store.files.write_chunks.blocking(part.id, [(0, b"other")])
    assert not store.files.finish_upload.blocking(handler, part.id, 5, "1" * 64, 10_000.0)
    assert store.files.get.blocking(part.id) is None
    assert store.files.read_chunks.blocking(handler, 0, 10) == [b"{}\n"]
