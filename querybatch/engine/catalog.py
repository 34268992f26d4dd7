"""The data sources as clients browse them: their logins and accounts, fields and segments."""

from __future__ import annotations

from collections.abc import Sequence

from querybatch.connectors.base import Connector
from querybatch.connectors.registry import SourceRegistry
from querybatch.domain.fields import FieldInfo, Login
from querybatch.errors import BadRequest

__all__ = ["Catalog", "Connector", "FieldInfo", "Login"]


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
