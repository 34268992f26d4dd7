"""What a data source offers: fields, accounts and the logins that hold them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FieldType = Literal["dim", "met"]
DataType = Literal["string", "int", "float", "date", "currency", "percent", "bool"]
Aggregation = Literal["sum", "avg", "min", "max", "count"]

# A row is one tuple of JSON-compatible values, in the order of the requested fields; dates
# travel as ISO "YYYY-MM-DD" strings so that rows can be stored and streamed as they are.
Value = str | int | float | bool | None
Row = tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One field of a data source: a dimension to group by or a metric to aggregate."""

    field_id: str
    field_name: str
    field_type: FieldType
    data_type: DataType = "string"
    description: str = ""
    group_name: str = ""
    aggregation: Aggregation = "sum"
    is_filterable: bool = True

    @property
    def is_metric(self) -> bool:
        """True for metrics (``met``), false for dimensions (``dim``)."""
        return self.field_type == "met"


@dataclass(frozen=True, slots=True)
class Account:
    """One account of a data source that queries can target."""

    account_id: str
    account_name: str
    group_name: str = ""


@dataclass(frozen=True, slots=True)
class Login:
    """A data-source login (``ds_user``) and the accounts it can read."""

    ds_user: str
    display_name: str
    accounts: tuple[Account, ...] = field(default_factory=tuple)
