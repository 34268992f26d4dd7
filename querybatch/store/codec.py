"""How typed values are kept as text: query specs, batch settings and work items.

The one place that turns the domain's objects into stored (or sent) JSON and back. The
stored form is the spec's canonical JSON, the form its fingerprint hashes, so that what is on
disk and on the broker stays byte for byte what earlier versions wrote.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from querybatch.domain.batch import BatchSettings
from querybatch.domain.query import QuerySpec
from querybatch.store.records import WorkItem


class StoredSettings(NamedTuple):
    """What a batch row keeps beside its counters: its settings, its result columns and the
    sequence it belongs to, if any (the scheduler runs a sequence's batches one after the
    other; the engine sets it, never a tenant's body).

    A data request's hidden one-query batch has no settings of its own: ``settings`` is None
    going in, and the defaults coming out.
    """

    settings: BatchSettings | None
    columns: tuple[str, ...] = ()
    sequence: str | None = None


def encode_spec(spec: QuerySpec | Mapping[str, Any]) -> str:
    """A spec (or its canonical JSON values, as a planned piece holds them) as stored text."""
    values = spec.canonical() if isinstance(spec, QuerySpec) else spec
    return orjson.dumps(values).decode()


def decode_spec(text: str | bytes) -> QuerySpec:
    """A stored spec as the typed query it is."""
    return QuerySpec.model_validate_json(text)


def encode_settings(stored: StoredSettings) -> str:
    """A batch's settings and columns as stored text (``{}`` for a data request's batch)."""
    if stored.settings is None:
        return "{}"
    values = stored.settings.model_dump(mode="json") | {"columns": list(stored.columns)}
    if stored.sequence is not None:
        values["sequence"] = stored.sequence
    return orjson.dumps(values).decode()


@lru_cache(maxsize=1024)
def decode_settings(text: str) -> StoredSettings:
    """Stored batch settings, typed; once per distinct text (every query of a batch shares it).

    Validation runs again, and passes: the values were valid when stored, and the checks only
    widen with time (the latest schedule time moves forward).
    """
    values = orjson.loads(text)
    columns = values.get("columns") or ()
    return StoredSettings(
        BatchSettings.model_validate_json(text), tuple(columns), values.get("sequence")
    )


class SpecText(TypeDecorator[QuerySpec]):
    """A column holding a query spec as its canonical JSON."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else encode_spec(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> QuerySpec | None:
        return None if value is None else decode_spec(value)


class SettingsText(TypeDecorator[StoredSettings]):
    """A column holding a batch's settings and result columns as JSON."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else encode_settings(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> StoredSettings | None:
        return None if value is None else decode_settings(value)


def work_item_payload(item: WorkItem) -> dict[str, Any]:
    """A claimed sub-query as the JSON a broker carries to a worker."""
    values = {field.name: getattr(item, field.name) for field in dataclasses.fields(item)}
    values["spec"] = item.spec.canonical()
    return values


def work_item_from_payload(values: Mapping[str, Any], *, takeover: bool) -> WorkItem:
    """The claimed sub-query a worker was handed (``takeover`` if the broker redelivered it)."""
    return WorkItem(
        **{**values, "spec": QuerySpec.model_validate(values["spec"]), "takeover": takeover}
    )


# A pack's rows compress more than tenfold (their keys, dates and schedule ids repeat), and
# zlib's fastest level gives them back at about 600 MB/s without holding the GIL: a pack is
# read faster compressed than plain, and takes a tenth of the room.
PACK_LEVEL = 1


def pack_bytes(data: bytes) -> bytes:
    """``data`` compressed as a pack keeps it (see ``tables.batch_packs``)."""
    return zlib.compress(data, PACK_LEVEL)


def unpack_bytes(data: bytes, size: int) -> bytes:
    """What :func:`pack_bytes` compressed, ``size`` bytes long."""
    return zlib.decompress(data, bufsize=max(size, 1))
