"""Migration 0003 gives every existing custom role to the accounts whose keys use it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from querybatch.store.database import Database
from querybatch.store.keys import KeyStore, hash_key

ROLES = [
    # name, builtin, effect, actions
    ("admin", True, "deny", "[]"),
    ("analyst", True, "deny", '["manage_keys","manage_roles"]'),
    ("unused", False, "allow", '["get_batch"]'),
    ("solo", False, "allow", '["get_batches"]'),
    ("shared", False, "deny", '["get_data"]'),
]
KEYS = [
    # id, account, role, revoked
    ("key_admin", "default", "admin", False),
    ("key_a_solo", "a", "solo", False),
    ("key_a_solo_old", "a", "solo", True),
    ("key_a_shared", "a", "shared", False),
    ("key_b_shared", "b", "shared", True),
    ("key_b_analyst", "b", "analyst", False),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    url: str = request.getfixturevalue("pg_schema")[0]
    return url


def migrate(db: Database, revision: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", "querybatch.store:migrations")
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A database at revision 0002 holding ROLES and KEYS, then upgraded to the newest."""
    database = Database(database_url)
    try:
        migrate(database, "0002")
        with database.engine.begin() as conn:
            for name, builtin, effect, actions in ROLES:
                conn.execute(
                    text(
                        "INSERT INTO roles (name, effect, actions, builtin, created_at)"
                        " VALUES (:name, :effect, :actions, :builtin, 7.0)"
                    ),
                    {"name": name, "effect": effect, "actions": actions, "builtin": builtin},
                )
            for key_id, account, role, revoked in KEYS:
                conn.execute(
                    text(
                        "INSERT INTO api_keys (id, name, prefix, key_hash, role, account,"
                        " created_at, revoked_at)"
                        " VALUES (:id, :id, 'qb_x', :hash, :role, :account, 1.0, :revoked)"
                    ),
                    {
                        "id": key_id,
                        "hash": hash_key(key_id),
                        "role": role,
                        "account": account,
                        "revoked": 2.0 if revoked else None,
                    },
                )
        migrate(database, "head")
        yield database
    finally:
        database.close()


def roles_in(db: Database) -> dict[tuple[str, str], tuple[Any, ...]]:
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT account, name, effect, actions, created_at FROM roles"))
        return {(row[0], row[1]): tuple(row[2:]) for row in rows}


def test_built_in_roles_are_kept_for_every_account(db: Database) -> None:
    assert {name for account, name in roles_in(db) if account == "*"} == {"admin", "analyst"}
    keys = KeyStore(db)
    assert keys.get_role.blocking("anyone", "analyst") is not None
    assert keys.get_role.blocking("default", "admin") is not None


def test_a_role_used_by_one_account_becomes_that_accounts_own(db: Database) -> None:
    assert [key for key in roles_in(db) if key[1] == "solo"] == [("a", "solo")]
    keys = KeyStore(db)
    solo = keys.get_role.blocking("a", "solo")
    assert solo is not None and solo.actions == ("get_batches",) and not solo.builtin
    assert keys.get_role.blocking("b", "solo") is None


def test_a_role_used_by_several_accounts_is_copied_to_each_with_its_statement(
    db: Database,
) -> None:
    roles = roles_in(db)
    assert sorted(key for key in roles if key[1] == "shared") == [("a", "shared"), ("b", "shared")]
    assert roles[("a", "shared")] == roles[("b", "shared")]
    assert roles[("a", "shared")][0] == "deny"


def test_a_role_no_key_uses_goes_to_the_default_account(db: Database) -> None:
    assert [key for key in roles_in(db) if key[1] == "unused"] == [("default", "unused")]
    keys = KeyStore(db)
    assert [r.name for r in keys.list_roles.blocking("default") if not r.builtin] == ["unused"]
    assert [r.name for r in keys.list_roles.blocking("c") if not r.builtin] == []


def test_every_key_finds_its_role_in_its_own_account_after_the_upgrade(db: Database) -> None:
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, role_account FROM api_keys ORDER BY id"))
        role_accounts = {row[0]: row[1] for row in rows}
    assert role_accounts == {
        "key_admin": "*",
        "key_a_solo": "a",
        "key_a_solo_old": "a",
        "key_a_shared": "a",
        "key_b_shared": "b",
        "key_b_analyst": "*",
    }
    keys = KeyStore(db)
    active = keys.authenticate.blocking("key_a_shared")
    assert active is not None
    role = keys.get_role.blocking(active.account, active.role)
    assert role is not None and role.effect == "deny" and role.actions == ("get_data",)


def test_one_account_changing_its_copy_leaves_the_others_alone(db: Database) -> None:
    keys = KeyStore(db)
    assert keys.save_role.blocking("a", "shared", "allow", [], 9.0, replace=True) == "replaced"
    b_copy = keys.get_role.blocking("b", "shared")
    assert b_copy is not None and b_copy.effect == "deny"


def test_downgrading_keeps_one_role_per_name(db: Database) -> None:
    migrate(db, "0002", down=True)
    with db.engine.connect() as conn:
        names = sorted(row[0] for row in conn.execute(text("SELECT name FROM roles")))
        key_roles = {r[0]: r[1] for r in conn.execute(text("SELECT id, role FROM api_keys"))}
    assert names == ["admin", "analyst", "shared", "solo", "unused"]
    assert key_roles["key_b_shared"] == "shared"
