"""Transfers: a data source's schema loaded into a destination on a schedule (issue 18).

This service keeps the transfers (create, validate, read, update, pause, delete) and tells
the destinations service which transfers use a destination. ``next_run_at`` is when the
next run is due (at once for a new transfer); the transfer runner
(``engine/transfer_runner.py``) starts the runs on the leading node.

A data source offers one **schema** (``schema_id`` 1): every field it has, one row per data
date and account, loaded into a table named after the data source. Team-scoped paths name
the caller's own team; anything of another tenant is NotFound.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from querybatch.domain.fields import FieldInfo
from querybatch.domain.transfer_schedule import (
    INTERVALS,
    MAX_REFRESH_WINDOW,
    InvalidSchedule,
    Schedule,
    next_due,
)
from querybatch.engine.catalog import Catalog, check_team
from querybatch.engine.destination_views import TransferUse
from querybatch.engine.destinations import Destinations
from querybatch.engine.service import Caller
from querybatch.errors import BadRequest, Conflict, NotFound
from querybatch.store.store import Store
from querybatch.store.transfers import TransferRecord, TransferValues

State = Literal["active", "paused"]
SCHEMA_ID = 1
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")
_TABLE_CHARS = re.compile(r"[^a-z0-9_]+")


@dataclass(frozen=True, slots=True)
class TransferAccountInput:
    """An account a transfer reads: its id, and the login (``ds_user``) that reads it."""

    account_id: str
    data_source_username: str | None = None
    login_id: int | None = None


@dataclass(frozen=True, slots=True)
class SettingInput:
    """A data-source setting of a transfer (one of the source's per-query settings)."""

    field_id: str
    value: str | int | bool | None
    group: str | None = None


@dataclass(frozen=True, slots=True)
class TransferInput:
    """A transfer's configuration, as a create, an update or a validation gives it."""

    data_source_id: str
    schema_id: int
    destination_id: int
    display_name: str
    schedule: Sequence[Mapping[str, Any]]
    accounts: Sequence[TransferAccountInput]
    segments: Sequence[Mapping[str, Any]] = ()
    settings: Sequence[SettingInput] = ()
    notification_recipients: Sequence[str] = ()
    transfer_type: int | None = None


@dataclass(frozen=True, slots=True)
class Issue:
    """One reason a configuration is not valid: the field and a code (``isEmpty``...)."""

    field_id: str
    error_code: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TransferSchema:
    """What a transfer of a data source can load: its fields, into one table."""

    schema_id: int
    schema_name: str
    table_name: str
    fields: tuple[FieldInfo, ...]


@dataclass(frozen=True, slots=True)
class TransferView:
    """A stored transfer, as the API shows it."""

    id: int
    display_name: str
    data_source_id: str
    service_name: str
    schema_id: int
    destination_id: int
    destination_name: str | None
    destination_type: str | None
    state: State
    schedules: tuple[Schedule, ...]
    accounts: tuple[TransferAccountInput, ...]
    settings: tuple[SettingInput, ...]
    notification_recipients: tuple[str, ...]
    next_run_at: float | None


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """What a transfer of a data source into a destination may use."""

    data_source_id: str
    service_name: str
    settings: Mapping[str, str]
    schemas: tuple[TransferSchema, ...]
    logins: tuple[tuple[str, str], ...]
    accounts: tuple[tuple[str, str, str], ...]  # (account_id, account_name, ds_user)


@dataclass(frozen=True, slots=True)
class AvailableSources:
    """The data sources, the team's destinations and the destination types."""

    data_sources: tuple[str, ...]
    destinations: tuple[tuple[int, str, str, str], ...]  # (id, name, type, title)
    destination_types: tuple[tuple[str, str], ...]  # (type, title)


@dataclass
class _Checked:
    issues: list[Issue] = field(default_factory=list)
    schedules: list[Schedule] = field(default_factory=list)

    def add(self, field_id: str, code: str, detail: str = "") -> None:
        self.issues.append(Issue(field_id, code, detail))


class Transfers:
    """The one door to transfers (``/teams/{team_id}/transfers``)."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        destinations: Destinations,
        *,
        limit: int = 100,
        clock: Any = time.time,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.destinations = destinations
        self.limit = limit
        self._clock = clock
        destinations.use_transfers(self.using)

    # -- what a transfer may use --------------------------------------------------------------

    async def available_sources(self, caller: Caller, team_id: int) -> AvailableSources:
        """The data sources, the team's destinations and the destination types."""
        check_team(caller, team_id)
        views = await self.destinations.list_all(caller, team_id)
        return AvailableSources(
            data_sources=tuple(sorted(self.catalog.sources)),
            destinations=tuple(
                (v.id, v.display_name, v.type.type_name, v.type.title) for v in views
            ),
            destination_types=tuple(
                (name, kind.title) for name, kind in sorted(self.destinations.types.items())
            ),
        )

    async def options(
        self, caller: Caller, team_id: int, source_id: str, destination_id: int
    ) -> SourceOptions:
        """The schemas, logins, accounts and settings of ``source_id`` into a destination."""
        check_team(caller, team_id)
        await self.destinations.get(caller, team_id, destination_id)
        connector = self.catalog.sources.get(source_id)
        if connector is None:
            raise NotFound(f"No data source '{source_id[:64]}'")
        logins = await self.catalog.accounts(source_id)
        return SourceOptions(
            data_source_id=source_id,
            service_name=source_id,
            settings=dict(connector.query_settings),
            schemas=(await self.schema(source_id),),
            logins=tuple((login.ds_user, login.display_name) for login in logins),
            accounts=tuple(
                (a.account_id, a.account_name, login.ds_user)
                for login in logins
                for a in login.accounts
            ),
        )

    async def schema(self, source_id: str) -> TransferSchema:
        """The data source's schema: all its fields, into a table named after it."""
        fields = tuple(await self.catalog.fields(source_id))
        table = _TABLE_CHARS.sub("_", source_id.lower()).strip("_")[:63] or "transfer"
        if not table[0].isalpha():
            table = ("t_" + table)[:63]
        return TransferSchema(SCHEMA_ID, f"{source_id} (all fields)", table, fields)

    # -- validation ---------------------------------------------------------------------------

    async def validate(self, caller: Caller, team_id: int, given: TransferInput) -> list[Issue]:
        """The reasons ``given`` cannot be a transfer of the team (none: it can)."""
        check_team(caller, team_id)
        return (await self._check(caller.account, given)).issues

    async def validate_update(
        self, caller: Caller, team_id: int, transfer_id: int, given: TransferInput
    ) -> list[Issue]:
        """The reasons ``given`` cannot replace the transfer's configuration."""
        check_team(caller, team_id)
        await self._record(caller.account, transfer_id)
        return (await self._check(caller.account, given)).issues

    async def _check(self, account: str, given: TransferInput) -> _Checked:
        checked = _Checked()
        if not given.display_name.strip():
            checked.add("display_name", "isEmpty")
        connector = self.catalog.sources.get(given.data_source_id)
        if connector is None:
            checked.add("data_source_id", "notFound", "no such data source")
        elif given.schema_id != SCHEMA_ID:
            checked.add("schema_id", "notFound", f"the data source offers schema {SCHEMA_ID}")
        if await self.store.destinations.get(account, given.destination_id) is None:
            checked.add("destination_id", "notFound", "no such destination")
        self._check_schedules(given, checked)
        if not given.accounts:
            checked.add("accounts", "isEmpty")
        elif connector is not None:
            await self._check_accounts(given, checked)
        if given.segments:
            checked.add("segments", "notSupported", "no data source here has segments")
        if connector is not None:
            _check_settings(given, connector.query_settings, checked)
        if any(not _EMAIL.match(r) for r in given.notification_recipients):
            checked.add("notification_recipients", "invalid", "not an email address")
        return checked

    @staticmethod
    def _check_schedules(given: TransferInput, checked: _Checked) -> None:
        if not given.schedule:
            checked.add("schedule", "isEmpty")
        for n, entry in enumerate(given.schedule):
            try:
                checked.schedules.append(schedule_of(entry))
            except InvalidSchedule as exc:
                checked.add(f"schedule.{n}.{exc.field}", "invalid", str(exc))

    async def _check_accounts(self, given: TransferInput, checked: _Checked) -> None:
        logins = await self.catalog.accounts(given.data_source_id)
        readable: dict[str, set[str]] = {}
        for login in logins:
            for a in login.accounts:
                readable.setdefault(a.account_id, set()).add(login.ds_user)
        seen: set[tuple[str, str | None]] = set()
        for n, entry in enumerate(given.accounts):
            users = readable.get(entry.account_id)
            if users is None or (
                entry.data_source_username is not None and entry.data_source_username not in users
            ):
                checked.add(f"accounts.{n}.account_id", "notFound", "no login reads it")
            key = (entry.account_id, entry.data_source_username)
            if key in seen:
                checked.add(f"accounts.{n}.account_id", "duplicate")
            seen.add(key)

    # -- reads --------------------------------------------------------------------------------

    async def list_all(self, caller: Caller, team_id: int) -> list[TransferView]:
        """The team's transfers, oldest first."""
        check_team(caller, team_id)
        names = await self._destination_names(caller.account)
        return [self._view(r, names) for r in await self.store.transfers.list(caller.account)]

    async def get(self, caller: Caller, team_id: int, transfer_id: int) -> TransferView:
        """One of the team's transfers."""
        check_team(caller, team_id)
        record = await self._record(caller.account, transfer_id)
        return self._view(record, await self._destination_names(caller.account))

    async def using(self, account: str, destination_id: int) -> Sequence[TransferUse]:
        """The account's transfers that load into the destination (the destinations' hook)."""
        return [
            TransferUse(r.id, r.display_name)
            for r in await self.store.transfers.using(account, destination_id)
        ]

    # -- changes ------------------------------------------------------------------------------

    async def create(self, caller: Caller, team_id: int, given: TransferInput) -> TransferView:
        """Store a new, active transfer after validating it (400 naming the first issue);
        its first run is due at once."""
        check_team(caller, team_id)
        values = await self._values(caller.account, given, active=True)
        # The first run is due at once: a new transfer loads its refresh window now, not
        # only at its first scheduled hour; the schedule takes over from that run.
        values = replace(values, next_run_at=self._clock())
        record = await self.store.transfers.create(
            caller.account, values, self._clock(), self.limit
        )
        if record == "limit":
            raise Conflict(
                "Too many transfers", f"A team may have {self.limit} transfers; delete one first."
            )
        if record == "destination":
            raise _refusal(Issue("destination_id", "notFound", "no such destination"))
        return await self.get(caller, team_id, record.id)

    async def update(
        self, caller: Caller, team_id: int, transfer_id: int, given: TransferInput
    ) -> TransferView:
        """Replace a transfer's configuration; its state (active, paused) is kept."""
        check_team(caller, team_id)
        record = await self._record(caller.account, transfer_id)
        values = await self._values(caller.account, given, active=record.state == "active")
        updated = await self.store.transfers.update(
            caller.account, transfer_id, values, self._clock()
        )
        if updated is None:
            raise NotFound(f"No transfer {transfer_id}")
        if updated == "destination":
            raise _refusal(Issue("destination_id", "notFound", "no such destination"))
        return await self.get(caller, team_id, transfer_id)

    async def set_state(
        self, caller: Caller, team_id: int, transfer_id: int, action: Literal["pause", "unpause"]
    ) -> TransferView:
        """Pause (no runs start) or resume (from the next scheduled time) a transfer."""
        check_team(caller, team_id)
        record = await self._record(caller.account, transfer_id)
        state: State = "paused" if action == "pause" else "active"
        due = None
        if state == "active":
            due = next_due_at([schedule_of(s) for s in record.config["schedule"]], self._clock())
        updated = await self.store.transfers.set_state(
            caller.account, transfer_id, state, due, self._clock()
        )
        if updated is None:
            raise NotFound(f"No transfer {transfer_id}")
        return await self.get(caller, team_id, transfer_id)

    async def delete(self, caller: Caller, team_id: int, transfer_id: int) -> None:
        """Remove a transfer; its runs go with it (loaded rows stay in the destination)."""
        check_team(caller, team_id)
        if not await self.store.transfers.delete(caller.account, transfer_id):
            raise NotFound(f"No transfer {transfer_id}")

    # -- helpers ------------------------------------------------------------------------------

    async def _values(self, account: str, given: TransferInput, *, active: bool) -> TransferValues:
        checked = await self._check(account, given)
        if checked.issues:
            raise _refusal(checked.issues[0])
        config = {
            "schedule": [_schedule_dict(s) for s in checked.schedules],
            "accounts": [
                {
                    "account_id": a.account_id,
                    "data_source_username": a.data_source_username,
                    "login_id": a.login_id,
                }
                for a in given.accounts
            ],
            "settings": [
                {"field_id": s.field_id, "value": s.value, "group": s.group} for s in given.settings
            ],
            "notification_recipients": list(given.notification_recipients),
            "transfer_type": given.transfer_type,
        }
        due = next_due_at(checked.schedules, self._clock()) if active else None
        return TransferValues(
            display_name=given.display_name.strip(),
            data_source_id=given.data_source_id,
            schema_id=given.schema_id,
            destination_id=given.destination_id,
            config=config,
            next_run_at=due,
        )

    async def _record(self, account: str, transfer_id: int) -> TransferRecord:
        record = await self.store.transfers.get(account, transfer_id)
        if record is None:
            raise NotFound(f"No transfer {transfer_id}")
        return record

    async def _destination_names(self, account: str) -> dict[int, tuple[str, str]]:
        return {r.id: (r.display_name, r.type) for r in await self.store.destinations.list(account)}

    def _view(self, record: TransferRecord, names: Mapping[int, tuple[str, str]]) -> TransferView:
        config = record.config
        destination = names.get(record.destination_id)
        return TransferView(
            id=record.id,
            display_name=record.display_name,
            data_source_id=record.data_source_id,
            service_name=record.data_source_id,
            schema_id=record.schema_id,
            destination_id=record.destination_id,
            destination_name=destination[0] if destination else None,
            destination_type=destination[1] if destination else None,
            state="paused" if record.state == "paused" else "active",
            schedules=tuple(schedule_of(s) for s in config.get("schedule", [])),
            accounts=tuple(
                TransferAccountInput(
                    a["account_id"], a.get("data_source_username"), a.get("login_id")
                )
                for a in config.get("accounts", [])
            ),
            settings=tuple(
                SettingInput(s["field_id"], s.get("value"), s.get("group"))
                for s in config.get("settings", [])
            ),
            notification_recipients=tuple(config.get("notification_recipients", [])),
            next_run_at=record.next_run_at,
        )


def _check_settings(given: TransferInput, known: Mapping[str, str], checked: _Checked) -> None:
    seen: set[str] = set()
    for setting in given.settings:
        if setting.field_id not in known:
            checked.add("data_source_settings", "notFound", setting.field_id[:100])
        elif setting.field_id in seen:
            checked.add("data_source_settings", "duplicate", setting.field_id)
        seen.add(setting.field_id)


def schedule_of(entry: Mapping[str, Any]) -> Schedule:
    """A checked schedule from the API's ``TransferSchedule`` (InvalidSchedule if not one)."""
    interval = entry.get("run_interval", "daily")
    if interval not in INTERVALS:
        raise InvalidSchedule("run_interval is one of " + ", ".join(INTERVALS))
    return Schedule(
        run_interval=interval,
        run_hour=entry.get("run_hour", 0) if interval != "hourly" else 0,
        refresh_window=entry.get("refresh_window", 1),
        run_weekday=entry.get("run_weekday"),
        run_day=entry.get("run_day"),
    )


def _schedule_dict(schedule: Schedule) -> dict[str, Any]:
    found: dict[str, Any] = {
        "run_interval": schedule.run_interval,
        "run_hour": schedule.run_hour,
        "refresh_window": schedule.refresh_window,
    }
    if schedule.run_weekday is not None:
        found["run_weekday"] = schedule.run_weekday
    if schedule.run_day is not None:
        found["run_day"] = schedule.run_day
    return found


def next_due_at(schedules: Sequence[Schedule], now: float) -> float | None:
    """The first time after ``now`` (Unix seconds) any of the schedules is due."""
    due = next_due(schedules, datetime.fromtimestamp(now, UTC))
    return None if due is None else due.timestamp()


def _refusal(issue: Issue) -> BadRequest:
    detail = f"{issue.error_code}" + (f": {issue.detail}" if issue.detail else "")
    return BadRequest(f"Invalid value for parameter '{issue.field_id}'", detail)


__all__ = [
    "MAX_REFRESH_WINDOW",
    "AvailableSources",
    "Issue",
    "SettingInput",
    "SourceOptions",
    "TransferAccountInput",
    "TransferInput",
    "TransferSchema",
    "TransferView",
    "Transfers",
]
