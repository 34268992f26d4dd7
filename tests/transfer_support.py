"""What the transfer and destination tests share: a daily DEMO_ADS transfer into a DuckDB
file of its own, made through the official SDK; the fields of a DWH_POSTGRESQL destination on
the test database; and a destination table read back (nothing until the table exists)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


def postgres_fields(url: str, schema: str) -> dict[str, Any]:
    """The fields of a DWH_POSTGRESQL destination writing into ``schema`` of the test
    database at ``url``."""
    parts = urlsplit(url.replace("+psycopg", ""))
    fields: dict[str, Any] = {
        "host": parts.hostname,
        "port": parts.port or 5432,
        "database_name": parts.path.lstrip("/"),
        "username": parts.username or "postgres",
        "schema": schema,
    }
    if parts.password:
        fields["password"] = parts.password
    return fields


def postgres_rows(url: str, schema: str, table: str, statement: str) -> list[tuple[Any, ...]]:
    """The rows of ``statement`` once ``schema.table`` exists; none before."""
    import psycopg

    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT to_regclass(%s)", [f"{schema}.{table}"]).fetchone()
        if not found or found[0] is None:
            return []
        return [tuple(row) for row in conn.execute(statement).fetchall()]


def duckdb_rows(file: Path, table: str, statement: str) -> list[tuple[Any, ...]]:
    """The rows of ``statement`` once the DuckDB ``file`` holds ``table``; none before."""
    import duckdb

    if not file.exists():
        return []
    with duckdb.connect(str(file), read_only=True) as conn:
        found = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
        ).fetchone()
        if not found or not found[0]:
            return []
        return [tuple(row) for row in conn.execute(statement).fetchall()]
