"""Checking a query against its data source."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from querybatch.connectors.registry import SourceRegistry
from querybatch.domain.fields import FieldInfo
from querybatch.domain.filters import Filter, FilterSyntaxError, compile_filter
from querybatch.domain.query import ACCOUNT_LIST_PREFIX, QuerySpec, SpecError
from querybatch.errors import ConnectorError

# The account lists a query may name in ds_accounts, resolved when it is planned.
ACCOUNT_LISTS = {"list.all_accounts": "every account the data source offers the caller"}


class Planner:
    """Validates queries against the fields their data source offers."""

    def __init__(self, sources: SourceRegistry) -> None:
        self.sources = sources

    async def resolve_accounts(self, spec: QuerySpec) -> QuerySpec:
        """``spec`` with the account lists of its ``ds_accounts`` replaced by their accounts.

        ``list.all_accounts`` is every account the data source's logins (those of
        ``ds_users`` when named) can read, in their order; accounts named beside it stay
        once. An unknown list is a SpecError naming ``ds_accounts``.
        """
        resolved = await self.resolve_account_lists([spec])
        return resolved[0]

    async def resolve_account_lists(
        self, specs: Sequence[QuerySpec], *, none_means_all: bool = False
    ) -> list[QuerySpec]:
        """Every spec with its account lists resolved (each source's logins asked once).

        With ``none_means_all`` (a batch split per account), a spec naming no account is
        one naming ``list.all_accounts``.
        """
        known: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}
        resolved: list[QuerySpec] = []
        for spec in specs:
            named = spec.accounts or (("list.all_accounts",) if none_means_all else ())
            if not any(a.startswith(ACCOUNT_LIST_PREFIX) for a in named):
                resolved.append(spec)
                continue
            _check_account_lists(spec)
            if spec.ds_id not in self.sources:
                resolved.append(spec)  # check() names the unknown source
                continue
            key = (spec.ds_id, spec.users)
            if key not in known:
                logins = await self.sources[spec.ds_id].accounts(spec.users)
                known[key] = tuple(
                    dict.fromkeys(a.account_id for login in logins for a in login.accounts)
                )
            accounts: list[str] = []
            for account in named:
                accounts.extend(known[key] if account in ACCOUNT_LISTS else (account,))
            resolved.append(spec.model_copy(update={"accounts": tuple(dict.fromkeys(accounts))}))
        return resolved

    async def check(self, spec: QuerySpec) -> None:
        """Raise SpecError, naming the parameter, if the data source cannot run ``spec``."""
        if spec.ds_id not in self.sources:
            known = ", ".join(sorted(self.sources)) or "none"
            raise SpecError("ds_id", f"Unknown data source {spec.ds_id!r} (known: {known})")
        _check_account_lists(spec)
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


def _check_account_lists(spec: QuerySpec) -> None:
    for account in spec.accounts:
        if account.startswith(ACCOUNT_LIST_PREFIX) and account not in ACCOUNT_LISTS:
            lists = ", ".join(ACCOUNT_LISTS)
            raise SpecError("ds_accounts", f"Unknown account list {account!r} (known: {lists})")
