from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from querybatch.domain.fields import DataType, Row
from querybatch.domain.filters import (
    Condition,
    Filter,
    FilterSyntaxError,
    Operator,
    compile_filter,
    parse_filter,
)

COLUMNS = ("date", "campaign", "impressions", "cost", "ctr", "active")
TYPES: dict[str, DataType] = {
    "date": "date",
    "campaign": "string",
    "impressions": "int",
    "cost": "currency",
    "ctr": "percent",
    "active": "bool",
}


def conditions(text: str) -> list[Condition]:
    """The conditions of a filter that has a single AND group."""
    (group,) = parse_filter(text).groups
    return list(group)


def matches(text: str, row: Row) -> bool:
    return compile_filter(parse_filter(text), COLUMNS, TYPES)(row)


ROW: Row = ("2026-03-01", "Brand AND Search", 120, 15.5, 2.5, True)
EMPTY_ROW: Row = (None, None, None, None, None, None)


# Parsing


def test_a_single_condition_parses_into_field_operator_and_value() -> None:
    assert conditions("impressions > 0") == [Condition("impressions", ">", "0")]


@pytest.mark.parametrize("op", ["==", "!=", ">", ">=", "<", "<=", "=@", "!@", "=~", "!~"])
def test_every_operator_is_recognised(op: Operator) -> None:
    assert conditions(f"campaign {op} x") == [Condition("campaign", op, "x")]


def test_spaces_around_the_operator_are_optional() -> None:
    assert conditions("cost>=1.5") == [Condition("cost", ">=", "1.5")]


def test_field_names_may_contain_digits_underscores_and_dots() -> None:
    assert conditions("_a.b_2 == 1")[0].field == "_a.b_2"


def test_and_binds_tighter_than_or() -> None:
    assert parse_filter("a == 1 OR b == 2 AND c == 3").groups == (
        (Condition("a", "==", "1"),),
        (Condition("b", "==", "2"), Condition("c", "==", "3")),
    )


def test_keywords_are_case_insensitive() -> None:
    assert len(parse_filter("a == 1 or b == 2 and c == 3").groups) == 2


def test_an_unquoted_value_runs_to_the_next_keyword_and_is_stripped() -> None:
    assert conditions("campaign == Spring  sale   AND a == 1")[0].value == "Spring  sale"


def test_a_keyword_inside_a_word_does_not_split_an_unquoted_value() -> None:
    assert conditions("campaign == BRANDED ORDERS")[0].value == "BRANDED ORDERS"


def test_a_double_quoted_value_may_contain_and() -> None:
    assert conditions('campaign == "Brand AND Search"')[0].value == "Brand AND Search"


def test_a_single_quoted_value_may_contain_or() -> None:
    assert conditions("campaign == 'this OR that'")[0].value == "this OR that"


def test_a_backslash_escapes_the_quote_inside_a_quoted_value() -> None:
    assert conditions(r'campaign == "say \"hi\""')[0].value == 'say "hi"'


def test_a_double_backslash_is_one_backslash() -> None:
    assert conditions(r'campaign == "a\\"')[0].value == "a\\"


def test_a_backslash_before_another_character_is_kept() -> None:
    assert conditions(r'campaign =~ "^\d+$"')[0].value == r"^\d+$"


def test_an_empty_quoted_value_is_allowed() -> None:
    assert conditions('campaign == ""')[0].value == ""


def test_quoted_values_keep_their_inner_whitespace() -> None:
    assert conditions("campaign == '  x  '  ")[0].value == "  x  "


def test_fields_lists_every_named_field() -> None:
    assert parse_filter("a == 1 OR b == 2 AND a > 0").fields == frozenset({"a", "b"})


# Parse errors


def test_an_empty_filter_is_an_error() -> None:
    with pytest.raises(FilterSyntaxError, match="empty"):
        parse_filter("   ")


def test_a_filter_over_5000_characters_is_an_error() -> None:
    with pytest.raises(FilterSyntaxError, match="5001 characters long; the maximum is 5000"):
        parse_filter("a == " + "x" * 4996)


def test_a_filter_of_exactly_5000_characters_is_allowed() -> None:
    assert conditions("a == " + "x" * 4995)[0].value == "x" * 4995


def test_a_missing_operator_reports_its_position() -> None:
    with pytest.raises(FilterSyntaxError, match="expected an operator at position 13"):
        parse_filter("impressions x 5")


