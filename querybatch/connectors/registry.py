"""Connector types, discovered from the ``querybatch.connectors`` entry points, and data sources."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import entry_points

from querybatch.connectors.base import Connector
from querybatch.domain.fields import FieldInfo
from querybatch.errors import ConfigurationError

ENTRY_POINT_GROUP = "querybatch.connectors"


def connector_types() -> dict[str, type[Connector]]:
    """Every installed connector type by name; two packages claiming one name is an error."""
    found: dict[str, type[Connector]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in found:
            raise ConfigurationError(
                f"connector type {entry.name!r} is installed twice ({entry.value} and "
                f"{found[entry.name].__module__}); uninstall one of them"
            )
        try:
            cls = entry.load()
        except Exception as exc:  # a broken plugin must not hide which one it was
            raise ConfigurationError(
                f"connector type {entry.name!r} failed to load: {exc}"
            ) from exc
        if not (isinstance(cls, type) and issubclass(cls, Connector)):
            raise ConfigurationError(f"connector type {entry.name!r} is not a Connector subclass")
        found[entry.name] = cls
    return found


class SourceRegistry(Mapping[str, Connector]):
    """The configured data sources by ``ds_id``, with their field lists cached."""

    def __init__(self, sources: Mapping[str, Connector]) -> None:
        self._sources = dict(sources)
        self._fields: dict[str, dict[str, FieldInfo]] = {}

    def __getitem__(self, ds_id: str) -> Connector:
        return self._sources[ds_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)

    async def fields(self, ds_id: str) -> dict[str, FieldInfo]:
        """The fields of a source by id (asked of the connector once, then remembered)."""
        cached = self._fields.get(ds_id)
        if cached is None:
            listed: Sequence[FieldInfo] = await self._sources[ds_id].fields()
            cached = self._fields[ds_id] = {f.field_id: f for f in listed}
        return cached

    async def open(self) -> None:
        """Open every source; the first that fails stops start-up, naming itself."""
        for ds_id, source in self._sources.items():
            try:
                await source.open()
                await self.fields(ds_id)
            except ConfigurationError:
                raise
            except Exception as exc:
                raise ConfigurationError(f"data source {ds_id}: {exc}") from exc

    async def close(self) -> None:
        """Close every source, even if some fail to."""
        await asyncio.gather(*(s.close() for s in self._sources.values()), return_exceptions=True)
