"""The CLI prints user-facing messages as they are: brackets in them are text, not markup."""

from __future__ import annotations

import pytest

from querybatch.cli.common import EXIT_UNAVAILABLE, console, fail


def test_an_error_keeps_the_brackets_of_an_install_hint(capsys: pytest.CaptureFixture[str]) -> None:
    exit_ = fail("the files connector needs DuckDB: pip install 'querybatch[files]'")
    assert exit_.exit_code == 2
    assert capsys.readouterr().err.strip() == (
        "error: the files connector needs DuckDB: pip install 'querybatch[files]'"
    )


def test_an_error_can_carry_its_own_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert fail("down", EXIT_UNAVAILABLE).exit_code == EXIT_UNAVAILABLE
    assert capsys.readouterr().err.strip() == "error: down"


def test_tag_like_text_prints_verbatim(capsys: pytest.CaptureFixture[str]) -> None:
    console.print("[bold]not bold[/bold] and [red]")
    assert capsys.readouterr().out.strip() == "[bold]not bold[/bold] and [red]"
