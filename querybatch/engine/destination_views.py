"""What the destinations service takes and answers (an answer never holds a secret)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from querybatch.destinations.base import Destination, Setting

SettingValue = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class DestinationInput:
    """What a create, an update or a connection test gives."""

    type: str
    display_name: str
    fields: Mapping[str, Any]
    auth_method: str | None = None
    new_password: str | None = None


@dataclass(frozen=True, slots=True)
class ShownSetting:
    """One field of a destination as answers show it: a secret's value is never shown."""

    setting: Setting
    value: SettingValue
    is_set: bool


@dataclass(frozen=True, slots=True)
class DestinationView:
    """A destination as the API shows it."""

    id: int
    type: type[Destination]
    display_name: str
    auth_method: str | None
    settings: tuple[ShownSetting, ...]


@dataclass(frozen=True, slots=True)
class ConnectionCheck:
    """The verdict of a connection test (a failure is an answer, not an error)."""

    success: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TransferUse:
    """A transfer that loads into a destination."""

    transfer_id: int
    transfer_name: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Whether transfers load into a destination, and which."""

    is_used: bool
    transfers: tuple[TransferUse, ...]


UsageLookup = Callable[[str, int], Awaitable[Sequence[TransferUse]]]
"""The transfers of ``account`` that load into destination ``id``."""


async def no_transfers(account: str, destination_id: int) -> Sequence[TransferUse]:
    """The usage lookup until transfers exist: nothing uses any destination yet."""
    return ()
