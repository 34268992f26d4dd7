"""Transfer runs through a real server and the official SDK, unchanged: a new daily transfer
runs its refresh window at once, the DuckDB file it loads holds exactly the rows the same
queries give when run directly, and the runs are read with ``transfers.list_runs`` and
``transfer_runs.get``; another tenant's runs are 404, bad input is 400."""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Any

import orjson
import pytest
from supermetrics import SupermetricsClient
from supermetrics.exceptions import SupermetricsForbiddenError, SupermetricsNotFoundError

from support import ServerProcess, assert_error, client, run_cli
from transfer_support import daily_transfer

ACCOUNTS = ("ads-0001", "ads-0003")
FIELDS = ["date", "account_id", "campaign_id", "impressions", "clicks", "cost"]
FROM, TO = datetime(2000, 1, 1), datetime(2100, 1, 1)
# Bad ranges, unknown ids and a role's actions are refused before a run is read or started;
# runs and backfills that load run in both deployments.
REFUSALS = pytest.mark.deployments("embedded")


def finished_runs(sdk: SupermetricsClient, team_id: int, transfer_id: int) -> list[Any]:
    """The transfer's runs once every one has ended (the scheduler starts them by itself)."""
    deadline = time.monotonic() + 60
    while True:
        runs = sdk.transfers.list_runs(
            team_id=team_id, transfer_id=transfer_id, start_date=FROM, end_date=TO
        )
        if runs and all(r.status in ("COMPLETED", "FAILED") for r in runs):
            return list(runs)
        assert time.monotonic() < deadline, [r.to_dict() for r in runs]
        time.sleep(0.2)


def stranger_key(server: ServerProcess, account: str) -> str:
    """An admin key of another tenant, made with the CLI."""
    made = run_cli(
        server, "keys", "create", "--name", account, "--role", "admin", "--account", account, "-q"
    )
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def direct_rows(server: ServerProcess, day: str) -> set[tuple[Any, ...]]:
    """The rows of the same query, run directly through the data API."""
    query = {
        "ds_id": "DEMO_ADS",
        "ds_accounts": list(ACCOUNTS),
        "ds_user": "ads.team@demo.example",
        "fields": FIELDS,
        "start_date": day,
        "end_date": day,
        "settings": {"no_headers": True},
    }
    with client(server) as api:
        answer = api.get("/query/data/keyjson", params={"json": orjson.dumps(query).decode()})
    assert answer.status_code == 200, answer.text
    return {(day, *(str(r[f]) for f in FIELDS[1:])) for r in answer.json()["data"]}


def test_a_new_transfer_loads_its_window_at_once_and_its_runs_are_read_through_the_sdk(
    server: ServerProcess, sdk: SupermetricsClient, team_id: int
) -> None:
    import duckdb

    transfer_id = daily_transfer(sdk, team_id, "runs.duckdb", ACCOUNTS, refresh_window=2)

    runs = finished_runs(sdk, team_id, transfer_id)
    assert [(r.status, r.type_, r.message) for r in runs] == [("COMPLETED", "Recurring", "")] * 2
    days = sorted(r.data_date.isoformat() for r in runs)
    detail = sdk.transfer_runs.get(team_id=team_id, transfer_run_id=runs[0].id)
    assert detail.status == "COMPLETED" and detail.total_rows == runs[0].total_rows
    assert [q.status for q in detail.query_details] == ["SUCCESS", "SUCCESS"]
    assert sum(q.rows for q in detail.query_details) == detail.total_rows

    path = server.data_dir / "destinations" / str(team_id) / "runs.duckdb"
    with duckdb.connect(str(path), read_only=True) as conn:
        loaded = conn.execute(
            "SELECT CAST(_qb_data_date AS VARCHAR), account_id, campaign_id, impressions,"
            " clicks, cost FROM main.demo_ads"
        ).fetchall()
    assert len(loaded) == len(set(loaded)) == sum(r.total_rows for r in runs)
    as_text = {(day, *(str(v) for v in rest)) for day, *rest in loaded}  # keyjson: text
    assert as_text == direct_rows(server, days[0]) | direct_rows(server, days[1])

    # Sorting, paging and the issues filter; a range without runs is empty.
    by_date = sdk.transfers.list_runs(
        team_id=team_id,
        transfer_id=transfer_id,
        start_date=FROM,
        end_date=TO,
        sort_field="data_date",
        sort_direction="ASC",
        limit=1,
    )
    assert [r.data_date.isoformat() for r in by_date] == days[:1]
    assert (
        sdk.transfers.list_runs(
            team_id=team_id,
            transfer_id=transfer_id,
            start_date=FROM,
            end_date=TO,
            filter_issues_only=True,
        )
        == []
    )
    sdk.transfers.delete(team_id=team_id, transfer_id=transfer_id)
    with pytest.raises(SupermetricsNotFoundError):
        sdk.transfer_runs.get(team_id=team_id, transfer_run_id=runs[0].id)


