"""A batch's ndjson download copies values from the stored chunks' JSON: the lines must be
byte for byte those that decoding, laying out and encoding every row gives, whatever the
values hold (commas, brackets, quotes, ``%``, nested lists) and whatever the layout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from querybatch.api.formats import ndjson_stream
from querybatch.api.stored_ndjson import ndjson_download
from querybatch.engine.batch_rows import Layout, StoredRows, decoded_rows
from querybatch.engine.result_rows import Columns
from querybatch.store.results import encode_rows

SCALARS = st.one_of(
    st.text(),
    # Text that holds what the copy cuts at: commas and brackets, alone or together.
    st.sampled_from(["a,b", "[x]", "],[", "a]", "[", "]]", '"', "%s", "%", "", "x\\y", "é,[,]"]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=3), SCALARS, max_size=2),
)
FIELD_IDS = st.lists(
    st.one_of(st.text(min_size=1, max_size=6), st.sampled_from(["%s", "a,b", "[", '"q"'])),
    min_size=1,
    max_size=5,
    unique=True,
).filter(lambda ids: "schedule_id" not in ids)


def _columns(field_ids: list[str]) -> Columns:
    ids = ["schedule_id", *field_ids]
    return Columns(ids, ids, ["string"] * len(ids))


async def _blocks(blocks: list[list[StoredRows]]) -> AsyncGenerator[list[StoredRows]]:
    for block in blocks:
        yield block


async def _body(stream: Any) -> bytes:
    return b"".join([part async for part in stream])


def _both(columns: Columns, blocks: list[list[StoredRows]]) -> tuple[bytes, bytes]:
    copied = asyncio.run(_body(ndjson_download(columns, _blocks(blocks))))
    expected = asyncio.run(_body(ndjson_stream(columns, decoded_rows(_blocks(blocks)))))
    return copied, expected


@st.composite
def downloads(draw: st.DrawFn) -> tuple[Columns, list[list[StoredRows]]]:
    field_ids = draw(FIELD_IDS)
    columns = _columns(field_ids)
    blocks = []
    for b in range(draw(st.integers(1, 3))):
        block = []
        for s in range(draw(st.integers(1, 4))):
            if draw(st.booleans()) and draw(st.booleans()):  # a pack's rows, their ids first
                width = len(columns.ids)
                rows = draw(st.lists(st.lists(VALUES, min_size=width - 1, max_size=width - 1)))
                wide = [[f"qrb_1_query_{b}{s}{n}", *row] for n, row in enumerate(rows)]
                layout = Layout(columns, columns.ids, pack="rows")
                block.append(StoredRows("", layout, encode_rows(wide), len(wide)))
                continue
            # Each sub-query asks for some of the batch's fields, in any order.
            fields = draw(st.permutations(field_ids).flatmap(lambda p: st.just(p)))
            fields = fields[: draw(st.integers(1, len(fields)))]
            rows = draw(st.lists(st.lists(VALUES, min_size=len(fields), max_size=len(fields))))
            schedule_id = draw(st.sampled_from([f"qrb_1_query_{b}{s}", "q%s", 'q"1,[']))
            block.append(
                StoredRows(schedule_id, Layout(columns, fields), encode_rows(rows), len(rows))
            )
        blocks.append(block)
    return columns, blocks


@settings(max_examples=300, deadline=None)
@given(downloads())
def test_copied_lines_equal_the_lines_of_decoded_rows(
    download: tuple[Columns, list[list[StoredRows]]],
) -> None:
    copied, expected = _both(*download)
    assert copied == expected


def test_plain_values_are_copied_not_encoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The common case takes the copy (else the test above proves nothing of it): the
    chunk's three rows cost one encoding, of the schedule id, not one per row."""
    from querybatch.api import stored_ndjson

    columns = _columns(["date", "clicks"])
    rows = [["2024-01-01", 3], ["2024-01-02", 4.5], ["2024-01-03", None]]
    stored = StoredRows("qrb_1_query_1", Layout(columns, ["date", "clicks"]), encode_rows(rows), 3)
    lines = stored_ndjson._Lines(columns)
    encoded: list[object] = []
    dumps = stored_ndjson.orjson.dumps

    def counted(value: object) -> bytes:
        encoded.append(value)
        return dumps(value)

    monkeypatch.setattr(stored_ndjson.orjson, "dumps", counted)
    assert lines.block([stored]) == (
        b'{"schedule_id":"qrb_1_query_1","date":"2024-01-01","clicks":3}\n'
        b'{"schedule_id":"qrb_1_query_1","date":"2024-01-02","clicks":4.5}\n'
        b'{"schedule_id":"qrb_1_query_1","date":"2024-01-03","clicks":null}\n'
    )
    assert encoded == ["qrb_1_query_1"]


def test_a_pack_s_lines_are_sent_as_they_are_between_copied_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from querybatch.api import stored_ndjson

    columns = _columns(["date", "clicks"])
    lines = b'{"schedule_id":"qrb_1_query_1","date":"2024-01-01","clicks":3}\n'
    pack = StoredRows("", Layout(columns, columns.ids, pack="lines"), lines, 1)
    chunk = StoredRows(
        "qrb_1_query_2", Layout(columns, ["date", "clicks"]), encode_rows([["2024-01-02", 4]]), 1
    )
    writer = stored_ndjson._Lines(columns)
    dumps = stored_ndjson.orjson.dumps
    encoded: list[object] = []

    def counted(value: object) -> bytes:
        encoded.append(value)
        return dumps(value)

    monkeypatch.setattr(stored_ndjson.orjson, "dumps", counted)
    assert writer.block([pack, chunk, pack]) == (
        lines + b'{"schedule_id":"qrb_1_query_2","date":"2024-01-02","clicks":4}\n' + lines
    )
    assert encoded == ["qrb_1_query_2"]


@pytest.mark.parametrize(
    "rows",
    [
        [["a,b"]],  # one value short, its comma standing in for the missing one
        [["x", 1, 2]],  # one value too many
        [[{"a": 1, "b": 2}]],  # one value short, an object's comma standing in
        [['a","b']],  # one value short, escaped quotes around a comma
    ],
)
def test_rows_of_the_wrong_width_fail_as_they_did(rows: list[list[Any]]) -> None:
    columns = _columns(["date", "clicks"])
    stored = StoredRows("q", Layout(columns, ["date", "clicks"]), encode_rows(rows), len(rows))
    outcomes = []
    for stream in (
        ndjson_download(columns, _blocks([[stored]])),
        ndjson_stream(columns, decoded_rows(_blocks([[stored]]))),
    ):
        try:
            outcomes.append(asyncio.run(_body(stream)))
        except ValueError as exc:
            outcomes.append(type(exc))
    assert outcomes[0] == outcomes[1]
