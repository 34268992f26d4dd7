"""The data directory and the SQLite files are private to the server's user."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from querybatch.store.private_files import prepare_sqlite_file, secure_directory


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_missing_data_directory_is_created_for_its_owner_only(tmp_path: Path) -> None:
    secure_directory(tmp_path / "a" / "data")
    assert mode(tmp_path / "a" / "data") == 0o700


def test_an_open_data_directory_of_ours_is_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data").chmod(0o755)
    secure_directory(tmp_path / "data")
    assert mode(tmp_path / "data") == 0o700
    assert "readable by others" in caplog.text


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory away needs root")
def test_a_data_directory_of_another_user_is_left_alone_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs").chmod(0o755)
    os.chown(tmp_path / "theirs", 65534, 65534)
    with caplog.at_level(logging.WARNING):
        secure_directory(tmp_path / "theirs")
    assert mode(tmp_path / "theirs") == 0o755
    assert "open to other users" in caplog.text


def test_a_new_database_file_is_created_for_its_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        prepare_sqlite_file(tmp_path / "new" / "q.db")
    finally:
        os.umask(old)
    assert mode(tmp_path / "new") == 0o700
    assert mode(tmp_path / "new" / "q.db") == 0o600


def test_database_files_left_open_are_closed(tmp_path: Path) -> None:
    files = [tmp_path / f"q.db{suffix}" for suffix in ("", "-wal", "-shm")]
    for path in files:
        path.touch()
        path.chmod(0o644)
    prepare_sqlite_file(tmp_path / "q.db")
    assert [mode(path) for path in files] == [0o600] * 3
