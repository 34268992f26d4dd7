"""Local paths a tenant names, kept inside the directory the server lends its destinations."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from querybatch.errors import BadRequest

PATH_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,254}$"
"""A relative path of plain names: no leading slash, no spaces, no ``~`` nor ``\\``."""


def inside(root: Path, relative: str) -> Path:
    """``root / relative``, refused unless it stays inside ``root`` (no ``..``, no link out)."""
    parts = PurePosixPath(relative).parts
    if not parts or any(p in ("..", ".") for p in parts) or PurePosixPath(relative).is_absolute():
        raise BadRequest(
            f"Invalid path {relative[:100]!r}",
            "A path is relative to the server's destinations directory, without '..'.",
        )
    path = root.joinpath(*parts)
    resolved_root = root.resolve()
    if not path.resolve().is_relative_to(resolved_root):
        raise BadRequest(f"Invalid path {relative[:100]!r}", "It leads out of its directory.")
    return path