def test_a_single_equals_sign_is_not_an_operator() -> None:
    with pytest.raises(FilterSyntaxError, match="expected an operator at position 3"):
        parse_filter("a = 1")


def test_a_missing_field_reports_its_position() -> None:
    with pytest.raises(FilterSyntaxError, match="expected a field name at position 1"):
        parse_filter("== 1")


def test_an_unquoted_empty_value_is_an_error() -> None:
    with pytest.raises(FilterSyntaxError, match="expected a value at position 6"):
        parse_filter("a == AND b == 1")


def test_a_value_missing_at_the_end_is_an_error() -> None:
    with pytest.raises(FilterSyntaxError, match="expected a value at position 5"):
        parse_filter("a ==")


def test_a_trailing_keyword_is_an_error() -> None:
    with pytest.raises(FilterSyntaxError, match="expected a field name at position 11"):
        parse_filter("a == 1 AND")


def test_an_unterminated_string_is_an_error() -> None:
    with pytest.raises(
        FilterSyntaxError, match=r"expected a closing \" at position 9 .*opened at position 6"
    ):
        parse_filter('a == "xy')


def test_text_after_a_quoted_value_must_be_a_keyword() -> None:
    with pytest.raises(FilterSyntaxError, match="expected AND or OR at position 10"):
        parse_filter("a == 'x' y")


def test_a_keyword_glued_to_a_quoted_value_is_an_error() -> None:
    with pytest.raises(FilterSyntaxError, match="expected AND or OR at position 9"):
        parse_filter("a == 'x'AND b == 1")


# Round trip

fields = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,10}", fullmatch=True).filter(
    lambda name: name.upper() not in {"AND", "OR"}
)
operators = st.sampled_from(["==", "!=", ">", ">=", "<", "<=", "=@", "!@", "=~", "!~"])
values = st.text(st.characters(codec="utf-8"), max_size=20)
condition_lists = st.lists(
    st.lists(st.builds(Condition, fields, operators, values), min_size=1, max_size=4),
    min_size=1,
    max_size=4,
)


def quote(value: str, mark: str) -> str:
    return mark + value.replace("\\", "\\\\").replace(mark, "\\" + mark) + mark


def render(groups: list[list[Condition]], marks: list[str]) -> str:
    parts = []
    for group in groups:
        rendered = [
            f"{c.field} {c.op} {quote(c.value, marks[i % len(marks)])}" for i, c in enumerate(group)
        ]
        parts.append(" AND ".join(rendered))
    return " OR ".join(parts)


@given(groups=condition_lists, marks=st.lists(st.sampled_from(["'", '"']), min_size=1))
def test_quoted_conditions_round_trip_through_the_parser(
    groups: list[list[Condition]], marks: list[str]
) -> None:
    parsed = parse_filter(render(groups, marks))
    assert parsed == Filter(tuple(tuple(group) for group in groups))


# Compiling


def test_a_numeric_field_compares_numerically() -> None:
    assert matches("impressions > 99", ROW)


def test_a_numeric_field_does_not_compare_as_text() -> None:
    assert not matches("impressions < 13", ROW)


def test_a_currency_field_compares_with_decimals() -> None:
    assert matches("cost >= 15.5 AND cost < 15.51", ROW)


def test_a_numeric_string_cell_compares_numerically() -> None:
    assert matches("impressions > 99", ("", "", "120", 0, 0, False))


def test_a_non_numeric_value_with_an_ordering_operator_is_an_error() -> None:
    with pytest.raises(FilterSyntaxError, match=r"'impressions' is numeric.*'lots'"):
        matches("impressions > lots", ROW)


def test_a_non_numeric_value_with_equality_compares_as_text() -> None:
    assert matches("impressions != lots", ROW)


def test_a_date_field_compares_iso_dates() -> None:
    assert matches("date >= 2026-03-01 AND date < 2026-03-02", ROW)


def test_a_date_field_rejects_a_value_that_is_not_an_iso_date() -> None:
    with pytest.raises(FilterSyntaxError, match=r"'date' is a date.*YYYY-MM-DD.*'yesterday'"):
        matches("date > yesterday", ROW)


def test_a_date_field_rejects_an_impossible_date() -> None:
    with pytest.raises(FilterSyntaxError, match="YYYY-MM-DD value, got '2026-02-30'"):
        matches("date == 2026-02-30", ROW)


