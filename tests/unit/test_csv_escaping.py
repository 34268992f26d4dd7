"""CSV and TSV cells a spreadsheet would run as formulas are written as text (OWASP)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest

from querybatch.api.formats import Columns, delimited_stream, spreadsheet_safe


@pytest.mark.parametrize(
    "value", ["=1+2", "+1", "-5", "-", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("x")']
)
def test_text_that_starts_a_formula_gets_a_leading_quote(value: str) -> None:
    assert spreadsheet_safe(value) == "'" + value


@pytest.mark.parametrize("value", ["plain", "a=b", " =x", "'=x", "", "5-3"])
def test_other_text_is_left_as_it_is(value: str) -> None:
    assert spreadsheet_safe(value) == value


@pytest.mark.parametrize("value", [-5, -0.5, 3, None, True, False])
def test_values_that_are_not_text_are_never_changed(value: Any) -> None:
    assert spreadsheet_safe(value) is value


async def _rows(*rows: list[Any]) -> AsyncIterator[list[list[Any]]]:
    yield list(rows)


async def _read(escape: bool, *rows: list[Any]) -> list[list[str]]:
    columns = Columns(["a", "b"], ["A", "=B"], ["string", "int"])
    text = b"".join(
        [
            part
            async for part in delimited_stream(columns, _rows(*rows), ",", escape_formulas=escape)
        ]
    ).decode()
    return list(csv.reader(io.StringIO(text, newline="")))


async def test_a_lone_carriage_return_inside_a_cell_cannot_start_a_row_of_its_own() -> None:
    assert await _read(True, ["x\r=cmd()", -5]) == [["A", "'=B"], ["x\r=cmd()", "-5"]]


async def test_with_escaping_off_cells_are_written_as_they_are() -> None:
    assert await _read(False, ["=1+2", -5]) == [["A", "=B"], ["=1+2", "-5"]]
