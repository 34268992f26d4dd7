"""Transfers as the API reads and answers them, in the shapes the official SDK parses.

As the hosted service does, some answers are wrapped in ``{"meta", "data"}`` (the list, a
create) and the others are bare (a transfer's detail, an update, a state change, a
validation, the available sources and options).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from querybatch.api.destination_shapes import WithMeta
from querybatch.api.schemas import RequestMeta
from querybatch.domain.transfer_schedule import INTERVALS
from querybatch.engine.transfers import (
    AvailableSources,
    Issue,
    SettingInput,
    SourceOptions,
    TransferAccountInput,
    TransferInput,
    TransferView,
)

Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
Small = Annotated[int, Field(ge=-1_000_000, le=1_000_000)]
Text = Annotated[str, StringConstraints(max_length=255)]
ICON_URL = "about:blank"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleBody(_Strict):
    """One ``TransferSchedule`` (its rules are checked by validation, not here)."""

    run_interval: Annotated[str, StringConstraints(max_length=16)] | None = None
    run_hour: Small | None = None
    refresh_window: Small | None = None
    run_weekday: Small | None = None
    run_day: Small | None = None

    def given(self) -> dict[str, Any]:
        """The fields that were sent."""
        return self.model_dump(exclude_none=True)


class AccountBody(_Strict):
    """One ``TransferAccount``."""

    account_id: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    data_source_username: Text | None = None
    login_id: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None


class SegmentBody(_Strict):
    """One ``TransferSegment`` (no data source here has segments)."""

    data_source_username: Text | None = None
    login_id: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None
    segment_id: Text | None = None
    segment_name: Text | None = None


class SettingBody(_Strict):
    """One ``TransferDataSourceSetting``."""

    field_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    value: StrictBool | Small | Annotated[str, StringConstraints(max_length=10_000)] | None = None
    group: Annotated[str, StringConstraints(max_length=100)] | None = None


class TransferBody(_Strict):
    """The body of a create, an update or a validation (``TransferConfigurationRequest``)."""

    data_source_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    schema_id: Id
    destination_id: Id
    display_name: Text
    schedule: Annotated[list[ScheduleBody], Field(max_length=10)]
    accounts: Annotated[list[AccountBody], Field(max_length=1000)]
    segments: Annotated[list[SegmentBody], Field(max_length=100)] = []
    data_source_settings: Annotated[list[SettingBody], Field(max_length=50)] = []
    notification_recipients: Annotated[
        list[Annotated[str, StringConstraints(max_length=254)]], Field(max_length=20)
    ] = []
    transfer_type: Annotated[int, Field(ge=0, le=1000)] | None = None

    def given(self) -> TransferInput:
        """What the engine is given."""
        return TransferInput(
            data_source_id=self.data_source_id,
            schema_id=self.schema_id,
            destination_id=self.destination_id,
            display_name=self.display_name,
            schedule=[s.given() for s in self.schedule],
            accounts=[
                TransferAccountInput(a.account_id, a.data_source_username, a.login_id)
                for a in self.accounts
            ],
            segments=[s.model_dump() for s in self.segments],
            settings=[
                SettingInput(s.field_id, s.value, s.group) for s in self.data_source_settings
            ],
            notification_recipients=list(self.notification_recipients),
            transfer_type=self.transfer_type,
        )


class StateBody(_Strict):
    """The body of ``PUT .../transfers/{transfer_id}/state``."""

    transfer_state: Literal["pause", "unpause"]


# -- answers ------------------------------------------------------------------------------


class TransferItem(BaseModel):
    """One transfer of the list (``TransferInfoResponse``)."""

    dwh_transfer_id: int
    display_name: str
    external_transfer_id: str
    status: str
    state: str
    schedule: str
    data_source: dict[str, Any]
    destination: dict[str, Any] | None
    accounts: list[str]
    backfill: None = None
    next_run_at: float | None = None


class TransferList(WithMeta):
    """The answer of ``GET /teams/{team_id}/transfers``."""

    data: list[TransferItem]


class AccountInfo(BaseModel):
    """A transfer's account (``TransferAccount``)."""

    account_id: str
    data_source_username: str | None = None
    login_id: int | None = None


class ScheduleInfo(BaseModel):
    """A transfer's schedule (``TransferSchedule``)."""

    run_interval: str
    run_hour: int
    refresh_window: int
    run_weekday: int | None = None
    run_day: int | None = None


class SettingInfo(BaseModel):
    """A data-source setting of a transfer."""

    field_id: str
    value: bool | int | str | None
    group: str | None = None


class TransferSource(BaseModel):
    """The data source of a transfer's detail."""

    data_source_id: str
    service_name: str
    service_provider: str = "querybatch"
    settings: list[SettingInfo]


class Recipient(BaseModel):
    """A notification recipient."""

    email: str


class TransferDetail(BaseModel):
    """A transfer's configuration (``TransferConfigurationResponse``, bare)."""

    transfer_id: int
    display_name: str
    schema_id: int
    destination_id: int
    state: str
    accounts: list[AccountInfo]
    segments: list[dict[str, Any]] = []
    schedule: list[ScheduleInfo]
    data_source: TransferSource
    notification_recipients: list[Recipient]
    external_url: str | None = None
    next_run_at: float | None = None


class TransferName(BaseModel):
    """A created or updated transfer's id and name."""

    transfer_id: int
    transfer_name: str


class TransferCreated(WithMeta):
    """The answer of a create (wrapped)."""

    data: TransferName


class StateAnswer(BaseModel):
    """The answer of a state change (bare)."""

    result: bool
    state: str


