"""The destinations service without HTTP: secrets sealed and kept, rotation, tenants, the
usage hook, and the registry of destination types."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from querybatch.destinations import registry
from querybatch.destinations.postgresql import PostgresDestination
from querybatch.domain.teams import team_id_of
from querybatch.engine.destination_targets import DestinationTargets
from querybatch.engine.destinations import DestinationInput, Destinations, TransferUse
from querybatch.engine.secret_box import SecretBox
from querybatch.engine.service import Caller
from querybatch.errors import BadRequest, ConfigurationError, Conflict, NotFound
from querybatch.store.store import Store

ACME = Caller("acme", "key_1")
TEAM = team_id_of("acme")
PG = {"host": "db.internal", "database_name": "dw", "username": "loader"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'd.db'}", result_ttl=3600)
    yield opened
    opened.close()


@pytest.fixture
def service(store: Store, tmp_path: Path) -> Destinations:
    return Destinations(
        store,
        registry.destination_types(),
        SecretBox(b"server-secret"),
        tmp_path / "destinations",
        limit=3,
        targets=DestinationTargets(allow_internal=True, resolver=internal_dns),
    )


async def internal_dns(host: str, port: int) -> list[str]:
    """db.internal, as the operator's resolver sees it."""
    return ["10.0.0.5"]


def pg(password: str | None = None, **changes: Any) -> DestinationInput:
    fields = {**PG, **({"password": password} if password is not None else {})}
    return DestinationInput("DWH_POSTGRESQL", "dw", fields, **changes)


def test_a_sealed_secret_opens_only_for_its_account_and_server_secret() -> None:
    box = SecretBox(b"one")
    sealed = box.seal("acme", {"password": "hunter22"})
    assert sealed is not None and "hunter22" not in sealed
    assert box.open("acme", sealed) == {"password": "hunter22"}
    with pytest.raises(ConfigurationError):
        box.open("globex", sealed)
    with pytest.raises(ConfigurationError):
        SecretBox(b"two").open("acme", sealed)
    assert box.seal("acme", {}) is None and box.open("acme", None) == {}


async def test_a_password_is_stored_sealed_and_shown_only_as_set(
    service: Destinations, store: Store
) -> None:
    view = await service.create(ACME, TEAM, pg("hunter22"))
    record = await store.destinations.get("acme", view.id)
    assert record is not None and "hunter22" not in str(record)
    assert "password" not in record.settings
    shown = {s.setting.id: s for s in view.settings}
    assert shown["password"].value is None and shown["password"].is_set
    assert shown["host"].value == "db.internal"


async def test_an_update_keeps_a_secret_left_out_and_new_password_rotates_it(
    service: Destinations,
) -> None:
    view = await service.create(ACME, TEAM, pg("first"))
    await service.update(ACME, TEAM, view.id, pg(None))
    kept = await service.destination_for("acme", view.id)
    assert isinstance(kept, PostgresDestination) and kept.config.password is not None
    assert kept.config.password.get_secret_value() == "first"
    await service.update(ACME, TEAM, view.id, pg("********", new_password="second"))
    rotated = await service.destination_for("acme", view.id)
    assert isinstance(rotated, PostgresDestination) and rotated.config.password is not None
    assert rotated.config.password.get_secret_value() == "second"


async def test_a_destinations_type_cannot_change(service: Destinations) -> None:
    view = await service.create(ACME, TEAM, pg("x"))
    with pytest.raises(BadRequest, match="type"):
        await service.update(ACME, TEAM, view.id, DestinationInput("DWH_DUCKDB", "d", {}))


async def test_another_team_or_tenant_finds_nothing(service: Destinations) -> None:
    view = await service.create(ACME, TEAM, pg("x"))
    with pytest.raises(NotFound):
        await service.get(ACME, TEAM + 1, view.id)
    globex = Caller("globex", "key_2")
    with pytest.raises(NotFound):
        await service.get(globex, team_id_of("globex"), view.id)
    assert await service.list_all(globex, team_id_of("globex")) == []


async def test_a_team_holds_at_most_its_limit(service: Destinations) -> None:
    for _ in range(3):
        await service.create(ACME, TEAM, pg())
    with pytest.raises(Conflict):
        await service.create(ACME, TEAM, pg())


async def test_a_destination_in_use_is_reported_and_not_deleted(service: Destinations) -> None:
    view = await service.create(ACME, TEAM, pg())

    async def used(account: str, destination_id: int) -> Sequence[TransferUse]:
        return [TransferUse(9, "Ads to warehouse")] if destination_id == view.id else []

    service.use_transfers(used)
    usage = await service.usage(ACME, TEAM, view.id)
    assert usage.is_used and usage.transfers == (TransferUse(9, "Ads to warehouse"),)
    with pytest.raises(Conflict):
        await service.delete(ACME, TEAM, view.id)
    assert (await service.get(ACME, TEAM, view.id)).id == view.id


async def test_a_failed_connection_test_never_echoes_the_password(service: Destinations) -> None:
    given = DestinationInput(
        "DWH_POSTGRESQL",
        "x",
        {
            "host": "127.0.0.1",
            "port": 1,
            "database_name": "d",
            "username": "u",
            "password": "hunter22",
        },
    )
    check = await service.test_connection(ACME, TEAM, given, None)
    assert not check.success and check.error and "hunter22" not in check.error


def test_a_destination_type_installed_twice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    twice = [
        EntryPoint("DWH_DUCKDB", "querybatch.destinations.duckdb:DuckDBDestination", "g"),
        EntryPoint("DWH_DUCKDB", "other.plugin:Duck", "g"),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: twice)
    with pytest.raises(ConfigurationError, match="installed twice"):
        registry.destination_types()


def test_the_three_destination_types_are_installed() -> None:
    assert {"DWH_POSTGRESQL", "DWH_DUCKDB", "DWH_FILES"} <= set(registry.destination_types())
