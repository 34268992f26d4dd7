"""Keys and roles: who is calling, and what a key (or the operator) may grant or take away.

Tenant rules: a key manages only the keys and custom roles of its own account (another
account's are not found, and may share a name with its own); the built-in roles are every
account's and never change. No key can grant or take away more than its own role allows:
it may not create a key, nor create or change a role to one, permitting an action its role
does not; nor change, delete or revoke what permits such an action today; nor change or
delete the role its own key uses. The operator (the CLI) manages any account, held to no
role. Every change is announced to the watchers (the API's key cache), so that it applies
on this node at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from querybatch.domain.actions import BUILTIN_ROLES, Effect, Statement, unknown_actions
from querybatch.domain.teams import team_id_of
from querybatch.engine.service import Caller
from querybatch.errors import BadRequest, Conflict, NotFound, PermissionDenied
from querybatch.store.keys import BUILTIN_ACCOUNT, KEY_PREFIX
from querybatch.store.records import KeyRecord, RoleRecord
from querybatch.store.store import Store

__all__ = [
    "KEY_PREFIX",
    "Access",
    "Identity",
    "KeyRecord",
    "Manager",
    "Principal",
    "RoleRecord",
    "Team",
    "check_key_account",
]


@dataclass(frozen=True, slots=True)
class Manager:
    """Who manages keys and roles: a key, held to its role, or the operator, held to none.

    ``account`` is the tenant whose keys and roles are managed (None: every tenant's keys,
    for the operator); ``role`` is the role of the managing key, which it may not change;
    ``limit`` is what that role permits: nothing beyond it may be granted or taken away.
    """

    account: str | None
    role: str | None = None
    limit: Statement | None = None

    @classmethod
    def operator(cls, account: str | None = None) -> Manager:
        """The server's operator: the admin of ``account`` (of every account when None)."""
        return cls(account)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated key and what its role allows."""

    key: KeyRecord
    statement: Statement

    @property
    def caller(self) -> Caller:
        """The engine's view of the principal."""
        return Caller(account=self.key.account, key_id=self.key.id)

    @property
    def manager(self) -> Manager:
        """The principal managing its own account's keys and roles, within its role."""
        return Manager(self.key.account, self.key.role, self.statement)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a key is: its record, its account's team id, and what its role allows."""

    key: KeyRecord
    team_id: int
    statement: Statement


@dataclass(frozen=True, slots=True)
class Team:
    """A tenant as the SDK's teams see it: its numeric id, name, and when its first key came."""

    team_id: int
    account: str
    created_at: float


def check_key_account(account: str | None) -> str:
    """``account`` when keys may belong to it: not empty, and not the built-in roles' own."""
    if not account or account == BUILTIN_ACCOUNT:
        raise BadRequest(
            "Invalid value for parameter 'account'", f"{account!r} is not an account name."
        )
    return account


