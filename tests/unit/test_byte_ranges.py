"""Byte ranges (parsing a Range header, reading a stored file by range) and money rounding."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from querybatch.domain.byte_ranges import ByteRange, RangeRequest, parse_range
from querybatch.domain.fields import FieldInfo
from querybatch.domain.precision import round_value, row_rounder
from querybatch.engine.bulk_io import read_range
from querybatch.store.bulk_files import CHUNK_BYTES
from querybatch.store.store import Store

lengths = st.integers(min_value=0, max_value=10**6)


@given(st.text(max_size=300), lengths)
def test_any_header_parses_to_a_range_inside_the_body_or_to_nothing(
    header: str, length: int
) -> None:
    asked = parse_range(header)
    chosen = None if asked is None else asked.resolve(length)
    if chosen is not None:
        assert 0 <= chosen.start <= chosen.end < length


@given(st.integers(0, 2000), st.integers(0, 2000), st.integers(1, 1500))
def test_a_first_last_range_is_the_slice_python_gives(first: int, span: int, length: int) -> None:
    body = bytes(range(256)) * 8
    body = body[:length]
    asked = parse_range(f"bytes={first}-{first + span}")
    assert asked is not None
    chosen = asked.resolve(length)
    if first >= length:
        assert chosen is None
    else:
        assert chosen is not None
        assert body[chosen.start : chosen.end + 1] == body[first : first + span + 1]


@given(st.integers(1, 3000), st.integers(1, 1500))
def test_a_suffix_range_is_the_last_bytes_or_all_of_a_shorter_body(
    suffix: int, length: int
) -> None:
    asked = parse_range(f"bytes=-{suffix}")
    assert asked == RangeRequest(None, None, suffix)
    assert asked.resolve(length) == ByteRange(max(length - suffix, 0), length - 1)


@pytest.mark.parametrize(
    "header",
    ["bytes=0-1,3-4", "bytes=5-2", "bytes=abc", "items=0-1", "bytes=", "bytes=1", None, "bytes=-"],
)
def test_multiple_reversed_or_malformed_ranges_are_ignored(header: str | None) -> None:
    assert parse_range(header) is None


def test_an_open_range_from_the_end_and_an_empty_suffix_are_unsatisfiable() -> None:
    assert RangeRequest(10, None).resolve(10) is None
    assert RangeRequest(None, None, 0).resolve(10) is None
    assert RangeRequest(0, None).resolve(0) is None


def test_units_are_case_insensitive_and_outer_spaces_are_ignored() -> None:
    assert parse_range(" Bytes=3-4 ") == RangeRequest(3, 4)


@given(st.lists(st.integers(0, 10**7), min_size=1, max_size=2000))
def test_a_float_sum_of_cents_prints_with_at_most_two_decimals(cents: list[int]) -> None:
    total = 0.0
    for c in cents:
        total += c / 100
    shown = round_value(total, 2)
    assert isinstance(shown, float)
    assert Decimal(repr(shown)) == Decimal(sum(cents)) / 100
    assert len(repr(shown).partition(".")[2]) <= 2


def test_rows_round_currency_columns_and_leave_integers_and_text_alone() -> None:
    infos = {
        "cost": FieldInfo("cost", "Cost", "met", "currency"),
        "rate": FieldInfo("rate", "Rate", "met", "float", decimals=1),
        "clicks": FieldInfo("clicks", "Clicks", "met", "int"),
        "ratio": FieldInfo("ratio", "Ratio", "met", "float"),
    }
    rounder = row_rounder(["name", "cost", "rate", "clicks", "ratio"], infos)
    assert rounder is not None
    row = ("a", 1259.9899999999998, 0.25000001, 7, 1 / 3)
    assert rounder([row]) == [("a", 1259.99, 0.3, 7, 1 / 3)]
    assert rounder([("a", None, -0.001, True, None)]) == [("a", None, 0.0, True, None)]
    assert row_rounder(["clicks"], infos) is None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'f.db'}", result_ttl=3600)
    try:
        yield opened
    finally:
        opened.close()


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 1), (CHUNK_BYTES - 3, CHUNK_BYTES + 3), (5, 2 * CHUNK_BYTES + 100), (9 * CHUNK_BYTES, 2)],
)
async def test_a_range_of_a_stored_file_reads_across_chunk_boundaries(
    store: Store, start: int, end: int
) -> None:
    body = bytes(i % 251 for i in range(2 * CHUNK_BYTES + 1000))
    file = store.files.create.blocking("acct", "result", 1.0)
    chunks = [body[i : i + CHUNK_BYTES] for i in range(0, len(body), CHUNK_BYTES)]
    store.files.write_chunks.blocking(file.id, list(enumerate(chunks)))
    read = b"".join([part async for part in read_range(store, file.id, start, end)])
    assert read == body[start:end]
