"""SQLite stores give the space of deleted rows back to the disk: new ones from the start,
older ones once converted (at start while small, by ``querybatch compact`` after)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from querybatch.store import database
from querybatch.store.store import Store


def auto_vacuum(path: Path) -> int:
    with sqlite3.connect(path) as raw:
        return int(raw.execute("PRAGMA auto_vacuum").fetchone()[0])


def old_store(path: Path, filler_rows: int) -> None:
    """A store file as versions before incremental vacuum made them, some of it free."""
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE filler (data BLOB)")
        raw.executemany("INSERT INTO filler VALUES (?)", [(b"x" * 4000,)] * filler_rows)
        raw.execute("DELETE FROM filler")
    assert auto_vacuum(path) == 0


def test_a_new_store_is_made_to_give_space_back(tmp_path: Path) -> None:
    Store.open(f"sqlite:///{tmp_path / 'qb.db'}", result_ttl=60).close()
    assert auto_vacuum(tmp_path / "qb.db") == database.INCREMENTAL_VACUUM


def test_a_small_store_made_before_is_converted_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "qb.db"
    old_store(path, 500)
    before = path.stat().st_size
    Store.open(f"sqlite:///{path}", result_ttl=60).close()
    assert auto_vacuum(path) == database.INCREMENTAL_VACUUM
    assert path.stat().st_size < before


def test_a_large_store_made_before_is_left_for_compact_and_the_log_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "qb.db"
    old_store(path, 500)
    monkeypatch.setattr(database, "CONVERT_AT_START_BYTES", 1024)
    with caplog.at_level(logging.WARNING, logger="querybatch.store.database"):
        store = Store.open(f"sqlite:///{path}", result_ttl=60)
    try:
        assert auto_vacuum(path) == 0
        assert [r.event for r in caplog.records] == ["store_not_compacting"]  # type: ignore[attr-defined]
        assert "querybatch compact" in caplog.text
        assert store.upkeep.return_space.blocking(100) == 0  # nothing to give back this way
        before, after = store.db.compact()
        assert after < before and auto_vacuum(path) == database.INCREMENTAL_VACUUM
    finally:
        store.close()


def test_a_store_that_refuses_to_give_space_back_says_so_as_the_store_s_error(
    tmp_path: Path,
) -> None:
    from querybatch.errors import StoreUnavailable

    path = tmp_path / "qb.db"
    store = Store.open(f"sqlite:///{path}", result_ttl=60)
    store.results.write_chunk.blocking("r", 0, [("x" * 4000,)] * 200, 1.0)
    store.results.drop.blocking("r")
    store.close()
    read_only = database.Database(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        with pytest.raises(StoreUnavailable, match="unavailable"):
            read_only.return_space(100)
    finally:
        read_only.close()
