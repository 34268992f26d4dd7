"""README's "Roles and actions" table is exactly the one generated from ACTIONS."""

from __future__ import annotations

from pathlib import Path

from querybatch.domain.actions import ACTIONS, actions_table

README = Path(__file__).resolve().parents[2] / "README.md"
START = "<!-- actions-table:"
END = "<!-- end actions-table -->"


def readme_table() -> list[str]:
    text = README.read_text()
    assert text.count(START) == 1 and text.count(END) == 1, "README lost its actions table"
    inside = text.split(START, 1)[1].split(END, 1)[0]
    return [line for line in inside.splitlines()[1:] if line.strip()]


def test_the_readme_table_matches_the_actions() -> None:
    # On failure, paste the output of querybatch.domain.actions.actions_table() into README.
    assert readme_table() == actions_table()


def test_the_table_has_one_row_per_action() -> None:
    rows = readme_table()[2:]
    assert [row.split("`")[1] for row in rows] == list(ACTIONS)
