"""Data query parameters: how clients send them, and the normalised spec that runs.

Clients send parameters as flat query strings (lists repeated or comma-separated), as one
``json=`` object, or as a body; :class:`DataRequest` coerces all of these into one typed
form and enforces the limits of the public OpenAPI document. :class:`QuerySpec` is what a
query *is*: resolved dates, normalised lists, nothing about paging or waiting. Its
fingerprint names identical queries (derived schedule ids, cache reuse, sharing a run).
"""

from __future__ import annotations

import ast
import hashlib
import math
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from querybatch.domain.dates import resolve_date_range
from querybatch.domain.filters import Filter, OrderKey, cached_filter, cached_order

ID_PATTERN = r"^[A-Za-z0-9_-]+$"

Identifier = Annotated[str, StringConstraints(max_length=50, pattern=ID_PATTERN)]
AccountId = Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=ID_PATTERN)]
# An account, or a list alias the planner resolves (``list.all_accounts``).
ACCOUNT_LIST_PREFIX = "list."
AccountRef = Annotated[
    str,
    StringConstraints(min_length=1, max_length=50, pattern=r"^(?:[A-Za-z0-9_-]+|list\.[a-z_]+)$"),
]
UserName = Annotated[str, StringConstraints(max_length=255)]
FieldId = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=ID_PATTERN)]


# Bounds of what list parameters may hold *before* splitting, so that splitting a huge
# comma string or a huge array costs nothing; each list's own max_length applies after.
MAX_LIST_ITEMS = 1000
MAX_LIST_CHARS = 64 * 1024


