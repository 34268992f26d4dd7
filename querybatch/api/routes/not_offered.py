"""Methods of the official SDK that a self-hosted server does not offer: a clear
501 NOT_IMPLEMENTED envelope naming what is not offered, instead of a bare route miss.

Logins are the operator's configuration (no login links, no revoking through the API);
there is no connector builder, no data blending, no custom fields and no account tags, and
a tenant's only user is its keys. Each route is still authenticated and guarded by the
action closest to it, and a team-scoped path naming another team is 404 first, as
everywhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from starlette.responses import Response

from querybatch.api.deps import PrincipalDep
from querybatch.api.routing import action_route
from querybatch.api.schemas import ERROR_RESPONSES
from querybatch.engine.catalog import check_team
from querybatch.errors import NotFound, NotOffered

# Left out of /openapi.json, which describes what this server offers; docs/compatibility.md
# lists these methods.
router = APIRouter(tags=["Not offered by a self-hosted server"], include_in_schema=False)

ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
RESPONSES = ERROR_RESPONSES | {501: ERROR_RESPONSES[400] | {"description": "Not offered"}}

# (feature, what the client should do instead, action, [(methods, path), ...])
NOT_OFFERED: list[tuple[str, str, str, list[tuple[tuple[str, ...], str]]]] = [
    (
        "login links",
        "Logins are configured by the server's operator (QB_SOURCES); list them with "
        "GET /ds/logins.",
        "get_accounts",
        [
            (("POST",), "/ds/login/link"),
            (("GET",), "/ds/login/links"),
            (("GET", "PATCH"), "/ds/login/link/{link_id}"),
            (("PUT",), "/ds/login/link/{link_id}/close"),
        ],
    ),
    (
        "revoking logins",
        "Logins are configured by the server's operator; remove the source from QB_SOURCES.",
        "get_accounts",
        [(("DELETE",), "/ds/login/{login_id}")],
    ),
    (
        "team users",
        "A tenant's users are its API keys: GET /keys lists them.",
        "who_am_i",
        [(("GET",), "/v1/teams/{team_id}/users")],
    ),
    (
        "the connector builder",
        "Data sources are connectors configured by the operator (docs/connectors.md).",
        "get_fields",
        [(ALL_METHODS, "/teams/{team_id}/connector_builder/{rest:path}")],
    ),
    (
        "data blending",
        "Join the results of several queries in your own code or warehouse.",
        "get_fields",
        [(ALL_METHODS, "/teams/{team_id}/data-blending/{rest:path}")],
    ),
    (
        "custom fields",
        "Fields are those of the configured data sources (GET /query/fields).",
        "get_fields",
        [
            (("GET", "POST"), "/teams/{team_id}/custom-fields"),
            (ALL_METHODS, "/teams/{team_id}/custom-fields/{rest:path}"),
        ],
    ),
    (
        "account tags",
        "Name accounts in ds_accounts, or use list.all_accounts.",
        "get_accounts",
        [
            (("GET", "POST"), "/teams/{team_id}/account_tags"),
            (ALL_METHODS, "/teams/{team_id}/account_tags/{rest:path}"),
        ],
    ),
]


def _endpoint(feature: str, hint: str) -> Callable[..., Awaitable[Response]]:
    async def not_offered(request: Request, principal: PrincipalDep) -> Response:
        raw_team = request.path_params.get("team_id")
        if raw_team is not None:
            if not str(raw_team).isdigit() or len(str(raw_team)) > 19:
                raise NotFound(f"No team {str(raw_team)[:20]}")
            check_team(principal.caller, int(raw_team))
        raise NotOffered(f"This server does not offer {feature}", hint)

    not_offered.__doc__ = f"501 NOT_IMPLEMENTED: a self-hosted server does not offer {feature}."
    return not_offered


def _both_team_prefixes(
    routes: list[tuple[tuple[str, ...], str]],
) -> list[tuple[tuple[str, ...], str]]:
    # The SDK's generated client calls team paths under /v1; its docs name them without.
    both: list[tuple[tuple[str, ...], str]] = []
    for methods, path in routes:
        both.append((methods, path))
        if path.startswith("/teams/"):
            both.append((methods, "/v1" + path))
    return both


def _declare() -> None:
    for feature, hint, action, routes in NOT_OFFERED:
        endpoint = _endpoint(feature, hint)
        for methods, path in _both_team_prefixes(routes):
            for method in methods:
                slug = path.strip("/").replace("{", "").replace("}", "").replace(":path", "")
                name = (
                    "not_offered_" + method.lower() + "_" + slug.replace("/", "_").replace("-", "_")
                )
                action_route(router, method, path, action, name=name, responses=RESPONSES)(endpoint)


_declare()
