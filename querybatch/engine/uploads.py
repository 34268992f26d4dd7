"""Uploads of bulk batch files: open one, receive its file, withdraw it.

An upload is a handler valid for ``upload_ttl`` seconds. Its file streams into the store
chunk by chunk, into a part that becomes the upload's content only once the whole body
arrived, so a failed or oversized upload leaves it as it was. A filled upload takes no
second file, and lives ``upload_ttl`` seconds after it was filled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable
from dataclasses import dataclass

from querybatch.engine.bulk_io import ChunkWriter
from querybatch.engine.service import Caller
from querybatch.errors import Conflict, NotFound, PayloadTooLarge
from querybatch.settings import Settings
from querybatch.store.bulk_files import FileRecord
from querybatch.store.store import Store


@dataclass(frozen=True, slots=True)
class Upload:
    """A new upload: its handler, and until when (epoch seconds) it takes a file."""

    handler: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Received:
    """What an upload now holds."""

    handler: str
    size: int
    sha256: str


class Uploads:
    """The upload use-cases, over the store's files."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def create(self, caller: Caller) -> Upload:
        """A new, empty upload of the caller's tenant, valid for ``upload_ttl`` seconds."""
        now = time.time()
        expires = round(now + self.settings.upload_ttl, 3)
        upload = await self.store.files.create(caller.account, "upload", now, expires_at=expires)
        return Upload(upload.id, expires)

    async def receive(
        self, handler: str, body: AsyncIterable[bytes], declared_size: int | None
    ) -> Received:
        """Store ``body`` as the upload's file (whoever holds the signed link may send it).

        NOT_FOUND for an unknown handler; CONFLICT when the upload holds a file already;
        PAYLOAD_TOO_LARGE when the body (or its ``declared_size``) exceeds the maximum.
        """
        upload = await self.store.files.get(handler)
        if upload is None or upload.kind != "upload":
            raise NotFound(f"No upload with handler '{handler}'")
        if upload.state == "complete":
            raise _already_filled()
        limit = self.settings.max_upload_bytes
        if declared_size is not None and declared_size > limit:
            raise _too_large(limit)
        writer = await self._write_part(upload, body, limit)
        filled = await self.store.files.finish_upload(
            handler,
            writer.file_id,
            writer.size,
            writer.sha256,
            time.time() + self.settings.upload_ttl,
        )
        if not filled:
            raise _already_filled()
        return Received(handler, writer.size, writer.sha256)

    async def withdraw(self, caller: Caller, handler: str) -> None:
        """Delete the caller's upload and its file (batches keep their own copies).

        NOT_FOUND for an unknown or another tenant's handler; CONFLICT while a batch is
        still copying the file.
        """
        outcome = await self.store.files.withdraw_upload(caller.account, handler, time.time())
        if outcome == "missing":
            raise NotFound(f"No upload with handler '{handler}'")
        if outcome == "busy":
            raise Conflict(
                "A batch is copying this upload",
                "Delete it once the batch has left the copying status.",
            )

    async def _write_part(
        self, upload: FileRecord, body: AsyncIterable[bytes], limit: int
    ) -> ChunkWriter:
        """Stream the body into a new part file; dropped again if anything goes wrong."""
        store = self.store
        part = await store.files.create(
            upload.account, "part", time.time(), expires_at=upload.expires_at
        )
        writer = ChunkWriter(store, part.id)
        try:
            async for piece in body:
                if writer.size + len(piece) > limit:
                    raise _too_large(limit)
                await writer.write(piece)
            await writer.close()
        except BaseException:
            # Shielded: a client that hung up cancels this request, but not the clean-up.
            await asyncio.shield(store.files.delete(part.id))
            raise
        return writer


def _already_filled() -> Conflict:
    return Conflict(
        "A file was uploaded to this handler already",
        "An upload URL takes one file; ask for a new one with POST /cache.",
    )


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The file is larger than {limit} bytes.")