def _split_list(value: Any) -> Any:
    """Accept a list, a comma-separated string, or a single value as a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        _check_list_chars(len(value))
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        if len(value) > MAX_LIST_ITEMS:
            raise ValueError(f"at most {MAX_LIST_ITEMS} items are allowed")
        _check_list_chars(sum(len(item) for item in value if isinstance(item, str)))
        items: list[Any] = []
        for item in value:
            if isinstance(item, str) and "," in item:
                items.extend(part.strip() for part in item.split(",") if part.strip())
            else:
                items.append(item)
        return items
    return value


def _check_list_chars(chars: int) -> None:
    if chars > MAX_LIST_CHARS:
        raise ValueError(f"the list is longer than {MAX_LIST_CHARS} characters")


def _field_ids(value: Any) -> Any:
    """Fields come as ids, comma strings, or objects with an ``id``/``field_id`` key."""
    items = _split_list(value)
    if isinstance(items, list):
        return [
            (item.get("id") or item.get("field_id")) if isinstance(item, dict) else item
            for item in items
        ]
    return items


# Settings are a small object of knobs: bounded in text, size, depth and entries, so that
# reading them (and storing them with every sub-query) stays cheap.
MAX_SETTINGS_CHARS = 64 * 1024
MAX_LITERAL_CHARS = 8 * 1024
MAX_SETTINGS_DEPTH = 8
MAX_SETTINGS_ENTRIES = 1000


def _settings_object(value: Any) -> Any:
    """Settings arrive as an object, or as that object encoded in a string.

    The string is JSON, or, failing that, a Python literal: the official SDK puts a settings
    object into the query string as ``str(dict)``. Only short strings are read as Python
    literals (the parser is far slower than JSON's); anything must be JSON-shaped.
    """
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        value = _decode_settings(value)
    if not isinstance(value, dict):
        raise ValueError(f"settings must be an object, not {type(value).__name__}")
    _check_settings(value)
    return value


def _decode_settings(text: str) -> Any:
    if len(text) > MAX_SETTINGS_CHARS:
        raise ValueError(f"settings may be at most {MAX_SETTINGS_CHARS} characters")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if len(text) > MAX_LITERAL_CHARS:
            raise ValueError(f"settings is not a JSON object: {exc}") from exc
        try:
            return ast.literal_eval(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise ValueError(f"settings is not a JSON object: {exc}") from exc


def _check_settings(settings: dict[Any, Any]) -> None:
    """Refuse settings that are not JSON-shaped or exceed the bounds (no recursion)."""
    pending: list[tuple[Any, int]] = [(settings, 1)]
    entries = chars = 0
    while pending:
        item, depth = pending.pop()
        entries += 1
        if entries > MAX_SETTINGS_ENTRIES:
            raise ValueError(f"settings may hold at most {MAX_SETTINGS_ENTRIES} values")
        if isinstance(item, dict | list | tuple) and depth > MAX_SETTINGS_DEPTH:
            raise ValueError(f"settings may be nested at most {MAX_SETTINGS_DEPTH} levels")
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                raise ValueError("settings keys must be strings")
            chars += sum(len(key) for key in item)
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list | tuple):
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            chars += len(item)
        elif not _is_json_scalar(item):
            raise ValueError(f"settings may hold only JSON values, not {type(item).__name__}")
        if chars > MAX_SETTINGS_CHARS:
            raise ValueError(f"settings may hold at most {MAX_SETTINGS_CHARS} characters of text")


def _is_json_scalar(item: Any) -> bool:
    if item is None or isinstance(item, bool):
        return True
    if isinstance(item, int):
        return -(2**63) <= item < 2**64  # what JSON encoders (orjson) can write
    return isinstance(item, float) and math.isfinite(item)


def _blank_to_none(value: Any) -> Any:
    return None if value == "" else value


StrList = Annotated[list[AccountRef], BeforeValidator(_split_list), Field(max_length=100)]
OptionalInt = BeforeValidator(_blank_to_none)


class DataRequest(BaseModel):
    """The parameters of ``/query/data/{format}`` as sent, coerced and range-checked."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    schedule_id: Identifier | None = None
    ds_id: Annotated[str, StringConstraints(max_length=50, pattern=r"^[A-Za-z0-9_-]*$")] = ""
    ds_accounts: StrList = Field(default_factory=list)
    ds_segments: Annotated[
        list[AccountId], BeforeValidator(_split_list), Field(max_length=1000)
    ] = Field(default_factory=list)
    ds_user: UserName | None = None
    ds_users: Annotated[list[UserName], BeforeValidator(_split_list), Field(max_length=100)] = (
        Field(default_factory=list)
    )
    date_range_type: Annotated[str, StringConstraints(max_length=50)] | None = None
    start_date: Annotated[str, StringConstraints(max_length=100)] | None = None
    end_date: Annotated[str, StringConstraints(max_length=100)] | None = None
    compare_type: Annotated[str, StringConstraints(max_length=50)] | None = None
    compare_show: Annotated[str, StringConstraints(max_length=50)] | None = None
    compare_start_date: Annotated[str, StringConstraints(max_length=100)] | None = None
    compare_end_date: Annotated[str, StringConstraints(max_length=100)] | None = None
    fields: Annotated[list[FieldId], BeforeValidator(_field_ids), Field(max_length=100)] = Field(
        default_factory=list
    )
    settings: Annotated[dict[str, Any], BeforeValidator(_settings_object)] = Field(
        default_factory=dict
    )
    filter: Annotated[str, StringConstraints(max_length=5000)] | None = None
    order_rows: Annotated[
        list[Annotated[str, StringConstraints(max_length=100)]],
        BeforeValidator(_split_list),
        Field(max_length=50),
    ] = Field(default_factory=list)
    order_columns: Annotated[str, StringConstraints(max_length=1000)] | None = None
    max_columns: Annotated[int, OptionalInt, Field(ge=1, le=1000)] = 20
    max_rows: Annotated[int, OptionalInt, Field(ge=1, le=1_000_000)] = 1000
    offset_start: Annotated[int, OptionalInt, Field(ge=0, le=1_000_000)] = 0
    offset_end: Annotated[Annotated[int, Field(ge=0, le=1_000_000)] | None, OptionalInt] = None
    cache_minutes: Annotated[Annotated[int, Field(ge=0, le=10080)] | None, OptionalInt] = None
    sync_timeout: Annotated[int, OptionalInt, Field(ge=0, le=3600)] = 1800
    api_key: Annotated[str, StringConstraints(max_length=255)] | None = None

    @property
    def users(self) -> list[str]:
        """``ds_users`` with the ``ds_user`` shorthand folded in."""
        users = list(self.ds_users)
        if self.ds_user and self.ds_user not in users:
            users.insert(0, self.ds_user)
        return users


class QuerySpec(BaseModel):
    """A query as it runs: what to ask which data source, for which accounts and dates."""

    model_config = ConfigDict(frozen=True)

    ds_id: str
    accounts: tuple[str, ...]
    start_date: date
    end_date: date
    fields: tuple[str, ...]
    segments: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    filter: str | None = None
    order_rows: tuple[str, ...] = ()
    max_rows: int = 1000
    settings: dict[str, Any] = Field(default_factory=dict)
    date_range_type: str | None = None
    compare_type: str | None = None

    def canonical(self) -> dict[str, Any]:
        """The spec as JSON values: what the store keeps and what the fingerprint hashes."""
        return self.model_dump(mode="json")

    def fingerprint(self) -> str:
        """A stable hash of everything that decides the query's rows."""
        return fingerprint_of(self.canonical())

    def derived_schedule_id(self) -> str:
        """The schedule id of a request that did not name one: the same request, the same id."""
        return self.fingerprint()[:40]

    def narrowed(self, accounts: tuple[str, ...], start_date: date, end_date: date) -> QuerySpec:
        """The same query for some of its accounts and dates (a sub-query of a split)."""
        return self.model_copy(
            update={"accounts": accounts, "start_date": start_date, "end_date": end_date}
        )

    def shape(self, today: date) -> QuerySpec:
        """The query with no accounts or dates: equal for queries the planner checks alike."""
        return self.narrowed((), today, today)

    @property
    def parsed_filter(self) -> Filter | None:
        """The filter, parsed (once per distinct text)."""
        return cached_filter(self.filter) if self.filter else None

    @property
    def order_keys(self) -> tuple[OrderKey, ...]:
        """``order_rows``, parsed (once per distinct list)."""
        return cached_order(self.order_rows) if self.order_rows else ()


def canonical_text(canonical: Mapping[str, Any]) -> str:
    """A spec's JSON values as key-sorted JSON: what a sub-query's fingerprint hashes.

    Raises orjson.JSONEncodeError for values JSON cannot hold.
    """
    return orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS).decode()