@REFUSALS
def test_runs_are_the_tenants_own_and_bad_ranges_are_refused(
    server: ServerProcess, team_id: int
) -> None:
    with client(server, stranger_key(server, "initech")) as stranger:
        theirs = stranger.get("/whoami").json()["team_id"]
        assert_error(stranger.get(f"/teams/{team_id}/transfer_runs/1"), 404, "NOT_FOUND")
        assert_error(stranger.get(f"/teams/{theirs}/transfer_runs/1"), 404, "NOT_FOUND")
        runs = f"/teams/{theirs}/transfers/1/runs"
        dates = {"start_date": "2026-01-01", "end_date": "2026-01-31"}
        assert_error(stranger.get(runs, params=dates), 404, "NOT_FOUND")
    with client(server) as api:
        runs = f"/teams/{team_id}/transfers/1/runs"
        assert_error(api.get(runs), 400, "BAD_REQUEST")
        backwards = {"start_date": "2026-02-01", "end_date": "2026-01-01"}
        assert_error(api.get(runs, params=backwards), 400, "BAD_REQUEST")
        garbled = {"start_date": "yesterday", "end_date": "2026-01-01"}
        assert_error(api.get(runs, params=garbled), 400, "BAD_REQUEST")
        limit = {"start_date": "2026-01-01", "end_date": "2026-01-02", "limit": "10001"}
        assert_error(api.get(runs, params=limit), 400, "BAD_REQUEST")


def test_a_backfill_through_the_sdk_loads_each_date_once_and_a_cancel_keeps_what_loaded(
    server: ServerProcess, sdk: SupermetricsClient, team_id: int
) -> None:
    transfer_id = daily_transfer(
        sdk, team_id, "fill.duckdb", ACCOUNTS, refresh_window=1, name="Ads history"
    )
    first, last = date(2026, 3, 1), date(2026, 3, 5)
    made = sdk.backfills.create(
        team_id=team_id, transfer_id=transfer_id, range_start=first, range_end=last
    )
    assert (made.transfer_id, made.range_start_date, made.range_end_date) == (
        transfer_id,
        first,
        last,
    )
    assert made.transfer_runs_total == 5 and made.status in ("CREATED", "RUNNING")
    assert made.transfer_backfill_id in [
        b.transfer_backfill_id for b in sdk.backfills.list_incomplete(team_id=team_id)
    ]
    runs = finished_runs(sdk, team_id, transfer_id)
    assert sorted((r.type_, r.status) for r in runs) == [("Backfill", "COMPLETED")] * 5 + [
        ("Recurring", "COMPLETED")
    ]
    done = sdk.backfills.get(team_id=team_id, backfill_id=made.transfer_backfill_id)
    assert (done.status, done.transfer_runs_completed, done.transfer_runs_failed) == (
        "COMPLETED",
        5,
        0,
    )
    assert done.error_report == []
    latest = sdk.backfills.get_latest(team_id=team_id, transfer_id=transfer_id)
    assert latest.transfer_backfill_id == made.transfer_backfill_id

    import duckdb

    path = server.data_dir / "destinations" / str(team_id) / "fill.duckdb"
    with duckdb.connect(str(path), read_only=True) as conn:
        loaded = conn.execute(
            "SELECT CAST(_qb_data_date AS VARCHAR), account_id, campaign_id, impressions,"
            " clicks, cost FROM main.demo_ads WHERE _qb_data_date <= DATE '2026-03-31'"
        ).fetchall()
    as_text = {(day, *(str(v) for v in rest)) for day, *rest in loaded}
    assert len(loaded) == len(as_text)
    days = [date(2026, 3, n).isoformat() for n in range(1, 6)]
    assert as_text == set().union(*(direct_rows(server, d) for d in days))

    # A long one, cancelled at once: what has not started never does.
    long = sdk.backfills.create(
        team_id=team_id,
        transfer_id=transfer_id,
        range_start=date(2020, 1, 1),
        range_end=date(2020, 12, 31),
    )
    cancelled = sdk.backfills.cancel(team_id=team_id, backfill_id=long.transfer_backfill_id)
    assert cancelled.status == "CANCELLED" and cancelled.removed_time is not None
    assert cancelled.transfer_runs_total == 366
    assert long.transfer_backfill_id not in [
        b.transfer_backfill_id for b in sdk.backfills.list_incomplete(team_id=team_id)
    ]
    sdk.transfers.delete(team_id=team_id, transfer_id=transfer_id)


