"""The data sources as clients browse them: their logins and accounts, fields and segments."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from querybatch.connectors.base import Connector
from querybatch.connectors.registry import SourceRegistry
from querybatch.domain.fields import FieldInfo, Login
from querybatch.domain.teams import team_id_of
from querybatch.engine.service import Caller
from querybatch.errors import BadRequest, ConnectorError, NotFound

__all__ = [
    "Catalog",
    "ConfiguredSource",
    "Connector",
    "FieldInfo",
    "Login",
    "SourceDetails",
    "SourceLogin",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SourceLogin:
    """A login of a configured data source, under the stable id the SDK's logins carry."""

    login_id: str
    ds_id: str
    login: Login


@dataclass(frozen=True, slots=True)
class SourceDetails:
    """What the server knows of a data source: its kind, fields and per-query settings."""

    ds_id: str
    kind: str
    fields: list[FieldInfo]
    settings: dict[str, str]
    pushdown: frozenset[str]


@dataclass(frozen=True, slots=True)
class ConfiguredSource:
    """A configured data source: its id and the connector type that serves it."""

    ds_id: str
    kind: str


def kind_of(connector: Connector) -> str:
    """The connector type of a data source, as named in QB_SOURCES (``demo``, ``sql``...)."""
    return type(connector).__name__.removesuffix("Connector").lower()


def login_id_of(ds_id: str, ds_user: str) -> str:
    """The stable id of a data source's login (the same on every node, after restarts)."""
    digest = hashlib.sha256(f"{ds_id}\0{ds_user}".encode()).hexdigest()
    return "lgn_" + digest[:20]


class Catalog:
    """The one door to what the configured data sources offer."""

    def __init__(self, sources: SourceRegistry) -> None:
        self.sources = sources

    def source(self, ds_id: str) -> Connector:
        """The data source ``ds_id``; BadRequest naming the known ones when there is none."""
        connector = self.sources.get(ds_id)
        if connector is None:
            known = ", ".join(sorted(self.sources))
            raise BadRequest(
                "Invalid value for parameter 'ds_id'",
                f"Unknown data source {ds_id!r} (known: {known})",
            )
        return connector

    def configured(self) -> list[ConfiguredSource]:
        """Every configured data source, by id (the same for every tenant: see ``logins``)."""
        return [
            ConfiguredSource(ds_id, kind_of(self.sources[ds_id])) for ds_id in sorted(self.sources)
        ]

    async def accounts(self, ds_id: str, ds_users: Sequence[str] = ()) -> Sequence[Login]:
        """The data source's logins (those named, or all) and the accounts each can read."""
        return await self.source(ds_id).accounts(ds_users)

    async def fields(self, ds_id: str) -> list[FieldInfo]:
        """The data source's fields: its dimensions and metrics (asked of it once)."""
        self.source(ds_id)
        return list((await self.sources.fields(ds_id)).values())

    async def segments(self, ds_id: str, ds_users: Sequence[str] = ()) -> Sequence[Login]:
        """The logins whose segments a client asked for (no data source has segments yet,
        so each login lists none)."""
        return await self.source(ds_id).accounts(ds_users)

    # -- the SDK's logins and data source details ------------------------------------------

    async def logins(self, caller: Caller) -> list[SourceLogin]:
        """Every login of every configured data source, by data source.

        Data sources are the server's, configured by its operator, and every tenant reads
        the same ones; so every caller sees the same logins. A source that cannot list its
        logins right now (an HTTP upstream down) is left out, not the whole list.
        """
        del caller  # sources are not scoped to tenants (see the docstring)
        found: list[SourceLogin] = []
        for ds_id in sorted(self.sources):
            try:
                logins = await self.sources[ds_id].accounts(())
            except ConnectorError as exc:
                log.warning("data source %s could not list its logins: %s", ds_id, exc.message)
                continue
            found += [SourceLogin(login_id_of(ds_id, g.ds_user), ds_id, g) for g in logins]
        return found

    async def login(self, caller: Caller, login_id: str) -> SourceLogin:
        """The login with this id; NotFound when no data source has it."""
        for login in await self.logins(caller):
            if login.login_id == login_id:
                return login
        raise NotFound(f"No login '{login_id[:64]}'")

    async def details(self, caller: Caller, team_id: int, ds_id: str) -> SourceDetails:
        """What the server knows of data source ``ds_id``, for the caller's own team.

        Another team's id, like an unknown data source, is NotFound.
        """
        check_team(caller, team_id)
        connector = self.sources.get(ds_id)
        if connector is None:
            raise NotFound(f"No data source '{ds_id[:64]}'")
        return SourceDetails(
            ds_id=ds_id,
            kind=kind_of(connector),
            fields=await self.fields(ds_id),
            settings=dict(connector.query_settings),
            pushdown=connector.pushdown,
        )


def check_team(caller: Caller, team_id: int) -> None:
    """NotFound unless ``team_id`` is the caller's own team (another's is never shown)."""
    if team_id != team_id_of(caller.account):
        raise NotFound(f"No team {team_id}")
