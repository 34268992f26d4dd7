r"""Row filters (``impressions > 0 AND campaign_name =@ brand``) and row ordering.

A filter is a disjunction of conjunctions: ``AND`` binds tighter than ``OR``, as in the
Supermetrics filter syntax. Parsing is pure; connectors that can push a filter down translate
the parsed form, and the engine evaluates it on rows for those that cannot.

Patterns of ``=~`` and ``!~`` come from tenants, so they are RE2 patterns (google-re2): RE2
matches in time linear in the text whatever the pattern, where Python's backtracking ``re``
can take exponential time (``(.*?){14}X``). RE2 has no backreferences or lookaround, and
spells Python's ``\Z`` as ``\z``.
"""

from __future__ import annotations

import heapq
import itertools
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, Literal

import re2

from querybatch.domain.fields import DataType, Row, Value

Operator = Literal["==", "!=", ">", ">=", "<", "<=", "=@", "!@", "=~", "!~"]


class FilterSyntaxError(ValueError):
    """The filter text does not parse; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Condition:
    """``field op value``; the value stays text until compared with a typed column."""

    field: str
    op: Operator
    value: str


@dataclass(frozen=True, slots=True)
class Filter:
    """OR of AND-groups of conditions."""

    groups: tuple[tuple[Condition, ...], ...]

    @property
    def fields(self) -> frozenset[str]:
        """Every field the filter names."""
        return frozenset(c.field for group in self.groups for c in group)


@dataclass(frozen=True, slots=True)
class OrderKey:
    """One ``order_rows`` term: a field and its direction."""

    field: str
    descending: bool = False


MAX_FILTER_LENGTH = 5000
MAX_PATTERN_LENGTH = 1000
"""The longest regular expression a filter may hold, in characters."""
# The memory RE2 may use for one compiled pattern and its matching cache. 1 MiB compiles any
# pattern of MAX_PATTERN_LENGTH that is not a deliberate blow-up (RE2's default is 8 MiB, and
# it keeps up to 128 compiled patterns).
_PATTERN_MEMORY = 1 << 20

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
# Two-character operators first, so that ">=" is not read as ">" followed by "=".
_OPERATORS: tuple[Operator, ...] = ("==", "!=", ">=", "<=", "=@", "!@", "=~", "!~", ">", "<")
# A keyword at the very end counts as a separator, so "a == 1 AND" fails instead of
# silently comparing with the value "1 AND".
_SEPARATOR = re.compile(r"\s+(AND|OR)(?=\s|\Z)", re.IGNORECASE)
_QUOTES = "'\""


def parse_filter(text: str) -> Filter:
    """Parse Supermetrics-style filter text such as ``clicks > 0 AND name =@ "x AND y"``.

    Raises FilterSyntaxError giving the 1-based position and what was expected there.
    """
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterSyntaxError(
            f"the filter is {len(text)} characters long; the maximum is {MAX_FILTER_LENGTH}"
        )
    if not text.strip():
        raise FilterSyntaxError("the filter is empty: expected a condition at position 1")
    return _FilterParser(text).parse()


@lru_cache(maxsize=4096)
def cached_filter(text: str) -> Filter:
    """:func:`parse_filter`, once per distinct text: a batch repeats one filter many times."""
    return parse_filter(text)


class _FilterParser:
    """A one-pass scanner over the filter text; ``pos`` is the 0-based index of the next char."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> Filter:
        groups: list[list[Condition]] = [[]]
        while True:
            groups[-1].append(self._condition())
            keyword = self._separator()
            if keyword is None:
                return Filter(tuple(tuple(group) for group in groups))
            if keyword == "OR":
                groups.append([])

    def _error(self, expected: str, at: int | None = None) -> FilterSyntaxError:
        position = (self.pos if at is None else at) + 1
        return FilterSyntaxError(f"expected {expected} at position {position}")

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _condition(self) -> Condition:
        self._skip_space()
        match = _FIELD.match(self.text, self.pos)
        if match is None:
            raise self._error("a field name")
        self.pos = match.end()
        self._skip_space()
        op = self._operator()
        return Condition(match.group(), op, self._value())

    def _operator(self) -> Operator:
        for op in _OPERATORS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return op
        raise self._error("an operator")

    def _value(self) -> str:
        after_operator = self.pos
        self._skip_space()
        if self.pos < len(self.text) and self.text[self.pos] in _QUOTES:
            return self._quoted()
        separator = _SEPARATOR.search(self.text, after_operator)
        end = separator.start() if separator else len(self.text)
        value = self.text[after_operator:end].strip()
        if not value:
            raise self._error("a value")
        self.pos = end
        return value

    def _quoted(self) -> str:
        text, opened = self.text, self.pos
        quote = text[opened]
        chars: list[str] = []
        i = opened + 1
        while i < len(text):
            char = text[i]
            if char == "\\" and i + 1 < len(text) and text[i + 1] in (quote, "\\"):
                chars.append(text[i + 1])
                i += 2
            elif char == quote:
                self.pos = i + 1
                return "".join(chars)
            else:
                chars.append(char)
                i += 1
        raise FilterSyntaxError(
            f"expected a closing {quote} at position {len(text) + 1} "
            f"(the string opened at position {opened + 1} never ends)"
        )

    def _separator(self) -> str | None:
        """Consume `` AND `` / `` OR `` and return it upper-cased, or None at the end."""
        match = _SEPARATOR.match(self.text, self.pos)
        if match is not None:
            self.pos = match.end()
            return match.group(1).upper()
        self._skip_space()
        if self.pos == len(self.text):
            return None
        raise self._error("AND or OR")


