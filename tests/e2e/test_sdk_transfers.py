"""The official SDK's transfers, unchanged, against a real server process: every method,
sync and async; tenants and roles; bad input; a used destination that cannot be deleted."""

from __future__ import annotations

import httpx
import pytest
from supermetrics import (
    SupermetricsAsyncClient,
    SupermetricsClient,
    TransferAccount,
    TransferDataSourceSetting,
    TransferSchedule,
)
from supermetrics.exceptions import (
    SupermetricsAPIError,
    SupermetricsForbiddenError,
    SupermetricsNotFoundError,
    SupermetricsValidationError,
)

from support import ADMIN_KEY, ServerProcess, assert_error, client, run_cli

DEPLOYMENTS = ("embedded",)
DAILY = [TransferSchedule(run_interval="daily", run_hour=4, refresh_window=3)]
ACCOUNTS = [TransferAccount(account_id="ads-0001", data_source_username="ads.team@demo.example")]


@pytest.fixture(scope="module")
def destination_id(server: ServerProcess, team_id: int) -> int:
    """A DuckDB destination (a local file: no host for the outbound policy to refuse)."""
    with SupermetricsClient(api_key=ADMIN_KEY, base_url=server.url) as sdk_client:
        made = sdk_client.destinations.create(
            team_id=team_id, type="DWH_DUCKDB", display_name="Lake", fields={"path": "t.duckdb"}
        )
    return int(made.id)


def test_every_transfers_method_through_the_sync_sdk(
    sdk: SupermetricsClient, team_id: int, destination_id: int
) -> None:
    sources = sdk.transfers.list_available_sources(team_id=team_id)
    assert "DEMO_ADS" in [s.data_source_id for s in sources.data_sources]
    assert destination_id in [d.destination_id for d in sources.destinations]
    assert "DWH_DUCKDB" in [t.type_ for t in sources.destination_types]

    options = sdk.transfers.get_available_options(
        team_id=team_id, source_id="DEMO_ADS", destination_id=destination_id
    )
    schema = options.schemas[0].to_dict()
    assert schema["schema_id"] == 1 and schema["table_name"] == "demo_ads"
    assert "ads-0001" in [a.to_dict()["account_id"] for a in options.accounts]
    assert [o.to_dict()["run_interval"] for o in options.schedule_options] == [
        "hourly",
        "daily",
        "weekly",
        "monthly",
    ]

    args = {
        "team_id": team_id,
        "data_source_id": "DEMO_ADS",
        "schema_id": 1,
        "destination_id": destination_id,
        "display_name": "Ads daily",
        "schedule": DAILY,
        "accounts": ACCOUNTS,
    }
    check = sdk.transfers.validate(**args)
    assert check.is_valid is True and check.errors == []
    bad = sdk.transfers.validate(**{**args, "display_name": "", "schema_id": 7})
    assert bad.is_valid is False
    assert {e.field_id for e in bad.errors} == {"display_name", "schema_id"}

    created = sdk.transfers.create(
        **args,
        data_source_settings=[TransferDataSourceSetting(field_id="demo_latency_ms", value=5)],
        notification_recipients=["ops@example.com"],
    )
    assert created.transfer_name == "Ads daily" and created.transfer_id
    tid = created.transfer_id

    listed = sdk.transfers.list(team_id=team_id)
    item = next(t for t in listed if t.dwh_transfer_id == tid)
    assert item.state == "active" and item.schedule == "daily" and item.accounts == ["ads-0001"]

    got = sdk.transfers.get(team_id=team_id, transfer_id=tid)
    assert got.transfer_id == tid and got.destination_id == destination_id and got.schema_id == 1
    assert got.schedule[0].run_hour == 4 and got.schedule[0].refresh_window == 3
    assert got.accounts[0].account_id == "ads-0001"
    assert got.data_source.settings[0].field_id == "demo_latency_ms"
    assert got.notification_recipients[0].email == "ops@example.com"

    monthly = [TransferSchedule(run_interval="monthly", run_hour=1, run_day=31, refresh_window=1)]
    updated = sdk.transfers.update(
        **{**args, "transfer_id": tid, "display_name": "Ads monthly", "schedule": monthly}
    )
    assert updated.transfer_id == tid and updated.transfer_name == "Ads monthly"
    assert sdk.transfers.get(team_id=team_id, transfer_id=tid).schedule[0].run_day == 31

    assert sdk.transfers.set_state(team_id=team_id, transfer_id=tid, state="pause").state == (
        "PAUSED"
    )
    assert next(
        t for t in sdk.transfers.list(team_id=team_id) if t.dwh_transfer_id == tid
    ).state == ("paused")
    resumed = sdk.transfers.set_state(team_id=team_id, transfer_id=tid, state="unpause")
    assert resumed.result is True and resumed.state == "ACTIVE"

    usage = sdk.destinations.get_usage(team_id=team_id, destination_id=destination_id)
    assert usage.is_used and (tid, "Ads monthly") in [
        (t.transfer_id, t.transfer_name) for t in usage.transfers
    ]
    with pytest.raises(SupermetricsAPIError) as in_use:
        sdk.destinations.delete(team_id=team_id, destination_id=destination_id)
    assert in_use.value.status_code == 409

    sdk.transfers.delete(team_id=team_id, transfer_id=tid)
    with pytest.raises(SupermetricsNotFoundError):
        sdk.transfers.get(team_id=team_id, transfer_id=tid)
    with pytest.raises(SupermetricsValidationError):
        sdk.transfers.create(**{**args, "schedule": [TransferSchedule(run_interval="weekly")]})


