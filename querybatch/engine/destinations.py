"""Destinations: a tenant's warehouses and file stores, for the API and the transfers alike.

A destination is stored with its type's fields; the secret ones (passwords, keys) are sealed
by :class:`SecretBox` and never leave this service again: answers show them as not set or
set, never their value. An update is a full replacement of the fields, except that a secret
left out (or empty) keeps its stored value, and ``new_password`` rotates the type's password.
Team-scoped paths name the caller's own team; anything of another tenant is NotFound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from querybatch.destinations.base import (
    Column,
    Destination,
    DestinationContext,
    LoadResult,
    SliceRows,
)
from querybatch.domain.teams import team_id_of
from querybatch.engine.catalog import check_team
from querybatch.engine.destination_targets import DestinationTargets
from querybatch.engine.destination_views import (
    ConnectionCheck,
    DestinationInput,
    DestinationView,
    ShownSetting,
    TransferUse,
    Usage,
    UsageLookup,
    no_transfers,
)
from querybatch.engine.secret_box import SecretBox
from querybatch.engine.service import Caller
from querybatch.errors import (
    BadRequest,
    Conflict,
    DestinationError,
    DestinationUnreachable,
    NotFound,
    QueryBatchError,
)
from querybatch.store.destinations import DestinationRecord, DestinationValues
from querybatch.store.store import Store

__all__ = [
    "ConnectionCheck",
    "DestinationInput",
    "DestinationView",
    "Destinations",
    "ShownSetting",
    "TransferUse",
    "Usage",
]
MASK = "********"
"""What a client may send back for a secret it was never shown: keep the stored one."""
TEST_TIMEOUT = 20.0
PROBES = 4
"""Connection tests one node runs at once (each may hold a thread for TEST_TIMEOUT)."""


class Destinations:
    """The one door to destinations (``/teams/{team_id}/destinations``)."""

    def __init__(
        self,
        store: Store,
        types: Mapping[str, type[Destination]],
        box: SecretBox,
        root: Path,
        *,
        limit: int = 100,
        usage: UsageLookup = no_transfers,
        targets: DestinationTargets | None = None,
    ) -> None:
        self.store = store
        self.types = dict(types)
        self.box = box
        self.root = root
        self.limit = limit
        self._usage = usage
        # By default only public hosts: the operator opens internal ones (settings).
        self.targets = targets or DestinationTargets()
        self._probes = asyncio.Semaphore(PROBES)

    def use_transfers(self, usage: UsageLookup) -> None:
        """Ask ``usage`` which transfers use a destination (the transfers service, once it
        exists, calls this): ``get_usage`` reports them and ``delete`` is refused while any do.
        """
        self._usage = usage

    # -- reads ------------------------------------------------------------------------------

    async def list_all(self, caller: Caller, team_id: int) -> list[DestinationView]:
        """The tenant's destinations, oldest first."""
        check_team(caller, team_id)
        return [self._view(r) for r in await self.store.destinations.list(caller.account)]

    async def get(self, caller: Caller, team_id: int, destination_id: int) -> DestinationView:
        """One of the tenant's destinations."""
        check_team(caller, team_id)
        return self._view(await self._record(caller.account, destination_id))

    async def usage(self, caller: Caller, team_id: int, destination_id: int) -> Usage:
        """Which transfers load into the destination."""
        check_team(caller, team_id)
        await self._record(caller.account, destination_id)
        transfers = tuple(await self._usage(caller.account, destination_id))
        return Usage(bool(transfers), transfers)

    # -- changes ----------------------------------------------------------------------------

    async def create(
        self, caller: Caller, team_id: int, given: DestinationInput
    ) -> DestinationView:
        """Store a new destination, its secrets sealed."""
        check_team(caller, team_id)
        kind = self._type(given.type)
        values = await self._values(caller.account, kind, given, stored={})
        record = await self.store.destinations.create(
            caller.account, values, time.time(), self.limit
        )
        if record is None:
            raise Conflict(
                "Too many destinations",
                f"A team may have {self.limit} destinations; delete one first.",
            )
        return self._view(record)

    async def update(
        self, caller: Caller, team_id: int, destination_id: int, given: DestinationInput
    ) -> DestinationView:
        """Replace a destination's name and fields; secrets left out are kept."""
        check_team(caller, team_id)
        record = await self._record(caller.account, destination_id)
        if given.type != record.type:
            raise BadRequest(
                "Invalid value for parameter 'type'",
                f"Destination {destination_id} is a {record.type}; a type cannot change.",
            )
        kind = self._type(record.type)
        values = await self._values(caller.account, kind, given, stored=self._secrets(record))
        updated = await self.store.destinations.update(
            caller.account, destination_id, values, time.time()
        )
        if updated is None:
            raise NotFound(f"No destination {destination_id}")
        return self._view(updated)

    async def delete(self, caller: Caller, team_id: int, destination_id: int) -> None:
        """Remove a destination, refused while a transfer loads into it."""
        check_team(caller, team_id)
        await self._record(caller.account, destination_id)
        used = await self._usage(caller.account, destination_id)
        if used:
            names = ", ".join(str(t.transfer_id) for t in used[:10])
            raise Conflict(
                "The destination is in use",
                f"Transfers {names} load into it: delete them or point them elsewhere first.",
            )
        if not await self.store.destinations.delete(caller.account, destination_id):
            # Gone meanwhile, or a transfer started using it meanwhile (the store checks).
            await self._record(caller.account, destination_id)
            raise Conflict("The destination is in use", "A transfer loads into it.")

    # -- connections ------------------------------------------------------------------------

    async def test_connection(
        self, caller: Caller, team_id: int, given: DestinationInput, destination_id: int | None
    ) -> ConnectionCheck:
        """Try the fields (with an existing destination's secrets where they are left out)."""
        check_team(caller, team_id)
        kind = self._type(given.type)
        stored: dict[str, str] = {}
        if destination_id is not None:
            record = await self._record(caller.account, destination_id)
            if record.type != kind.type_name:
                raise BadRequest(
                    "Invalid value for parameter 'type'",
                    f"Destination {destination_id} is a {record.type}.",
                )
            stored = self._secrets(record)
        fields, secrets = self._merged(kind, given, stored)
        destination = kind.from_fields(fields, self._context(caller.account))
        try:
            await self.targets.pin(destination)  # a refused host is the caller's 4xx
        except DestinationUnreachable as exc:
            await destination.close()
            return ConnectionCheck(False, _message(exc))
        try:
            await asyncio.wait_for(self._probe(destination), TEST_TIMEOUT)
        except TimeoutError:
            return ConnectionCheck(False, f"No answer within {TEST_TIMEOUT:.0f} seconds")
        except Exception as exc:  # a probe: every failure is its verdict, not the server's
            return ConnectionCheck(False, _hidden(_message(exc), secrets.values()))
        finally:
            await destination.close()
        return ConnectionCheck(True)

    async def _probe(self, destination: Destination) -> None:
        async with self._probes:
            await destination.test_connection()

    async def destination_for(self, account: str, destination_id: int) -> Destination:
        """The destination ready to load (for transfer runs); ``close`` it after use."""
        record = await self._record(account, destination_id)
        kind = self._type(record.type)
        fields = {**record.settings, **self._secrets(record, strict=True)}
        destination = kind.from_fields(fields, self._context(account))
        await self.targets.pin(destination)  # checked again at connect time, then pinned
        return destination

    async def load(
        self,
        account: str,
        destination_id: int,
        table: str,
        columns: Sequence[Column],
        parts: Sequence[SliceRows],
    ) -> list[LoadResult]:
        """Replace each slice of ``parts`` in the destination by its rows (transfer runs'
        loads, several at once), in one transaction where the type allows; what each part
        wrote. Any failure is a DestinationError whose message names no secret."""
        secrets = self._secrets(await self._record(account, destination_id))
        destination = await self.destination_for(account, destination_id)
        try:
            return await destination.load_parts(table, columns, parts)
        except DestinationError as exc:
            raise type(exc)(_hidden(exc.message, secrets.values()), exc.description) from None
        except Exception as exc:  # a driver's own error: its text may quote a field
            raise DestinationError(_hidden(_message(exc), secrets.values())) from None
        finally:
            await destination.close()

    # -- helpers ----------------------------------------------------------------------------

    def _type(self, name: str) -> type[Destination]:
        kind = self.types.get(name)
        if kind is None:
            raise BadRequest(
                "Invalid value for parameter 'type'",
                f"{name[:50]!r} is not a destination type of this server; it offers "
                + ", ".join(sorted(self.types)),
            )
        return kind

    def _context(self, account: str) -> DestinationContext:
        return DestinationContext(self.root / str(team_id_of(account)))

    async def _record(self, account: str, destination_id: int) -> DestinationRecord:
        record = await self.store.destinations.get(account, destination_id)
        if record is None:
            raise NotFound(f"No destination {destination_id}")
        return record

    def _secrets(self, record: DestinationRecord, *, strict: bool = False) -> dict[str, str]:
        try:
            return self.box.open(record.account, record.secrets)
        except QueryBatchError:
            if strict:
                raise
            return {}  # unreadable (the server secret changed): the update enters them again

    def _merged(
        self, kind: type[Destination], given: DestinationInput, stored: Mapping[str, str]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The fields to validate, and the secrets among them."""
        secret_names = kind.secret_fields()
        fields = {k: v for k, v in given.fields.items() if k not in secret_names}
        secrets = dict(stored)
        for name in secret_names:
            value = given.fields.get(name)
            if isinstance(value, str) and value and value != MASK:
                secrets[name] = value
            elif value is not None and not isinstance(value, str):
                raise BadRequest(f"Invalid value for field {name!r}", "A secret is a string.")
        if given.new_password is not None:
            if kind.password_field is None:
                raise BadRequest(
                    "Invalid parameter 'new_password'", f"A {kind.type_name} has no password."
                )
            secrets[kind.password_field] = given.new_password
        return {**fields, **secrets}, secrets

    async def _values(
        self,
        account: str,
        kind: type[Destination],
        given: DestinationInput,
        stored: Mapping[str, str],
    ) -> DestinationValues:
        fields, secrets = self._merged(kind, given, stored)
        destination = kind.from_fields(fields, self._context(account))  # validates them all
        await self.targets.check_new(destination)
        shown = destination.config.model_dump(
            mode="json", by_alias=True, exclude_none=True, exclude=set(_attrs(kind, secrets))
        )
        return DestinationValues(
            type=kind.type_name,
            display_name=given.display_name,
            auth_method=given.auth_method,
            settings=shown,
            secrets=self.box.seal(account, secrets),
        )

    def _view(self, record: DestinationRecord) -> DestinationView:
        kind = self._type(record.type)
        sealed = set(self._secret_names(record))
        shown = tuple(
            ShownSetting(
                s,
                None if s.secret else record.settings.get(s.id),
                s.id in sealed if s.secret else s.id in record.settings,
            )
            for s in kind.settings
        )
        return DestinationView(record.id, kind, record.display_name, record.auth_method, shown)

    def _secret_names(self, record: DestinationRecord) -> list[str]:
        try:
            return list(self.box.open(record.account, record.secrets))
        except QueryBatchError:
            return []


def _attrs(kind: type[Destination], secrets: Mapping[str, str]) -> list[str]:
    """The model attribute names of the secret fields (a field may have an alias)."""
    names = kind.secret_fields() | set(secrets)
    found = []
    for attr, info in kind.config_model.model_fields.items():
        if attr in names or (info.alias and info.alias in names):
            found.append(attr)
    return found


def _message(exc: BaseException) -> str:
    if isinstance(exc, QueryBatchError):
        return exc.message + (f": {exc.description}" if exc.description else "")
    return f"{type(exc).__name__}: {str(exc)[:500]}"


def _hidden(message: str, secrets: Any) -> str:
    """``message`` with any secret it might echo replaced, at most 2000 characters."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            message = message.replace(secret, MASK)
    return message[:2000]
