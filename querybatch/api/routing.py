"""The one way to declare an authorised route: its action names it and guards it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.types import DecoratedCallable

from querybatch.api.deps import Authorize


def action_route(
    router: APIRouter,
    method: str,
    path: str,
    action: str,
    *,
    name: str | None = None,
    operation_id: str | None = None,
    **options: Any,
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """Declare ``method path`` on ``router`` as a route that only callers allowed ``action`` pass.

    The route is named after its action unless ``name`` says otherwise (the ``/keys`` and
    ``/roles`` routes share one action each), and its operation id is its name unless
    ``operation_id`` says otherwise. :class:`Authorize` is a route-level dependency, which
    FastAPI solves before the endpoint's own parameters; the endpoint takes the caller it
    authorised as a ``PrincipalDep`` parameter. ``options`` are those of ``APIRouter.api_route``.
    """
    name = name or action
    return router.api_route(
        path,
        methods=[method],
        name=name,
        operation_id=operation_id or name,
        dependencies=[Depends(Authorize(action))],
        **options,
    )
