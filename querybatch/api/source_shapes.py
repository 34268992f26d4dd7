"""What a data source offers, as clients see it: the answers of /query/sources,
/query/accounts, /query/fields and /query/segments.

These models are what /openapi.json documents and what the routes send (``answer.model_response``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from querybatch.api.schemas import RequestMeta
from querybatch.engine.catalog import ConfiguredSource, FieldInfo, Login


class SourceItem(BaseModel):
    """A configured data source."""

    ds_id: str
    connector: str = Field(description="The connector type serving it: demo, sql, files, http...")


class SourcesResponse(BaseModel):
    """The configured data sources."""

    meta: RequestMeta
    data: list[SourceItem]


class AccountItem(BaseModel):
    """One account of a login."""

    account_id: str
    account_name: str
    group_name: str


class LoginItem(BaseModel):
    """A data-source login and its accounts."""

    ds_user: str
    display_name: str
    cache_time: str | None
    accounts: list[AccountItem]


class SourceQuery(BaseModel):
    """The parameters of a metadata request that shape its answer."""

    cache_minutes: int | None


class AccountsMeta(RequestMeta):
    """``meta`` of the accounts answer."""

    query: SourceQuery


class AccountsResponse(BaseModel):
    """The logins and accounts of a data source."""

    meta: AccountsMeta
    data: list[LoginItem]


class FieldItem(BaseModel):
    """One field of a data source."""

    field_id: str
    field_name: str
    field_type: str
    data_type: str
    description: str
    group_name: str
    is_filterable: bool
    report_types: list[str]
    entity_type: str
    is_non_aggregatable: bool


class FieldsResponse(BaseModel):
    """The fields of a data source."""

    meta: RequestMeta
    data: list[FieldItem]


class LoginSegments(BaseModel):
    """A data-source login and its segments."""

    ds_user: str
    display_name: str
    cache_time: str | None
    segments: list[Any]


class SegmentsResponse(BaseModel):
    """The segments of a data source, per login."""

    meta: RequestMeta
    data: list[LoginSegments]


def sources_response(request_id: str, sources: Iterable[ConfiguredSource]) -> SourcesResponse:
    """The answer of ``/query/sources``."""
    return SourcesResponse(
        meta=RequestMeta(request_id=request_id),
        data=[SourceItem(ds_id=s.ds_id, connector=s.kind) for s in sources],
    )


def accounts_response(
    request_id: str, cache_minutes: int | None, logins: Iterable[Login]
) -> AccountsResponse:
    """The answer of ``/query/accounts``."""
    return AccountsResponse(
        meta=AccountsMeta(request_id=request_id, query=SourceQuery(cache_minutes=cache_minutes)),
        data=[
            LoginItem(
                ds_user=login.ds_user,
                display_name=login.display_name,
                cache_time=None,
                accounts=[
                    AccountItem(
                        account_id=a.account_id,
                        account_name=a.account_name,
                        group_name=a.group_name,
                    )
                    for a in login.accounts
                ],
            )
            for login in logins
        ],
    )


def fields_response(request_id: str, fields: Iterable[FieldInfo]) -> FieldsResponse:
    """The answer of ``/query/fields``."""
    return FieldsResponse(
        meta=RequestMeta(request_id=request_id),
        data=[
            FieldItem(
                field_id=f.field_id,
                field_name=f.field_name,
                field_type=f.field_type,
                data_type=f.data_type,
                description=f.description,
                group_name=f.group_name,
                is_filterable=f.is_filterable,
                report_types=[],
                entity_type="ds_metric" if f.is_metric else "ds_dimension",
                is_non_aggregatable=f.is_metric and f.aggregation not in ("sum", "count"),
            )
            for f in fields
        ],
    )


def segments_response(request_id: str, logins: Iterable[Login]) -> SegmentsResponse:
    """The answer of ``/query/segments`` (no data source has segments yet)."""
    return SegmentsResponse(
        meta=RequestMeta(request_id=request_id),
        data=[
            LoginSegments(
                ds_user=login.ds_user,
                display_name=login.display_name,
                cache_time=None,
                segments=[],
            )
            for login in logins
        ],
    )
