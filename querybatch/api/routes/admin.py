"""API keys and roles over the API: ``/keys`` (manage_keys) and ``/roles`` (manage_roles).

Tenant rules: an admin sees, creates and revokes only keys of its own account, and may not
hand out more than it holds (a new key's role must allow nothing the caller's role denies).
Roles are server-wide: every tenant sees them all, and may change or delete a custom role
only while no key of another tenant uses it. Built-in roles never change. Changes apply on
this node at once and on other nodes within the key cache's few seconds.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from querybatch.api.access_shapes import (
    KeyItem,
    KeyList,
    NewKey,
    NewRole,
    RoleBody,
    RoleList,
    key_shape,
    role_shape,
)
from querybatch.api.answer import json_response
from querybatch.api.auth import Principal
from querybatch.api.deps import Authorize, ServicesDep
from querybatch.api.errors import request_id_of
from querybatch.api.params import json_body, parse_params
from querybatch.api.schemas import ERROR_RESPONSES
from querybatch.domain.actions import ACTIONS, Statement, unknown_actions
from querybatch.errors import BadRequest, Conflict, NotFound, PermissionDenied

router = APIRouter(tags=["Access"])

RoleName = Annotated[str, Path(max_length=64)]
CONFLICTS = ERROR_RESPONSES | {409: ERROR_RESPONSES[400] | {"description": "Conflict"}}
ManageKeys = Annotated[Principal, Depends(Authorize("manage_keys"))]
ManageRoles = Annotated[Principal, Depends(Authorize("manage_roles"))]


def _meta(request: Request) -> dict[str, str]:
    return {"request_id": request_id_of(request)}


@router.get(
    "/keys",
    name="list_keys",
    operation_id="list_keys",
    response_model=KeyList,
    responses=ERROR_RESPONSES,
)
async def list_keys(request: Request, services: ServicesDep, principal: ManageKeys) -> Response:
    """The keys of the caller's account, oldest first, revoked ones included."""
    keys = await services.store.db.read(services.store.keys.list_keys, principal.key.account)
    return json_response({"meta": _meta(request), "keys": [key_shape(k) for k in keys]})


@router.post(
    "/keys",
    name="create_key",
    operation_id="create_key",
    status_code=201,
    responses=ERROR_RESPONSES,
)
async def create_key(request: Request, services: ServicesDep, principal: ManageKeys) -> Response:
    """Create a key in the caller's account; its ``secret`` is shown in this answer only."""
    body = await json_body(request, services.settings.max_body_bytes)
    new = parse_params(NewKey, body)
    account = principal.key.account
    if new.account is not None and new.account != account:
        raise PermissionDenied(
            "Keys can only be created in your own account",
            f"This key belongs to account '{account}'.",
        )
    role = await services.store.db.read(services.store.keys.get_role, new.role)
    if role is None:
        raise BadRequest("Invalid value for parameter 'role'", f"There is no role '{new.role}'.")
    granted = Statement("allow" if role.effect == "allow" else "deny", frozenset(role.actions))
    beyond = sorted(a for a in ACTIONS if granted.permits(a) and not principal.statement.permits(a))
    if beyond:
        raise PermissionDenied(
            f"The role '{role.name}' allows more than your key may do",
            f"Your role does not allow: {', '.join(beyond)}.",
        )
    record, secret = await services.store.db.write(
        services.store.keys.create_key, new.name, role.name, account, time.time()
    )
    services.keys.forget()
    return json_response({"meta": _meta(request), **key_shape(record), "secret": secret}, 201)