_NUMERIC_TYPES = frozenset({"int", "float", "currency", "percent"})
_ORDERING_OPS = frozenset({">", ">=", "<", "<="})
# Operators that hold for a missing (None) cell: a missing value neither equals, contains nor
# matches anything.
_NEGATED_OPS = frozenset({"!=", "!@", "!~"})
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_BOOL_WORDS = {"true": "true", "1": "true", "false": "false", "0": "false"}

_CellTest = Callable[[Value], bool]
Predicate = Callable[[Row], bool]


def compile_filter(
    flt: Filter, columns: Sequence[str], data_types: Mapping[str, DataType]
) -> Predicate:
    """Build a predicate over rows whose values are in ``columns`` order.

    Values are typed once here (numbers, dates, regexes), so the predicate does no parsing.
    A filter with no groups matches every row. Raises FilterSyntaxError for an unknown field,
    an invalid regex, or a value that cannot be compared with its field's type.
    """
    index: dict[str, int] = {}
    for position, name in enumerate(columns):
        index.setdefault(name, position)
    groups = [
        _all_of([_compile_condition(c, index, data_types) for c in group]) for group in flt.groups
    ]
    if not groups:
        return lambda row: True
    return _any_of(groups)


def _all_of(predicates: list[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    frozen = tuple(predicates)

    def all_hold(row: Row) -> bool:
        return all(predicate(row) for predicate in frozen)

    return all_hold


def _any_of(predicates: list[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    frozen = tuple(predicates)

    def any_holds(row: Row) -> bool:
        return any(predicate(row) for predicate in frozen)

    return any_holds


def _compile_condition(
    condition: Condition, index: Mapping[str, int], data_types: Mapping[str, DataType]
) -> Predicate:
    position = index.get(condition.field)
    if position is None:
        raise FilterSyntaxError(f"unknown field {condition.field!r} in the filter")
    test = _cell_test(condition, data_types.get(condition.field, "string"))
    when_missing = condition.op in _NEGATED_OPS

    def predicate(row: Row) -> bool:
        cell = row[position]
        return when_missing if cell is None else test(cell)

    return predicate


def _cell_test(condition: Condition, data_type: DataType) -> _CellTest:
    """The test for a non-None cell of ``data_type``."""
    op, value = condition.op, condition.value
    if op in ("=~", "!~"):
        return _regex_test(condition)
    if op in ("=@", "!@"):
        needle = value.casefold()
        negate = op == "!@"
        return lambda cell: (needle in _as_text(cell).casefold()) != negate
    if data_type in _NUMERIC_TYPES:
        number = _parse_number(value)
        if number is not None:
            return _number_test(op, number)
        if op in _ORDERING_OPS:
            raise FilterSyntaxError(
                f"field {condition.field!r} is numeric but {op} compares it with {value!r}, "
                "which is not a number"
            )
    elif data_type == "date":
        _check_date_value(condition)
    elif data_type == "bool" and op in ("==", "!="):
        value = _BOOL_WORDS.get(value.strip().lower(), value)
    compare = _COMPARE[op]
    return lambda cell: compare(_as_text(cell), value)


def pattern_search(pattern: str) -> Callable[[str], object]:
    """The ``search`` of ``pattern`` compiled by RE2: linear-time, bounded in size and memory.

    The returned function gives a match object or None, as ``re``'s does. Raises
    FilterSyntaxError for a pattern that is too long, invalid, or not RE2 syntax
    (backreferences, lookaround).
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise FilterSyntaxError(
            f"the regular expression is {len(pattern)} characters long; "
            f"the maximum is {MAX_PATTERN_LENGTH}"
        )
    try:
        compiled = re2.compile(pattern, _PATTERN_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise FilterSyntaxError(
            f"{reason} (patterns are RE2 syntax, https://github.com/google/re2/wiki/Syntax)"
        ) from None
    search: Callable[[str], object] = compiled.search
    return search


def _pattern_options() -> Any:
    options = re2.Options()
    options.max_mem = _PATTERN_MEMORY
    options.log_errors = False  # a tenant's bad pattern is their error, not the server's log
    return options


_PATTERN_OPTIONS = _pattern_options()


def _regex_test(condition: Condition) -> _CellTest:
    try:
        search = pattern_search(condition.value)
    except FilterSyntaxError as exc:
        raise FilterSyntaxError(
            f"invalid regular expression {_clip(condition.value)!r} for field "
            f"{condition.field!r}: {exc}"
        ) from None
    negate = condition.op == "!~"
    return lambda cell: (search(_as_text(cell)) is not None) != negate


def _clip(text: str) -> str:
    return text if len(text) <= 100 else text[:97] + "..."


def _number_test(op: Operator, number: int | float) -> _CellTest:
    compare = _COMPARE[op]
    otherwise = op == "!="

    def test(cell: Value) -> bool:
        cell_number = cell if isinstance(cell, int | float) else _parse_number(str(cell).strip())
        return otherwise if cell_number is None else compare(cell_number, number)

    return test


def _parse_number(text: str) -> int | float | None:
    if _NUMBER.fullmatch(text) is None:
        return None
    try:
        return int(text)
    except ValueError:
        # Not an integer literal, or too many digits for int(); float() takes both.
        return float(text)


def _check_date_value(condition: Condition) -> None:
    value = condition.value
    if _ISO_DATE.fullmatch(value):
        try:
            date.fromisoformat(value)
        except ValueError:
            pass
        else:
            return
    raise FilterSyntaxError(
        f"field {condition.field!r} is a date; {condition.op} needs a YYYY-MM-DD value, "
        f"got {value!r}"
    )


def _as_text(cell: Value) -> str:
    if isinstance(cell, bool):
        return "true" if cell else "false"
    return str(cell)


_DIRECTIONS = {"asc": False, "desc": True}


def parse_order(value: str | Sequence[str]) -> tuple[OrderKey, ...]:
    """Parse ``"impressions desc, date"`` or ``["impressions desc", "date asc"]``.

    A blank string or an empty list means no ordering. Raises ValueError for an empty term,
    a bad field name or direction, or a field named twice.
    """
    if isinstance(value, str):
        if not value.strip():
            return ()
        items: Sequence[str] = [value]
    else:
        items = value
    terms = [term for item in items for term in item.split(",")]
    keys: list[OrderKey] = []
    seen: set[str] = set()
    for number, term in enumerate(terms, start=1):
        key = _parse_order_term(term, number)
        if key.field in seen:
            raise ValueError(f"order field {key.field!r} appears more than once")
        seen.add(key.field)
        keys.append(key)
    return tuple(keys)


@lru_cache(maxsize=4096)
def cached_order(terms: tuple[str, ...]) -> tuple[OrderKey, ...]:
    """:func:`parse_order`, once per distinct list of terms."""
    return parse_order(terms)


def _parse_order_term(term: str, number: int) -> OrderKey:
    words = term.split()
    if not words:
        raise ValueError(f"order term {number} is empty")
    if len(words) > 2:
        raise ValueError(
            f"order term {number} ({term.strip()!r}) has too many words; "
            "expected 'field' or 'field asc|desc'"
        )
    field = words[0]
    if _FIELD.fullmatch(field) is None:
        raise ValueError(f"order term {number}: {field!r} is not a valid field name")
    direction = words[1].lower() if len(words) == 2 else "asc"
    if direction not in _DIRECTIONS:
        raise ValueError(
            f"order term {number}: the direction must be asc or desc, got {words[1]!r}"
        )
    return OrderKey(field, _DIRECTIONS[direction])


# A cell reduced to something totally ordered: numbers rank before everything else, which
# compares by str(); None stays None and sorts last in either direction.
_SortValue = tuple[int, int | float | str] | None


class _RowKey:
    """Orders rows by their key cells; ``__eq__`` too, so heapq's tie-breaks stay stable."""

    __slots__ = ("descending", "values")

    def __init__(self, values: tuple[_SortValue, ...], descending: tuple[bool, ...]) -> None:
        self.values = values
        self.descending = descending

    def __lt__(self, other: _RowKey) -> bool:
        for mine, theirs, descending in zip(
            self.values, other.values, self.descending, strict=True
        ):
            if mine == theirs:
                continue
            if mine is None:
                return False
            if theirs is None:
                return True
            return theirs < mine if descending else mine < theirs
        return False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _RowKey):
            return NotImplemented
        return self.values == other.values

    __hash__ = None  # type: ignore[assignment]


def _sort_value(cell: Value) -> _SortValue:
    if cell is None:
        return None
    if isinstance(cell, int | float) and cell == cell:  # NaN != NaN; it ranks with the text
        return (0, cell)
    return (1, str(cell))


def sort_rows(
    rows: Iterable[Row],
    keys: Sequence[OrderKey],
    columns: Sequence[str],
    limit: int | None = None,
) -> list[Row]:
    """Stable multi-key sort; None cells last whatever the direction.

    With ``limit`` only the first ``limit`` rows are kept, in O(limit) memory; the result is
    the same as sorting everything and slicing.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    positions = tuple(_column_position(columns, key.field) for key in keys)
    descending = tuple(key.descending for key in keys)
    if not positions:
        return list(rows if limit is None else itertools.islice(rows, limit))

    def row_key(row: Row) -> _RowKey:
        return _RowKey(tuple(_sort_value(row[p]) for p in positions), descending)

    if limit is None:
        return sorted(rows, key=row_key)
    return heapq.nsmallest(limit, rows, key=row_key)


def _column_position(columns: Sequence[str], field: str) -> int:
    try:
        return list(columns).index(field)
    except ValueError:
        raise ValueError(f"cannot order by {field!r}: it is not one of the fields") from None
