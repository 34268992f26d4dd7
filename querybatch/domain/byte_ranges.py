"""HTTP ``Range: bytes=...`` headers (RFC 9110 section 14), reduced to what downloads serve.

Only a single range is served. A header the server may ignore is ignored, so the client
gets the whole body with 200, as RFC 9110 allows: one that does not parse, names another
unit, holds a range whose last byte comes before its first, or asks for more than one range
(a resumed download asks for one; multipart/byteranges answers help nobody here). A single
well-formed range that starts at or beyond the end is unsatisfiable (416).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ByteRange", "RangeRequest", "parse_range"]

MAX_HEADER = 200  # a single range is at most ``bytes=`` and two 19-digit numbers
_SINGLE = re.compile(r"bytes=(?:([0-9]{1,19})-([0-9]{0,19})|-([0-9]{1,19}))", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start`` to ``end`` of a body, both included."""

    start: int
    end: int

    @property
    def size(self) -> int:
        """How many bytes the range holds."""
        return self.end - self.start + 1

    def content_range(self, length: int) -> str:
        """The ``Content-Range`` header value for this range of a ``length``-byte body."""
        return f"bytes {self.start}-{self.end}/{length}"


@dataclass(frozen=True, slots=True)
class RangeRequest:
    """One range as asked: ``first``-``last`` (``last`` None: to the end), or the final
    ``suffix`` bytes (``first`` None)."""

    first: int | None
    last: int | None
    suffix: int | None = None

    def resolve(self, length: int) -> ByteRange | None:
        """The bytes this asks for in a ``length``-byte body; None when unsatisfiable."""
        if self.first is None:
            suffix = self.suffix or 0
            if suffix == 0 or length == 0:
                return None
            return ByteRange(max(length - suffix, 0), length - 1)
        if self.first >= length:
            return None
        last = length - 1 if self.last is None else min(self.last, length - 1)
        return ByteRange(self.first, last)


def parse_range(header: str | None) -> RangeRequest | None:
    """The single byte range ``header`` asks for, or None when it is to be ignored."""
    if header is None or len(header) > MAX_HEADER:
        return None
    match = _SINGLE.fullmatch(header.strip())
    if match is None:
        return None
    first, last, suffix = match.groups()
    if suffix is not None:
        return RangeRequest(None, None, int(suffix))
    start = int(first)
    end = int(last) if last else None
    if end is not None and end < start:
        return None
    return RangeRequest(start, end)
