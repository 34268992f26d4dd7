"""The ``http`` connector: a declarative JSON REST endpoint, fetched per account.

The source's settings give a URL template (``{account}``, ``{start_date}``, ``{end_date}``),
the query parameters that carry the sub-query, where the rows are in the JSON answer, how
pages follow each other, and which JSON keys are dimensions and metrics. Rows are grouped by
the requested dimensions in memory (upstream answers are bounded); filters, order and limits
are left to the engine. Retries and rate limits: see :mod:`querybatch.connectors.httpcalls`.
"""

from __future__ import annotations

import asyncio
import os
import string
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from querybatch.connectors.aggregate import GroupAggregator
from querybatch.connectors.base import Connector, ConnectorConfig, FetchRequest
from querybatch.connectors.httpcalls import AccountFailed, Caller, Pagination, dig
from querybatch.connectors.mapping import MappedField, MappedFieldsConfig, converter, map_fields
from querybatch.domain.fields import Account, DataType, FieldInfo, Login, Row, Value
from querybatch.errors import AccountErrors, ConfigurationError, ConnectorError

__all__ = ["HttpAccount", "HttpConfig", "HttpConnector", "QueryParams"]

CHUNK_ROWS = 2000
_PLACEHOLDERS = frozenset({"account", "start_date", "end_date"})


class HttpAccount(BaseModel):
    """One account the endpoint serves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    name: str | None = None
    group: str = ""


class QueryParams(BaseModel):
    """The names of the query parameters that carry the sub-query (None: not sent)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_date: str | None = "start_date"
    end_date: str | None = "end_date"
    account: str | None = None
    fields: str | None = None
    fields_separator: str = ","


class HttpConfig(MappedFieldsConfig):
    """Settings of one ``http`` source."""

    url: str
    accounts: list[str | HttpAccount] = Field(min_length=1)
    rows_path: str = ""
    date_column: str | None = None
    account_field: str = "account_id"
    account_name_field: str = "account_name"
    params: QueryParams = QueryParams()
    query: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    auth_env: str | None = None
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    pagination: Pagination = Pagination()
    timeout: float = Field(30.0, gt=0)
    retries: int = Field(2, ge=0, le=10)
    backoff: float = Field(0.5, ge=0)

    @field_validator("url")
    @classmethod
    def _valid_template(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ValueError(f"is not a valid template: {exc}") from None
        unknown = sorted(names - _PLACEHOLDERS)
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{unknown[0]}}}; use {{account}}, {{start_date}} "
                "or {end_date}"
            )
        return value


