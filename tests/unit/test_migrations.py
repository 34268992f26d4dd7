"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from querybatch.errors import StoreUnavailable
from querybatch.store.database import Database
from querybatch.store.migrations import HEAD
from querybatch.store.tables import metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    url: str = request.getfixturevalue("pg_schema")[0]
    return url


def test_upgrade_head_matches_the_models(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.migrate()
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        db.close()


def test_migrating_twice_is_harmless(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.migrate()
        db.migrate()
    finally:
        db.close()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "querybatch.store:migrations")
    return config


def test_the_head_querybatch_knows_is_alembic_s_head() -> None:
    assert ScriptDirectory.from_config(_alembic_config()).get_current_head() == HEAD


def test_a_store_behind_the_head_is_refused_by_the_schema_check_and_migrated_at_start(
    database_url: str,
) -> None:
    db = Database(database_url)
    try:
        assert db.revision() is None
        with pytest.raises(StoreUnavailable, match="not migrated"):
            db.check_schema()  # no schema at all
        config = _alembic_config()
        with db.engine.begin() as conn:  # a store left by the previous version
            config.attributes["connection"] = conn
            command.upgrade(config, "0013")
        assert db.revision() == "0013"
        with pytest.raises(StoreUnavailable) as refused:
            db.check_schema()
        assert refused.value.description is not None
        assert f"at revision 0013, this version needs {HEAD}" in refused.value.description
        db.migrate()
        assert db.revision() == HEAD
        db.check_schema()
    finally:
        db.close()


def test_a_store_at_the_head_opens_without_loading_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    Database(url).migrate()  # the first start migrates
    program = (
        "import sys\n"
        "from querybatch.store.database import Database\n"
        "import querybatch.api.app, querybatch.engine.executors.worker_process\n"
        f"db = Database({url!r})\n"
        "db.migrate()\n"
        "db.check_schema()\n"
        "print(db.revision(), sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == [HEAD, "[]"]
