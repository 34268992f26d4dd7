"""The destination contract: what the engine asks of a warehouse or a file store.

A destination *type* (``DWH_POSTGRESQL``, ``DWH_DUCKDB``, ``DWH_FILES`` or a plugin's) is a
subclass of :class:`Destination`; a configured destination (one row of the store) is an
instance of it, built from its fields. Destinations never touch the store: they check a
connection and load rows; the engine keeps their settings (secrets encrypted).

A load replaces one *slice*: the rows of one transfer, one data date and some accounts.
Loading a slice again, or a slice that overlaps an earlier one, leaves each row in the
destination exactly once; a load that fails part-way leaves the previous rows as they were.
``load_parts`` replaces several slices of one table in order (as that many loads would);
the SQL destinations do it in one transaction, so the slices change together or not at all.

Errors (``querybatch.errors``): ``DestinationUnreachable`` when the destination cannot be
reached or refuses the credentials (a later attempt may work), ``LoadRejected`` when the
rows, their columns or the table do not fit, ``BadRequest`` for fields that do not describe
a destination of the type. An exception raised by the caller's chunks is passed on as it is,
after the load has been undone.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from querybatch.domain.fields import DataType, Row
from querybatch.errors import BadRequest, LoadRejected

ColumnType = Literal["string", "integer", "float", "boolean", "date", "timestamp"]

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
"""What a table or column name looks like: safe, unquoted-looking, at most 63 characters."""

SYSTEM_PREFIX = "_qb_"
TRANSFER_COLUMN = "_qb_transfer_id"
DATE_COLUMN = "_qb_data_date"
ACCOUNT_COLUMN = "_qb_account"
LOADED_COLUMN = "_qb_loaded_at"
MAX_COLUMNS = 1000
MAX_ACCOUNTS = 10_000
MAX_PARTS = 1000


def column_type_of(data_type: DataType) -> ColumnType:
    """The column type a field of ``data_type`` is loaded as."""
    if data_type == "int":
        return "integer"
    if data_type in ("float", "currency", "percent"):
        return "float"
    if data_type == "bool":
        return "boolean"
    if data_type == "date":
        return "date"
    return "string"


@dataclass(frozen=True, slots=True)
class Column:
    """One data column of a load: its name and its type."""

    name: str
    type: ColumnType


@dataclass(frozen=True, slots=True)
class Slice:
    """What one load replaces: the rows of ``transfer_id`` for ``data_date`` and ``accounts``."""

    transfer_id: int
    data_date: date
    accounts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RowChunk:
    """Rows of one account, in the order of the load's columns."""

    account: str
    rows: Sequence[Row]


@dataclass(frozen=True, slots=True)
class SliceRows:
    """One part of a load of several slices: the slice, and the chunks that replace it."""

    part: Slice
    chunks: AsyncIterable[RowChunk]


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What a load wrote: the rows, and where (a table or a path, for messages)."""

    rows: int
    target: str


@dataclass(frozen=True, slots=True)
class Setting:
    """One field of a destination type, as the SDK's ``edit_settings`` describe it."""

    id: str
    label: str
    input_type: Literal["text", "number", "password", "select"] = "text"
    required: bool = True
    help_text: str | None = None
    options: tuple[str, ...] = ()

    @property
    def secret(self) -> bool:
        """Whether the field is a secret: encrypted at rest and never shown."""
        return self.input_type == "password"


@dataclass(frozen=True, slots=True)
class DestinationContext:
    """What the server lends a destination: the directory its local files must stay in."""

    local_root: Path


