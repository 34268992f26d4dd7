"""No key can grant or take away more than its role allows, nor touch another tenant's roles."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support import ServerProcess, assert_error, client, run_cli


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_role(api: httpx.Client, effect: str, *actions: str) -> str:
    name = unique("r")
    made = api.post("/roles", json={"name": name, "effect": effect, "actions": list(actions)})
    assert made.status_code == 201, made.text
    return name


def new_key(api: httpx.Client, role: str) -> dict[str, Any]:
    made = api.post("/keys", json={"name": unique("k"), "role": role})
    assert made.status_code == 201, made.text
    key: dict[str, Any] = made.json()
    return key


def statement_of(api: httpx.Client, name: str) -> dict[str, Any]:
    roles = {r["name"]: r for r in api.get("/roles").json()["roles"]}
    return {"effect": roles[name]["effect"], "actions": roles[name]["actions"]}


@pytest.fixture
def limited(api: httpx.Client, server: ServerProcess) -> Iterator[tuple[httpx.Client, str]]:
    """A client whose role allows managing roles and keys and reading bulk batches only."""
    role = new_role(api, "allow", "manage_roles", "manage_keys", "get_batch", "get_batches")
    with client(server, new_key(api, role)["secret"]) as http:
        yield http, role


# -- the role manager ------------------------------------------------------------------------


def test_a_role_manager_cannot_rewrite_its_own_role_and_then_make_an_admin_key(
    api: httpx.Client, server: ServerProcess
) -> None:
    role = new_role(api, "allow", "manage_roles")
    with client(server, new_key(api, role)["secret"]) as manager:
        body = {"effect": "deny", "actions": []}
        refused = assert_error(manager.put(f"/roles/{role}", json=body), 403, "PERMISSION_ERROR")
        assert role in refused["error"]["message"]
        assert_error(
            manager.post("/keys", json={"name": "up", "role": "admin"}), 403, "PERMISSION_ERROR"
        )
    assert statement_of(api, role) == {"effect": "allow", "actions": ["manage_roles"]}


def test_a_role_manager_cannot_delete_its_own_role(
    api: httpx.Client, limited: tuple[httpx.Client, str]
) -> None:
    manager, role = limited
    assert_error(manager.delete(f"/roles/{role}"), 403, "PERMISSION_ERROR")
    assert role in {r["name"] for r in api.get("/roles").json()["roles"]}


def test_a_role_manager_cannot_create_a_role_allowing_more_than_it_holds(
    api: httpx.Client, limited: tuple[httpx.Client, str]
) -> None:
    manager, _ = limited
    name = unique("wide")
    body = {"name": name, "effect": "allow", "actions": ["get_batch", "get_data"]}
    refused = assert_error(manager.post("/roles", json=body), 403, "PERMISSION_ERROR")
    assert refused["error"]["description"] == "Your role does not allow: get_data."
    assert name not in {r["name"] for r in api.get("/roles").json()["roles"]}


def test_a_role_manager_cannot_widen_a_role_beyond_what_it_holds(
    api: httpx.Client, limited: tuple[httpx.Client, str]
) -> None:
    manager, _ = limited
    name = new_role(api, "allow", "get_batch")
    body = {"effect": "deny", "actions": ["manage_keys"]}
    assert_error(manager.put(f"/roles/{name}", json=body), 403, "PERMISSION_ERROR")
    assert statement_of(api, name) == {"effect": "allow", "actions": ["get_batch"]}


def test_a_role_manager_cannot_narrow_a_role_that_allows_more_than_it_holds(
    api: httpx.Client, limited: tuple[httpx.Client, str]
) -> None:
    manager, _ = limited
    name = new_role(api, "deny")  # everything: more than the manager holds
    new_key(api, name)
    body = {"effect": "allow", "actions": []}
    assert_error(manager.put(f"/roles/{name}", json=body), 403, "PERMISSION_ERROR")
    assert statement_of(api, name) == {"effect": "deny", "actions": []}


def test_a_role_manager_cannot_delete_a_role_that_allows_more_than_it_holds(
    api: httpx.Client, limited: tuple[httpx.Client, str]
) -> None:
    manager, _ = limited
    name = new_role(api, "allow", "get_data")
    assert_error(manager.delete(f"/roles/{name}"), 403, "PERMISSION_ERROR")
    assert name in {r["name"] for r in api.get("/roles").json()["roles"]}


def test_a_role_manager_may_create_change_and_delete_roles_within_its_own(
    limited: tuple[httpx.Client, str],
) -> None:
    manager, _ = limited
    name = unique("within")
    made = manager.post("/roles", json={"name": name, "effect": "allow", "actions": ["get_batch"]})
    assert made.status_code == 201, made.text
    changed = manager.put(f"/roles/{name}", json={"effect": "allow", "actions": ["get_batches"]})
    assert changed.status_code == 200 and changed.json()["actions"] == ["get_batches"]
    assert manager.delete(f"/roles/{name}").status_code == 200


# -- the key manager -------------------------------------------------------------------------


def test_a_key_manager_cannot_revoke_a_key_that_may_do_more(
    api: httpx.Client, limited: tuple[httpx.Client, str]
) -> None:
    manager, _ = limited
    admin_id = next(k["id"] for k in api.get("/keys").json()["keys"] if k["role"] == "admin")
    refused = assert_error(manager.delete(f"/keys/{admin_id}"), 403, "PERMISSION_ERROR")
    assert admin_id in refused["error"]["message"]
    assert api.get("/keys").status_code == 200  # the admin key still works


def test_a_key_manager_may_revoke_a_key_within_its_own_role(
    limited: tuple[httpx.Client, str],
) -> None:
    manager, role = limited
    made = manager.post("/keys", json={"name": "peer", "role": role})
    assert made.status_code == 201, made.text
    revoked = manager.delete(f"/keys/{made.json()['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None


# -- roles belong to their tenant ------------------------------------------------------------


@pytest.fixture
def tenant_b(server: ServerProcess) -> Iterator[httpx.Client]:
    """An admin client of another account."""
    made = run_cli(
        server, "keys", "create", "--name", "b", "--role", "admin", "--account", unique("t-b")
    )
    assert made.returncode == 0, made.stderr
    with client(server, made.stdout.strip().splitlines()[-1]) as http:
        yield http


def test_another_tenants_role_is_not_listed(api: httpx.Client, tenant_b: httpx.Client) -> None:
    name = new_role(api, "allow", "get_batch")
    listed = {r["name"]: r["builtin"] for r in tenant_b.get("/roles").json()["roles"]}
    assert listed == {"admin": True, "analyst": True, "viewer": True}
    assert name in {r["name"] for r in api.get("/roles").json()["roles"]}


def test_another_tenants_role_cannot_be_changed_deleted_or_used(
    api: httpx.Client, tenant_b: httpx.Client
) -> None:
    name = new_role(api, "allow", "get_query_status")
    body = {"effect": "deny", "actions": []}
    assert_error(tenant_b.put(f"/roles/{name}", json=body), 404, "NOT_FOUND")
    assert_error(tenant_b.delete(f"/roles/{name}"), 404, "NOT_FOUND")
    refused = assert_error(
        tenant_b.post("/keys", json={"name": "x", "role": name}), 400, "BAD_REQUEST"
    )
    assert name in refused["error"]["description"]
    assert statement_of(api, name) == {"effect": "allow", "actions": ["get_query_status"]}


def test_two_tenants_roles_of_one_name_are_independent(
    api: httpx.Client, tenant_b: httpx.Client
) -> None:
    name = new_role(api, "allow", "get_query_status")
    theirs = {"name": name, "effect": "deny", "actions": []}
    assert tenant_b.post("/roles", json=theirs).status_code == 201
    changed = tenant_b.put(f"/roles/{name}", json={"effect": "deny", "actions": ["get_data"]})
    assert changed.status_code == 200
    assert tenant_b.delete(f"/roles/{name}").status_code == 200
    assert statement_of(api, name) == {"effect": "allow", "actions": ["get_query_status"]}


def test_a_key_gets_the_statement_of_its_own_tenants_role(
    api: httpx.Client, server: ServerProcess, tenant_b: httpx.Client
) -> None:
    name = new_role(api, "allow", "get_batches")
    theirs = {"name": name, "effect": "deny", "actions": []}
    assert tenant_b.post("/roles", json=theirs).status_code == 201
    with client(server, new_key(api, name)["secret"]) as ours:
        assert ours.get("/batches").status_code == 200
        assert_error(ours.get("/keys"), 403, "PERMISSION_ERROR")
        assert_error(ours.post("/cache"), 403, "PERMISSION_ERROR")
