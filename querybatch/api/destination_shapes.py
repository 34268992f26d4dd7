"""Destinations as the API reads and answers them, in the shapes the official SDK parses.

Requests carry a flat ``fields`` mapping; answers describe a destination as a form
(``destination_type`` and ``edit_settings``), the read shape of the Supermetrics API. A
secret's ``value`` is always null: its ``note`` says whether one is stored.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from querybatch.api.schemas import RequestMeta
from querybatch.engine.destinations import (
    ConnectionCheck,
    DestinationInput,
    DestinationView,
    ShownSetting,
    Usage,
)

ICON_URL = "about:blank"  # the hosted service's icons are not ours to link to
FieldName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
FieldValue = Annotated[str, StringConstraints(max_length=10_000)] | int | float | bool | None
DestinationId = Annotated[int, Field(ge=1, le=2**31 - 1)]
M = TypeVar("M", bound=BaseModel)


class DestinationBody(BaseModel):
    """The body of ``POST /teams/{team_id}/destinations``."""

    model_config = ConfigDict(extra="forbid")
    type: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    auth_method: Annotated[str, StringConstraints(max_length=100)] | None = None
    fields: Annotated[dict[FieldName, FieldValue], Field(max_length=50)]

    def given(self) -> DestinationInput:
        """What the engine is given."""
        return DestinationInput(
            self.type,
            self.display_name,
            self.fields,
            self.auth_method,
            getattr(self, "new_password", None),
        )


class UpdateBody(DestinationBody):
    """The body of ``PUT /teams/{team_id}/destinations/{destination_id}``."""

    new_password: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None


class ConnectionBody(UpdateBody):
    """The body of ``POST /teams/{team_id}/destinations/test-connection``."""

    destination_id: DestinationId | None = None


class WithMeta(BaseModel):
    """The ``meta`` an answer starts with."""

    meta: RequestMeta


class DestinationItem(BaseModel):
    """One destination of the list."""

    id: int
    display_name: str
    type: str


class DestinationList(WithMeta):
    """The answer of ``GET /teams/{team_id}/destinations``."""

    data: list[DestinationItem]


class SetupOption(BaseModel):
    """One choice of a select field."""

    value: str
    label: str


class SetupSetting(BaseModel):
    """One field of a destination, as a form describes it."""

    id: str
    label: str
    value: str | int | float | bool | None
    input_type: str
    is_required: bool
    options: list[SetupOption] = []
    help_text: str | None = None
    note: str | None = None


class DestinationTypeInfo(BaseModel):
    """A destination type: its name, title and fields."""

    type: str
    title: str
    icon_url: str
    is_internal: bool = False
    settings: list[SetupSetting]


class DestinationInfo(BaseModel):
    """A destination (``data`` of a create, get or update)."""

    id: int
    display_name: str
    destination_type: DestinationTypeInfo
    edit_settings: list[SetupSetting]


class DestinationAnswer(WithMeta):
    """The answer of a create, get or update."""

    data: DestinationInfo


class ConnectionResult(BaseModel):
    """The verdict of a connection test."""

    success: bool
    error: str | None


class ConnectionAnswer(WithMeta):
    """The answer of ``POST .../destinations/test-connection`` (a failure is a 200 too)."""

    data: ConnectionResult


class UsageTransfer(BaseModel):
    """A transfer that loads into the destination."""

    transfer_id: int
    transfer_name: str


class UsageInfo(BaseModel):
    """Whether transfers load into the destination."""

    is_used: bool
    transfers: list[UsageTransfer]


class UsageAnswer(WithMeta):
    """The answer of ``GET .../destinations/{destination_id}/usage``."""

    data: UsageInfo


def _setting(shown: ShownSetting, *, of_type: bool = False) -> SetupSetting:
    setting = shown.setting
    note = None
    if setting.secret and not of_type:
        note = "Stored encrypted, never shown" if shown.is_set else "Not set"
    return SetupSetting(
        id=setting.id,
        label=setting.label,
        value=shown.value,
        input_type=setting.input_type,
        is_required=setting.required,
        options=[SetupOption(value=o, label=o) for o in setting.options],
        help_text=setting.help_text,
        note=note,
    )


def destination_list(meta: RequestMeta, views: list[DestinationView]) -> DestinationList:
    """The list answer."""
    items = [
        DestinationItem(id=v.id, display_name=v.display_name, type=v.type.type_name) for v in views
    ]
    return DestinationList(meta=meta, data=items)


def destination_answer(meta: RequestMeta, view: DestinationView) -> DestinationAnswer:
    """A single destination's answer."""
    kind = view.type
    blank = [ShownSetting(s, None, False) for s in kind.settings]  # the type's empty form
    info = DestinationInfo(
        id=view.id,
        display_name=view.display_name,
        destination_type=DestinationTypeInfo(
            type=kind.type_name,
            title=kind.title,
            icon_url=ICON_URL,
            settings=[_setting(s, of_type=True) for s in blank],
        ),
        edit_settings=[_setting(s) for s in view.settings],
    )
    return DestinationAnswer(meta=meta, data=info)


def connection_answer(meta: RequestMeta, check: ConnectionCheck) -> ConnectionAnswer:
    """A connection test's answer."""
    return ConnectionAnswer(
        meta=meta, data=ConnectionResult(success=check.success, error=check.error)
    )


def usage_answer(meta: RequestMeta, usage: Usage) -> UsageAnswer:
    """A usage answer."""
    transfers = [
        UsageTransfer(transfer_id=t.transfer_id, transfer_name=t.transfer_name)
        for t in usage.transfers
    ]
    return UsageAnswer(meta=meta, data=UsageInfo(is_used=usage.is_used, transfers=transfers))
