"""API keys and roles over the API: ``/keys`` (manage_keys) and ``/roles`` (manage_roles).

Who may do what is the Access service's business (``engine/access.py``): a key manages its
own account's keys and custom roles, never beyond its own role. Changes apply on this node
at once and on other nodes within the key cache's few seconds.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from querybatch.api.access_shapes import (
    CreatedKey,
    DeletedRole,
    KeyAnswer,
    KeyList,
    NewKey,
    NewRole,
    RoleAnswer,
    RoleBody,
    RoleList,
    WhoAmI,
    created_key,
    key_answer,
    key_list,
    role_answer,
    role_list,
    who_am_i,
)
from querybatch.api.answer import model_response, request_meta
from querybatch.api.deps import PrincipalDep, ServicesDep
from querybatch.api.params import json_body, parse_params
from querybatch.api.routing import action_route
from querybatch.api.schemas import (
    CONFLICT_RESPONSES,
    ERROR_RESPONSES,
    body_doc,
    json_body_schema,
)

router = APIRouter(tags=["Access"])

RoleName = Annotated[str, Path(max_length=64)]


@action_route(
    router, "GET", "/whoami", "who_am_i", response_model=WhoAmI, responses=ERROR_RESPONSES
)
async def whoami(request: Request, services: ServicesDep, principal: PrincipalDep) -> Response:
    """Who the key is: its account (and team id), its id and name, its role and statement."""
    return model_response(who_am_i(request_meta(request), services.access.who_am_i(principal)))


@action_route(
    router,
    "GET",
    "/keys",
    "manage_keys",
    name="list_keys",
    response_model=KeyList,
    responses=ERROR_RESPONSES,
)
async def list_keys(request: Request, services: ServicesDep, principal: PrincipalDep) -> Response:
    """The keys of the caller's account, oldest first, revoked ones included."""
    keys = await services.access.list_keys(principal.manager)
    return model_response(key_list(request_meta(request), keys))


@action_route(
    router,
    "POST",
    "/keys",
    "manage_keys",
    name="create_key",
    status_code=201,
    response_model=CreatedKey,
    responses=ERROR_RESPONSES,
    openapi_extra=body_doc(json_body_schema(NewKey)),
)
async def create_key(request: Request, services: ServicesDep, principal: PrincipalDep) -> Response:
    """Create a key in the caller's account; its ``secret`` is shown in this answer only."""
    body = await json_body(request, services.settings.max_body_bytes)
    new = parse_params(NewKey, body)
    record, secret = await services.access.create_key(
        principal.manager, new.name, new.role, new.account
    )
    return model_response(created_key(request_meta(request), record, secret), 201)


@action_route(
    router,
    "DELETE",
    "/keys/{key_id}",
    "manage_keys",
    name="revoke_key",
    response_model=KeyAnswer,
    responses=ERROR_RESPONSES,
)
async def revoke_key(
    key_id: Annotated[str, Path(max_length=64)],
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """Revoke an active key of the caller's account; requests with it fail from now on."""
    record = await services.access.revoke_key(principal.manager, key_id)
    return model_response(key_answer(request_meta(request), record))


@action_route(
    router,
    "GET",
    "/roles",
    "manage_roles",
    name="list_roles",
    response_model=RoleList,
    responses=ERROR_RESPONSES,
)
async def list_roles(request: Request, services: ServicesDep, principal: PrincipalDep) -> Response:
    """The roles of the caller's account and the built-in ones (first), with statements."""
    roles = await services.access.list_roles(principal.manager)
    return model_response(role_list(request_meta(request), roles))


@action_route(
    router,
    "POST",
    "/roles",
    "manage_roles",
    name="create_role",
    status_code=201,
    response_model=RoleAnswer,
    responses=CONFLICT_RESPONSES,
    openapi_extra=body_doc(json_body_schema(NewRole)),
)
async def create_role(request: Request, services: ServicesDep, principal: PrincipalDep) -> Response:
    """Create a custom role of the caller's account; 409 if the account has one so named."""
    body = await json_body(request, services.settings.max_body_bytes)
    new = parse_params(NewRole, body)
    role = await services.access.create_role(principal.manager, new.name, new.effect, new.actions)
    return model_response(role_answer(request_meta(request), role), 201)


@action_route(
    router,
    "PUT",
    "/roles/{name}",
    "manage_roles",
    name="save_role",
    response_model=RoleAnswer,
    responses=CONFLICT_RESPONSES,
    openapi_extra=body_doc(json_body_schema(RoleBody)),
)
async def save_role(
    name: RoleName, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """Replace the statement of a custom role of the caller's account (404 if none)."""
    body = await json_body(request, services.settings.max_body_bytes)
    statement = parse_params(RoleBody, body)
    parse_params(NewRole, {**body, "name": name})  # the name follows the same rule
    role = await services.access.replace_role(
        principal.manager, name, statement.effect, statement.actions
    )
    return model_response(role_answer(request_meta(request), role))


@action_route(
    router,
    "DELETE",
    "/roles/{name}",
    "manage_roles",
    name="delete_role",
    response_model=DeletedRole,
    responses=CONFLICT_RESPONSES,
)
async def delete_role(
    name: RoleName, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """Delete a custom role of the caller's account that no key uses."""
    await services.access.delete_role(principal.manager, name)
    answer = DeletedRole(meta=request_meta(request), name=name, deleted=True)
    return model_response(answer)
