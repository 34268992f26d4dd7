"""The field mapping shared by the ``sql``, ``files`` and ``http`` connectors.

A source's settings name its dimensions and its metrics (with their aggregation); a field's id
is its column (or JSON key) unless ``columns`` maps it to another one, and ``fields`` may
override a field's label, data type, description and group. This module turns that into
:class:`FieldInfo` objects and into converters that give every value its field's Python type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from querybatch.connectors.base import ConnectorConfig
from querybatch.domain.fields import Aggregation, DataType, FieldInfo, Value
from querybatch.errors import ConfigurationError

__all__ = [
    "FieldOverride",
    "MappedField",
    "MappedFieldsConfig",
    "converter",
    "data_type_of_value",
    "map_fields",
]

# The field names the filter and order_rows parsers accept.
FIELD_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
NUMERIC_TYPES = frozenset({"int", "float", "currency", "percent"})


class FieldOverride(BaseModel):
    """What a source's ``fields.<id>`` table may change about one field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    data_type: DataType | None = None
    decimals: int | None = Field(default=None, ge=0, le=12)
    description: str = ""
    group: str = ""


def _check_ids(ids: list[str]) -> list[str]:
    for field_id in ids:
        if FIELD_ID.fullmatch(field_id) is None:
            raise ValueError(
                f"{field_id!r} is not a valid field id (letters, digits, _ and .; map a column "
                "with another name through columns)"
            )
    return ids


class MappedFieldsConfig(ConnectorConfig):
    """Settings every mapped connector shares: which fields exist and how they are labelled."""

    dimensions: list[str] = Field(default_factory=list)
    metrics: dict[str, Aggregation] = Field(default_factory=dict)
    columns: dict[str, str] = Field(default_factory=dict)
    fields: dict[str, FieldOverride] = Field(default_factory=dict)
    login: str | None = None
    display_name: str | None = None

    @field_validator("dimensions")
    @classmethod
    def _valid_dimensions(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a dimension is listed twice")
        return _check_ids(value)

    @field_validator("metrics")
    @classmethod
    def _valid_metrics(cls, value: dict[str, Aggregation]) -> dict[str, Aggregation]:
        _check_ids(list(value))
        return value


@dataclass(frozen=True, slots=True)
class MappedField:
    """One field and the column (or JSON key) it is read from."""

    info: FieldInfo
    source: str


def map_fields(
    ds_id: str,
    config: MappedFieldsConfig,
    source_types: Mapping[str, DataType],
    implied: Mapping[str, DataType] | None = None,
) -> dict[str, MappedField]:
    """The fields of a source, given the data type of each source column.

    ``implied`` names columns that are dimensions whether listed or not (the date and account
    columns), with the data type they must have; those not mapped by a listed dimension get
    one named after the column. Raises ConfigurationError naming the key that is wrong.
    """
    prefix = f"sources.{ds_id}"
    both = sorted(set(config.dimensions) & set(config.metrics))
    if both:
        raise ConfigurationError(f"{prefix}.metrics: {both[0]} is also a dimension")
    mapped_columns = {config.columns.get(d, d) for d in config.dimensions}
    dims: list[str] = []
    for column in implied or {}:
        if column not in mapped_columns:
            if FIELD_ID.fullmatch(column) is None or column in config.metrics:
                raise ConfigurationError(
                    f"{prefix}.dimensions: list a dimension for column {column!r} "
                    "(mapped through columns)"
                )
            dims.append(column)
    dims.extend(config.dimensions)
    known = set(dims) | set(config.metrics)
    for key, table in (("columns", config.columns), ("fields", config.fields)):
        stray = sorted(set(table) - known)
        if stray:
            raise ConfigurationError(f"{prefix}.{key}.{stray[0]}: not a dimension or metric")
    result: dict[str, MappedField] = {}
    for field_id in dims:
        column = config.columns.get(field_id, field_id)
        natural = (implied or {}).get(column) or source_types.get(column, "string")
        result[field_id] = MappedField(_info(config, field_id, "dim", natural, "sum"), column)
    for field_id, aggregation in config.metrics.items():
        column = config.columns.get(field_id, field_id)
        natural = _metric_type(aggregation, source_types.get(column, "float"))
        override = config.fields.get(field_id)
        if aggregation in ("sum", "avg") and natural not in NUMERIC_TYPES:
            if override is None or override.data_type not in NUMERIC_TYPES:
                raise ConfigurationError(
                    f"{prefix}.metrics.{field_id}: column {column!r} is {natural}, and "
                    f"{aggregation} needs numbers"
                )
        info = _info(config, field_id, "met", natural, aggregation)
        result[field_id] = MappedField(info, column)
    return result


def _metric_type(aggregation: Aggregation, column_type: DataType) -> DataType:
    if aggregation == "count":
        return "int"
    if aggregation == "avg":
        return "float" if column_type in NUMERIC_TYPES else column_type
    return column_type


def _info(
    config: MappedFieldsConfig,
    field_id: str,
    kind: str,
    natural: DataType,
    aggregation: Aggregation,
) -> FieldInfo:
    override = config.fields.get(field_id) or FieldOverride()
    label = field_id.replace("_", " ").replace(".", " ").strip().capitalize() or field_id
    return FieldInfo(
        field_id=field_id,
        field_name=override.name or label,
        field_type="met" if kind == "met" else "dim",
        data_type=override.data_type or natural,
        description=override.description,
        group_name=override.group or ("Metrics" if kind == "met" else "Dimensions"),
        aggregation=aggregation,
        decimals=override.decimals,
    )


def data_type_of_value(value: object) -> DataType:
    """The data type a sample value suggests (used where a source has no declared types)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float | Decimal):
        return "float"
    if isinstance(value, date):
        return "date"
    return "string"


def _to_int(value: Any) -> Value:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = _to_float(value)
    if isinstance(number, float) and math.isfinite(number) and number.is_integer():
        return int(number)
    return number


def _to_float(value: Any) -> Value:
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool):
        return float(value)
    return float(value)


def _to_date(value: Any) -> Value:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    # "2024-01-31T10:00:00Z" is the day 2024-01-31.
    return text[:10] if _ISO_DAY.match(text) else text


def _to_bool(value: Any) -> Value:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "t")
    return bool(value)


def _to_string(value: Any) -> Value:
    if isinstance(value, str):
        return value
    if isinstance(value, date):
        return _to_date(value)
    if isinstance(value, Decimal):
        return str(_to_int(value))
    return str(value)


_CONVERTERS: dict[str, Callable[[Any], Value]] = {
    "int": _to_int,
    "float": _to_float,
    "currency": _to_float,
    "percent": _to_float,
    "date": _to_date,
    "bool": _to_bool,
    "string": _to_string,
}


def converter(data_type: DataType) -> Callable[[Any], Value]:
    """A function giving a raw value the Python type of ``data_type`` (None stays None)."""
    convert = _CONVERTERS[data_type]

    def typed(value: Any) -> Value:
        return None if value is None else convert(value)

    return typed
