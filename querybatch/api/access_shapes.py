"""Keys and roles as the API reads them and answers them (the bodies of /keys and /roles).

The answer models are what /openapi.json documents and what the routes send: each route
builds its model here and sends it with ``answer.model_response``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from querybatch.api.schemas import RequestMeta
from querybatch.domain.actions import ROLE_NAME
from querybatch.domain.teams import team_id_of
from querybatch.engine.access import Identity, KeyRecord, RoleRecord


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


class WithMeta(BaseModel):
    """The ``meta`` an answer starts with."""

    meta: RequestMeta


class KeyItem(BaseModel):
    """A key as listed: never its secret, only the first characters to recognise it by."""

    id: str
    name: str
    prefix: str
    role: str
    account: str
    created_at: float
    revoked_at: float | None
    team_id: int = Field(description="The numeric id of the key's account as a team")


class RoleItem(BaseModel):
    """A role and its statement."""

    name: str
    effect: str
    actions: list[str]
    builtin: bool


# The bases of a model put their fields first, the last base's leading: so (KeyItem, WithMeta)
# answers ``meta`` first, then the key, as clients have always received it.


class KeyAnswer(KeyItem, WithMeta):
    """A key in the envelope (``DELETE /keys/{key_id}`` answers the key it revoked)."""


class CreatedKey(KeyItem, WithMeta):
    """A key just created, with its secret (shown this once)."""

    secret: str


class RoleAnswer(RoleItem, WithMeta):
    """A role and its statement, in the envelope."""


class DeletedRole(WithMeta):
    """A role that was deleted."""

    name: str
    deleted: bool


class KeyList(WithMeta):
    """The tenant's keys (never their secrets)."""

    keys: list[KeyItem]


class RoleList(WithMeta):
    """The built-in roles and the account's own, with their statements."""

    roles: list[RoleItem]


class StatementItem(BaseModel):
    """A role's statement: ``allow`` only ``actions``, or ``deny`` only them."""

    effect: str
    actions: list[str]


class WhoAmI(WithMeta):
    """Who a key is (``GET /whoami``; Trusted Twin's ``who_am_i``).

    ``account``, ``user`` and ``role`` are the attributes Trusted Twin's answer has: the
    key stands for the user, and its id is the user's.
    """

    account: str
    team_id: int
    user: str
    role: str
    key: KeyItem
    statement: StatementItem


def _key_fields(key: KeyRecord) -> dict[str, object]:
    return {**asdict(key), "team_id": team_id_of(key.account)}


def key_list(meta: RequestMeta, keys: list[KeyRecord]) -> KeyList:
    """The answer of ``GET /keys``."""
    return KeyList(meta=meta, keys=[KeyItem.model_validate(_key_fields(k)) for k in keys])


def key_answer(meta: RequestMeta, key: KeyRecord) -> KeyAnswer:
    """One key in the envelope."""
    return KeyAnswer.model_validate({"meta": meta, **_key_fields(key)})


def created_key(meta: RequestMeta, key: KeyRecord, secret: str) -> CreatedKey:
    """A key just created, with its secret."""
    return CreatedKey.model_validate({"meta": meta, **_key_fields(key), "secret": secret})


def who_am_i(meta: RequestMeta, identity: Identity) -> WhoAmI:
    """The answer of ``GET /whoami``."""
    key = identity.key
    return WhoAmI(
        meta=meta,
        account=key.account,
        team_id=identity.team_id,
        user=key.id,
        role=key.role,
        key=KeyItem.model_validate(_key_fields(key)),
        statement=StatementItem(
            effect=identity.statement.effect, actions=sorted(identity.statement.actions)
        ),
    )


def role_list(meta: RequestMeta, roles: list[RoleRecord]) -> RoleList:
    """The answer of ``GET /roles``."""
    return RoleList(meta=meta, roles=[RoleItem.model_validate(asdict(r)) for r in roles])


def role_answer(meta: RequestMeta, role: RoleRecord) -> RoleAnswer:
    """One role in the envelope."""
    return RoleAnswer.model_validate({"meta": meta, **asdict(role)})
