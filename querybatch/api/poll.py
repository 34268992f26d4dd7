"""Answers clients poll: built once per state, sent with each request's own id, 304 when the
client holds them already, and with a hint of when to ask again.

A poll answer's JSON differs from one request to the next only in ``meta.request_id``. It is
written once per state of what it shows, with a placeholder for the id, and kept as the two
byte strings around it; each request joins them around its own id. Its ``ETag`` is a hash
of those bytes, so a client sending it back in ``If-None-Match`` while nothing changed gets
``304 Not Modified`` and no body. Answers about work that has not ended carry
``Retry-After`` (:mod:`querybatch.domain.poll_hint`).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from pydantic import BaseModel
from starlette.responses import Response

from querybatch.api.errors import request_id_of

PLACEHOLDER = "qb-request-id-placeholder"
_PLACEHOLDER_BYTES = PLACEHOLDER.encode()
MAX_KEPT = 4096


@dataclass(frozen=True, slots=True)
class PollAnswer:
    """An answer's JSON around its request id, its ETag and its ``Retry-After`` hint."""

    head: bytes
    tail: bytes
    etag: str
    retry_after: int | None

    @classmethod
    def of(cls, model: BaseModel, retry_after: int | None = None) -> PollAnswer:
        """The answer a response model (built with :data:`PLACEHOLDER` as its request id)
        writes."""
        return cls.split(model.model_dump_json(by_alias=True).encode(), retry_after)

    @classmethod
    def enveloped(cls, meta: BaseModel, data: bytes, retry_after: int | None) -> PollAnswer:
        """The ``{"meta": ..., "data": ...}`` answer of a meta model (with the placeholder)
        and data already written as JSON."""
        body = b'{"meta":' + meta.model_dump_json(by_alias=True).encode()
        return cls.split(body + b',"data":' + data + b"}", retry_after)

    @classmethod
    def split(cls, body: bytes, retry_after: int | None) -> PollAnswer:
        """The answer whose JSON is ``body``, around the placeholder."""
        head, _, tail = body.partition(_PLACEHOLDER_BYTES)
        digest = hashlib.blake2b(head, digest_size=16)
        digest.update(tail)
        return cls(head, tail, f'"{digest.hexdigest()}"', retry_after)

    def body(self, request_id: str) -> bytes:
        """The JSON as this request's answer."""
        return self.head + request_id.encode() + self.tail

    def held_by(self, if_none_match: str | None) -> bool:
        """Whether the client's ``If-None-Match`` names this answer already."""
        if not if_none_match:
            return False
        if if_none_match.strip() == "*":
            return True
        return any(tag.strip().removeprefix("W/") == self.etag for tag in if_none_match.split(","))

    def response(
        self,
        request: Request,
        status: int = 200,
        *,
        headers: dict[str, str] | None = None,
        media_type: str = "application/json",
    ) -> Response:
        """The answer to ``request``: 304 if a GET names it in ``If-None-Match``, else the
        JSON with ``status`` (and ``headers``)."""
        headers = (headers or {}) | {"ETag": self.etag, "Cache-Control": "no-cache"}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        if request.method == "GET" and self.held_by(request.headers.get("if-none-match")):
            return Response(status_code=304, headers=headers)
        body = self.body(request_id_of(request))
        return Response(body, status, headers=headers, media_type=media_type)


class AnswerCache:
    """The poll answers built lately, each with the state it was built from.

    An answer is reused while its key maps to the same state (and equal extras): the very
    object, which the engine hands every poll within its freshness window, or an equal one,
    read again and found unchanged.
    """

    def __init__(self, max_kept: int = MAX_KEPT) -> None:
        self.max_kept = max_kept
        self._kept: OrderedDict[Hashable, tuple[object, Any, PollAnswer]] = OrderedDict()

    def answer(
        self, key: Hashable, state: object, extra: Any, build: Callable[[], PollAnswer]
    ) -> PollAnswer:
        """The answer of ``key`` for ``state`` (and ``extra``), built only if it changed."""
        kept = self._kept.get(key)
        if kept is not None and (kept[0] is state or kept[0] == state) and kept[1] == extra:
            return kept[2]
        answer = build()
        self._kept[key] = (state, extra, answer)
        self._kept.move_to_end(key)
        while len(self._kept) > self.max_kept:
            self._kept.popitem(last=False)
        return answer
