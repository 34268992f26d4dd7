"""Server settings, read once from ``QB_``-prefixed environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def default_data_dir() -> Path:
    """Where the embedded default keeps its SQLite file and secret (XDG data home)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "querybatch"


class Settings(BaseSettings):
    """Everything the server, the workers and the CLI can be configured with."""

    model_config = SettingsConfigDict(env_prefix="QB_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = None

    executor: Literal["local", "celery"] = "local"
    broker_url: str | None = None
    redis_url: str | None = Field(
        default=None, description="shared rate limits across nodes (default: the broker, if Redis)"
    )
    celery_queue: str = Field(default="querybatch", pattern=r"^[A-Za-z0-9_.:-]+$")
    celery_chunk: int = Field(default=64, ge=1, description="sub-queries handed over per task")
    celery_max_in_flight: int = Field(
        default=2000, ge=1, description="sub-queries handed to the broker and not yet finished"
    )
    queued_lease_seconds: float = Field(
        default=120.0, gt=0, description="how long a handed-over sub-query may wait for a worker"
    )

    admin_key: str | None = None
    secret: str | None = None
    destinations_dir: Path | None = Field(
        default=None,
        description="where DWH_DUCKDB and local DWH_FILES destinations live, a directory per "
        "team (default: <data_dir>/destinations)",
    )
    max_destinations: int = Field(default=100, ge=1, description="destinations per tenant")
    max_transfers: int = Field(default=100, ge=1, description="transfers per tenant")

    result_ttl: int = Field(
        default=3600, ge=1, description="seconds results live after a query ends"
    )
    rate_limit: int = Field(default=10000, ge=1, description="requests per key and hour")
    poll_freshness: float = Field(
        default=0.25,
        ge=0,
        le=5,
        description="seconds a batch's state read for one poll answers every poll of it",
    )
    poll_share: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="most of the event loop's time polls may take while work runs beside them",
    )

    workers: int = Field(default=256, ge=1, description="sub-queries run at once by this node")
    account_concurrency: int = Field(
        default=100, ge=1, description="sub-queries one tenant may run at once, over all batches"
    )
    max_query_concurrency: int = Field(
        default=50, ge=1, description="upper bound of a batch's query_concurrency"
    )
    max_batch_queries: int = Field(
        default=1_000_000, ge=1, description="sub-queries one batch may hold"
    )
    batch_store_slice: int = Field(
        default=10_000,
        ge=100,
        le=1_000_000,
        description=(
            "sub-queries stored with a batch before it is answered, and in each write after "
            "it: a larger batch's other sub-queries are stored behind the answer"
        ),
    )
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    upload_ttl: int = Field(
        default=3600, ge=1, description="seconds an upload URL (and an uploaded file) stays valid"
    )
    download_ttl: int = Field(
        default=3600, ge=1, description="seconds a bulk batch's results download link is valid"
    )
    range_spool_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=0,
        description="largest generated download spooled to serve a byte range (beyond: 200 whole)",
    )
    max_upload_bytes: int = Field(
        default=1024 * 1024 * 1024, ge=1, description="largest file a bulk upload may hold"
    )
    retries: int = Field(default=3, ge=0, description="retries of a transient connector error")
    retry_backoff: float = Field(default=0.5, ge=0, description="first retry delay in seconds")
    query_timeout: int = Field(default=1800, ge=1, description="seconds a single query may run")
    timeout_minute_seconds: float = Field(
        default=60.0, gt=0, description="seconds in one timeout_minutes unit (lower only to test)"
    )
    lease_seconds: float = Field(
        default=30.0, gt=0, description="how long a claimed sub-query may go unheard of"
    )
    tick_seconds: float = Field(default=0.25, gt=0, description="scheduler housekeeping period")
    sweep_seconds: float = Field(default=30.0, gt=0, description="expiry sweeper period")
    download_packs: bool = Field(
        default=True,
        description="pack a stopped batch's rows for its downloads (faster, some room)",
    )
    timezone: str = "UTC"
    log_format: Literal["text", "json"] = Field(
        default="text", description="log lines: readable text, or one JSON object per line"
    )

    sources: Path | None = None
    demo_sources: bool = True
    demo_latency_ms: float = Field(default=0.0, ge=0)
    demo_fail_accounts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    demo_rows_per_day: int | None = Field(default=None, ge=1)

    callback_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="callback targets allowed although internal: CIDRs and host names",
    )
    destination_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="destination hosts allowed although internal: CIDRs and host names",
    )
    destination_allow_internal: bool = Field(
        default=False,
        description="let destinations reach any address, internal networks and loopback too",
    )
    csv_escape_formulas: bool = Field(
        default=True,
        description="prefix csv/tsv cells that a spreadsheet would run as a formula with '",
    )

    @field_validator("demo_fail_accounts", "callback_allow", "destination_allow", mode="before")
    @classmethod
    def _split_accounts(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'querybatch.db'}"

    @property
    def shared_redis_url(self) -> str | None:
        """The Redis that nodes share (rate limits, completion notices), if there is one."""
        if self.redis_url:
            return self.redis_url
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return None