@router.delete(
    "/keys/{key_id}",
    name="revoke_key",
    operation_id="revoke_key",
    response_model=KeyItem,
    responses=ERROR_RESPONSES,
)
async def revoke_key(
    key_id: Annotated[str, Path(max_length=64)],
    request: Request,
    services: ServicesDep,
    principal: ManageKeys,
) -> Response:
    """Revoke an active key of the caller's account; requests with it fail from now on."""
    account = principal.key.account
    revoked = await services.store.db.write(
        services.store.keys.revoke, key_id, time.time(), account
    )
    if not revoked:
        raise NotFound(f"No active key '{key_id}'")
    services.keys.forget()
    record = await services.store.db.read(services.store.keys.get_key, key_id)
    assert record is not None
    return json_response({"meta": _meta(request), **key_shape(record)})


@router.get(
    "/roles",
    name="list_roles",
    operation_id="list_roles",
    response_model=RoleList,
    responses=ERROR_RESPONSES,
)
async def list_roles(request: Request, services: ServicesDep, _: ManageRoles) -> Response:
    """Every role and its statement, built-in ones first."""
    roles = await services.store.db.read(services.store.keys.list_roles)
    return json_response({"meta": _meta(request), "roles": [role_shape(r) for r in roles]})


@router.post(
    "/roles",
    name="create_role",
    operation_id="create_role",
    status_code=201,
    responses=CONFLICTS,
)
async def create_role(request: Request, services: ServicesDep, principal: ManageRoles) -> Response:
    """Create a custom role; 409 if the name is taken."""
    body = await json_body(request, services.settings.max_body_bytes)
    new = parse_params(NewRole, body)
    return await _save_role(request, services, principal, new.name, new, replace=False)


@router.put("/roles/{name}", name="save_role", operation_id="save_role", responses=CONFLICTS)
async def save_role(
    name: RoleName, request: Request, services: ServicesDep, principal: ManageRoles
) -> Response:
    """Create a custom role, or replace its statement."""
    body = await json_body(request, services.settings.max_body_bytes)
    statement = parse_params(RoleBody, body)
    parse_params(NewRole, {**body, "name": name})  # the name follows the same rule
    return await _save_role(request, services, principal, name, statement, replace=True)


async def _save_role(
    request: Request,
    services: ServicesDep,
    principal: Principal,
    name: str,
    statement: RoleBody,
    *,
    replace: bool,
) -> Response:
    unknown = unknown_actions(statement.actions)
    if unknown:
        raise BadRequest(
            "Invalid value for parameter 'actions'", f"Unknown action(s): {', '.join(unknown)}."
        )
    outcome = await services.store.db.write(
        services.store.keys.save_tenant_role,
        principal.key.account,
        name,
        statement.effect,
        statement.actions,
        time.time(),
        replace=replace,
    )
    _role_conflict(name, outcome)
    services.keys.forget()
    role = await services.store.db.read(services.store.keys.get_role, name)
    assert role is not None
    return json_response({"meta": _meta(request), **role_shape(role)}, 200 if replace else 201)


@router.delete("/roles/{name}", name="delete_role", operation_id="delete_role", responses=CONFLICTS)
async def delete_role(
    name: RoleName, request: Request, services: ServicesDep, principal: ManageRoles
) -> Response:
    """Delete a custom role no key uses."""
    outcome = await services.store.db.write(
        services.store.keys.delete_tenant_role, principal.key.account, name
    )
    if outcome == "missing":
        raise NotFound(f"No role '{name}'")
    _role_conflict(name, outcome)
    if outcome == "in_use":
        raise Conflict(
            f"Role '{name}' is in use",
            "Keys of your account use it (revoked keys too); roles of keys never change.",
        )
    services.keys.forget()
    return json_response({"meta": _meta(request), "name": name, "deleted": True})


def _role_conflict(name: str, outcome: str) -> None:
    if outcome == "builtin":
        raise Conflict(f"Role '{name}' is built in", "Built-in roles cannot be changed.")
    if outcome == "exists":
        raise Conflict(f"Role '{name}' exists already", f"Use PUT /roles/{name} to change it.")
    if outcome == "shared":
        raise Conflict(
            f"Role '{name}' is used by another account",
            "Roles are shared by the whole server; create a role of your own instead.",
        )
