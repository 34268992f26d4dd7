"""What the repositories hand out: plain, immutable records (never table rows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import orjson

from querybatch.domain.actions import Statement
from querybatch.domain.batch import BatchSettings
from querybatch.domain.query import QuerySpec
from querybatch.domain.status import BatchStatus, QueryStatus


@dataclass(frozen=True, slots=True)
class RoleRecord:
    """A role: an allow- or deny-list of action names."""

    name: str
    effect: str
    actions: tuple[str, ...]
    builtin: bool

    @property
    def statement(self) -> Statement:
        """What the role permits."""
        return Statement("allow" if self.effect == "allow" else "deny", frozenset(self.actions))


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An API key as stored: never the key itself, only its hash and a display prefix."""

    id: str
    name: str
    prefix: str
    role: str
    account: str
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True, slots=True)
class Counts:
    """How many sub-queries of a batch are in each progress state."""

    queued: int = 0
    running: int = 0
    success: int = 0
    failure: int = 0
    stopped: int = 0

    @property
    def total(self) -> int:
        """All sub-queries; always equal to the batch's query_amount."""
        return self.queued + self.running + self.success + self.failure + self.stopped


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """A query batch (or the hidden one-query batch of a data request)."""

    id: str
    kind: str
    account: str
    key_id: str
    status: BatchStatus
    settings: BatchSettings  # the defaults for a data request's hidden batch
    columns: tuple[str, ...]  # every field any sub-query returns, in first-seen order
    query_concurrency: int
    timeout_seconds: int
    created_at: float
    schedule_time: float
    start_time: float | None
    end_time: float | None
    cancel_time: float | None
    query_amount: int
    counts: Counts
    idempotency_key: str | None = None
    request_hash: str | None = None
    callback_url: str | None = None
    callback_sent_at: float | None = None
    stored: int | None = None  # sub-queries stored so far, while not all are (None: all are)


@dataclass(frozen=True, slots=True)
class PartlyStored:
    """A batch whose sub-queries are stored in part, and how many are."""

    batch_id: str
    query_amount: int
    stored: int


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """The rows a successful query produced (possibly shared by several queries)."""

    id: str
    total_rows: int
    total_columns: int
    run_seconds: float
    created_at: float


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a query failed or stopped, in the API's error vocabulary."""

    code: str
    message: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class QueryRecord:
    """One query: its spec, status, timings, error and result."""

    id: int
    account: str
    schedule_id: str
    batch_id: str
    batch_settings: BatchSettings
    position: int
    status: QueryStatus
    ds_id: str
    spec: QuerySpec
    fingerprint: str
    request_id: str | None
    created_at: float
    start_time: float | None
    end_time: float | None
    expires_at: float | None
    attempt: int
    error: ErrorInfo | None
    excluded_accounts: dict[str, str] | None
    result: ResultRecord | None
    cache_used: bool
    cache_time: float | None


class SubQueryState(NamedTuple):
    """A sub-query as its batch's status page shows it: what it covers and where it stands.

    Read without decoding the spec: a page of sub-queries is polled again and again, and its
    items are rebuilt only for the sub-queries whose status or times changed (see the API's
    item cache), so what a sub-query covers is taken from its spec only then (:meth:`split`).
    A tuple rather than a frozen dataclass: a page makes a hundred of them per poll.
    """

    id: int
    schedule_id: str
    status: QueryStatus
    ds_id: str
    spec_text: str  # the stored spec, as JSON
    start_time: float | None
    end_time: float | None
    error: ErrorInfo | None
    excluded_accounts: dict[str, str] | None
    total_rows: int | None  # when it has a result

    def split(self) -> tuple[tuple[str, ...], str, str]:
        """The accounts and the first and last date (ISO) it covers."""
        values = orjson.loads(self.spec_text)
        return tuple(values["accounts"]), values["start_date"], values["end_date"]


@dataclass(frozen=True, slots=True)
class LaneRecord:
    """A batch with work to do, as the scheduler sees it."""

    batch_id: str
    account: str
    status: BatchStatus
    query_concurrency: int
    schedule_time: float
    start_time: float | None
    timeout_seconds: int
    exclude_account_errors: bool
    queued: int
    running: int
    # The sequence its batch belongs to (StoredSettings.sequence): None for most batches.
    sequence: str | None = None


@dataclass(frozen=True, slots=True)
class WorkItem:
    """A claimed sub-query, ready for an executor: everything a run needs, no store access."""

    query_id: int
    batch_id: str
    account: str
    attempt: int
    spec: QuerySpec
    fingerprint: str
    exclude_account_errors: bool = False
    takeover: bool = False  # a redelivered run may take over its own attempt while RUNNING


@dataclass(frozen=True, slots=True)
class NewResult:
    """A finished run's result: its id, size, and the chunks not yet written."""

    id: str
    total_rows: int
    total_columns: int
    run_seconds: float
    last_chunks: tuple[tuple[int, int, bytes], ...] = ()  # (seq, row_count, payload)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one run of a sub-query ended; applied only if the run still owns the query."""

    query_id: int
    batch_id: str
    attempt: int
    status: QueryStatus
    end_time: float
    ds_id: str = ""
    result: NewResult | None = None
    shared_result_id: str | None = None
    error: ErrorInfo | None = None
    excluded_accounts: dict[str, str] | None = None
