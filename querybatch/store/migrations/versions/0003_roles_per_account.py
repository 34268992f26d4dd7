"""roles belong to accounts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 10:12:40.118305

Custom roles were shared by the whole server (``roles`` keyed by name), so one tenant could
change or delete another's. From here a custom role belongs to one account: ``roles`` is
keyed by (account, name), the built-in roles are stored under the reserved account ``*``
(every account's, and a name no account may take), and ``api_keys.role_account`` says where
a key's role is stored (its own account, or ``*``), so that (role_account, role) references
``roles``.

Each existing custom role moves to the accounts whose keys use it (revoked keys count: a
key's role never changes):

- used by keys of one account: it becomes that account's role;
- used by keys of several accounts: each of them gets its own copy (same statement, same
  created_at), which it may change from then on without touching the others';
- used by no key: it goes to the account ``default``, the server's own account (the one the
  ``QB_ADMIN_KEY`` key, the admin key of the first start and ``querybatch keys create``
  without ``--account`` belong to). That account is always known, so no role is dropped:
  the operator finds it with ``querybatch roles list`` and may delete it; no other tenant
  sees it. A tenant that had created it (and made no key with it) creates it again.

Downgrading keeps one role per name (the ``default`` account's copy, else the copy of the
first account in alphabetical order) and points every key with that name to it: copies that
tenants changed in different ways are lost.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import querybatch.store.types

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUILTIN_ACCOUNT = "*"
DEFAULT_ACCOUNT = "default"

# The tables as this revision sees them (never the models, which move on).
roles = sa.table(
    "roles",
    sa.column("account", sa.String(64)),
    sa.column("name", sa.String(64)),
    sa.column("effect", sa.String(5)),
    sa.column("actions", querybatch.store.types.JSONText()),
    sa.column("builtin", sa.Boolean()),
    sa.column("created_at", sa.Double()),
)
api_keys = sa.table(
    "api_keys",
    sa.column("account", sa.String(64)),
    sa.column("role", sa.String(64)),
    sa.column("role_account", sa.String(64)),
)


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_api_keys_role_roles"), type_="foreignkey")
        batch_op.add_column(sa.Column("role_account", sa.String(length=64), nullable=True))
    with op.batch_alter_table("roles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account", sa.String(length=64), nullable=True))

    conn = op.get_bind()
    owners = _owners(conn)
    for name, accounts in owners.items():
        update = roles.update().where(roles.c.name == name, roles.c.builtin.is_(False))
        conn.execute(update.values(account=accounts[0]))
    conn.execute(roles.update().where(roles.c.builtin.is_(True)).values(account=BUILTIN_ACCOUNT))

    with op.batch_alter_table("roles", schema=None) as batch_op:
        batch_op.alter_column("account", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_constraint(batch_op.f("pk_roles"), type_="primary")
        batch_op.create_primary_key(batch_op.f("pk_roles"), ["account", "name"])

    # With (account, name) as the key, a role used by several accounts can be copied.
    for name, accounts in owners.items():
        row = conn.execute(
            sa.select(roles.c.effect, roles.c.actions, roles.c.created_at).where(
                roles.c.name == name, roles.c.account == accounts[0]
            )
        ).one()
        for account in accounts[1:]:
            conn.execute(
                roles.insert().values(
                    account=account,
                    name=name,
                    effect=row.effect,
                    actions=row.actions,
                    builtin=False,
                    created_at=row.created_at,
                )
            )
    builtin_names = sa.select(roles.c.name).where(roles.c.account == BUILTIN_ACCOUNT)
    conn.execute(
        api_keys.update()
        .where(api_keys.c.role.in_(builtin_names))
        .values(role_account=BUILTIN_ACCOUNT)
    )
    conn.execute(
        api_keys.update()
        .where(api_keys.c.role_account.is_(None))
        .values(role_account=api_keys.c.account)
    )

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.alter_column("role_account", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_api_keys_role_account_roles"),
            "roles",
            ["role_account", "role"],
            ["account", "name"],
        )


def _owners(conn: sa.Connection) -> dict[str, list[str]]:
    """Each custom role's name -> the accounts it goes to, in alphabetical order."""
    custom = [row.name for row in conn.execute(sa.select(roles.c.name).where(~roles.c.builtin))]
    users = conn.execute(
        sa.select(api_keys.c.role, api_keys.c.account).where(api_keys.c.role.in_(custom)).distinct()
    )
    owners: dict[str, set[str]] = {name: set() for name in custom}
    for role, account in users:
        owners[role].add(account)
    return {name: sorted(accounts or {DEFAULT_ACCOUNT}) for name, accounts in owners.items()}


def downgrade() -> None:
    """Downgrade schema (lossy: one role per name is kept, see the module docstring)."""
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_api_keys_role_account_roles"), type_="foreignkey")
        batch_op.drop_column("role_account")

    conn = op.get_bind()
    copies = conn.execute(
        sa.select(roles.c.name, roles.c.account)
        .where(roles.c.account != BUILTIN_ACCOUNT)
        .order_by(roles.c.name, roles.c.account)
    )
    kept: dict[str, str] = {}
    for name, account in copies:
        if name not in kept or account == DEFAULT_ACCOUNT:
            kept[name] = account
    for name, account in kept.items():
        conn.execute(roles.delete().where(roles.c.name == name, roles.c.account != account))

    with op.batch_alter_table("roles", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("pk_roles"), type_="primary")
        batch_op.create_primary_key(batch_op.f("pk_roles"), ["name"])
        batch_op.drop_column("account")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_api_keys_role_roles"), "roles", ["role"], ["name"]
        )
