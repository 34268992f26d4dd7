"""The transfers service without HTTP: validation, tenants, state, limits, and the
destinations' usage hook (a used destination is reported and not deleted)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from querybatch.connectors.sources import build_sources
from querybatch.destinations import registry
from querybatch.domain.teams import team_id_of
from querybatch.engine.catalog import Catalog
from querybatch.engine.destination_targets import DestinationTargets
from querybatch.engine.destinations import DestinationInput, Destinations
from querybatch.engine.secret_box import SecretBox
from querybatch.engine.service import Caller
from querybatch.engine.transfers import TransferAccountInput, TransferInput, Transfers
from querybatch.errors import BadRequest, Conflict, NotFound
from querybatch.settings import Settings
from querybatch.store.store import Store

ACME = Caller("acme", "key_1")
TEAM = team_id_of("acme")
NOW = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC


@pytest.fixture
async def transfers(tmp_path: Path) -> AsyncIterator[Transfers]:
    store = Store.open(f"sqlite:///{tmp_path / 't.db'}", result_ttl=3600)
    sources = build_sources(Settings(data_dir=tmp_path))
    await sources.open()
    destinations = Destinations(
        store,
        registry.destination_types(),
        SecretBox(b"s"),
        tmp_path / "destinations",
        targets=DestinationTargets(allow_internal=True),
    )
    yield Transfers(store, Catalog(sources), destinations, limit=2, clock=lambda: NOW)
    await sources.close()
    store.close()


async def warehouse(transfers: Transfers, caller: Caller = ACME) -> int:
    given = DestinationInput("DWH_DUCKDB", "wh", {"path": "wh.duckdb"})
    return (await transfers.destinations.create(caller, team_id_of(caller.account), given)).id


def config(dest: int, **changes: Any) -> TransferInput:
    values: dict[str, Any] = {
        "data_source_id": "DEMO_ADS",
        "schema_id": 1,
        "destination_id": dest,
        "display_name": "Ads daily",
        "schedule": [{"run_interval": "daily", "run_hour": 3, "refresh_window": 3}],
        "accounts": [TransferAccountInput("ads-0001", "ads.team@demo.example")],
    }
    return TransferInput(**(values | changes))


async def test_a_transfer_is_created_read_updated_paused_and_deleted(
    transfers: Transfers,
) -> None:
    dest = await warehouse(transfers)
    view = await transfers.create(ACME, TEAM, config(dest))
    assert view.state == "active" and view.destination_name == "wh"
    assert view.next_run_at == NOW  # the first run is due at once
    same = await transfers.update(ACME, TEAM, view.id, config(dest))
    assert same.next_run_at == 1_790_046_000.0  # then the schedule: the next 03:00 UTC
    weekly = [{"run_interval": "weekly", "run_hour": 5, "run_weekday": 1, "refresh_window": 7}]
    updated = await transfers.update(ACME, TEAM, view.id, config(dest, schedule=weekly))
    assert updated.schedules[0].run_weekday == 1
    paused = await transfers.set_state(ACME, TEAM, view.id, "pause")
    assert paused.state == "paused" and paused.next_run_at is None
    assert (await transfers.update(ACME, TEAM, view.id, config(dest))).state == "paused"
    resumed = await transfers.set_state(ACME, TEAM, view.id, "unpause")
    assert resumed.state == "active" and resumed.next_run_at is not None
    await transfers.delete(ACME, TEAM, view.id)
    with pytest.raises(NotFound):
        await transfers.get(ACME, TEAM, view.id)


INVALID: list[tuple[dict[str, Any], str]] = [
    ({"display_name": "  "}, "display_name"),
    ({"data_source_id": "NOPE"}, "data_source_id"),
    ({"schema_id": 2}, "schema_id"),
    ({"destination_id": 999}, "destination_id"),
    ({"schedule": []}, "schedule"),
    ({"schedule": [{"run_interval": "weekly", "run_hour": 3}]}, "schedule.0.run_weekday"),
    ({"schedule": [{"run_interval": "daily", "run_hour": 24}]}, "schedule.0.run_hour"),
    ({"schedule": [{"run_interval": "monthly", "run_day": 0}]}, "schedule.0.run_day"),
    ({"schedule": [{"refresh_window": 0}]}, "schedule.0.refresh_window"),
    ({"accounts": []}, "accounts"),
    ({"accounts": [TransferAccountInput("nope")]}, "accounts.0.account_id"),
    (
        {"accounts": [TransferAccountInput("ads-0002", "ads.team@demo.example")]},
        "accounts.0.account_id",
    ),
    ({"segments": [{"segment_id": "1"}]}, "segments"),
    ({"notification_recipients": ["not-an-email"]}, "notification_recipients"),
]


async def test_an_invalid_configuration_is_named_and_not_stored(transfers: Transfers) -> None:
    dest = await warehouse(transfers)
    for changes, field in INVALID:
        given = config(dest, **changes)
        issues = await transfers.validate(ACME, TEAM, given)
        assert field in [i.field_id for i in issues], (changes, issues)
        with pytest.raises(BadRequest):
            await transfers.create(ACME, TEAM, given)
    assert await transfers.list_all(ACME, TEAM) == []


async def test_another_tenant_sees_and_uses_nothing(transfers: Transfers) -> None:
    dest = await warehouse(transfers)
    view = await transfers.create(ACME, TEAM, config(dest))
    globex = Caller("globex", "key_2")
    other = team_id_of("globex")
    for call in (
        transfers.get(globex, other, view.id),
        transfers.delete(globex, other, view.id),
        transfers.set_state(globex, other, view.id, "pause"),
        transfers.get(ACME, other, view.id),
    ):
        with pytest.raises(NotFound):
            await call
    assert await transfers.list_all(globex, other) == []
    issues = await transfers.validate(globex, other, config(dest))  # not globex's destination
    assert [i.field_id for i in issues] == ["destination_id"]


async def test_a_used_destination_is_named_and_not_deleted(transfers: Transfers) -> None:
    dest = await warehouse(transfers)
    view = await transfers.create(ACME, TEAM, config(dest))
    usage = await transfers.destinations.usage(ACME, TEAM, dest)
    assert usage.is_used and [(t.transfer_id, t.transfer_name) for t in usage.transfers] == [
        (view.id, "Ads daily")
    ]
    with pytest.raises(Conflict):
        await transfers.destinations.delete(ACME, TEAM, dest)
    await transfers.delete(ACME, TEAM, view.id)
    await transfers.destinations.delete(ACME, TEAM, dest)


async def test_a_team_holds_at_most_its_limit(transfers: Transfers) -> None:
    dest = await warehouse(transfers)
    for _ in range(2):
        await transfers.create(ACME, TEAM, config(dest))
    with pytest.raises(Conflict):
        await transfers.create(ACME, TEAM, config(dest))


async def test_options_offer_the_schema_accounts_and_schedules(transfers: Transfers) -> None:
    dest = await warehouse(transfers)
    options = await transfers.options(ACME, TEAM, "DEMO_ADS", dest)
    assert [s.schema_id for s in options.schemas] == [1]
    assert options.schemas[0].table_name == "demo_ads" and options.schemas[0].fields
    assert ("ads-0001", options.accounts[0][1], "ads.team@demo.example") in options.accounts
    with pytest.raises(NotFound):
        await transfers.options(ACME, TEAM, "NOPE", dest)
    with pytest.raises(NotFound):
        await transfers.options(ACME, TEAM, "DEMO_ADS", 999)
    found = await transfers.available_sources(ACME, TEAM)
    assert "DEMO_ADS" in found.data_sources and found.destinations[0][0] == dest