class HttpConnector(Connector):
    """A JSON REST endpoint queried once per account (and page), grouped in memory."""

    config_model: ClassVar[type[ConnectorConfig]] = HttpConfig
    pushdown: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, ds_id: str, config: ConnectorConfig) -> None:
        if not isinstance(config, HttpConfig):
            raise ConfigurationError(f"sources.{ds_id}: expected http settings")
        super().__init__(ds_id, config)
        self.http_config = config
        self._accounts = tuple(
            Account(a, a) if isinstance(a, str) else Account(a.id, a.name or a.id, a.group)
            for a in config.accounts
        )
        self._names = {a.account_id: a.account_name for a in self._accounts}
        synthetic = {config.account_field, config.account_name_field}
        clash = sorted(synthetic & (set(config.dimensions) | set(config.metrics)))
        if clash:
            raise ConfigurationError(
                f"sources.{ds_id}.dimensions: {clash[0]} is filled from the account; rename it "
                "with account_field or account_name_field"
            )
        types: dict[str, DataType] = {config.columns.get(m, m): "float" for m in config.metrics}
        implied: dict[str, DataType] = {config.date_column: "date"} if config.date_column else {}
        self._fields = map_fields(ds_id, config, types, implied)
        self._date_field = next(
            (f for f, m in self._fields.items() if m.source == config.date_column), None
        )
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        """Check the credentials variable is set; the endpoint is first called by a query."""
        self._auth_headers()
        self._http()

    def _http(self) -> httpx.AsyncClient:
        # A client's connections belong to one event loop; a worker may run several in turn.
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._loop = loop
            self._client = httpx.AsyncClient(
                timeout=self.http_config.timeout,
                headers=self.http_config.headers,
                follow_redirects=False,
            )
        return self._client

    def _auth_headers(self) -> dict[str, str]:
        cfg = self.http_config
        if not cfg.auth_env:
            return {}
        token = os.environ.get(cfg.auth_env)
        if not token:
            raise ConfigurationError(
                f"sources.{self.ds_id}.auth_env: environment variable {cfg.auth_env} is not set"
            )
        return {cfg.auth_header: f"{cfg.auth_scheme} {token}" if cfg.auth_scheme else token}

    async def fields(self) -> Sequence[FieldInfo]:
        """The account dimensions and the configured JSON fields."""
        cfg = self.http_config
        return [
            FieldInfo(cfg.account_field, "Account ID", "dim", "string", group_name="Account"),
            FieldInfo(
                cfg.account_name_field, "Account name", "dim", "string", group_name="Account"
            ),
            *(m.info for m in self._fields.values()),
        ]

    async def accounts(self, users: Sequence[str] = ()) -> Sequence[Login]:
        """One login holding the configured accounts."""
        login = self.http_config.login or self.ds_id
        if users and login.casefold() not in {u.casefold() for u in users}:
            return []
        return [Login(login, self.http_config.display_name or self.ds_id, self._accounts)]

    async def fetch(self, request: FetchRequest) -> AsyncIterator[Sequence[Row]]:
        """Call the endpoint for every account, then yield the grouped rows in chunks."""
        try:
            headers = self._auth_headers()
        except ConfigurationError as exc:
            raise ConnectorError(exc.message) from None
        cfg = self.http_config
        caller = Caller(self.ds_id, self._http(), headers, cfg.retries, cfg.backoff)
        fold, groups = self._folder(request)
        failures: dict[str, str] = {}
        for account in request.accounts or tuple(self._names):
            if account not in self._names:
                failures[account] = f"account not found in data source {self.ds_id}"
                continue
            try:
                await self._fetch_account(caller, account, request, fold)
            except AccountFailed as exc:
                failures[account] = str(exc)
        if failures:
            raise AccountErrors(failures)
        chunk: list[Row] = []
        for row in groups.rows():
            chunk.append(row)
            if len(chunk) >= CHUNK_ROWS:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    async def _fetch_account(
        self, caller: Caller, account: str, request: FetchRequest, fold: _Fold
    ) -> None:
        cfg = self.http_config
        values = {
            "account": quote(account, safe=""),
            "start_date": request.start_date.isoformat(),
            "end_date": request.end_date.isoformat(),
        }
        url = cfg.url.format(**values)
        params = dict(cfg.query)
        named = cfg.params
        for key, name in (("start_date", named.start_date), ("end_date", named.end_date)):
            if name:
                params[name] = values[key]
        if named.account:
            params[named.account] = account
        if named.fields:
            keys = [self._fields[f].source for f in request.fields if f in self._fields]
            params[named.fields] = named.fields_separator.join(dict.fromkeys(keys))
        async for rows in caller.pages(url, params, cfg.rows_path, cfg.pagination):
            for raw in rows:
                if not isinstance(raw, Mapping):
                    raise ConnectorError(f"data source {self.ds_id}: a row is not a JSON object")
                fold(account, raw)

    def _folder(self, request: FetchRequest) -> tuple[_Fold, GroupAggregator]:
        """A function folding one JSON row into the groups, and the groups."""
        cfg = self.http_config
        dims: list[str] = []
        metrics: list[MappedField] = []
        layout: list[tuple[str, int]] = []
        for name in request.fields:
            mapped = self._fields.get(name)
            if mapped is not None and mapped.info.is_metric:
                layout.append(("met", len(metrics)))
                metrics.append(mapped)
            elif mapped is not None or name in (cfg.account_field, cfg.account_name_field):
                if name not in dims:
                    dims.append(name)
                layout.append(("dim", dims.index(name)))
            else:
                raise ConnectorError(f"unknown field {name!r} for data source {self.ds_id}")
        groups = GroupAggregator(layout, [m.info.aggregation for m in metrics])
        dim_readers = [self._reader(name) for name in dims]
        met_readers = [_read(m.source, converter(m.info.data_type)) for m in metrics]
        in_range = self._date_test(request)

        def fold(account: str, raw: Mapping[str, Any]) -> None:
            if in_range is not None and not in_range(raw):
                return
            key = tuple(read(account, raw) for read in dim_readers)
            groups.add(key, [read(raw) for read in met_readers])

        return fold, groups

    def _reader(self, name: str) -> Callable[[str, Mapping[str, Any]], Value]:
        cfg = self.http_config
        if name == cfg.account_field:
            return lambda account, raw: account
        if name == cfg.account_name_field:
            return lambda account, raw: self._names.get(account, account)
        read = _read(self._fields[name].source, converter(self._fields[name].info.data_type))
        return lambda account, raw: read(raw)

    def _date_test(self, request: FetchRequest) -> Callable[[Mapping[str, Any]], bool] | None:
        if self._date_field is None:
            return None
        read = _read(self._fields[self._date_field].source, converter("date"))
        low, high = request.start_date.isoformat(), request.end_date.isoformat()

        def in_range(raw: Mapping[str, Any]) -> bool:
            day = read(raw)
            return isinstance(day, str) and low <= day[:10] <= high

        return in_range

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


_Fold = Callable[[str, Mapping[str, Any]], None]


def _read(path: str, convert: Callable[[Any], Value]) -> Callable[[Mapping[str, Any]], Value]:
    if "." not in path:
        return lambda raw: convert(raw.get(path))
    return lambda raw: convert(dig(raw, path))