def fingerprint_of(canonical: Mapping[str, Any]) -> str:
    """The fingerprint of a spec's JSON values: SHA-256 of their key-sorted JSON.

    Raises orjson.JSONEncodeError for values JSON cannot hold.
    """
    return hashlib.sha256(canonical_text(canonical).encode()).hexdigest()


class SpecError(ValueError):
    """A parameter is well-formed but does not make a runnable query; names the parameter."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def build_spec(request: DataRequest, today: date) -> QuerySpec:
    """Turn validated request parameters into the query they describe.

    Checks what needs no data source: dates resolve, the filter and order parse, there is a
    data source and at least one field. Field names are checked against the data source by
    the engine.
    """
    if not request.ds_id:
        raise SpecError("ds_id", "ds_id is required")
    if not request.fields:
        raise SpecError("fields", "fields is required: name at least one field")
    try:
        start, end = resolve_date_range(
            request.start_date, request.end_date, request.date_range_type, today
        )
    except ValueError as exc:
        raise SpecError("start_date", str(exc)) from exc
    if request.filter:
        try:
            cached_filter(request.filter)
        except ValueError as exc:
            raise SpecError("filter", str(exc)) from exc
    try:
        order = cached_order(tuple(request.order_rows))
    except ValueError as exc:
        raise SpecError("order_rows", str(exc)) from exc
    duplicates = {f for f in request.fields if request.fields.count(f) > 1}
    if duplicates:
        raise SpecError("fields", f"fields lists {', '.join(sorted(duplicates))} more than once")
    return QuerySpec(
        ds_id=request.ds_id,
        accounts=tuple(dict.fromkeys(request.ds_accounts)),
        start_date=start,
        end_date=end,
        fields=tuple(request.fields),
        segments=tuple(request.ds_segments),
        users=tuple(request.users),
        filter=request.filter or None,
        order_rows=tuple(f"{k.field} {'desc' if k.descending else 'asc'}" for k in order),
        max_rows=request.max_rows,
        settings=request.settings,
        date_range_type=request.date_range_type,
        compare_type=request.compare_type,
    )
