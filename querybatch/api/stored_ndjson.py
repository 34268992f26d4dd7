"""A batch's download as ndjson, its values copied from the stored chunks' JSON.

A chunk is stored as orjson's compact JSON of its rows (``[["2024-01-01","a",3],...]``), and
each ndjson line holds the same values keyed by column (``{"schedule_id":...,"date":
"2024-01-01",...}``). Building a dictionary per row and encoding it again cost about two
thirds of a download of many small results; here each value's text is taken from the
chunk as it is and put into a line template of the sub-query's layout, by one bytes
formatting per chunk.

That is exact only where every comma and ``[`` of the chunk's text is the JSON's own:
the chunk is decoded (which checks that it is JSON, and gives each row's width), and when
every row has one value per field, the text holds exactly the commas and ``[`` those rows
need, and so none within a value, the split is the values'. Any other chunk (a value with
a comma, a nested list, a row of the wrong width) is decoded, laid out and encoded as
:func:`querybatch.api.formats.ndjson_stream` does, which the lines copied equal byte for
byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from itertools import chain, groupby
from operator import attrgetter

import orjson

from querybatch.engine.batch_rows import MAX_LAYOUTS, Layout, StoredBlocks, StoredRows
from querybatch.engine.result_rows import Columns

__all__ = ["ndjson_download"]

# Blocks of more rows than this are written on a thread, as CSV blocks are: thousands of
# rows take milliseconds, which every other request on the loop would wait.
THREAD_ROWS = 256


class _Lines:
    """The ndjson lines of the batch's stored rows, layout by layout."""

    def __init__(self, columns: Columns) -> None:
        self.ids = columns.ids
        self.keys = [orjson.dumps(i) for i in columns.ids]
        # Keys met twice make one key of the object (the later value): only the slow way
        # writes that as the encoder would.
        self.copyable = bool(self.ids) and len(set(self.ids)) == len(self.ids)
        self.start = b"{" + self.keys[0] + b":" if self.keys else b"{"
        self._tails: dict[Layout, bytes | None] = {}

    def block(self, block: list[StoredRows]) -> bytes:
        """Every line of a block."""
        return b"".join(
            [self._group(list(group)) for _, group in groupby(block, attrgetter("layout"))]
        )

    def _group(self, group: list[StoredRows]) -> bytes:
        """The lines of chunks of one layout: copied if they all allow it, else chunk by
        chunk, each copied if it allows it, else decoded and encoded again."""
        copied = self._copied(group)
        if copied is not None:
            return copied
        if len(group) > 1:
            return b"".join([self._group([stored]) for stored in group])
        stored = group[0]
        ids = self.ids
        return b"".join(
            orjson.dumps(dict(zip(ids, row, strict=True))) + b"\n"
            for row in stored.layout.rows(stored.schedule_id, stored.decoded())
        )

    def _copied(self, group: list[StoredRows]) -> bytes | None:
        """The lines of the chunks of ``group``, every value's text cut from their JSON;
        None unless each row has a value for each of the layout's fields and no value's
        text holds a comma, a ``[`` or a ``]`` (the module's docstring says why that
        makes the cut exact)."""
        layout = group[0].layout
        tail = self._tail(layout)
        if tail is None:
            return None
        group = [stored for stored in group if stored.payload != b"[]"]
        text = b"[" + b",".join([stored.payload for stored in group]) + b"]"
        chunks = orjson.loads(text)
        width = len(layout.targets)
        if set(map(len, chain.from_iterable(chunks))) != {width}:
            return None
        rows = sum(map(len, chunks))
        brackets = 1 + len(chunks) + rows  # the list of chunks, each chunk, each row
        if (
            text.count(b",") != rows * width - 1
            or text.count(b"[") != brackets
            or text.count(b"]") != brackets
        ):
            return None
        # [[[a,b],[c,d]],[[e,f]]] -> a,b,c,d,e,f
        values = tuple(text.translate(None, b"[]").split(b","))
        template = b"".join(
            [
                (self._head(stored.schedule_id) + tail) * len(rows_of)
                for stored, rows_of in zip(group, chunks, strict=True)
            ]
        )
        return template % values

    def _head(self, schedule_id: str) -> bytes:
        head = self.start + orjson.dumps(schedule_id) + b","
        return head.replace(b"%", b"%%") if b"%" in head else head

    def _tail(self, layout: Layout) -> bytes | None:
        """A line's template after the schedule id: each column of the layout's fields a
        ``%s`` for its value's text, the batch's other columns ``null`` (``%`` doubled)."""
        if layout in self._tails:
            return self._tails[layout]
        if len(self._tails) >= MAX_LAYOUTS:  # a batch of more sets than batch_rows keeps
            self._tails.clear()
        tail = None
        if self.copyable and layout.targets and layout.ascending:
            placed = set(layout.targets)
            pairs = [
                self.keys[i].replace(b"%", b"%%") + (b":%s" if i in placed else b":null")
                for i in range(1, layout.width)
            ]
            tail = b",".join(pairs) + b"}\n"
        self._tails[layout] = tail
        return tail


async def ndjson_download(columns: Columns, blocks: StoredBlocks) -> AsyncIterator[bytes]:
    """One JSON object per line, keyed by column, values typed (the ``ndjson`` format)."""
    lines = _Lines(columns)
    async with aclosing(blocks):
        async for block in blocks:
            if sum(stored.row_count for stored in block) > THREAD_ROWS:
                yield await asyncio.to_thread(lines.block, block)
            elif block:
                yield lines.block(block)
