"""API keys (stored as SHA-256 hashes) and roles."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.engine import RowMapping

from querybatch.domain.actions import BUILTIN_ROLES
from querybatch.store.database import Database
from querybatch.store.records import KeyRecord, RoleRecord
from querybatch.store.tables import api_keys, roles, server_state

KEY_PREFIX = "qb_"


def hash_key(secret: str) -> str:
    """The stored form of a key. Keys carry 256 random bits, so a plain hash is enough."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key_secret() -> str:
    """A fresh API key: ``qb_`` and 43 URL-safe characters."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyStore:
    """The repository of API keys and roles."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- the server's signing secret -------------------------------------------------------

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

    def ensure_builtin_roles(self, now: float) -> None:
        """Create (or restore) the admin, analyst and viewer roles."""
        with self.db.writing() as conn:
            existing = {row.name for row in conn.execute(select(roles.c.name))}
            for name, statement in BUILTIN_ROLES.items():
                values = {
                    "effect": statement.effect,
                    "actions": sorted(statement.actions),
                    "builtin": True,
                }
                if name in existing:
                    conn.execute(update(roles).where(roles.c.name == name).values(values))
                else:
                    conn.execute(insert(roles).values(name=name, created_at=now, **values))

    def list_roles(self) -> list[RoleRecord]:
        """Every role, built-in ones first."""
        with self.db.reading() as conn:
            rows = conn.execute(select(roles).order_by(roles.c.builtin.desc(), roles.c.name))
            return [_role(row) for row in rows.mappings()]

    def get_role(self, name: str) -> RoleRecord | None:
        """One role by name."""
        with self.db.reading() as conn:
            row = conn.execute(select(roles).where(roles.c.name == name)).mappings().first()
        return None if row is None else _role(row)

    def save_role(self, name: str, effect: str, actions: Sequence[str], now: float) -> RoleRecord:
        """Create a role, or replace the statement of an existing custom role."""
        values = {"effect": effect, "actions": sorted(set(actions))}
        with self.db.writing() as conn:
            changed = conn.execute(
                update(roles).where(roles.c.name == name, roles.c.builtin.is_(False)).values(values)
            ).rowcount
            if not changed:
                conn.execute(
                    insert(roles).values(name=name, builtin=False, created_at=now, **values)
                )
        role = self.get_role(name)
        assert role is not None
        return role

    def delete_role(self, name: str) -> bool:
        """Delete a custom role no key uses; False if it is built in, in use or unknown."""
        with self.db.writing() as conn:
            in_use = conn.execute(
                select(func.count()).select_from(api_keys).where(api_keys.c.role == name)
            ).scalar_one()
            if in_use:
                return False
            return bool(
                conn.execute(
                    roles.delete().where(roles.c.name == name, roles.c.builtin.is_(False))
                ).rowcount
            )

    def save_tenant_role(
        self,
        account: str,
        name: str,
        effect: str,
        actions: Sequence[str],
        now: float,
        *,
        replace: bool,
    ) -> str:
        """Create (or, with ``replace``, replace) a custom role on behalf of a tenant.

        Roles are server-wide, so a tenant may not change one that keys of another tenant
        use. Returns "saved", "exists" (not replacing), "builtin" or "shared".
        """
        values = {"effect": effect, "actions": sorted(set(actions))}
        with self.db.writing() as conn:
            row = conn.execute(select(roles.c.builtin).where(roles.c.name == name)).first()
            if row is not None:
                if row.builtin:
                    return "builtin"
                if not replace:
                    return "exists"
                if self._used_elsewhere(conn, name, account):
                    return "shared"
                conn.execute(update(roles).where(roles.c.name == name).values(values))
            else:
                conn.execute(
                    insert(roles).values(name=name, builtin=False, created_at=now, **values)
                )
        return "saved"

    def delete_tenant_role(self, account: str, name: str) -> str:
        """Delete a custom role on behalf of a tenant: "deleted", "missing", "builtin",
        "shared" (keys of another tenant use it) or "in_use" (keys of this tenant do)."""
        with self.db.writing() as conn:
            row = conn.execute(select(roles.c.builtin).where(roles.c.name == name)).first()
            if row is None:
                return "missing"
            if row.builtin:
                return "builtin"
            if self._used_elsewhere(conn, name, account):
                return "shared"
            used = conn.execute(select(api_keys.c.id).where(api_keys.c.role == name).limit(1))
            if used.first() is not None:
                return "in_use"
            conn.execute(roles.delete().where(roles.c.name == name))
        return "deleted"

    @staticmethod
    def _used_elsewhere(conn: Connection, name: str, account: str) -> bool:
        query = select(api_keys.c.id).where(api_keys.c.role == name, api_keys.c.account != account)
        return conn.execute(query.limit(1)).first() is not None

    # -- keys -------------------------------------------------------------------------------

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
                    created_at=now,
                )
            )
        record = self.get_key(key_id)
        assert record is not None
        return record, secret

    def ensure_key(self, secret: str, name: str, role: str, account: str, now: float) -> KeyRecord:
        """Make this exact key exist, active, with this role (``QB_ADMIN_KEY``)."""
        with self.db.writing() as conn:
            changed = conn.execute(
                update(api_keys)
                .where(api_keys.c.key_hash == hash_key(secret))
                .values(role=role, revoked_at=None)
            ).rowcount
        if changed:
            record = self.authenticate(secret)
            assert record is not None
            return record
        return self.create_key(name, role, account, now, secret=secret)[0]

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

    def get_key(self, key_id: str) -> KeyRecord | None:
        """One key by id, revoked or not."""
        with self.db.reading() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
        return None if row is None else _key(row)

    def list_keys(self, account: str | None = None) -> list[KeyRecord]:
        """Keys, oldest first, of one tenant or of all."""
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if account is not None:
            query = query.where(api_keys.c.account == account)
        with self.db.reading() as conn:
            return [_key(row) for row in conn.execute(query).mappings()]

    def revoke(self, key_id: str, now: float, account: str | None = None) -> bool:
        """Revoke a key (of ``account`` when given); False if unknown or already revoked."""
        query = update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        if account is not None:
            query = query.where(api_keys.c.account == account)
        with self.db.writing() as conn:
            return bool(conn.execute(query.values(revoked_at=now)).rowcount)

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
