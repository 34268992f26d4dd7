"""API keys (stored as SHA-256 hashes) and roles (built-in ones, and each account's own)."""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import ColumnElement, Select, and_, func, insert, select, update
from sqlalchemy.engine import RowMapping

from querybatch.domain.actions import BUILTIN_ROLES, Statement
from querybatch.errors import Conflict
from querybatch.store.database import Database
from querybatch.store.records import KeyRecord, RoleRecord
from querybatch.store.repository import reads, writes
from querybatch.store.tables import api_keys, roles, server_state

KEY_PREFIX = "qb_"
BUILTIN_ACCOUNT = "*"
"""The account built-in roles are stored under: every account's, and a name no account takes."""


def hash_key(secret: str) -> str:
    """The stored form of a key. Keys carry 256 random bits, so a plain hash is enough."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key_secret() -> str:
    """A fresh API key: ``qb_`` and 43 URL-safe characters."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")


def _settled_at_start(
    method: Callable[Concatenate[R, P], T],
) -> Callable[Concatenate[R, P], T]:
    """Nodes that start at once on a new store race to create the same rows (the secret, the
    built-in roles, QB_ADMIN_KEY): the one that loses sees the winner's rows on a second try."""

    @functools.wraps(method)
    def settled(self: R, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(self, *args, **kwargs)
        except Conflict:
            return method(self, *args, **kwargs)

    return settled


class KeyStore:
    """The repository of API keys and roles."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- the server's signing secret -------------------------------------------------------

    @writes
    @_settled_at_start
    def server_secret(self, configured: str | None) -> bytes:
        """The secret that signs links and callbacks: ``configured`` (QB_SECRET) if given,
        else the one generated on the first start and kept in the store for every node."""
        if configured:
            return configured.encode()
        with self.db.writing() as conn:
            value = conn.execute(
                select(server_state.c.value).where(server_state.c.name == "secret")
            ).scalar_one_or_none()
            if value is None:
                value = secrets.token_urlsafe(48)
                conn.execute(insert(server_state).values(name="secret", value=value))
        return str(value).encode()

    # -- roles ------------------------------------------------------------------------------

    @writes
    @_settled_at_start
    def ensure_builtin_roles(self, now: float) -> None:
        """Create (or restore) the admin, analyst and viewer roles."""
        with self.db.writing() as conn:
            existing = {
                row.name
                for row in conn.execute(
                    select(roles.c.name).where(roles.c.account == BUILTIN_ACCOUNT)
                )
            }
            for name, statement in BUILTIN_ROLES.items():
                values = {
                    "effect": statement.effect,
                    "actions": sorted(statement.actions),
                    "builtin": True,
                }
                if name in existing:
                    conn.execute(update(roles).where(_builtin(name)).values(values))
                else:
                    conn.execute(
                        insert(roles).values(
                            account=BUILTIN_ACCOUNT, name=name, created_at=now, **values
                        )
                    )

    @reads
    def list_roles(self, account: str) -> list[RoleRecord]:
        """The roles ``account`` can use: the built-in ones first, then its own."""
        query = (
            select(roles)
            .where(roles.c.account.in_((BUILTIN_ACCOUNT, account)))
            .order_by(roles.c.builtin.desc(), roles.c.name)
        )
        with self.db.reading() as conn:
            return [_role(row) for row in conn.execute(query).mappings()]

    @reads
    def get_role(self, account: str, name: str) -> RoleRecord | None:
        """The role called ``name`` for ``account``: a built-in one, or the account's own."""
        with self.db.reading() as conn:
            row = conn.execute(_role_query(account, name)).mappings().first()
        return None if row is None else _role(row)

    @writes
    def save_role(
        self,
        account: str,
        name: str,
        effect: str,
        actions: Sequence[str],
        now: float,
        *,
        create: bool = True,
        replace: bool = True,
        within: Statement | None = None,
    ) -> str:
        """Create a custom role of ``account`` (``create``), or replace one's statement.

        With ``within`` (the statement of the key asking), a role that today permits more
        than it is not replaced: checked here, in the transaction that writes. Returns
        "created", "replaced", "exists" (not ``replace``), "missing" (not ``create``),
        "builtin" or "beyond".
        """
        if name in BUILTIN_ROLES:
            return "builtin"
        values = {"effect": effect, "actions": sorted(set(actions))}
        with self.db.writing() as conn:
            row = conn.execute(_role_query(account, name).with_for_update()).mappings().first()
            if row is None:
                if not create:
                    return "missing"
                conn.execute(
                    insert(roles).values(
                        account=account, name=name, builtin=False, created_at=now, **values
                    )
                )
                return "created"
            if not replace:
                return "exists"
            if within is not None and _role(row).statement.beyond(within):
                return "beyond"
            conn.execute(update(roles).where(_custom(account, name)).values(values))
        return "replaced"

    @writes
    def delete_role(self, account: str, name: str, *, within: Statement | None = None) -> str:
        """Delete a custom role of ``account`` that no key uses.

        Returns "deleted", "missing", "builtin", "in_use" (a key of the account uses it,
        revoked ones too) or "beyond" (it permits more than ``within``, when given).
        """
        if name in BUILTIN_ROLES:
            return "builtin"
        with self.db.writing() as conn:
            row = conn.execute(_role_query(account, name).with_for_update()).mappings().first()
            if row is None:
                return "missing"
            if within is not None and _role(row).statement.beyond(within):
                return "beyond"
            used = select(api_keys.c.id).where(
                api_keys.c.role_account == account, api_keys.c.role == name
            )
            if conn.execute(used.limit(1)).first() is not None:
                return "in_use"
            conn.execute(roles.delete().where(_custom(account, name)))
        return "deleted"

    # -- keys -------------------------------------------------------------------------------

    @writes
    def create_key(
        self, name: str, role: str, account: str, now: float, secret: str | None = None
    ) -> tuple[KeyRecord, str]:
        """Store a new key (``secret`` given, or generated) and return it with its secret."""
        secret = secret or new_key_secret()
        key_id = "key_" + secrets.token_hex(8)
        with self.db.writing() as conn:
            conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    name=name,
                    prefix=secret[:10],
                    key_hash=hash_key(secret),
                    role=role,
                    account=account,
                    role_account=role_account(account, role),
                    created_at=now,
                )
            )
        record = self.get_key.blocking(key_id)
        assert record is not None
        return record, secret

    @writes
    @_settled_at_start
    def ensure_key(self, secret: str, name: str, role: str, account: str, now: float) -> KeyRecord:
        """Make this exact key exist, active, with this role (``QB_ADMIN_KEY``)."""
        with self.db.writing() as conn:
            changed = conn.execute(
                update(api_keys)
                .where(api_keys.c.key_hash == hash_key(secret))
                .values(role=role, role_account=role_account(account, role), revoked_at=None)
            ).rowcount
        if changed:
            record = self.authenticate.blocking(secret)
            assert record is not None
            return record
        return self.create_key.blocking(name, role, account, now, secret=secret)[0]

    @reads
    def authenticate(self, secret: str) -> KeyRecord | None:
        """The active key with this secret, or None."""
        with self.db.reading() as conn:
            row = (
                conn.execute(
                    select(api_keys).where(
                        api_keys.c.key_hash == hash_key(secret), api_keys.c.revoked_at.is_(None)
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else _key(row)

    @reads
    def get_key(self, key_id: str) -> KeyRecord | None:
        """One key by id, revoked or not."""
        with self.db.reading() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
        return None if row is None else _key(row)

    @reads
    def list_keys(self, account: str | None = None) -> list[KeyRecord]:
        """Keys, oldest first, of one tenant or of all."""
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if account is not None:
            query = query.where(api_keys.c.account == account)
        with self.db.reading() as conn:
            return [_key(row) for row in conn.execute(query).mappings()]

    @writes
    def revoke(
        self,
        key_id: str,
        now: float,
        account: str | None = None,
        *,
        within: Statement | None = None,
    ) -> str:
        """Revoke an active key (of ``account`` when given).

        Returns "revoked", "missing" (unknown, another account's or revoked already) or
        "beyond" (its role permits more than ``within``, when given: that key is not revoked).
        """
        query = (
            select(roles.c.effect, roles.c.actions)
            .select_from(api_keys.join(roles, _key_role))
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        )
        if account is not None:
            query = query.where(api_keys.c.account == account)
        with self.db.writing() as conn:
            row = conn.execute(query.with_for_update(of=api_keys)).first()
            if row is None:
                return "missing"
            held = Statement("allow" if row.effect == "allow" else "deny", frozenset(row.actions))
            if within is not None and held.beyond(within):
                return "beyond"
            conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=now))
        return "revoked"

    @reads
    def count_active(self) -> int:
        """How many keys are not revoked."""
        with self.db.reading() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(api_keys)
                    .where(api_keys.c.revoked_at.is_(None))
                ).scalar_one()
            )


def role_account(account: str, role: str) -> str:
    """The account a key of ``account`` with ``role`` finds its role under."""
    return BUILTIN_ACCOUNT if role in BUILTIN_ROLES else account


def _role_query(account: str, name: str) -> Select[Any]:
    # Custom roles may not take a built-in name, so at most one row matches.
    return select(roles).where(roles.c.name == name, roles.c.account == role_account(account, name))


def _builtin(name: str) -> ColumnElement[bool]:
    return and_(roles.c.account == BUILTIN_ACCOUNT, roles.c.name == name)


def _custom(account: str, name: str) -> ColumnElement[bool]:
    return and_(roles.c.account == account, roles.c.name == name, roles.c.builtin.is_(False))


_key_role = and_(api_keys.c.role_account == roles.c.account, api_keys.c.role == roles.c.name)


def _role(row: RowMapping) -> RoleRecord:
    return RoleRecord(row["name"], row["effect"], tuple(row["actions"]), bool(row["builtin"]))


def _key(row: RowMapping) -> KeyRecord:
    return KeyRecord(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        role=row["role"],
        account=row["account"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
