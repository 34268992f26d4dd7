"""Roles against routes, key and role management, and tenant isolation, on a real server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import orjson
import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount

from querybatch.api.app import create_app
from querybatch.api.deps import Authorize
from querybatch.api.links import SignedLink
from querybatch.domain.actions import ACTIONS
from support import ServerProcess, assert_error, client, run_cli, wait_until

# Routes without a key: operations and documentation. Signed-link routes carry their own
# credential and are recognised by their SignedLink dependency.
OPEN_ROUTES = {"healthz", "metrics", "openapi", "swagger_ui_html", "swagger_ui_redirect"}
OPEN_ROUTES |= {"redoc_html"}

# What each built-in role may do, written out (not derived) so that a change shows up here.
VIEWER = {
    "who_am_i",
    "get_query_history",
    "get_query_status",
    "get_accounts",
    "get_fields",
    "get_segments",
    "list_query_batches",
    "get_query_batch",
    "get_query_batch_status",
    "get_batches",
    "get_batch",
    "list_destinations",
    "get_destination",
    "list_transfers",
    "get_transfer",
}
EXPECTED = {
    "admin": set(ACTIONS),
    "analyst": set(ACTIONS) - {"manage_keys", "manage_roles"},
    "viewer": VIEWER,
}

# The route table and the role matrix are decided from the routes and a built-in role's
# statement, the same in both deployments; keys and roles stored run in both.
EMBEDDED = pytest.mark.deployments("embedded")

# Routes that return rows or start queries need get_data as well as their own action.
ALSO_GET_DATA = {"create_query_batch", "get_query_results", "download_query_batch"}


def allowed(role: str, action: str) -> bool:
    """Whether a key with the built-in ``role`` passes the route guarded by ``action``."""
    held = EXPECTED[role]
    return action in held and (action not in ALSO_GET_DATA or "get_data" in held)


PATH_VALUES = {
    "output_format": "json",
    "batch_id": "qrb_000000000000",
    "batch": "00000000-0000-4000-8000-000000000000",
    "handler": "upl_unknown",
    "key_id": "key_unknown",
    "name": "no-such-role",
    "team_id": "1",
    "login_id": "lgn_unknown",
    "data_source_id": "DEMO_ADS",
    "link_id": "link_unknown",
    "rest": "anything",
    "destination_id": "1",
    "transfer_id": "1",
    "transfer_run_id": "1",
    "backfill_id": "1",
}


def all_routes() -> Iterator[tuple[str, APIRoute]]:
    """(full path, route) of every API route of the app, under every prefix."""
    return routes_under("", create_app().routes)


def routes_under(prefix: str, routes: Sequence[BaseRoute]) -> Iterator[tuple[str, APIRoute]]:
    """The app holds its routes flat and serves them again under each prefix by a mount."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif isinstance(route, Mount):
            yield from routes_under(prefix + route.path, route.routes)


def dependencies_of(route: APIRoute) -> list[object]:
    found: list[object] = []
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        found.append(dependency.call)
        pending.extend(dependency.dependencies)
    return found


def action_of(route: APIRoute) -> str | None:
    actions = [d.action for d in dependencies_of(route) if isinstance(d, Authorize)]
    assert len(actions) <= 1, f"{route.name} authorises more than one action: {actions}"
    return actions[0] if actions else None


def is_signed_link(route: APIRoute) -> bool:
    return any(isinstance(d, SignedLink) for d in dependencies_of(route))


ROUTES = [(path, route) for path, route in all_routes()]
KEYED = sorted(
    {
        (method, path, action)
        for path, route in ROUTES
        if not path.startswith(("/v2/", "/enterprise/v2/"))
        and (action := action_of(route)) is not None
        for method in route.methods
    }
)


@EMBEDDED
def test_every_route_has_an_action_or_a_signed_link() -> None:
    missing = [
        f"{sorted(route.methods)} {path}"
        for path, route in ROUTES
        if route.name not in OPEN_ROUTES and action_of(route) is None and not is_signed_link(route)
    ]
    assert missing == [], "routes with no Authorize(action) dependency"
    assert {action_of(route) for _, route in ROUTES} - {None} <= set(ACTIONS)