class ValidationIssue(BaseModel):
    """One reason a configuration is not valid."""

    field_id: str
    error_code: str
    message: str | None = None


class ValidationAnswer(BaseModel):
    """The answer of a validation (bare; 200 whether valid or not)."""

    is_valid: bool
    errors: list[ValidationIssue]


class SourcesAnswer(BaseModel):
    """The answer of ``GET .../transfers/available-sources`` (bare)."""

    data_sources: list[dict[str, Any]]
    destinations: list[dict[str, Any]]
    destination_types: list[dict[str, Any]]


class OptionsAnswer(BaseModel):
    """The answer of ``GET .../transfers/available-options`` (bare)."""

    data_source: dict[str, Any]
    schedule_options: list[dict[str, Any]]
    schemas: list[dict[str, Any]]
    logins: list[dict[str, Any]]
    accounts: list[dict[str, Any]]
    segments: list[dict[str, Any]]


def _schedules(view: TransferView) -> list[ScheduleInfo]:
    return [
        ScheduleInfo(
            run_interval=s.run_interval,
            run_hour=s.run_hour,
            refresh_window=s.refresh_window,
            run_weekday=s.run_weekday,
            run_day=s.run_day,
        )
        for s in view.schedules
    ]


def transfer_list(meta: RequestMeta, views: list[TransferView]) -> TransferList:
    """The list answer."""
    items = [
        TransferItem(
            dwh_transfer_id=v.id,
            display_name=v.display_name,
            external_transfer_id=f"qb-{v.id}",
            status=v.state,
            state=v.state,
            schedule=", ".join(dict.fromkeys(s.describe() for s in v.schedules)),
            data_source={"data_source_id": v.data_source_id, "service_name": v.service_name},
            destination=(
                None
                if v.destination_name is None
                else {
                    "destination_id": v.destination_id,
                    "destination_name": v.destination_name,
                    "destination_type": v.destination_type,
                }
            ),
            accounts=list(dict.fromkeys(a.account_id for a in v.accounts)),
            next_run_at=v.next_run_at,
        )
        for v in views
    ]
    return TransferList(meta=meta, data=items)


def transfer_detail(view: TransferView) -> TransferDetail:
    """A transfer's detail (bare)."""
    return TransferDetail(
        transfer_id=view.id,
        display_name=view.display_name,
        schema_id=view.schema_id,
        destination_id=view.destination_id,
        state=view.state,
        accounts=[
            AccountInfo(
                account_id=a.account_id,
                data_source_username=a.data_source_username,
                login_id=a.login_id,
            )
            for a in view.accounts
        ],
        schedule=_schedules(view),
        data_source=TransferSource(
            data_source_id=view.data_source_id,
            service_name=view.service_name,
            settings=[
                SettingInfo(field_id=s.field_id, value=s.value, group=s.group)
                for s in view.settings
            ],
        ),
        notification_recipients=[Recipient(email=e) for e in view.notification_recipients],
        next_run_at=view.next_run_at,
    )


def transfer_name(view: TransferView) -> TransferName:
    """A created or updated transfer's id and name."""
    return TransferName(transfer_id=view.id, transfer_name=view.display_name)


def state_answer(view: TransferView) -> StateAnswer:
    """A state change's answer (``ACTIVE`` or ``PAUSED``)."""
    return StateAnswer(result=True, state=view.state.upper())


def validation_answer(issues: list[Issue]) -> ValidationAnswer:
    """A validation's answer."""
    return ValidationAnswer(
        is_valid=not issues,
        errors=[
            ValidationIssue(field_id=i.field_id, error_code=i.error_code, message=i.detail or None)
            for i in issues
        ],
    )


def sources_answer(found: AvailableSources) -> SourcesAnswer:
    """The available sources' answer."""
    types = [t for t, _ in found.destination_types]
    return SourcesAnswer(
        data_sources=[
            {
                "data_source_id": ds_id,
                "service_name": ds_id,
                "service_provider": "querybatch",
                "logo_url": None,
                "has_custom_fields": False,
                "is_custom_connector": False,
                "is_public_beta": False,
                "is_released": True,
                "is_internal": False,
                "applicable_destinations": types,
            }
            for ds_id in found.data_sources
        ],
        destinations=[
            {
                "destination_id": dest_id,
                "destination_name": name,
                "destination_type": kind,
                "destination_label": title,
                "destination_icon_url": ICON_URL,
                "is_internal": False,
                "details": [],
            }
            for dest_id, name, kind, title in found.destinations
        ],
        destination_types=[
            {"title": title, "type": kind, "icon_url": ICON_URL, "is_internal": False}
            for kind, title in found.destination_types
        ],
    )


def options_answer(found: SourceOptions) -> OptionsAnswer:
    """The available options' answer."""
    return OptionsAnswer(
        data_source={
            "data_source_id": found.data_source_id,
            "service_name": found.service_name,
            "settings": [
                {"field_id": name, "description": text} for name, text in found.settings.items()
            ],
        },
        schedule_options=[{"run_interval": interval} for interval in INTERVALS],
        schemas=[
            {
                "schema_id": s.schema_id,
                "schema_name": s.schema_name,
                "table_name": s.table_name,
                "fields": [
                    {"field_id": f.field_id, "field_type": f.field_type, "data_type": f.data_type}
                    for f in s.fields
                ],
            }
            for s in found.schemas
        ],
        logins=[
            {"data_source_username": user, "display_name": name} for user, name in found.logins
        ],
        accounts=[
            {"account_id": account_id, "account_name": name, "data_source_username": user}
            for account_id, name, user in found.accounts
        ],
        segments=[],
    )
