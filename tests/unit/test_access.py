"""The Access service directly: the operator is held to no role, a key to its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from querybatch.api.access_shapes import created_key, role_answer
from querybatch.api.schemas import RequestMeta
from querybatch.domain.actions import Statement
from querybatch.engine.access import Access, Manager
from querybatch.errors import BadRequest, Conflict, NotFound, PermissionDenied
from querybatch.store.store import Store

KEY_MANAGER = Manager(
    "acme", role="keys", limit=Statement("allow", frozenset({"manage_keys", "get_batch"}))
)


@pytest.fixture
def access(tmp_path: Path) -> Iterator[Access]:
    store = Store.open(f"sqlite:///{tmp_path / 'access.db'}", result_ttl=3600)
    store.keys.ensure_builtin_roles.blocking(0.0)
    yield Access(store)
    store.close()


async def test_the_operator_creates_then_replaces_a_role_with_put_role(access: Access) -> None:
    operator = Manager.operator("acme")
    role, created = await access.put_role(operator, "team", "allow", ["get_batches"])
    assert created and role.actions == ("get_batches",)
    role, created = await access.put_role(operator, "team", "deny", [])
    assert not created and role.effect == "deny"


async def test_a_built_in_role_cannot_be_put_even_by_the_operator(access: Access) -> None:
    with pytest.raises(Conflict):
        await access.put_role(Manager.operator("acme"), "viewer", "deny", [])


async def test_a_key_manager_cannot_create_a_key_whose_role_allows_more(access: Access) -> None:
    with pytest.raises(PermissionDenied, match="allows more than your key may do"):
        await access.create_key(KEY_MANAGER, "wide", "analyst")
    assert await access.list_keys(Manager.operator("acme")) == []


async def test_a_key_manager_cannot_change_its_own_role(access: Access) -> None:
    await access.put_role(Manager.operator("acme"), "keys", "allow", ["manage_keys"])
    with pytest.raises(PermissionDenied, match="is the role of your key"):
        await access.replace_role(KEY_MANAGER, "keys", "allow", [])


async def test_the_operator_revokes_a_key_of_any_account(access: Access) -> None:
    key, _ = await access.create_key(Manager.operator("acme"), "k", "viewer")
    revoked = await access.revoke_key(Manager.operator(), key.id)
    assert revoked.revoked_at is not None
    with pytest.raises(NotFound):
        await access.revoke_key(Manager.operator(), key.id)


async def test_no_key_belongs_to_the_account_of_the_built_in_roles(access: Access) -> None:
    with pytest.raises(BadRequest, match="'account'"):
        await access.create_key(Manager.operator("*"), "k", "viewer")


async def test_watchers_hear_of_changes_and_not_of_refusals(access: Access) -> None:
    heard: list[str] = []
    access.watch(lambda: heard.append("changed"))
    with pytest.raises(BadRequest):
        await access.create_key(Manager.operator("acme"), "k", "no-such-role")
    assert heard == []
    await access.create_key(Manager.operator("acme"), "k", "viewer")
    assert heard == ["changed"]


async def test_answers_put_meta_first_as_clients_receive_them(access: Access) -> None:
    meta = RequestMeta(request_id="request-0001")
    key, secret = await access.create_key(Manager.operator("acme"), "k", "viewer")
    answer = created_key(meta, key, secret).model_dump(mode="json")
    assert list(answer) == [
        "meta",
        "id",
        "name",
        "prefix",
        "role",
        "account",
        "created_at",
        "revoked_at",
        "team_id",
        "secret",
    ]
    role, _ = await access.put_role(Manager.operator("acme"), "team", "allow", [])
    assert list(role_answer(meta, role).model_dump(mode="json")) == [
        "meta",
        "name",
        "effect",
        "actions",
        "builtin",
    ]