@EMBEDDED
def test_every_action_guards_a_route_under_every_prefix() -> None:
    for prefix in ("", "/v2", "/enterprise/v2"):
        guarded = {action_of(r) for p, r in ROUTES if p.startswith(prefix + "/")} - {None}
        assert guarded == set(ACTIONS), prefix


def request_for(api: httpx.Client, method: str, path: str) -> httpx.Response:
    url = path.replace(":path}", "}").format(**PATH_VALUES)
    body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    return api.request(method, url, **body)


@pytest.fixture(scope="module")
def role_keys(server: ServerProcess) -> dict[str, str]:
    keys = {}
    with client(server) as admin:
        for role in EXPECTED:
            made = admin.post("/keys", json={"name": f"role-{role}", "role": role})
            assert made.status_code == 201, made.text
            keys[role] = made.json()["secret"]
    return keys


@EMBEDDED
@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_each_builtin_role_is_allowed_or_denied_each_route(
    server: ServerProcess, role_keys: dict[str, str], role: str
) -> None:
    wrong = []
    with client(server, role_keys[role]) as api:
        for method, path, action in KEYED:
            response = request_for(api, method, path)
            denied = response.status_code == 403
            if denied:
                assert_error(response, 403, "PERMISSION_ERROR")
            if denied == allowed(role, action):
                wrong.append(f"{method} {path} ({action}): {response.status_code}")
    assert wrong == []


@EMBEDDED
def test_a_denied_route_is_denied_under_every_prefix(
    server: ServerProcess, role_keys: dict[str, str]
) -> None:
    with client(server, role_keys["viewer"]) as api:
        for prefix in ("", "/v2", "/enterprise/v2"):
            body = assert_error(api.post(f"{prefix}/batches", json={}), 403, "PERMISSION_ERROR")
            assert "create_batch" in body["error"]["message"]


# -- custom roles ----------------------------------------------------------------------------


def make_key(admin: httpx.Client, role: str) -> str:
    made = admin.post("/keys", json={"name": f"for-{role}", "role": role})
    assert made.status_code == 201, made.text
    secret: str = made.json()["secret"]
    return secret


def test_a_bulk_batch_needs_create_batch_and_the_operations_action(
    api: httpx.Client, server: ServerProcess
) -> None:
    name = f"bulk-{uuid.uuid4().hex[:8]}"
    made = api.post("/roles", json={"name": name, "effect": "deny", "actions": ["get_data"]})
    assert made.status_code == 201, made.text
    key = make_key(api, name)
    with client(server, key) as limited:
        handler = limited.post("/cache").json()["handler"]
        before = server.count("bulk_batches")
        body = {"handler": handler, "operation": "get_data"}
        refused = assert_error(limited.post("/batches", json=body), 403, "PERMISSION_ERROR")
        assert "get_data" in refused["error"]["message"]
        assert server.count("bulk_batches") == before
        # Allowing get_data again (PUT replaces the statement) applies at once on this node.
        changed = api.put(f"/roles/{name}", json={"effect": "deny", "actions": []})
        assert changed.status_code == 200 and changed.json()["actions"] == []
        assert_error(limited.post("/batches", json=body), 409, "CONFLICT_ERROR")  # not uploaded


def test_an_allow_role_permits_only_its_actions(api: httpx.Client, server: ServerProcess) -> None:
    name = f"reader-{uuid.uuid4().hex[:8]}"
    statement = {"name": name, "effect": "allow", "actions": ["get_batches", "get_batch"]}
    assert api.post("/roles", json=statement).status_code == 201
    with client(server, make_key(api, name)) as reader:
        assert reader.get("/batches").status_code == 200
        assert_error(reader.post("/cache"), 403, "PERMISSION_ERROR")
        assert_error(reader.get("/query/batch"), 403, "PERMISSION_ERROR")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "x", "effect": "allow", "actions": ["no_such_action"]}, 400, "BAD_REQUEST"),
        ({"name": "Bad Name", "effect": "allow", "actions": []}, 400, "BAD_REQUEST"),
        ({"name": "x", "effect": "maybe", "actions": []}, 400, "BAD_REQUEST"),
        ({"name": "analyst", "effect": "allow", "actions": []}, 409, "CONFLICT_ERROR"),
    ],
)
def test_a_bad_role_is_refused_and_changes_nothing(
    api: httpx.Client, body: dict[str, Any], status: int, code: str
) -> None:
    before = api.get("/roles").json()["roles"]
    assert_error(api.post("/roles", json=body), status, code)
    assert api.get("/roles").json()["roles"] == before


