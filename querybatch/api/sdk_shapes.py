"""The SDK's login, data source and team resources as it reads them (the official OpenAPI's
``DataSourceLogin``, ``DataSourceAccount``, ``TeamData`` and ``DatasourceDetails``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from querybatch.api.schemas import RequestMeta
from querybatch.api.shapes import iso_time
from querybatch.engine.access import Team
from querybatch.engine.catalog import SourceDetails, SourceLogin


class Typed(BaseModel):
    """A model whose ``@type`` key names its kind, as the official API's objects do."""

    model_config = ConfigDict(populate_by_name=True)


class DataSourceRef(Typed):
    """The data source a login belongs to."""

    type_: Literal["ds"] = Field("ds", alias="@type")
    ds_id: str
    name: str


class LoginItem(Typed):
    """A data-source login. Logins are the operator's configuration: none expires or is
    revoked through the API, and every tenant shares them."""

    type_: Literal["ds_login"] = Field("ds_login", alias="@type")
    login_id: str
    login_type: str = "configured"
    username: str
    display_name: str
    ds_info: DataSourceRef
    default_scopes: list[str] = []
    additional_scopes: list[str] = []
    expiry_time: str | None = None
    revoked_time: str | None = None
    is_refreshable: bool = False
    is_shared: bool = True
    account_count: int


class AccountItem(Typed):
    """An account a login can read."""

    type_: Literal["ds_account"] = Field("ds_account", alias="@type")
    account_id: str
    name: str
    group: str


class Paginate(BaseModel):
    """Where a page of accounts lies among all of them."""

    offset: int
    limit: int
    total: int


class PagedMeta(RequestMeta):
    """``meta`` of a page of accounts."""

    paginate: Paginate


class LoginList(BaseModel):
    """``GET /ds/logins``."""

    meta: RequestMeta
    data: list[LoginItem]


class LoginAnswer(BaseModel):
    """``GET /ds/login/{login_id}``."""

    meta: RequestMeta
    data: LoginItem


class AccountList(BaseModel):
    """``GET /ds/login/{login_id}/accounts``."""

    meta: PagedMeta
    data: list[AccountItem]


class TeamItem(BaseModel):
    """The caller's tenant as a team."""

    team_id: int
    name: str
    display_id: str
    status: str
    created_at: str | None


class TeamAnswer(BaseModel):
    """``GET /v1/teams/{team_id}``."""

    meta: RequestMeta
    data: TeamItem


class SettingItem(BaseModel):
    """A per-query setting the data source reads (``settings`` of a query)."""

    setting_id: str
    context: Literal["options"] = "options"
    type: Literal["text"] = "text"
    label: str
    help_text: str
    is_value_required: bool = False


class DetailsFieldItem(BaseModel):
    """A field of the data source."""

    field_id: str
    field_name: str
    field_type: str
    data_type: str
    description: str


class DetailsItem(BaseModel):
    """A data source as far as its connector knows it."""

    id: str
    name: str
    description: str
    status: Literal["Released"] = "Released"
    is_premium: bool = False
    is_authentication_required: bool = False
    has_account_list: bool = True
    has_fields: bool = True
    has_segments: bool = False
    has_report_type_selection: bool = False
    is_date_range_required: bool = True
    is_custom_data_import: bool
    categories: list[str] = []
    products: list[str] = []
    tags: list[str]
    report_types: list[dict[str, object]] = []
    common_settings: list[SettingItem]
    fields: list[DetailsFieldItem]


class DetailsAnswer(BaseModel):
    """``GET /teams/{team_id}/datasource/{data_source_id}``."""

    meta: RequestMeta
    data: DetailsItem


def login_item(login: SourceLogin) -> LoginItem:
    """One login as the SDK reads it."""
    return LoginItem(
        login_id=login.login_id,
        username=login.login.ds_user,
        display_name=login.login.display_name,
        ds_info=DataSourceRef(ds_id=login.ds_id, name=login.ds_id),
        account_count=len(login.login.accounts),
    )


def login_list(request_id: str, logins: list[SourceLogin]) -> LoginList:
    """The answer of ``GET /ds/logins``."""
    return LoginList(meta=RequestMeta(request_id=request_id), data=[login_item(g) for g in logins])


def login_answer(request_id: str, login: SourceLogin) -> LoginAnswer:
    """The answer of ``GET /ds/login/{login_id}``."""
    return LoginAnswer(meta=RequestMeta(request_id=request_id), data=login_item(login))


def account_list(request_id: str, login: SourceLogin, offset: int, limit: int) -> AccountList:
    """A page of a login's accounts."""
    accounts = login.login.accounts
    page = accounts[offset : offset + limit]
    return AccountList(
        meta=PagedMeta(
            request_id=request_id,
            paginate=Paginate(offset=offset, limit=limit, total=len(accounts)),
        ),
        data=[
            AccountItem(account_id=a.account_id, name=a.account_name, group=a.group_name)
            for a in page
        ],
    )


def team_answer(request_id: str, team: Team) -> TeamAnswer:
    """The answer of ``GET /v1/teams/{team_id}``."""
    return TeamAnswer(
        meta=RequestMeta(request_id=request_id),
        data=TeamItem(
            team_id=team.team_id,
            name=team.account,
            display_id=f"SM_{team.team_id:X}",
            status="active",
            created_at=iso_time(team.created_at),
        ),
    )


def details_answer(request_id: str, details: SourceDetails) -> DetailsAnswer:
    """The answer of ``GET /teams/{team_id}/datasource/{data_source_id}``."""
    custom = details.kind in ("sql", "files", "http")
    return DetailsAnswer(
        meta=RequestMeta(request_id=request_id),
        data=DetailsItem(
            id=details.ds_id,
            name=details.ds_id,
            description=f"A {details.kind} data source of this server",
            is_custom_data_import=custom,
            tags=[details.kind, *sorted(f"pushdown:{p}" for p in details.pushdown)],
            common_settings=[
                SettingItem(setting_id=name, label=name, help_text=help_text)
                for name, help_text in details.settings.items()
            ],
            fields=[
                DetailsFieldItem(
                    field_id=f.field_id,
                    field_name=f.field_name,
                    field_type=f.field_type,
                    data_type=f.data_type,
                    description=f.description,
                )
                for f in details.fields
            ],
        ),
    )
