from __future__ import annotations

import math
import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from querybatch.domain.fields import Row, Value
from querybatch.domain.filters import OrderKey, parse_order, sort_rows

COLUMNS = ("id", "a", "b")

# parse_order


def test_a_comma_separated_string_gives_keys_in_order() -> None:
    assert parse_order("impressions desc, date") == (
        OrderKey("impressions", descending=True),
        OrderKey("date"),
    )


def test_a_list_of_terms_gives_keys_in_order() -> None:
    assert parse_order(["impressions desc", "date asc"]) == (
        OrderKey("impressions", descending=True),
        OrderKey("date", descending=False),
    )


def test_directions_are_case_insensitive() -> None:
    assert parse_order("a DESC, b Asc") == (OrderKey("a", True), OrderKey("b", False))


def test_the_default_direction_is_ascending() -> None:
    assert parse_order("  a  ") == (OrderKey("a"),)


def test_a_blank_string_means_no_ordering() -> None:
    assert parse_order("  ") == ()


def test_an_empty_list_means_no_ordering() -> None:
    assert parse_order([]) == ()


def test_an_empty_term_between_commas_is_an_error() -> None:
    with pytest.raises(ValueError, match="order term 2 is empty"):
        parse_order("a,,b")


def test_an_empty_list_item_is_an_error() -> None:
    with pytest.raises(ValueError, match="order term 2 is empty"):
        parse_order(["a", " "])


def test_a_bad_direction_is_an_error() -> None:
    with pytest.raises(ValueError, match="the direction must be asc or desc, got 'up'"):
        parse_order("a up")


def test_a_bad_field_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="order term 2: '9lives' is not a valid field name"):
        parse_order("a, 9lives desc")


def test_a_term_with_too_many_words_is_an_error() -> None:
    with pytest.raises(ValueError, match="order term 1 \\('a desc now'\\) has too many words"):
        parse_order("a desc now")


def test_a_duplicate_field_is_an_error() -> None:
    with pytest.raises(ValueError, match="order field 'a' appears more than once"):
        parse_order("a desc, b, a")


# sort_rows


def sort(rows: list[Row], order: str, limit: int | None = None) -> list[Row]:
    return sort_rows(rows, parse_order(order), COLUMNS, limit)


def ids(rows: list[Row]) -> list[Value]:
    return [row[0] for row in rows]


def test_rows_sort_ascending_by_one_key() -> None:
    assert ids(sort([(1, 3, 0), (2, 1, 0), (3, 2, 0)], "a")) == [2, 3, 1]


def test_rows_sort_descending_by_one_key() -> None:
    assert ids(sort([(1, 3, 0), (2, 1, 0), (3, 2, 0)], "a desc")) == [1, 3, 2]


def test_later_keys_break_ties_in_earlier_keys() -> None:
    rows: list[Row] = [(1, 1, "x"), (2, 0, "y"), (3, 1, "z")]
    assert ids(sort(rows, "a desc, b desc")) == [3, 1, 2]


def test_equal_rows_keep_their_input_order_when_descending() -> None:
    assert ids(sort([(1, 5, 0), (2, 5, 0), (3, 5, 0)], "a desc")) == [1, 2, 3]


def test_none_sorts_last_when_ascending() -> None:
    assert ids(sort([(1, None, 0), (2, 2, 0), (3, 1, 0)], "a")) == [3, 2, 1]


def test_none_sorts_last_when_descending() -> None:
    assert ids(sort([(1, None, 0), (2, 1, 0), (3, 2, 0)], "a desc")) == [3, 2, 1]


def test_numbers_sort_numerically_not_as_text() -> None:
    assert ids(sort([(1, 10, 0), (2, 9, 0), (3, 9.5, 0)], "a")) == [2, 3, 1]


def test_mixed_numbers_and_text_sort_numbers_first_without_crashing() -> None:
    assert ids(sort([(1, "b", 0), (2, 10, 0), (3, "a", 0), (4, 2, 0)], "a")) == [4, 2, 3, 1]


def test_nan_sorts_with_text_and_does_not_break_the_order() -> None:
    assert ids(sort([(1, math.nan, 0), (2, 1, 0), (3, 0, 0)], "a")) == [3, 2, 1]


def test_no_keys_keeps_the_input_order() -> None:
    assert ids(sort_rows([(2, 0, 0), (1, 0, 0)], (), COLUMNS)) == [2, 1]


def test_no_keys_with_a_limit_takes_the_first_rows() -> None:
    assert ids(sort_rows(iter([(2, 0, 0), (1, 0, 0)]), (), COLUMNS, limit=1)) == [2]


def test_a_limit_keeps_only_the_first_rows() -> None:
    assert ids(sort([(1, 3, 0), (2, 1, 0), (3, 2, 0)], "a", limit=2)) == [2, 3]


def test_a_limit_of_zero_gives_no_rows() -> None:
    assert sort([(1, 3, 0)], "a", limit=0) == []


def test_a_negative_limit_is_an_error() -> None:
    with pytest.raises(ValueError, match="limit must not be negative, got -1"):
        sort([(1, 3, 0)], "a", limit=-1)


def test_a_key_that_is_not_a_column_is_an_error() -> None:
    with pytest.raises(ValueError, match="cannot order by 'clicks'"):
        sort([(1, 3, 0)], "clicks")


def test_a_limit_keeps_memory_bounded_by_the_limit_not_the_input() -> None:
    def rows() -> Iterator[Row]:
        return ((i, (i * 7919) % 100_003, "x") for i in range(50_000))

    tracemalloc.start()
    try:
        top = sort_rows(rows(), parse_order("a desc"), COLUMNS, limit=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Holding all 50,000 rows and their sort keys would take several megabytes.
    assert (len(top), peak < 500_000) == (5, True)


# Properties

cells = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False),
    st.sampled_from(["a", "B", "10", "", "x y"]),
    st.booleans(),
)
row_lists = st.lists(st.tuples(cells, cells), max_size=40).map(
    lambda pairs: [(i, a, b) for i, (a, b) in enumerate(pairs)]
)
key_lists = st.lists(
    st.builds(OrderKey, st.sampled_from(["a", "b"]), st.booleans()),
    max_size=2,
    unique_by=lambda key: key.field,
)


def reference_sort(rows: list[Row], keys: list[OrderKey]) -> list[Row]:
    """Stable passes from the last key to the first, each with Python's own sort."""
    result = list(rows)
    for key in reversed(keys):
        position = COLUMNS.index(key.field)
        present = [row for row in result if row[position] is not None]
        missing = [row for row in result if row[position] is None]

        def rank(row: Row, position: int = position) -> tuple[int, float | str]:
            cell = row[position]
            if isinstance(cell, int | float) and not math.isnan(cell):
                return (0, cell)
            return (1, str(cell))

        result = sorted(present, key=rank, reverse=key.descending) + missing
    return result


@given(rows=row_lists, keys=key_lists, limit=st.integers(0, 45))
def test_a_limited_sort_equals_the_full_sort_cut_short(
    rows: list[Row], keys: list[OrderKey], limit: int
) -> None:
    assert sort_rows(iter(rows), keys, COLUMNS, limit) == sort_rows(rows, keys, COLUMNS)[:limit]


@given(rows=row_lists, keys=key_lists)
def test_a_full_sort_equals_stable_passes_per_key(rows: list[Row], keys: list[OrderKey]) -> None:
    assert sort_rows(rows, keys, COLUMNS) == reference_sort(rows, keys)
