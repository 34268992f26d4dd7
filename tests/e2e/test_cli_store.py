"""``keys`` and ``roles`` name the store they act on, and make no store unless told to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import querybatch

DEPLOYMENTS = ("embedded",)


def test_keys_create_refuses_a_missing_sqlite_store_and_creates_no_file(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere" / "querybatch.db"
    made = querybatch("keys", "create", "--name", "ci", QB_DATABASE_URL=f"sqlite:///{database}")
    assert made.returncode == 2
    assert made.stdout == ""
    lines = made.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"sqlite:///{database}" in lines[0]
    assert "QB_DATABASE_URL" in lines[0] and "--init" in lines[0]
    assert not database.exists() and not database.parent.exists()


def test_the_default_store_of_an_empty_data_directory_is_refused_too(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    listed = querybatch("roles", "list", QB_DATA_DIR=str(data_dir))
    assert listed.returncode == 2
    assert "QB_DATA_DIR" in listed.stderr and "--init" in listed.stderr
    assert not data_dir.exists()


def test_keys_create_with_init_creates_the_store_and_names_it(tmp_path: Path) -> None:
    database = tmp_path / "new" / "querybatch.db"
    url = f"sqlite:///{database}"
    made = querybatch("keys", "create", "--name", "ci", "--quiet", "--init", QB_DATABASE_URL=url)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().startswith("qb_")
    assert made.stderr.strip() == f"store: {url}"
    assert database.is_file()
    listed = querybatch("keys", "list", "--json", QB_DATABASE_URL=url)
    assert listed.returncode == 0, listed.stderr
    assert [k["name"] for k in json.loads(listed.stdout)] == ["ci"]
    assert listed.stderr.strip() == f"store: {url}"


def test_the_store_line_hides_a_postgresql_password(pg_schema: tuple[str, str]) -> None:
    url = pg_schema[0].replace("postgresql://postgres@", "postgresql://postgres:s3cret-pw@", 1)
    if "s3cret-pw" not in url:
        pytest.skip("QB_TEST_POSTGRES_URL is not postgresql://postgres@...")
    listed = querybatch("roles", "list", "--json", "--init", QB_DATABASE_URL=url)
    assert listed.returncode == 0, listed.stderr
    assert "s3cret-pw" not in listed.stderr + listed.stdout
    assert listed.stderr.strip().startswith("store: postgresql://postgres:***@")
    assert {r["name"] for r in json.loads(listed.stdout)} >= {"admin", "analyst", "viewer"}


def test_an_empty_postgresql_schema_is_refused_and_left_empty(pg_schema: tuple[str, str]) -> None:
    url, schema = pg_schema
    refused = querybatch("keys", "list", QB_DATABASE_URL=url)
    assert refused.returncode == 2
    assert "no querybatch store" in refused.stderr and "--init" in refused.stderr
    import psycopg

    plain = url.split("?", 1)[0]
    with psycopg.connect(plain) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchone()
    assert tables == (0,)


def test_compact_gives_a_stopped_store_s_free_space_back_and_refuses_a_running_one(
    tmp_path: Path,
) -> None:
    import contextlib
    import fcntl
    import sqlite3

    database = tmp_path / "querybatch.db"
    url = f"sqlite:///{database}"
    assert querybatch("roles", "list", "--init", QB_DATABASE_URL=url).returncode == 0
    # Rows that came and went, as expiry leaves them.
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as raw:
        raw.executemany(
            "INSERT INTO server_state VALUES (?, ?)", [(f"f{n}", "x" * 200) for n in range(20000)]
        )
        raw.execute("DELETE FROM server_state WHERE name LIKE 'f%'")
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = database.stat().st_size
    with open(f"{database}.node.lock", "a") as lock:  # as a running server holds it
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        refused = querybatch("compact", QB_DATABASE_URL=url)
    assert refused.returncode == 2
    assert "A querybatch server runs" in refused.stderr and "Stop it first" in refused.stderr
    assert database.stat().st_size == before
    compacted = querybatch("compact", QB_DATABASE_URL=url)
    assert compacted.returncode == 0, compacted.stderr
    assert database.stat().st_size < before // 4
    assert f"{before:,} bytes -> {database.stat().st_size:,} bytes" in compacted.stdout
    assert querybatch("roles", "list", QB_DATABASE_URL=url).returncode == 0


def test_compact_refuses_a_missing_store_and_postgresql(
    tmp_path: Path, pg_schema: tuple[str, str]
) -> None:
    missing = querybatch("compact", QB_DATABASE_URL=f"sqlite:///{tmp_path / 'none.db'}")
    assert missing.returncode == 2 and "No querybatch store" in missing.stderr
    assert not (tmp_path / "none.db").exists()
    url = pg_schema[0]
    assert querybatch("roles", "list", "--init", QB_DATABASE_URL=url).returncode == 0
    postgres = querybatch("compact", QB_DATABASE_URL=url)
    assert postgres.returncode == 2 and "autovacuum" in postgres.stderr