async def test_every_transfers_method_through_the_async_sdk(
    server: ServerProcess, team_id: int, destination_id: int
) -> None:
    async with SupermetricsAsyncClient(api_key=ADMIN_KEY, base_url=server.url) as sdk:
        sources = await sdk.transfers.list_available_sources(team_id=team_id)
        assert sources.data_sources
        options = await sdk.transfers.get_available_options(
            team_id=team_id, source_id="DEMO_WEB", destination_id=destination_id
        )
        account = options.accounts[0].to_dict()
        args = {
            "team_id": team_id,
            "data_source_id": "DEMO_WEB",
            "schema_id": 1,
            "destination_id": destination_id,
            "display_name": "Web hourly",
            "schedule": [TransferSchedule(run_interval="hourly", refresh_window=1)],
            "accounts": [TransferAccount(account_id=account["account_id"])],
        }
        assert (await sdk.transfers.validate(**args)).is_valid is True
        tid = (await sdk.transfers.create(**args)).transfer_id
        assert tid in [t.dwh_transfer_id for t in await sdk.transfers.list(team_id=team_id)]
        assert (await sdk.transfers.get(team_id=team_id, transfer_id=tid)).display_name == (
            "Web hourly"
        )
        weekly = [TransferSchedule(run_interval="weekly", run_hour=6, run_weekday=7)]
        renamed = await sdk.transfers.update(
            **{**args, "transfer_id": tid, "display_name": "Web weekly", "schedule": weekly}
        )
        assert renamed.transfer_name == "Web weekly"
        paused = await sdk.transfers.set_state(team_id=team_id, transfer_id=tid, state="pause")
        assert paused.state == "PAUSED"
        await sdk.transfers.delete(team_id=team_id, transfer_id=tid)
        with pytest.raises(SupermetricsNotFoundError):
            await sdk.transfers.delete(team_id=team_id, transfer_id=tid)


