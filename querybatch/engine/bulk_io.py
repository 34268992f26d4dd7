"""Streaming bulk files in and out of the store: a chunked writer, chunk and line readers.

Everything here holds at most a few chunks (about 1 MiB each) at a time, whatever the size
of the file, and hashes bytes as they pass.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from querybatch.store.bulk_files import CHUNK_BYTES
from querybatch.store.store import Store

READ_AHEAD = 4  # chunks fetched per store read


class ChunkWriter:
    """Appends bytes to a stored file, one chunk per ``CHUNK_BYTES``, hashing as it goes."""

    def __init__(self, store: Store, file_id: str) -> None:
        self.store = store
        self.file_id = file_id
        self.size = 0
        self._sha = hashlib.sha256()
        self._buffer = bytearray()
        self._seq = 0

    @property
    def sha256(self) -> str:
        """The hex SHA-256 of everything written so far."""
        return self._sha.hexdigest()

    async def write(self, data: bytes) -> None:
        """Add ``data``; full chunks go to the store at once (so memory stays bounded)."""
        self.size += len(data)
        self._sha.update(data)
        self._buffer += data
        if len(self._buffer) >= CHUNK_BYTES:
            await self._flush(whole_chunks_only=True)

    async def close(self) -> None:
        """Store what is buffered and mark the file complete with its size and hash."""
        await self._flush(whole_chunks_only=False)
        await self.store.files.complete(self.file_id, self.size, self.sha256)

    async def _flush(self, *, whole_chunks_only: bool) -> None:
        chunks: list[tuple[int, bytes]] = []
        while len(self._buffer) >= CHUNK_BYTES or (self._buffer and not whole_chunks_only):
            chunks.append((self._seq, bytes(self._buffer[:CHUNK_BYTES])))
            del self._buffer[:CHUNK_BYTES]
            self._seq += 1
        await self.store.files.write_chunks(self.file_id, chunks)


async def read_chunks(store: Store, file_id: str) -> AsyncIterator[bytes]:
    """The chunks of a stored file, in order."""
    seq = 0
    while True:
        chunks = await store.files.read_chunks(file_id, seq, READ_AHEAD)
        for chunk in chunks:
            yield chunk
        if len(chunks) < READ_AHEAD:
            return
        seq += len(chunks)


async def read_range(store: Store, file_id: str, start: int, end: int) -> AsyncIterator[bytes]:
    """Bytes ``start`` to ``end - 1`` of a file a :class:`ChunkWriter` wrote, reading only
    the chunks that hold them (every chunk but the last is ``CHUNK_BYTES`` long)."""
    seq, skip = divmod(start, CHUNK_BYTES)
    left = end - start
    while left > 0:
        chunks = await store.files.read_chunks(file_id, seq, READ_AHEAD)
        for chunk in chunks:
            piece = chunk[skip : skip + left]
            skip = 0
            if piece:
                left -= len(piece)
                yield piece
            if left <= 0:
                return
        if len(chunks) < READ_AHEAD:
            return
        seq += len(chunks)


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a JSON Lines file: its number (from 1) and bytes (None when too long)."""

    number: int
    data: bytes | None


async def read_lines(store: Store, file_id: str, max_line: int) -> AsyncIterator[list[Line]]:
    """The lines of a stored file, a chunk's worth at a time, without their line breaks.

    A file ending with a line break has no empty last line (JSON Lines). A line longer than
    ``max_line`` bytes is given as ``data=None`` and never held whole.
    """
    number = 0
    pending = bytearray()
    too_long = False
    async for chunk in read_chunks(store, file_id):
        lines: list[Line] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if not too_long:
                pending += chunk[start:end]
            number += 1
            too_long = too_long or len(pending) > max_line
            lines.append(Line(number, None if too_long else _strip_cr(bytes(pending))))
            pending.clear()
            too_long = False
            start = end + 1
        if not too_long:
            pending += chunk[start:]
            if len(pending) > max_line:
                too_long = True
                pending.clear()
        yield lines
    if pending or too_long:
        yield [Line(number + 1, None if too_long else _strip_cr(bytes(pending)))]


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


async def copy_file(store: Store, source_id: str, target_id: str) -> tuple[int, str]:
    """Copy a stored file into another (empty) one; (size, hex SHA-256) of what was copied."""
    writer = ChunkWriter(store, target_id)
    async for chunk in read_chunks(store, source_id):
        await writer.write(chunk)
    await writer.close()
    return writer.size, writer.sha256


async def drop_files(store: Store, batch_id: str, *kinds: str) -> None:
    """Delete a batch's files of these kinds (a step that starts over writes them anew)."""
    await store.files.delete_batch_files(batch_id, kinds)


async def new_file(store: Store, account: str, kind: str, batch_id: str) -> str:
    """A new empty file of a batch; its id."""
    record = await store.files.create(account, kind, time.time(), batch_id=batch_id)
    return record.id
