"""An example querybatch connector: rows written inline in the sources file.

::

    [sources.TARGETS]
    connector = "inline"
    dimensions = ["date", "account", "channel"]
    metrics = ["target"]
    rows = [
      { date = "2024-01-01", account = "north", channel = "search", target = 100 },
      { date = "2024-01-01", account = "south", channel = "social", target = 80 },
    ]

It pushes nothing down (``pushdown`` is empty), so the engine filters, orders and limits the
rows it yields; it groups by the requested dimensions itself, as every connector must.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

from pydantic import Field

from querybatch.connectors.base import Connector, ConnectorConfig, FetchRequest
from querybatch.domain.fields import Account, FieldInfo, Login, Row
from querybatch.errors import AccountErrors, ConfigurationError

__all__ = ["InlineConfig", "InlineConnector"]


class InlineConfig(ConnectorConfig):
    """The settings of one inline source (unknown keys are refused by ConnectorConfig)."""

    dimensions: list[str] = Field(min_length=1)
    metrics: list[str] = Field(default_factory=list)
    rows: list[dict[str, Any]] = Field(default_factory=list)
    date_key: str = "date"
    account_key: str = "account"


class InlineConnector(Connector):
    """Rows from the sources file, summed by the requested dimensions."""

    config_model: ClassVar[type[ConnectorConfig]] = InlineConfig
    pushdown: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, ds_id: str, config: ConnectorConfig) -> None:
        if not isinstance(config, InlineConfig):
            raise ConfigurationError(f"sources.{ds_id}: expected inline settings")
        super().__init__(ds_id, config)
        self.inline = config
        for key in (config.date_key, config.account_key):
            if key not in config.dimensions:
                raise ConfigurationError(f"sources.{ds_id}.dimensions: {key} must be listed")

    async def fields(self) -> Sequence[FieldInfo]:
        """The dimensions (dates typed as dates) and the integer metrics."""
        cfg = self.inline
        dims = [
            FieldInfo(d, d.title(), "dim", "date" if d == cfg.date_key else "string")
            for d in cfg.dimensions
        ]
        return [*dims, *(FieldInfo(m, m.title(), "met", "int") for m in cfg.metrics)]

    async def accounts(self, users: Sequence[str] = ()) -> Sequence[Login]:
        """One login holding every account that has a row."""
        ids = sorted({str(row[self.inline.account_key]) for row in self.inline.rows})
        accounts = tuple(Account(i, i.title()) for i in ids)
        return [Login("inline", "Inline rows", accounts)]

    async def fetch(self, request: FetchRequest) -> AsyncIterator[Sequence[Row]]:
        """Sum the metrics of the matching rows by the requested dimensions."""
        cfg = self.inline
        known = {str(row[cfg.account_key]) for row in cfg.rows}
        unknown = [a for a in request.accounts if a not in known]
        if unknown:  # before yielding anything, so the engine can exclude them
            raise AccountErrors(dict.fromkeys(unknown, "no rows for this account"))
        low, high = request.start_date.isoformat(), request.end_date.isoformat()
        dims = [f for f in request.fields if f in cfg.dimensions]
        totals: dict[tuple[Any, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for row in cfg.rows:
            if not low <= str(row[cfg.date_key]) <= high:
                continue
            if request.accounts and str(row[cfg.account_key]) not in request.accounts:
                continue
            sums = totals[tuple(str(row.get(d)) for d in dims)]
            for metric in cfg.metrics:
                sums[metric] += int(row.get(metric) or 0)
        rows = [
            tuple(key[dims.index(f)] if f in dims else sums[f] for f in request.fields)
            for key, sums in totals.items()
        ]
        if rows:
            yield rows
