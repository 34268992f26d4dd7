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
