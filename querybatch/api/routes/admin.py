"""API keys and roles over the API: ``/keys`` (manage_keys) and ``/roles`` (manage_roles).

Tenant rules: a key sees, creates and revokes only keys of its own account, and sees,
creates, changes and deletes only its own account's custom roles (another account's are
404, and may share a name with them); the built-in roles are every account's and never
change. No key can grant or take away more than its own role allows: it may not create a
key, nor create or change a role to one, permitting an action its role does not; nor change,
delete or revoke what permits such an action today; nor change or delete the role its own
key uses. Changes apply on this node at once and on other nodes within the key cache's few
seconds.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from querybatch.api.access_shapes import (
    CreatedKey,
    DeletedRole,
    KeyItem,
    KeyList,
    NewKey,
    NewRole,
    RoleBody,
    RoleItem,
    RoleList,
    key_shape,
    role_shape,
)
from querybatch.api.answer import json_response
from querybatch.api.auth import Principal
from querybatch.api.deps import Authorize, ServicesDep
from querybatch.api.errors import request_id_of
from querybatch.api.params import json_body, parse_params
from querybatch.api.schemas import ERROR_RESPONSES, body_doc, json_body_schema
from querybatch.domain.actions import BUILTIN_ROLES, Statement, unknown_actions
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
    keys = await services.store.keys.list_keys( principal.key.account)
    return json_response({"meta": _meta(request), "keys": [key_shape(k) for k in keys]})


@router.post(
    "/keys",
    name="create_key",
    operation_id="create_key",
    status_code=201,
    response_model=CreatedKey,
    responses=ERROR_RESPONSES,
    openapi_extra=body_doc(json_body_schema(NewKey)),
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
    role = await services.store.keys.get_role( account, new.role)
    if role is None:
        raise BadRequest("Invalid value for parameter 'role'", f"There is no role '{new.role}'.")
    _within(principal, role.statement, f"The role '{role.name}' allows more than your key may do")
    record, secret = await services.store.keys.create_key( new.name, role.name, account, time.time()
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
    outcome = await services.store.keys.revoke( key_id, time.time(), account, within=principal.statement
    )
    if outcome == "missing":
        raise NotFound(f"No active key '{key_id}'")
    if outcome == "beyond":
        raise PermissionDenied(
            f"Key '{key_id}' may do more than your key may",
            "Its role allows actions yours does not; only a key holding them may revoke it.",
        )
    services.keys.forget()
    record = await services.store.keys.get_key( key_id)
    assert record is not None
    return json_response({"meta": _meta(request), **key_shape(record)})


@router.get(
    "/roles",
    name="list_roles",
    operation_id="list_roles",
    response_model=RoleList,
    responses=ERROR_RESPONSES,
)
async def list_roles(request: Request, services: ServicesDep, principal: ManageRoles) -> Response:
    """The roles of the caller's account and the built-in ones (first), with statements."""
    roles = await services.store.keys.list_roles( principal.key.account)
    return json_response({"meta": _meta(request), "roles": [role_shape(r) for r in roles]})


@router.post(
    "/roles",
    name="create_role",
    operation_id="create_role",
    status_code=201,
    response_model=RoleItem,
    responses=CONFLICTS,
    openapi_extra=body_doc(json_body_schema(NewRole)),
)
async def create_role(request: Request, services: ServicesDep, principal: ManageRoles) -> Response:
    """Create a custom role of the caller's account; 409 if the account has one so named."""
    body = await json_body(request, services.settings.max_body_bytes)
    new = parse_params(NewRole, body)
    return await _save_role(request, services, principal, new.name, new, replace=False)


@router.put(
    "/roles/{name}",
    name="save_role",
    operation_id="save_role",
    response_model=RoleItem,
    responses=CONFLICTS,
    openapi_extra=body_doc(json_body_schema(RoleBody)),
)
async def save_role(
    name: RoleName, request: Request, services: ServicesDep, principal: ManageRoles
) -> Response:
    """Replace the statement of a custom role of the caller's account (404 if none)."""
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
    _not_builtin(name)
    _not_own(principal, name)
    wanted = Statement(statement.effect, frozenset(statement.actions))
    _within(principal, wanted, f"The role '{name}' would allow more than your key may do")
    account = principal.key.account
    outcome = await services.store.keys.save_role(
        account,
        name,
        statement.effect,
        statement.actions,
        time.time(),
        create=not replace,
        replace=replace,
        within=principal.statement,
    )
    if outcome == "missing":
        raise NotFound(f"No role '{name}'", "Create it with POST /roles.")
    if outcome == "exists":
        raise Conflict(f"Role '{name}' exists already", f"Use PUT /roles/{name} to change it.")
    _not_beyond(name, outcome)
    services.keys.forget()
    role = await services.store.keys.get_role( account, name)
    assert role is not None
    return json_response({"meta": _meta(request), **role_shape(role)}, 200 if replace else 201)


@router.delete(
    "/roles/{name}",
    name="delete_role",
    operation_id="delete_role",
    response_model=DeletedRole,
    responses=CONFLICTS,
)
async def delete_role(
    name: RoleName, request: Request, services: ServicesDep, principal: ManageRoles
) -> Response:
    """Delete a custom role of the caller's account that no key uses."""
    _not_builtin(name)
    _not_own(principal, name)
    outcome = await services.store.keys.delete_role( principal.key.account, name, within=principal.statement
    )
    if outcome == "missing":
        raise NotFound(f"No role '{name}'")
    _not_beyond(name, outcome)
    if outcome == "in_use":
        raise Conflict(
            f"Role '{name}' is in use",
            "Keys of your account use it (revoked keys too); roles of keys never change.",
        )
    services.keys.forget()
    return json_response({"meta": _meta(request), "name": name, "deleted": True})


def _within(principal: Principal, statement: Statement, message: str) -> None:
    """Refuse a statement permitting anything the caller's role does not."""
    beyond = statement.beyond(principal.statement)
    if beyond:
        raise PermissionDenied(message, f"Your role does not allow: {', '.join(beyond)}.")


def _not_builtin(name: str) -> None:
    if name in BUILTIN_ROLES:
        raise Conflict(f"Role '{name}' is built in", "Built-in roles cannot be changed.")


def _not_own(principal: Principal, name: str) -> None:
    # Changing its own role would let a key raise (or drop) its own powers.
    if name == principal.key.role:
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
