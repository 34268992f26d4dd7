"""Checking a query against its data source."""

from __future__ import annotations

from collections.abc import Mapping

from querybatch.connectors.registry import SourceRegistry
from querybatch.domain.fields import FieldInfo
from querybatch.domain.filters import Filter, FilterSyntaxError, compile_filter
from querybatch.domain.query import QuerySpec, SpecError
from querybatch.errors import ConnectorError


class Planner:
    """Validates queries against the fields their data source offers."""

    def __init__(self, sources: SourceRegistry) -> None:
        self.sources = sources

    async def check(self, spec: QuerySpec) -> None:
        """Raise SpecError, naming the parameter, if the data source cannot run ``spec``."""
        if spec.ds_id not in self.sources:
            known = ", ".join(sorted(self.sources)) or "none"
            raise SpecError("ds_id", f"Unknown data source {spec.ds_id!r} (known: {known})")
        available = await self.sources.fields(spec.ds_id)
        unknown = [f for f in spec.fields if f not in available]
        if unknown:
            raise SpecError("fields", f"Unknown field(s) for {spec.ds_id}: {', '.join(unknown)}")
        if spec.settings:
            try:
                self.sources[spec.ds_id].check_settings(spec.settings)
            except ConnectorError as exc:
                raise SpecError("settings", exc.message) from exc
        if spec.parsed_filter is not None:
            self._check_filter(spec, spec.parsed_filter, available)
        for key in spec.order_keys:
            if key.field not in spec.fields:
                raise SpecError(
                    "order_rows",
                    f"order_rows field {key.field!r} must be one of the query's fields",
                )

    def _check_filter(
        self, spec: QuerySpec, flt: Filter, available: Mapping[str, FieldInfo]
    ) -> None:
        unknown = sorted(flt.fields - available.keys())
        if unknown:
            raise SpecError("filter", f"filter names unknown field(s): {', '.join(unknown)}")
        connector = self.sources[spec.ds_id]
        if "filter" not in connector.pushdown and not flt.fields <= set(spec.fields):
            missing = ", ".join(sorted(flt.fields - set(spec.fields)))
            raise SpecError(
                "filter",
                f"{spec.ds_id} filters in querybatch: add {missing} to fields to filter on it",
            )
        columns = list(available)
        try:
            compile_filter(flt, columns, {f.field_id: f.data_type for f in available.values()})
        except FilterSyntaxError as exc:
            raise SpecError("filter", str(exc)) from exc

    async def field_metadata(
        self, ds_id: str, field_ids: tuple[str, ...] | list[str]
    ) -> list[FieldInfo]:
        """The FieldInfo of each requested field, in request order (unknown ones skipped)."""
        if ds_id not in self.sources:
            return []
        available = await self.sources.fields(ds_id)
        return [available[f] for f in field_ids if f in available]