class Access:
    """The one door to API keys and roles, for the API and the CLI alike."""

    def __init__(self, store: Store, *, owns_store: bool = False) -> None:
        self.store = store
        self._watchers: list[Callable[[], None]] = []
        self._owns_store = owns_store

    def close(self) -> None:
        """Close the store if it was opened for this service alone (a CLI command)."""
        if self._owns_store:
            self.store.close()

    def watch(self, changed: Callable[[], None]) -> None:
        """Call ``changed`` whenever a key or role changes through this service."""
        self._watchers.append(changed)

    # -- authentication ---------------------------------------------------------------------

    async def authenticate(self, secret: str) -> Principal | None:
        """The principal of an active key with this secret, or None."""
        key = await self.store.keys.authenticate(secret)
        if key is None:
            return None
        # A key's role is a built-in one or one of its own account's, never another's.
        role = await self.store.keys.get_role(key.account, key.role)
        if role is None:
            return None
        return Principal(key, role.statement)

    def who_am_i(self, principal: Principal) -> Identity:
        """Who the authenticated key is (``GET /whoami``): account, team, key and role."""
        return Identity(principal.key, team_id_of(principal.key.account), principal.statement)

    async def team(self, principal: Principal, team_id: int) -> Team:
        """The caller's tenant as a team (``GET /v1/teams/{team_id}``); another's is NotFound."""
        account = principal.key.account
        if team_id != team_id_of(account):
            raise NotFound(f"No team {team_id}")
        keys = await self.store.keys.list_keys(account)
        created = min((k.created_at for k in keys), default=principal.key.created_at)
        return Team(team_id, account, created)

    # -- keys -------------------------------------------------------------------------------

    async def list_keys(self, by: Manager) -> list[KeyRecord]:
        """The keys of the manager's account (of all, for the operator), oldest first."""
        return await self.store.keys.list_keys(by.account)

    async def create_key(
        self, by: Manager, name: str, role: str, account: str | None = None
    ) -> tuple[KeyRecord, str]:
        """Create a key in the manager's account; returns it with its secret (shown once).

        ``account``, when given, must be the manager's own. The role must exist for the
        account and permit nothing the manager's role does not.
        """
        if account is not None and account != by.account:
            raise PermissionDenied(
                "Keys can only be created in your own account",
                f"This key belongs to account '{by.account}'.",
            )
        owner = check_key_account(by.account)
        record = await self.store.keys.get_role(owner, role)
        if record is None:
            raise BadRequest("Invalid value for parameter 'role'", f"There is no role '{role}'.")
        _within(by, record.statement, f"The role '{record.name}' allows more than your key may do")
        created = await self.store.keys.create_key(name, record.name, owner, time.time())
        self._changed()
        return created

    async def revoke_key(self, by: Manager, key_id: str) -> KeyRecord:
        """Revoke an active key of the manager's account; requests with it fail from now on."""
        outcome = await self.store.keys.revoke(key_id, time.time(), by.account, within=by.limit)
        if outcome == "missing":
            raise NotFound(f"No active key '{key_id}'")
        if outcome == "beyond":
            raise PermissionDenied(
                f"Key '{key_id}' may do more than your key may",
                "Its role allows actions yours does not; only a key holding them may revoke it.",
            )
        self._changed()
        record = await self.store.keys.get_key(key_id)
        assert record is not None
        return record

    # -- roles ------------------------------------------------------------------------------

    async def list_roles(self, by: Manager) -> list[RoleRecord]:
        """The built-in roles (first) and the manager's account's own."""
        return await self.store.keys.list_roles(_account(by))

    async def create_role(
        self, by: Manager, name: str, effect: Effect, actions: Sequence[str]
    ) -> RoleRecord:
        """Create a custom role of the manager's account; Conflict if it has one so named."""
        role, _ = await self._save_role(by, name, effect, actions, create=True, replace=False)
        return role

    async def replace_role(
        self, by: Manager, name: str, effect: Effect, actions: Sequence[str]
    ) -> RoleRecord:
        """Replace the statement of a custom role of the manager's account (NotFound if none)."""
        role, _ = await self._save_role(by, name, effect, actions, create=False, replace=True)
        return role

    async def put_role(
        self, by: Manager, name: str, effect: Effect, actions: Sequence[str]
    ) -> tuple[RoleRecord, bool]:
        """Create a custom role of the manager's account, or replace the statement of its
        role so named; returns the role and whether it was created."""
        return await self._save_role(by, name, effect, actions, create=True, replace=True)

    async def delete_role(self, by: Manager, name: str) -> None:
        """Delete a custom role of the manager's account that no key uses (revoked ones too)."""
        _not_builtin(name)
        _not_own(by, name)
        outcome = await self.store.keys.delete_role(_account(by), name, within=by.limit)
        if outcome == "missing":
            raise NotFound(f"No role '{name}'")
        _not_beyond(name, outcome)
        if outcome == "in_use":
            raise Conflict(
                f"Role '{name}' is in use",
                "Keys of your account use it (revoked keys too); roles of keys never change.",
            )
        self._changed()

    async def _save_role(
        self,
        by: Manager,
        name: str,
        effect: Effect,
        actions: Sequence[str],
        *,
        create: bool,
        replace: bool,
    ) -> tuple[RoleRecord, bool]:
        unknown = unknown_actions(tuple(actions))
        if unknown:
            raise BadRequest(
                "Invalid value for parameter 'actions'", f"Unknown action(s): {', '.join(unknown)}."
            )
        _not_builtin(name)
        _not_own(by, name)
        wanted = Statement(effect, frozenset(actions))
        _within(by, wanted, f"The role '{name}' would allow more than your key may do")
        account = _account(by)
        outcome = await self.store.keys.save_role(
            account,
            name,
            effect,
            actions,
            time.time(),
            create=create,
            replace=replace,
            within=by.limit,
        )
        if outcome == "missing":
            raise NotFound(f"No role '{name}'", "Create it with POST /roles.")
        if outcome == "exists":
            raise Conflict(f"Role '{name}' exists already", f"Use PUT /roles/{name} to change it.")
        _not_beyond(name, outcome)
        self._changed()
        role = await self.store.keys.get_role(account, name)
        assert role is not None
        return role, outcome == "created"

    def _changed(self) -> None:
        for changed in self._watchers:
            changed()


def _account(by: Manager) -> str:
    # Roles always belong to one account; only the operator may name none, and only for keys.
    if by.account is None:
        raise BadRequest("Invalid value for parameter 'account'", "Roles belong to an account.")
    return by.account


def _within(by: Manager, statement: Statement, message: str) -> None:
    """Refuse a statement permitting anything the manager's role does not."""
    if by.limit is None:
        return
    beyond = statement.beyond(by.limit)
    if beyond:
        raise PermissionDenied(message, f"Your role does not allow: {', '.join(beyond)}.")


def _not_builtin(name: str) -> None:
    if name in BUILTIN_ROLES:
        raise Conflict(f"Role '{name}' is built in", "Built-in roles cannot be changed.")


def _not_own(by: Manager, name: str) -> None:
    # Changing its own role would let a key raise (or drop) its own powers.
    if name == by.role:
        raise PermissionDenied(
            f"Role '{name}' is the role of your key",
            "A key cannot change or delete its own role; use a key with another role.",
        )


def _not_beyond(name: str, outcome: str) -> None:
    if outcome == "beyond":
        raise PermissionDenied(
            f"The role '{name}' allows more than your key may do",
            "Only a key holding every action it allows may change or delete it.",
        )