@REFUSALS
def test_backfills_refuse_bad_ranges_and_other_tenants(
    server: ServerProcess, sdk: SupermetricsClient, team_id: int
) -> None:
    with client(server) as api:
        path = f"/teams/{team_id}/transfers/999999/backfills"
        future = {"range_start": "2020-01-01", "range_end": "2999-01-01"}
        assert_error(api.post(path, json=future), 400, "BAD_REQUEST")
        assert_error(api.post(path, json={"range_start": "x"}), 400, "BAD_REQUEST")
        fine = {"range_start": "2020-01-01", "range_end": "2020-01-02"}
        assert_error(api.post(path, json=fine), 404, "NOT_FOUND")
        assert_error(api.get(f"/teams/{team_id}/backfills/999999"), 404, "NOT_FOUND")
        assert_error(
            api.patch(f"/teams/{team_id}/backfills/1", json={"status": "RUNNING"}),
            400,
            "BAD_REQUEST",
        )
    with pytest.raises(SupermetricsNotFoundError):
        sdk.backfills.get(team_id=team_id + 1, backfill_id=1)


@REFUSALS
def test_a_role_that_manages_transfers_may_not_start_or_cancel_backfills_without_its_action(
    server: ServerProcess, sdk: SupermetricsClient, team_id: int
) -> None:
    transfer_id = daily_transfer(
        sdk, team_id, "ops.duckdb", ["ads-0001"], refresh_window=1, name="Operated"
    )
    operator = {"name": "transfer-operator", "effect": "deny", "actions": ["manage_backfills"]}
    with client(server) as api:
        assert api.post("/roles", json=operator).status_code == 201
        made = api.post("/keys", json={"name": "op", "role": "transfer-operator"})
        secret = made.json()["secret"]
    backfill = sdk.backfills.create(
        team_id=team_id,
        transfer_id=transfer_id,
        range_start=date(2026, 2, 1),
        range_end=date(2026, 2, 2),
    )
    with SupermetricsClient(api_key=secret, base_url=server.url) as as_operator:
        as_operator.transfers.set_state(team_id=team_id, transfer_id=transfer_id, state="pause")
        with pytest.raises(SupermetricsForbiddenError):
            as_operator.backfills.create(
                team_id=team_id,
                transfer_id=transfer_id,
                range_start=date(2026, 1, 1),
                range_end=date(2026, 1, 2),
            )
        with pytest.raises(SupermetricsForbiddenError):
            as_operator.backfills.cancel(team_id=team_id, backfill_id=backfill.transfer_backfill_id)
        seen = as_operator.backfills.get(team_id=team_id, backfill_id=backfill.transfer_backfill_id)
        assert seen.transfer_backfill_id == backfill.transfer_backfill_id
    sdk.backfills.cancel(team_id=team_id, backfill_id=backfill.transfer_backfill_id)


@REFUSALS
def test_a_backfill_is_polled_as_its_route_answers_under_every_prefix_and_refused_alike(
    server: ServerProcess, sdk: SupermetricsClient, team_id: int
) -> None:
    """Polls of a backfill are answered by the poll lane, other reads by the route: both
    give the same backfill, and the lane refuses what the route refuses."""
    transfer_id = daily_transfer(
        sdk, team_id, "polled.duckdb", ["ads-0001"], refresh_window=1, name="Polled"
    )
    made = sdk.backfills.create(
        team_id=team_id,
        transfer_id=transfer_id,
        range_start=date(2021, 1, 1),
        range_end=date(2021, 12, 31),
    )
    sdk.backfills.cancel(team_id=team_id, backfill_id=made.transfer_backfill_id)
    path = f"/teams/{team_id}/backfills/{made.transfer_backfill_id}"
    with client(server) as api:
        routed = api.get(path, params={"pretty": "true"})  # pretty output is the route's
        assert routed.status_code == 200 and routed.text.startswith('{\n  "meta"')
        for prefix in ("", "/v2", "/enterprise/v2"):
            polled = api.get(prefix + path)
            assert polled.status_code == 200, polled.text
            assert polled.json()["data"] == routed.json()["data"]
        assert routed.json()["data"]["transfer_runs_total"] == 365
        assert_error(api.get(f"/teams/{team_id}/backfills/0"), 400, "BAD_REQUEST")
        assert_error(api.get(f"/teams/{team_id}/backfills/{2**31}"), 400, "BAD_REQUEST")
        other_team = f"/teams/{team_id + 1}/backfills/{made.transfer_backfill_id}"
        assert_error(api.get(other_team), 404, "NOT_FOUND")
        blind = {"name": "backfill-blind", "effect": "deny", "actions": ["get_transfer"]}
        assert api.post("/roles", json=blind).status_code == 201
        secret = api.post("/keys", json={"name": "blind", "role": "backfill-blind"}).json()
    with client(server, secret["secret"]) as blind_api:
        assert_error(blind_api.get(path), 403, "PERMISSION_ERROR")
    with client(server, stranger_key(server, "umbrella")) as theirs:
        assert_error(theirs.get(path), 404, "NOT_FOUND")
        their_team = theirs.get("/whoami").json()["team_id"]
        assert_error(
            theirs.get(f"/teams/{their_team}/backfills/{made.transfer_backfill_id}"),
            404,
            "NOT_FOUND",
        )
    sdk.transfers.delete(team_id=team_id, transfer_id=transfer_id)
