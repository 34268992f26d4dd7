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
# Amounts of money are summed by sources in binary floating point (1259.9899999999998):
# they are rounded to cents where rows are produced unless the source says otherwise.
DEFAULT_DECIMALS: dict[str, int] = {"currency": 2}
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
    decimals: int | None = None  # digits after the point a value keeps (None: the default)

    @property
    def precision(self) -> int | None:
        """Digits after the point this field's numbers are rounded to: ``decimals``, else two
        for currency; None: kept as they come."""
        if self.decimals is not None:
            return self.decimals
        return DEFAULT_DECIMALS.get(self.data_type)

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
