"""Query batch settings (seeds supermetrics-create-batch / get-batch) and batch ids."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, NamedTuple, Protocol

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from querybatch.domain.callback_policy import check_callback_url
from querybatch.domain.query import QuerySpec, fingerprint_of
from querybatch.domain.splitting import SplitAccountsPolicy, SplitDatesPolicy

OutputFormat = Literal["json", "keyjson", "ndjson", "csv", "tsv", "parquet"]

EARLIEST_SCHEDULE = datetime(2000, 1, 1, tzinfo=UTC)
SCHEDULE_HORIZON = timedelta(days=366)


def _schedule_time(value: datetime) -> datetime:
    """A schedule_time from 2000-01-01 to a year from now (storable, listable, comparable)."""
    latest = datetime.now(UTC) + SCHEDULE_HORIZON
    # The years are compared first: comparing or converting a datetime near year 1 or 9999
    # that has a UTC offset can overflow.
    if not (
        EARLIEST_SCHEDULE.year <= value.year <= latest.year and EARLIEST_SCHEDULE <= value <= latest
    ):
        raise ValueError("schedule_time must be from 2000-01-01T00:00:00Z to one year from now")
    return value


class BatchSettings(BaseModel):
    """Everything of a batch but its queries; stored with it and echoed in the QueryBatch."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    description: Annotated[str, StringConstraints(max_length=2048)] = ""
    split_accounts_policy: SplitAccountsPolicy = "none"
    split_dates_policy: SplitDatesPolicy = "none"
    timeout_minutes: Annotated[int, Field(ge=5, le=60)] = 30
    query_concurrency: Annotated[int, Field(ge=1)] = 5
    query_output_format: OutputFormat = "json"
    add_exclude_account_errors: bool = False
    add_clean_data_types: bool = False
    schedule_time: Annotated[AwareDatetime, AfterValidator(_schedule_time)] | None = None
    callback_url: (
        Annotated[str, StringConstraints(max_length=2048), AfterValidator(check_callback_url)]
        | None
    ) = None


def new_batch_id() -> str:
    """A fresh batch id in the shape clients know: ``qrb_`` and 12 hex digits."""
    return f"qrb_{secrets.token_hex(6)}"


def batch_query_schedule_id(batch_id: str, position: int) -> str:
    """The schedule id of the ``position``-th (from 1) sub-query of a batch."""
    return f"{batch_id}_query_{position}"


class PlannedQuery(NamedTuple):
    """One numbered sub-query of a planned batch, as the store keeps it.

    A batch may hold a million of these, so the typed spec is built only when asked for:
    ``canonical`` (the JSON the store writes and the fingerprint hashes) is made anyway.
    """

    schedule_id: str
    base: QuerySpec  # the query this piece was split from
    accounts: tuple[str, ...]
    start_date: date
    end_date: date
    canonical: dict[str, Any]
    fingerprint: str

    @property
    def spec(self) -> QuerySpec:
        """The piece as a typed query."""
        return self.base.narrowed(self.accounts, self.start_date, self.end_date)

    @classmethod
    def whole(cls, schedule_id: str, spec: QuerySpec) -> PlannedQuery:
        """A query that is not split: the piece is the query."""
        canonical = spec.canonical()
        return cls(
            schedule_id,
            spec,
            spec.accounts,
            spec.start_date,
            spec.end_date,
            canonical,
            fingerprint_of(canonical),
        )

    @classmethod
    def piece(
        cls,
        schedule_id: str,
        base: QuerySpec,
        base_canonical: dict[str, Any],
        accounts: tuple[str, ...],
        start_date: date,
        end_date: date,
    ) -> PlannedQuery:
        """A piece of ``base`` (whose canonical form is given, to build it once per query)."""
        canonical = {
            **base_canonical,
            "accounts": list(accounts),
            "start_date": start_date.isoformat(),
            "end_date": end_date.isoformat(),
        }
        return cls(
            schedule_id, base, accounts, start_date, end_date, canonical, fingerprint_of(canonical)
        )


class PlannedQueries(Protocol):
    """The numbered sub-queries of a batch, in order, and how many there are: a list, or
    pieces made as they are read (a batch of a million is never held in memory at once)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[PlannedQuery]: ...
