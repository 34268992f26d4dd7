"""Query batch settings (seeds supermetrics-create-batch / get-batch) and batch ids."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal, NamedTuple, Protocol

import orjson
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from querybatch.domain.callback_policy import check_callback_url
from querybatch.domain.query import QuerySpec, canonical_text
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


_NUMBERED = re.compile(r"(qrb_[0-9a-f]{12})_query_([1-9][0-9]{0,6})")


def batch_query_position(schedule_id: str) -> tuple[str, int] | None:
    """(batch id, position) of a schedule id :func:`batch_query_schedule_id` made, else None."""
    found = _NUMBERED.fullmatch(schedule_id)
    return None if found is None else (found[1], int(found[2]))


class PlannedQuery(NamedTuple):
    """One numbered sub-query of a planned batch, as the store keeps it.

    A batch may hold a million of these, so the typed spec is built only when asked for:
    ``spec_text`` (the JSON the store writes) and the fingerprint are made anyway.
    """

    schedule_id: str
    base: QuerySpec  # the query this piece was split from
    accounts: tuple[str, ...]
    start_date: date
    end_date: date
    spec_text: str
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
            orjson.dumps(canonical).decode(),
            _sha256(canonical_text(canonical)),
        )

    @classmethod
    def piece(
        cls,
        schedule_id: str,
        base: QuerySpec,
        template: PieceTemplate,
        accounts: tuple[str, ...],
        start_date: date,
        end_date: date,
    ) -> PlannedQuery:
        """A piece of ``base``, its texts made from the query's ``template``."""
        stored, hashed = template.texts(accounts, start_date, end_date)
        return cls(schedule_id, base, accounts, start_date, end_date, stored, _sha256(hashed))


class PieceTemplate:
    """The texts of a query's pieces, made by filling in their accounts and dates.

    A batch of a million pieces spent a fifth of its insert building each piece's canonical
    values and writing them as JSON twice (as stored, and key-sorted for the fingerprint);
    only three values differ between pieces, so the query's two texts are written once with a
    marker in each of those values, and a piece's texts are the parts between the markers
    around its own values: byte for byte what writing its values gives (a test holds them
    equal), so stored specs and fingerprints are those of earlier versions.
    """

    def __init__(self, base: QuerySpec) -> None:
        marker = secrets.token_hex(16)
        marked = base.canonical() | {name: f"{marker}{name}" for name in _PIECE_VALUES}
        self._stored = _Filler(orjson.dumps(marked).decode(), marker)
        self._hashed = _Filler(canonical_text(marked), marker)
        self._accounts: dict[tuple[str, ...], str] = {}

    def texts(self, accounts: tuple[str, ...], start_date: date, end_date: date) -> tuple[str, str]:
        """The piece's spec as stored, and its canonical (key-sorted) text."""
        accounts_text = self._accounts.get(accounts)
        if accounts_text is None:
            accounts_text = orjson.dumps(list(accounts)).decode()
            if len(self._accounts) < 1024:  # a query names at most 100 accounts
                self._accounts[accounts] = accounts_text
        values = (accounts_text, f'"{start_date.isoformat()}"', f'"{end_date.isoformat()}"')
        return self._stored.fill(values), self._hashed.fill(values)


_PIECE_VALUES = ("accounts", "start_date", "end_date")


class _Filler:
    """A JSON text cut around the quoted markers of the piece values it holds."""

    def __init__(self, text: str, marker: str) -> None:
        found = sorted((text.index(f'"{marker}{name}"'), name) for name in _PIECE_VALUES)
        self.parts: list[str] = []
        self.order: list[int] = []  # which of the values (as _PIECE_VALUES) each gap holds
        at = 0
        for index, name in found:
            self.parts.append(text[at:index])
            self.order.append(_PIECE_VALUES.index(name))
            at = index + len(f'"{marker}{name}"')
        self.parts.append(text[at:])

    def fill(self, values: tuple[str, str, str]) -> str:
        """The text with ``values`` (in the order of _PIECE_VALUES) in place of the markers."""
        parts = self.parts
        first, second, third = self.order
        return "".join(
            (parts[0], values[first], parts[1], values[second], parts[2], values[third], parts[3])
        )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class PlannedQueries(Protocol):
    """The numbered sub-queries of a batch, in order, and how many there are: a list, or
    pieces made as they are read (a batch of a million is never held in memory at once)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[PlannedQuery]: ...
