"""A daily DEMO_ADS transfer into a DuckDB file of its own, made through the official SDK,
as the transfer-run tests set one up."""

from __future__ import annotations

from collections.abc import Sequence

from supermetrics import SupermetricsClient, TransferAccount, TransferSchedule

DEMO_LOGIN = "ads.team@demo.example"


def daily_transfer(
    sdk: SupermetricsClient,
    team_id: int,
    path: str,
    accounts: Sequence[str],
    refresh_window: int,
    name: str = "Ads daily",
) -> int:
    """Make a DuckDB destination at ``path`` and a daily transfer of ``accounts`` into it;
    the transfer's id (its first runs are due at once)."""
    destination = sdk.destinations.create(
        team_id=team_id, type="DWH_DUCKDB", display_name=f"{name} file", fields={"path": path}
    )
    transfer_id: int = sdk.transfers.create(
        team_id=team_id,
        data_source_id="DEMO_ADS",
        schema_id=1,
        destination_id=int(destination.id),
        display_name=name,
        schedule=[
            TransferSchedule(run_interval="daily", run_hour=4, refresh_window=refresh_window)
        ],
        accounts=[TransferAccount(account_id=a, data_source_username=DEMO_LOGIN) for a in accounts],
    ).transfer_id
    return transfer_id