def test_another_tenant_and_a_viewer_see_what_they_should(
    server: ServerProcess, sdk: SupermetricsClient, team_id: int, destination_id: int
) -> None:
    tid = sdk.transfers.create(
        team_id=team_id,
        data_source_id="DEMO_ADS",
        schema_id=1,
        destination_id=destination_id,
        display_name="Mine",
        schedule=DAILY,
        accounts=ACCOUNTS,
    ).transfer_id
    made = run_cli(
        server, "keys", "create", "--name", "s", "--role", "admin", "--account", "globex", "--quiet"
    )
    assert made.returncode == 0, made.stderr
    stranger = made.stdout.strip()
    with client(server, stranger) as api:
        theirs = api.get("/whoami").json()["team_id"]
        assert_error(api.get(f"/teams/{team_id}/transfers"), 404, "NOT_FOUND")
        assert_error(api.get(f"/teams/{theirs}/transfers/{tid}"), 404, "NOT_FOUND")
        assert_error(api.delete(f"/teams/{theirs}/transfers/{tid}"), 404, "NOT_FOUND")
        assert api.get(f"/teams/{theirs}/transfers").json()["data"] == []
    with client(server) as api:
        viewer = api.post("/keys", json={"name": "v", "role": "viewer"}).json()["secret"]
    with SupermetricsClient(api_key=viewer, base_url=server.url) as as_viewer:
        assert tid in [t.dwh_transfer_id for t in as_viewer.transfers.list(team_id=team_id)]
        assert as_viewer.transfers.get(team_id=team_id, transfer_id=tid).display_name == "Mine"
        with pytest.raises(SupermetricsForbiddenError):
            as_viewer.transfers.delete(team_id=team_id, transfer_id=tid)
        with pytest.raises(SupermetricsForbiddenError):
            as_viewer.transfers.set_state(team_id=team_id, transfer_id=tid, state="pause")
    sdk.transfers.delete(team_id=team_id, transfer_id=tid)


@pytest.mark.parametrize(
    "change",
    [
        {"display_name": "x" * 256},
        {"schema_id": 2**31},
        {"destination_id": 0},
        {"data_source_id": "D" * 65},
        {"schedule": [{"run_hour": 10**12}]},
        {"schedule": [{"run_interval": "daily"}] * 11},
        {"accounts": [{"account_id": "a"}] * 1001},
        {"accounts": [{"account_id": ""}]},
        {"notification_recipients": ["a@b.c"] * 21},
        {"data_source_settings": [{"field_id": "x", "value": [1]}]},
        {"transfer_type": -1},
        {"unknown": 1},
        {"schedule": "daily"},
    ],
)
def test_bad_input_is_a_400_and_stores_nothing(
    server: ServerProcess, team_id: int, destination_id: int, change: dict[str, object]
) -> None:
    body = {
        "data_source_id": "DEMO_ADS",
        "schema_id": 1,
        "destination_id": destination_id,
        "display_name": "x",
        "schedule": [{"run_interval": "daily", "run_hour": 1}],
        "accounts": [{"account_id": "ads-0001"}],
    } | change
    with client(server) as api:
        for path in ("", "/validations"):
            answer = api.post(f"/teams/{team_id}/transfers{path}", json=body)
            assert_error(answer, 400, "BAD_REQUEST")
        assert api.get(f"/teams/{team_id}/transfers").json()["data"] == []


def test_bad_paths_and_states_are_answered_in_the_envelope(api: httpx.Client, team_id: int) -> None:
    assert_error(api.get(f"/teams/{team_id}/transfers/0"), 400, "BAD_REQUEST")
    assert_error(api.get(f"/teams/{team_id}/transfers/{2**31}"), 400, "BAD_REQUEST")
    assert_error(api.get(f"/teams/{team_id}/transfers/abc"), 400, "BAD_REQUEST")
    assert_error(api.get(f"/teams/{team_id}/transfers/123456"), 404, "NOT_FOUND")
    state = api.put(f"/teams/{team_id}/transfers/1/state", json={"transfer_state": "stop"})
    assert_error(state, 400, "BAD_REQUEST")
    options = api.get(f"/teams/{team_id}/transfers/available-options?source_id=DEMO_ADS")
    assert_error(options, 400, "BAD_REQUEST")
    for prefix in ("/v2", "/enterprise/v2"):
        assert api.get(f"{prefix}/teams/{team_id}/transfers").status_code == 200