def test_a_date_field_may_be_searched_as_text() -> None:
    assert matches("date =@ 2026-03", ROW)


def test_a_string_field_compares_exactly() -> None:
    assert not matches("campaign == 'brand AND search'", ROW)


def test_contains_ignores_case() -> None:
    assert matches("campaign =@ SEARCH", ROW)


def test_does_not_contain_ignores_case() -> None:
    assert not matches("campaign !@ brand", ROW)


def test_a_regex_searches_anywhere_in_the_value() -> None:
    assert matches("campaign =~ Sea.ch$", ROW)


def test_a_negated_regex_holds_when_nothing_matches() -> None:
    assert matches("campaign !~ ^Search", ROW)


def test_an_invalid_regex_is_an_error() -> None:
    with pytest.raises(FilterSyntaxError, match="invalid regular expression '\\(' for field"):
        matches("campaign =~ (", ROW)


def test_a_backtracking_bomb_pattern_is_matched_in_linear_time() -> None:
    # Python's re needs about 2**40 steps here; RE2 scans the text once.
    row: Row = ("2026-03-01", "Campaign 001 " * 4, 1, 1.0, 1.0, True)
    assert not matches("campaign =~ (.*?){14}X", row)
    assert matches("campaign !~ (x+x+)+y", row)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [(r"(a)\1", "invalid escape sequence"), ("(?=Brand)", "invalid perl operator")],
)
def test_a_pattern_re2_cannot_run_is_an_error_naming_the_field_and_the_syntax(
    pattern: str, reason: str
) -> None:
    with pytest.raises(FilterSyntaxError, match=f"for field 'campaign': {reason}.*RE2 syntax"):
        matches(f"campaign =~ {pattern}", ROW)


def test_a_pattern_over_1000_characters_is_an_error() -> None:
    with pytest.raises(FilterSyntaxError, match="1001 characters long; the maximum is 1000"):
        matches("campaign =~ " + "a" * 1001, ROW)


def test_a_pattern_of_exactly_1000_characters_is_allowed() -> None:
    assert not matches("campaign =~ " + "a" * 1000, ROW)


def test_a_pattern_needing_more_than_its_memory_is_an_error() -> None:
    with pytest.raises(FilterSyntaxError, match="pattern too large"):
        matches(r"campaign =~ \pL{300}", ROW)


def test_inline_flags_still_work() -> None:
    assert matches("campaign =~ (?i)^brand", ROW)


def test_a_bool_field_accepts_true_in_any_case() -> None:
    assert matches("active == TRUE", ROW)


def test_a_bool_field_accepts_zero_for_false() -> None:
    assert matches("active != 0", ROW)


def test_an_unknown_field_is_an_error() -> None:
    with pytest.raises(FilterSyntaxError, match="unknown field 'clicks'"):
        matches("clicks > 0", ROW)


def test_a_field_without_a_data_type_compares_as_text() -> None:
    predicate = compile_filter(parse_filter("n > 9"), ("n",), {})
    assert not predicate((10,))


def test_or_holds_when_any_group_holds() -> None:
    assert matches("impressions < 0 OR campaign =@ brand", ROW)


def test_and_needs_every_condition_to_hold() -> None:
    assert not matches("impressions > 0 AND campaign =@ video", ROW)


def test_a_filter_without_groups_matches_every_row() -> None:
    assert compile_filter(Filter(()), COLUMNS, TYPES)(ROW)


@pytest.mark.parametrize(
    "text",
    [
        "impressions == 0",
        "impressions > 0",
        "impressions <= 0",
        "date == 2026-03-01",
        "campaign == x",
        "campaign =@ x",
        "campaign =~ .",
        "cost < 1",
    ],
)
def test_a_none_cell_matches_no_positive_operator(text: str) -> None:
    assert not matches(text, EMPTY_ROW)


@pytest.mark.parametrize("text", ["impressions != 0", "campaign != x", "campaign !@ x", "ctr !~ ."])
def test_a_none_cell_matches_the_negated_operators(text: str) -> None:
    assert matches(text, EMPTY_ROW)


@given(threshold=st.integers(-1000, 1000), cell=st.integers(-1000, 1000))
def test_numeric_comparison_agrees_with_python(threshold: int, cell: int) -> None:
    row: Row = ("2026-01-01", "", cell, 0, 0, False)
    assert matches(f"impressions > {threshold}", row) == (cell > threshold)