def test_built_in_and_used_roles_cannot_be_changed_or_deleted(api: httpx.Client) -> None:
    before = api.get("/roles").json()["roles"]
    statement = {"effect": "allow", "actions": []}
    assert_error(api.put("/roles/viewer", json=statement), 409, "CONFLICT_ERROR")
    assert_error(api.delete("/roles/admin"), 409, "CONFLICT_ERROR")
    assert_error(api.delete("/roles/no-such-role"), 404, "NOT_FOUND")
    name = f"used-{uuid.uuid4().hex[:8]}"
    assert api.post("/roles", json={"name": name, **statement}).status_code == 201
    assert_error(api.post("/roles", json={"name": name, **statement}), 409, "CONFLICT_ERROR")
    make_key(api, name)
    assert_error(api.delete(f"/roles/{name}"), 409, "CONFLICT_ERROR")
    after = {r["name"]: r for r in api.get("/roles").json()["roles"]}
    assert [after[r["name"]] for r in before] == before


def test_an_unused_role_can_be_deleted(api: httpx.Client) -> None:
    name = f"temp-{uuid.uuid4().hex[:8]}"
    assert api.post("/roles", json={"name": name, "effect": "deny", "actions": []}).status_code
    deleted = api.delete(f"/roles/{name}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert name not in {r["name"] for r in api.get("/roles").json()["roles"]}


# -- keys --------------------------------------------------------------------------------------


def test_keys_are_listed_without_secrets(api: httpx.Client) -> None:
    made = api.post("/keys", json={"name": "listed", "role": "viewer"}).json()
    secret = made["secret"]
    assert secret.startswith("qb_") and made["prefix"] == secret[:10]
    listed = api.get("/keys").json()["keys"]
    assert made["id"] in {k["id"] for k in listed}
    assert secret not in orjson.dumps(listed).decode()
    assert all("secret" not in k and "key_hash" not in k for k in listed)
    assert {k["account"] for k in listed} == {"default"}


def test_a_revoked_key_stops_working_at_once(api: httpx.Client, server: ServerProcess) -> None:
    made = api.post("/keys", json={"name": "short-lived", "role": "viewer"}).json()
    with client(server, made["secret"]) as short:
        assert short.get("/batches").status_code == 200
        revoked = api.delete(f"/keys/{made['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        assert_error(short.get("/batches"), 401, "UNAUTHORIZED")
    assert_error(api.delete(f"/keys/{made['id']}"), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"role": "viewer"}, 400, "BAD_REQUEST"),
        ({"name": "k", "role": "no-such-role"}, 400, "BAD_REQUEST"),
        ({"name": "k", "role": "viewer", "account": "someone-else"}, 403, "PERMISSION_ERROR"),
    ],
)
def test_a_bad_key_request_is_refused_and_creates_nothing(
    api: httpx.Client, server: ServerProcess, body: dict[str, Any], status: int, code: str
) -> None:
    before = server.count("api_keys")
    assert_error(api.post("/keys", json=body), status, code)
    assert server.count("api_keys") == before


def test_a_key_manager_cannot_hand_out_more_than_it_holds(
    api: httpx.Client, server: ServerProcess
) -> None:
    name = f"keys-only-{uuid.uuid4().hex[:8]}"
    statement = {"name": name, "effect": "allow", "actions": ["manage_keys", "get_batch"]}
    assert api.post("/roles", json=statement).status_code == 201
    with client(server, make_key(api, name)) as manager:
        before = server.count("api_keys")
        body = assert_error(
            manager.post("/keys", json={"name": "up", "role": "admin"}), 403, "PERMISSION_ERROR"
        )
        assert "manage_roles" in body["error"]["description"]
        assert server.count("api_keys") == before
        assert manager.post("/keys", json={"name": "same", "role": name}).status_code == 201


