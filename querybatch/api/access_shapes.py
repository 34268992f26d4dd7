"""Keys and roles as the API shows them and reads them (the bodies of /keys and /roles)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from querybatch.api.schemas import Loose
from querybatch.domain.actions import ROLE_NAME
from querybatch.store.records import KeyRecord, RoleRecord


class NewKey(BaseModel):
    """The body of ``POST /keys``."""

    model_config = ConfigDict(extra="ignore")
    name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    role: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "analyst"
    account: Annotated[str, StringConstraints(max_length=64)] | None = None


class RoleBody(BaseModel):
    """A role's statement (``PUT /roles/{name}``; ``POST /roles`` adds the name)."""

    model_config = ConfigDict(extra="ignore")
    effect: Literal["allow", "deny"]
    actions: Annotated[
        list[Annotated[str, StringConstraints(max_length=64)]], Field(max_length=100)
    ]


class NewRole(RoleBody):
    """The body of ``POST /roles``."""

    name: Annotated[str, StringConstraints(pattern=ROLE_NAME)]


class KeyList(Loose):
    """The tenant's keys (never their secrets)."""

    keys: list[dict[str, Any]]


class RoleList(Loose):
    """The built-in roles and the account's own, with their statements."""

    roles: list[dict[str, Any]]


def key_shape(key: KeyRecord) -> dict[str, Any]:
    """A key as listed: never its secret, only the first characters to recognise it by."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "role": key.role,
        "account": key.account,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


def role_shape(role: RoleRecord) -> dict[str, Any]:
    """A role as listed."""
    return {
        "name": role.name,
        "effect": role.effect,
        "actions": list(role.actions),
        "builtin": role.builtin,
    }


class KeyItem(Loose):
    """A key as listed: never its secret."""

    id: str
    name: str
    prefix: str
    role: str
    account: str
    created_at: float
    revoked_at: float | None


class CreatedKey(KeyItem):
    """A key just created, with its secret (shown this once)."""

    secret: str


class RoleItem(Loose):
    """A role and its statement."""

    name: str
    effect: str
    actions: list[str]
    builtin: bool


class DeletedRole(Loose):
    """A role that was deleted."""

    name: str
    deleted: bool
