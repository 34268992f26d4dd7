"""``--help`` of every command: flags take no value and every parameter says what it is for."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main

from querybatch.cli import app

DEPLOYMENTS = ("embedded",)


def command_paths() -> list[tuple[list[str], object]]:
    """Every command and group, as the words that name it, with its click command."""
    found: list[tuple[list[str], object]] = []

    def walk(command: object, path: list[str]) -> None:
        found.append((path, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


# Renders every help through the entry point's own main() in one interpreter (starting one per
# command would take minutes), each at 80 columns, separated by a line no help contains.
RENDER = """
import sys
from querybatch.cli import main
for words in {paths!r}:
    sys.argv = ["querybatch", *words, "--help"]
    try:
        main()
    except SystemExit:
        pass
    print("=====", flush=True)
"""


@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    paths = [path for path, _ in command_paths()]
    done = subprocess.run(
        [sys.executable, "-c", RENDER.format(paths=paths)],
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin", "TERM": "dumb"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    texts = done.stdout.split("=====\n")
    return {" ".join(path): text for path, text in zip(paths, texts, strict=False)}


def test_no_help_shows_a_python_type_as_if_a_flag_took_a_value(helps: dict[str, str]) -> None:
    assert len(helps) > 20
    for name, text in helps.items():
        assert "Usage:" in text, name
        for marker in ("<bool>", "<list["):
            assert marker not in text, f"{name or 'querybatch'} --help shows {marker}"


def test_options_that_take_a_value_still_say_so(helps: dict[str, str]) -> None:
    assert "--name" in helps["keys create"] and "<str>" in helps["keys create"]
    assert "--action" in helps["roles create"] and "<str>" in helps["roles create"]


def test_every_parameter_of_every_command_has_help() -> None:
    for path, command in command_paths():
        for param in getattr(command, "params", []):
            assert getattr(param, "help", None), f"{' '.join(path)}: {param.name} has no help"