# -- tenant isolation --------------------------------------------------------------------------


def test_another_tenant_sees_nothing_of_this_one(api: httpx.Client, server: ServerProcess) -> None:
    made = run_cli(server, "keys", "create", "--name", "b", "--role", "admin", "--account", "t-b")
    assert made.returncode == 0, made.stderr
    other_key = made.stdout.strip().splitlines()[-1]
    # Tenant A: an upload, a bulk batch, a query batch and a query.
    handler = api.post("/cache").json()["handler"]
    query = {"ds_id": "DEMO_ADS", "ds_accounts": "ads-0001", "fields": "date,clicks"}
    data = orjson.dumps(query | {"start_date": "2026-01-01", "end_date": "2026-01-02"})
    upload_url = api.post("/cache").json()
    assert httpx.put(upload_url["url"], content=data + b"\n").status_code == 200
    bulk = api.post("/batches", json={"handler": upload_url["handler"], "operation": "get_data"})
    bulk_id = bulk.json()["batch"]
    wait_until(lambda: api.get(f"/batches/{bulk_id}").json()["status"] == "completed")
    query_batch = api.post("/query/batch", json={"queries": [orjson.loads(data)]}).json()
    batch_id = query_batch["data"]["batch_id"]
    schedule_id = f"{batch_id}_query_1"
    own_key = api.get("/keys").json()["keys"][0]["id"]

    with client(server, other_key) as other:
        assert_error(other.get(f"/batches/{bulk_id}"), 404, "NOT_FOUND")
        cancel = other.patch(f"/batches/{bulk_id}", json={"status": "cancel"})
        assert_error(cancel, 404, "NOT_FOUND")
        assert_error(other.delete(f"/batches/{bulk_id}"), 404, "NOT_FOUND")
        assert bulk_id not in other.get("/batches").json()["batches"]
        assert_error(other.get(f"/query/batch/{batch_id}"), 404, "NOT_FOUND")
        assert_error(other.delete(f"/query/batch/{batch_id}"), 404, "NOT_FOUND")
        assert batch_id not in {b["batch_id"] for b in other.get("/query/batch").json()["data"]}
        status = other.get("/query/status", params={"schedule_id": schedule_id})
        assert_error(status, 404, "STATUS_NOT_FOUND")
        assert_error(other.delete(f"/cache/{handler}"), 404, "NOT_FOUND")
        steal = {"handler": upload_url["handler"], "operation": "get_data"}
        assert_error(other.post("/batches", json=steal), 404, "NOT_FOUND")
        assert_error(other.delete(f"/keys/{own_key}"), 404, "NOT_FOUND")
        assert {k["account"] for k in other.get("/keys").json()["keys"]} == {"t-b"}
    # Nothing of tenant A changed.
    assert api.get(f"/batches/{bulk_id}").json()["status"] == "completed"
    assert api.delete(f"/cache/{handler}").status_code == 200
    assert api.get(f"/query/batch/{batch_id}").json()["data"]["cancel_time"] is None


# -- the CLI -----------------------------------------------------------------------------------


def test_the_cli_creates_and_deletes_roles_checking_action_names(server: ServerProcess) -> None:
    bad = run_cli(server, "roles", "create", "cli-bad", "--effect", "allow", "--action", "nope")
    assert bad.returncode == 2 and "nope" in bad.stderr
    made = run_cli(
        server, "roles", "create", "cli-role", "--effect", "allow", "--action", "get_batch"
    )
    assert made.returncode == 0, made.stderr
    listed = orjson.loads(run_cli(server, "roles", "list", "--json").stdout)
    role = next(r for r in listed if r["name"] == "cli-role")
    assert role == {
        "name": "cli-role",
        "effect": "allow",
        "actions": ["get_batch"],
        "builtin": False,
    }
    assert run_cli(server, "roles", "create", "admin", "--effect", "deny").returncode == 2
    assert run_cli(server, "roles", "delete", "cli-role").returncode == 0
    assert run_cli(server, "roles", "delete", "cli-role").returncode == 2
    assert run_cli(server, "roles", "delete", "viewer").returncode == 2
