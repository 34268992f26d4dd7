"""A batch's download as ndjson, its values copied from the stored chunks' JSON.

A chunk is stored as orjson's compact JSON of its rows (``[["2024-01-01","a",3],...]``), and
each ndjson line holds the same values keyed by column (``{"schedule_id":...,"date":
"2024-01-01",...}``). Building a dictionary per row and encoding it again cost about two
thirds of a download of many small results; here each value's text is taken from the
chunk as it is and put into a line template of the sub-query's layout, by one bytes
formatting per chunk.

That is exact only where every comma and bracket of the chunks' text is the JSON's own,
which is checked without decoding it: taking out of the text every byte but ``"``, ``,``,
brackets, braces and backslashes, and then every ``""`` (a string with none of these
within), must leave exactly the structure of the chunks' rows, ``[[,,],[,,]]`` for two rows
of three values (the row counts are the store's). What is left otherwise tells a string
holding a comma, a bracket or an escape, a value that is a list or an object, or a row of
the wrong width. A chunk that fails the check is decoded, laid out and encoded as
:func:`querybatch.engine.result_rows.ndjson_lines` does, which the lines copied equal byte for
byte. A stopped batch's packs hold their lines already (engine.batch_packs): those are sent
as they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from itertools import groupby
from operator import attrgetter

import orjson

from querybatch.engine.batch_rows import MAX_LAYOUTS, Layout, StoredBlocks, StoredRows
from querybatch.engine.result_rows import Columns, ndjson_lines

__all__ = ["ndjson_download"]

# What the check of a chunk's JSON keeps of it: its structure, and what would tell a value
# that is more than plain text, a number, true, false or null.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'",[]{}\\')
MAX_SHAPES = 4096

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
        self._shapes: dict[tuple[int, int], bytes] = {}

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
        return ndjson_lines(self.ids, stored.layout.rows(stored.schedule_id, stored.decoded()))

    def _copied(self, group: list[StoredRows]) -> bytes | None:
        """The lines of the chunks of ``group``, every value's text cut from their JSON;
        None unless the JSON is a list of rows of the layout's width each, every value a
        string, number, boolean or null, and no string holds a comma, a bracket, a brace or
        an escape (the module's docstring says why that makes the cut exact)."""
        layout = group[0].layout
        if layout.pack == "lines":  # packed as the very lines
            return b"".join([stored.payload for stored in group])
        tail = self._tail(layout)
        if tail is None:
            return None
        group = [stored for stored in group if stored.payload != b"[]"]
        if not group:
            return b""
        text = b"[" + b",".join([stored.payload for stored in group]) + b"]"
        width = len(layout.targets)
        expected = b"[" + b",".join([self._shape(width, s.row_count) for s in group]) + b"]"
        if text.translate(None, _NOT_STRUCTURE).replace(b'""', b"") != expected:
            return None
        # [[[a,b],[c,d]],[[e,f]]] -> a,b,c,d,e,f
        values = tuple(text.translate(None, b"[]").split(b","))
        template = b"".join(
            [(self._head(stored.schedule_id) + tail) * stored.row_count for stored in group]
        )
        return template % values

    def _shape(self, width: int, rows: int) -> bytes:
        """What a chunk of ``rows`` rows of ``width`` plain values leaves of its JSON once
        everything but its structure is taken out (``[[,],[,]]``)."""
        key = (width, rows)
        shape = self._shapes.get(key)
        if shape is None:
            if len(self._shapes) >= MAX_SHAPES:
                self._shapes.clear()
            row = b"[" + b"," * (width - 1) + b"]"
            shape = self._shapes[key] = b"[" + b",".join([row] * rows) + b"]"
        return shape

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
        if self.copyable and layout.targets and layout.ascending and layout.pack is None:
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
