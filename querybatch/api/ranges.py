"""Byte ranges of downloads: 206 for one range, 416 past the end, 200 for the rest.

A download can be resumed when its bytes are the same every time they are asked for. Such a
body has a strong ``ETag`` and answers ``Accept-Ranges: bytes``; one that changes (a batch
still running, a json page whose meta carries the request id) answers ``Accept-Ranges:
none`` and is always sent whole. The rules of ``domain/byte_ranges.py`` decide which range
is served; ``If-Range`` with anything but the current ETag asks for the whole body.

Starlette's ``FileResponse`` serves ranges of files on disk; these bodies are chunks in the
store or generated from rows, and it answers a malformed header with 400 where RFC 9110
says to ignore it, so ranges are served here. A stored file (a bulk results file) reads only
the chunks the range covers. A generated body is written to a spooled temporary file (in
memory up to 8 MiB, then on disk, off the event loop) only when a range is asked, at most
``range_spool_bytes``: a larger one is sent whole, as the server may.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import AsyncIterator, Callable
from typing import IO

from fastapi import Request
from starlette.responses import Response, StreamingResponse

from querybatch.domain.byte_ranges import RangeRequest, parse_range
from querybatch.errors import RangeNotSatisfiable

SPOOL_MEMORY = 8 * 1024 * 1024
BLOCK = 1024 * 1024
FORMAT_VERSION = 1  # changes when the bytes written for the same rows change

ReadRange = Callable[[int, int], AsyncIterator[bytes]]


def strong_etag(*parts: object) -> str:
    """A strong ETag naming a body by what it is made of (and this server's format version)."""
    digest = hashlib.sha256(repr((FORMAT_VERSION, *parts)).encode()).hexdigest()
    return f'"{digest[:32]}"'


def range_headers(etag: str | None) -> dict[str, str]:
    """``Accept-Ranges`` (and the ETag) of a body that is resumable when it has an ETag."""
    if etag is None:
        return {"Accept-Ranges": "none"}
    return {"Accept-Ranges": "bytes", "ETag": etag}


def asked_range(request: Request, etag: str | None) -> RangeRequest | None:
    """The one range to serve of a body with ``etag``; None: send it whole."""
    if etag is None:
        return None
    asked = parse_range(request.headers.get("range"))
    if asked is None:
        return None
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        return None
    return asked


def bytes_response(
    request: Request, body: bytes, etag: str | None, media_type: str, headers: dict[str, str]
) -> Response:
    """A body held whole: the range asked for, or all of it."""
    headers = headers | range_headers(etag)
    asked = asked_range(request, etag)
    if asked is None:
        return Response(body, media_type=media_type, headers=headers)
    chosen = asked.resolve(len(body))
    if chosen is None:
        raise RangeNotSatisfiable(len(body))
    headers["Content-Range"] = chosen.content_range(len(body))
    part = body[chosen.start : chosen.end + 1]
    return Response(part, status_code=206, media_type=media_type, headers=headers)


def stored_response(
    request: Request,
    length: int,
    etag: str,
    read: ReadRange,
    media_type: str,
    headers: dict[str, str],
) -> Response:
    """A stored body of ``length`` bytes; ``read(start, end)`` gives bytes start to end - 1."""
    headers = headers | range_headers(etag)
    asked = asked_range(request, etag)
    if asked is None:
        headers["Content-Length"] = str(length)
        return StreamingResponse(read(0, length), media_type=media_type, headers=headers)
    chosen = asked.resolve(length)
    if chosen is None:
        raise RangeNotSatisfiable(length)
    headers["Content-Range"] = chosen.content_range(length)
    headers["Content-Length"] = str(chosen.size)
    body = read(chosen.start, chosen.end + 1)
    return StreamingResponse(body, status_code=206, media_type=media_type, headers=headers)


async def generated_response(
    request: Request,
    etag: str | None,
    body: AsyncIterator[bytes],
    media_type: str,
    headers: dict[str, str],
    spool_limit: int,
) -> Response:
    """A body generated as it is sent; spooled first only to serve a range of it."""
    if spool_limit <= 0:
        etag = None  # spooling is turned off: no range of a generated body is served
    headers = headers | range_headers(etag)
    asked = asked_range(request, etag)
    if asked is None:
        return StreamingResponse(body, media_type=media_type, headers=headers)
    spool, length, rest = await _spool(body, spool_limit)
    if rest is not None:
        return StreamingResponse(
            _chain(_spooled(spool, 0, length, length), rest), media_type=media_type, headers=headers
        )
    chosen = asked.resolve(length)
    if chosen is None:
        spool.close()
        raise RangeNotSatisfiable(length)
    headers["Content-Range"] = chosen.content_range(length)
    headers["Content-Length"] = str(chosen.size)
    part = _spooled(spool, chosen.start, chosen.end + 1, length)
    return StreamingResponse(part, status_code=206, media_type=media_type, headers=headers)


async def _spool(
    body: AsyncIterator[bytes], limit: int
) -> tuple[IO[bytes], int, AsyncIterator[bytes] | None]:
    """The body written to a spool; if it outgrows ``limit``, also the part not written."""
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
    size = 0
    try:
        async for part in body:
            if size + len(part) > limit:
                return spool, size, _chain(_one(part), body)
            if size + len(part) > SPOOL_MEMORY:
                await asyncio.to_thread(spool.write, part)  # on disk now
            else:
                spool.write(part)
            size += len(part)
    except BaseException:
        spool.close()
        raise
    return spool, size, None


async def _spooled(spool: IO[bytes], start: int, end: int, length: int) -> AsyncIterator[bytes]:
    """Bytes ``start`` to ``end - 1`` of the spool, which is closed after."""
    on_disk = length > SPOOL_MEMORY
    try:
        spool.seek(start)
        left = end - start
        while left > 0:
            size = min(BLOCK, left)
            block = await asyncio.to_thread(spool.read, size) if on_disk else spool.read(size)
            if not block:
                return
            left -= len(block)
            yield block
    finally:
        spool.close()


async def _one(part: bytes) -> AsyncIterator[bytes]:
    yield part


async def _chain(*parts: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        async for block in part:
            yield block