class DestinationConfig(BaseModel):
    """Base of every destination type's fields model."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def check_identifier(name: str, what: str) -> str:
    """``name`` if it is a safe table or column name that is not reserved, else LoadRejected."""
    if not IDENTIFIER.match(name) or name.lower().startswith(SYSTEM_PREFIX):
        raise LoadRejected(
            f"Invalid {what} name {name[:70]!r}",
            "Names are letters, digits and underscores (at most 63, not starting with a "
            f"digit nor with {SYSTEM_PREFIX!r}).",
        )
    return name


def check_load(table: str, part: Slice, columns: Sequence[Column]) -> None:
    """Refuse a load whose table, columns or slice no destination could take."""
    check_identifier(table, "table")
    if not columns or len(columns) > MAX_COLUMNS:
        raise LoadRejected(f"A load needs 1 to {MAX_COLUMNS} columns, not {len(columns)}")
    seen: set[str] = set()
    for column in columns:
        check_identifier(column.name, "column")
        if column.name.lower() in seen:  # DuckDB and Parquet readers fold case
            raise LoadRejected(f"Column {column.name!r} is named twice")
        seen.add(column.name.lower())
    if not part.accounts or len(part.accounts) > MAX_ACCOUNTS:
        raise LoadRejected(f"A slice needs 1 to {MAX_ACCOUNTS} accounts")
    if len(set(part.accounts)) != len(part.accounts):
        raise LoadRejected("A slice names an account twice")
    if part.transfer_id < 0:
        raise LoadRejected("A transfer id is not negative")


def check_parts(table: str, columns: Sequence[Column], parts: Sequence[SliceRows]) -> None:
    """Refuse a load of several slices that ``check_load`` refuses for any one of them, or
    of none, or of more than ``MAX_PARTS``."""
    if not parts or len(parts) > MAX_PARTS:
        raise LoadRejected(f"A load needs 1 to {MAX_PARTS} slices, not {len(parts)}")
    for rows in parts:
        check_load(table, rows.part, columns)


def check_chunk(chunk: RowChunk, accounts: frozenset[str], width: int) -> None:
    """Refuse rows of an account outside the slice, or of the wrong width."""
    if chunk.account not in accounts:
        raise LoadRejected(f"Rows of account {chunk.account[:70]!r}, which the slice does not name")
    for row in chunk.rows:
        if len(row) != width:
            raise LoadRejected(f"A row has {len(row)} values for {width} columns")


class Destination(ABC):
    """One configured destination.

    Subclasses set ``type_name`` (the API's ``DWH_*`` name), ``title``, ``config_model`` (the
    pydantic model of their fields), ``settings`` (those fields described for clients; the
    ``password`` ones are secrets) and ``password_field``, the secret ``new_password``
    rotates.
    """

    type_name: ClassVar[str]
    title: ClassVar[str]
    config_model: ClassVar[type[DestinationConfig]] = DestinationConfig
    settings: ClassVar[tuple[Setting, ...]] = ()
    password_field: ClassVar[str | None] = None

    def __init__(self, config: DestinationConfig, context: DestinationContext) -> None:
        self.config = config
        self.context = context

    @classmethod
    def secret_fields(cls) -> frozenset[str]:
        """The names of the fields that are secrets."""
        return frozenset(s.id for s in cls.settings if s.secret)

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any], context: DestinationContext) -> Destination:
        """Build the destination from its fields; the first bad field becomes BadRequest."""
        try:
            config = cls.config_model.model_validate(dict(fields))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "fields"
            # Only the field's name and the rule are told: the value may be a secret.
            raise BadRequest(
                f"Invalid value for field {where!r} of a {cls.type_name} destination",
                error["msg"],
            ) from None
        return cls(config, context)

    @abstractmethod
    async def test_connection(self) -> None:
        """Check the destination can be reached and written with these fields.

        Return when it can; raise ``DestinationUnreachable`` (or ``DestinationError``) with
        a message for the user when it cannot. Nothing of the user's is changed.
        """

    @abstractmethod
    async def load(
        self,
        table: str,
        part: Slice,
        columns: Sequence[Column],
        chunks: AsyncIterable[RowChunk],
    ) -> LoadResult:
        """Replace the rows of ``part`` in ``table`` by those ``chunks`` yield, atomically.

        ``table`` (one per transfer schema) is created, and widened by new ``columns``, as
        needed. Each row holds the values of ``columns`` in order; each chunk belongs to one
        account of the slice. Chunks are consumed one at a time: memory must not grow with
        the number of rows. Accounts of the slice that yield no rows end with none.
        """

    async def load_parts(
        self, table: str, columns: Sequence[Column], parts: Sequence[SliceRows]
    ) -> list[LoadResult]:
        """Replace each slice of ``parts`` in ``table`` by its chunks, in order; what each
        part wrote, in the order of ``parts``.

        The result is that of one ``load`` per part, one after the other (a later part that
        overlaps an earlier one replaces its rows). This default does exactly that, so each
        part is atomic on its own and a failure leaves the parts before it loaded; a type
        that can load them in one transaction overrides it (one connection, one table
        check), and then all of them change together or none does.
        """
        check_parts(table, columns, parts)
        return [await self.load(table, rows.part, columns, rows.chunks) for rows in parts]

    def endpoints(self) -> tuple[tuple[str, int], ...]:
        """The network hosts and ports the destination connects to, for the server's outbound
        policy to check (none for local files). A type that connects anywhere lists it here."""
        return ()

    def pin(self, host: str, address: str) -> None:  # noqa: B027 - optional hook
        """Connect to ``address`` (checked by the policy) wherever the fields name ``host``."""

    async def close(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release connections and files; the destination is not used afterwards."""
